package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// addAutoscalerFlags registers the cluster-wide autoscaler settings, the same for `skiff up`,
// `skiff controlplane` and `skiff controller`.
func addAutoscalerFlags(f *pflag.FlagSet) {
	d := autoscaler.DefaultConfig()
	f.Bool("enable-scale-to-zero", d.EnableScaleToZero, "let revisions without traffic scale to zero (Knative's enable-scale-to-zero; needs the ext_proc activator)")
	f.Duration("scale-to-zero-grace-period", d.ScaleToZeroGracePeriod, "how long an inactive revision keeps its last pod with the activator in its path before going to zero")
	f.Duration("scale-to-zero-pod-retention-period", d.ScaleToZeroPodRetentionPeriod, "the least time an inactive revision keeps its last pod (Knative's scale-to-zero-pod-retention-period; annotation overrides)")
	f.Duration("stable-window", d.StableWindow, "the autoscaler's default stable window (annotation autoscaling.knative.dev/window overrides)")
	f.Duration("autoscaler-tick", d.TickInterval, "how often the autoscaler decides")
	f.String("autoscaler-metrics", autoscaler.ClusterStats.String(), "where the autoscaler reads demand: cluster-stats (the proxies' upstream cluster stats plus requests held by the activators) or revision-metrics (the revision-metrics wasm filter, which proxies then run)")
}

// autoscalerFlags reads the flags addAutoscalerFlags registered, naming the flag at fault.
func autoscalerFlags(f *pflag.FlagSet) (autoscaler.Config, autoscaler.StatSource, error) {
	a := autoscaler.DefaultConfig()
	a.EnableScaleToZero, _ = f.GetBool("enable-scale-to-zero")
	a.ScaleToZeroGracePeriod, _ = f.GetDuration("scale-to-zero-grace-period")
	a.ScaleToZeroPodRetentionPeriod, _ = f.GetDuration("scale-to-zero-pod-retention-period")
	a.StableWindow, _ = f.GetDuration("stable-window")
	a.TickInterval, _ = f.GetDuration("autoscaler-tick")
	if a.StableWindow < autoscaler.WindowMin || a.StableWindow > autoscaler.WindowMax {
		return a, 0, fmt.Errorf("--stable-window %s: must be between %s and %s", a.StableWindow, autoscaler.WindowMin, autoscaler.WindowMax)
	}
	if a.TickInterval <= 0 {
		return a, 0, fmt.Errorf("--autoscaler-tick %s: must be positive", a.TickInterval)
	}
	if a.ScaleToZeroGracePeriod < 0 {
		return a, 0, fmt.Errorf("--scale-to-zero-grace-period %s: must not be negative", a.ScaleToZeroGracePeriod)
	}
	if a.ScaleToZeroPodRetentionPeriod < 0 {
		return a, 0, fmt.Errorf("--scale-to-zero-pod-retention-period %s: must not be negative", a.ScaleToZeroPodRetentionPeriod)
	}
	v, _ := f.GetString("autoscaler-metrics")
	source, err := autoscaler.ParseStatSource(v)
	if err != nil {
		return a, 0, fmt.Errorf("--autoscaler-metrics: %w", err)
	}
	return a, source, nil
}

// wasmFilter locates (in a source checkout: builds) the module of the filter in
// wasm-filters/<module> and returns it as the proxy filter named name; flag is the flag
// the filter is there for, named in the error.
func wasmFilter(ctx context.Context, root, dir, module, name, flag string, log *slog.Logger) (xds.WasmFilter, error) {
	mods, err := wasmbuild.Locate(ctx, wasmbuild.Options{Root: root, OutDir: dir, Filters: []string{module}, Logger: log})
	if err != nil {
		return xds.WasmFilter{}, fmt.Errorf("%s: %w", flag, err)
	}
	m := mods[module]
	return xds.WasmFilter{Name: name, Path: m.Path, SHA256: m.SHA256}, nil
}

// forwardedFilterUsage is the help of --forwarded-filter (skiff up, controlplane, controller).
const forwardedFilterUsage = "run the forwarded wasm filter in the proxy, on the requests whose Forwarded header the route's formatter cannot write as Knative's queue-proxy does (a client's X-Forwarded-For chain, IPv6, X-Forwarded-Host); without it apps get Forwarded: for=CLIENT;proto=SCHEME from the formatter alone"

// forwardedFilter locates the forwarded filter's module and returns it as the proxy
// filter xds.ForwardedFilterName, run only on xds.ForwardedConditions, failing open: a
// failed VM leaves the request the route formatter's Forwarded rather than failing it.
func forwardedFilter(ctx context.Context, root, dir string, log *slog.Logger) (xds.WasmFilter, error) {
	w, err := wasmFilter(ctx, root, dir, "forwarded", xds.ForwardedFilterName, "--forwarded-filter", log)
	if err != nil {
		return w, err
	}
	w.RunWhen = xds.ForwardedConditions()
	w.FailOpen = true
	return w, nil
}
