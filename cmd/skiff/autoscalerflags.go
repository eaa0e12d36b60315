package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/skiff-dev/skiff/controlplane/autoscaler"
)

// addAutoscalerFlags registers the cluster-wide autoscaler settings of `skiff controller`
// (the flags have the same names and meanings as `skiff up`'s).
func addAutoscalerFlags(f *pflag.FlagSet) {
	d := autoscaler.DefaultConfig()
	f.Bool("enable-scale-to-zero", d.EnableScaleToZero, "let revisions without traffic scale to zero (Knative's enable-scale-to-zero; needs --extproc-advertise)")
	f.Duration("scale-to-zero-grace-period", d.ScaleToZeroGracePeriod, "how long a revision waits at one pod before going to zero")
	f.Duration("stable-window", d.StableWindow, "the autoscaler's default stable window (annotation autoscaling.knative.dev/window overrides)")
	f.Duration("autoscaler-tick", d.TickInterval, "how often the autoscaler decides")
	f.String("autoscaler-metrics", autoscaler.ClusterStats.String(), "where the autoscaler reads demand: cluster-stats (the proxies' upstream cluster stats plus requests held by the activators) or revision-metrics (the revision-metrics wasm filter, which proxies then run)")
	f.StringArray("proxy-stats", nil, "admin URL of a proxy whose /stats the autoscaler scrapes, for proxies that do not push to the metrics_service stat sink (repeatable)")
}

// autoscalerFlags reads the flags addAutoscalerFlags registered, naming the flag at fault.
func autoscalerFlags(f *pflag.FlagSet) (autoscaler.Config, autoscaler.StatSource, []string, error) {
	a := autoscaler.DefaultConfig()
	a.EnableScaleToZero, _ = f.GetBool("enable-scale-to-zero")
	a.ScaleToZeroGracePeriod, _ = f.GetDuration("scale-to-zero-grace-period")
	a.StableWindow, _ = f.GetDuration("stable-window")
	a.TickInterval, _ = f.GetDuration("autoscaler-tick")
	if a.StableWindow < autoscaler.WindowMin || a.StableWindow > autoscaler.WindowMax {
		return a, 0, nil, fmt.Errorf("--stable-window %s: must be between %s and %s", a.StableWindow, autoscaler.WindowMin, autoscaler.WindowMax)
	}
	if a.TickInterval <= 0 {
		return a, 0, nil, fmt.Errorf("--autoscaler-tick %s: must be positive", a.TickInterval)
	}
	if a.ScaleToZeroGracePeriod < 0 {
		return a, 0, nil, fmt.Errorf("--scale-to-zero-grace-period %s: must not be negative", a.ScaleToZeroGracePeriod)
	}
	v, _ := f.GetString("autoscaler-metrics")
	source, err := autoscaler.ParseStatSource(v)
	if err != nil {
		return a, 0, nil, fmt.Errorf("--autoscaler-metrics: %w", err)
	}
	stats, _ := f.GetStringArray("proxy-stats")
	return a, source, stats, nil
}
