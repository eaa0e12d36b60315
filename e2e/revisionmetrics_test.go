package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/e2e/traffic"
	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// revisionMetrics switches the autoscaler to the revision-metrics wasm filter's counters,
// building the filter with the project's wasm build as `skiff up --autoscaler-metrics
// revision-metrics` does.
func revisionMetrics(t *testing.T) func(*controlplane.Config) {
	mods, err := wasmbuild.Locate(context.Background(), wasmbuild.Options{
		Root: moduleRoot(t), OutDir: t.TempDir(), Filters: []string{"revision-metrics"},
	})
	if err != nil {
		t.Fatalf("build revision-metrics: %v", err)
	}
	m := mods["revision-metrics"]
	return func(cfg *controlplane.Config) {
		cfg.StatSource = autoscaler.RevisionMetrics
		cfg.WasmFilters = []xds.WasmFilter{{Name: xds.RevisionMetricsFilterName, Path: m.Path, SHA256: m.SHA256}}
	}
}

// proxyStat reads one stat from the gateway's admin /stats; -1 when it is absent.
func proxyStat(t *testing.T, adminURL, name string) int64 {
	t.Helper()
	n, err := traffic.Stat(adminURL, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// With --autoscaler-metrics revision-metrics the autoscaler reads only the wasm filter's
// per-revision counters (neither Envoy's cluster stats nor the activator's held requests), and
// they alone drive a revision from 1 to about C/10 pods under C concurrent requests and back.
func TestAutoscalingFromRevisionMetrics(t *testing.T) {
	s := startSkiff(t, t.TempDir(), fastAutoscaler, revisionMetrics(t))
	admin := s.adminURL
	s.apply(annotated("metered", map[string]string{
		"autoscaling.knative.dev/window":                        "6s",
		"autoscaling.knative.dev/target":                        "10",
		"autoscaling.knative.dev/target-utilization-percentage": "100",
		"autoscaling.knative.dev/min-scale":                     "1",
	}, ""))
	s.waitReady("ksvc", "metered", nil)

	const inFlight = "wasmcustom.skiff_revision_in_flight.default/metered-00001"
	const total = "wasmcustom.skiff_revision_requests_total.default/metered-00001"
	stop := make(chan struct{})
	wait := s.load("metered.default.localhost", "/?sleep=200", 30, stop)
	eventually(t, 10*time.Second, "the filter counting the load in flight", func() bool {
		return proxyStat(t, admin, inFlight) >= 10
	})
	var inRange int
	eventually(t, 60*time.Second, "about 3 pods under 30 concurrent requests", func() bool {
		r := s.revision("metered-00001")
		d, a := replicas(r.Status.DesiredReplicas), replicas(r.Status.ActualReplicas)
		if d >= 2 && d <= 4 && a >= 2 && a <= 4 {
			inRange++
		} else {
			inRange = 0
		}
		return inRange >= 25
	})
	close(stop)
	ok, failed := wait()
	if failed > 0 {
		t.Errorf("%d requests failed under steady load", failed)
	}
	if n := proxyStat(t, admin, total); n < ok {
		t.Errorf("%s = %d, want at least the %d requests answered", total, n, ok)
	}
	eventually(t, 5*time.Second, "the in-flight gauge back to 0 after the load", func() bool {
		return proxyStat(t, admin, inFlight) == 0
	})
	eventually(t, 60*time.Second, "back down to 1 pod after the load stops", func() bool {
		r := s.revision("metered-00001")
		return replicas(r.Status.DesiredReplicas) == 1 && replicas(r.Status.ActualReplicas) == 1
	})
}
