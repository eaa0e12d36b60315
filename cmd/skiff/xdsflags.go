package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff-dev/skiff/controlplane/xds"
)

// addServingNodeFlags registers which xDS clients readiness waits for, the same for
// `skiff up`, `skiff controlplane` and `skiff controller`.
func addServingNodeFlags(f *pflag.FlagSet) {
	f.StringSlice("serving-node-clusters", xds.DefaultServingNodeClusters, "xDS node clusters (Envoy's --service-cluster) of the proxies meant to serve: only their ACKs make Routes Ready and only their NACKs are reported; other xDS clients are served but never waited for")
	f.StringSlice("serving-node-ids", nil, "xDS node ids (Envoy's --service-node) of the proxies meant to serve, if only some nodes of --serving-node-clusters are (empty: any id)")
	f.Duration("xds-ack-timeout", xds.DefaultAckTimeout, "how long a serving proxy may leave an xDS response unanswered before Routes stop waiting for it (it counts again once it answers)")
	f.String("xds-route-layout", "single", "how routes reach proxies: single (one RouteConfiguration per listener, re-sent whole on every change) or scoped (scoped routes: a scope per host over hash-bucketed RouteConfigurations, so a change re-sends one bucket; hosts match exactly, case included, and cannot be wildcards); see controlplane/xds/README.md")
}

// routeLayoutFlag reads --xds-route-layout: whether routes are scoped.
func routeLayoutFlag(f *pflag.FlagSet) (bool, error) {
	switch v, _ := f.GetString("xds-route-layout"); v {
	case "single":
		return false, nil
	case "scoped":
		return true, nil
	default:
		return false, fmt.Errorf("--xds-route-layout %q: must be single or scoped", v)
	}
}

// servingNodeFlags reads the flags addServingNodeFlags registered, naming the flag at fault.
func servingNodeFlags(f *pflag.FlagSet) (xds.NodeSelector, time.Duration, error) {
	var sel xds.NodeSelector
	sel.Clusters, _ = f.GetStringSlice("serving-node-clusters")
	sel.IDs, _ = f.GetStringSlice("serving-node-ids")
	if sel.IsZero() {
		return sel, 0, fmt.Errorf("--serving-node-clusters, --serving-node-ids: at least one must name the proxies meant to serve")
	}
	timeout, _ := f.GetDuration("xds-ack-timeout")
	if timeout <= 0 {
		return sel, 0, fmt.Errorf("--xds-ack-timeout %s: must be positive", timeout)
	}
	return sel, timeout, nil
}
