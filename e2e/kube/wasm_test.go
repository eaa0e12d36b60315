package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/e2e/traffic"
	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// proxyStat reads one stat from a proxy's admin /stats; -1 when it is absent.
func proxyStat(t *testing.T, admin, name string) int64 {
	t.Helper()
	n, err := traffic.Stat("http://"+admin, name)
	if err != nil {
		return -1 // not up yet: callers wait for a value
	}
	return n
}

// With --autoscaler-metrics revision-metrics the controller serves the filter's module over
// HTTP and sends it to proxies as remote code with its sha256 (as Envoy in a cluster gets it):
// the gateway fetches it from the controller, runs it on every request, and its counters
// reach the autoscaler.
func TestWasmFilterFetchedFromController(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and kube-controller-manager")
	}
	mods, err := wasmbuild.Locate(context.Background(), wasmbuild.Options{Root: moduleRoot(t), OutDir: t.TempDir(), Filters: []string{"revision-metrics"}})
	if err != nil {
		t.Fatalf("build revision-metrics: %v", err)
	}
	m := mods["revision-metrics"]
	c := startCluster(t)
	startKubelet(t, c.kube)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctrl, _ := runControllerWith(t, c, "wasm", func(cfg *kube.Config) {
		cfg.HTTPAddress, cfg.WasmCodeAdvertise = httpAddr, httpAddr
		cfg.StatSource = autoscaler.RevisionMetrics
		cfg.WasmFilters = []xds.WasmFilter{{Name: xds.RevisionMetricsFilterName, Path: m.Path, SHA256: m.SHA256}}
		cfg.ProxyStatsURLs = []string{"http://" + admin}
	})
	gw := runGatewayAdmin(t, ctrl.XDSAddr().String(), admin)
	c.apply(t, "hello.yaml")
	c.waitReady(t, servicesGVR, "hello")
	eventually(t, 60*time.Second, "hello answers through the gateway running the fetched filter", func() bool {
		code, rev, _, err := getFrom(gw, "hello.default.example.com", "/")
		return err == nil && code == 200 && rev == "hello-00001"
	})
	if n := proxyStat(t, admin, "wasmcustom.skiff_revision_requests_total.default/hello-00001"); n < 1 {
		t.Errorf("revision-metrics counter = %d, want the requests the filter counted", n)
	}
}
