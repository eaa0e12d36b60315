package e2e

import (
	"context"
	"testing"

	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// withForwardedFilter runs the forwarded wasm filter as `skiff up` does by default
// (--forwarded-filter): through the composite filter, on xds.ForwardedConditions.
func withForwardedFilter(t *testing.T) func(*controlplane.Config) {
	t.Helper()
	mods, err := wasmbuild.Locate(context.Background(), wasmbuild.Options{
		Root: moduleRoot(t), OutDir: t.TempDir(), Filters: []string{"forwarded"},
	})
	if err != nil {
		t.Fatalf("build the forwarded filter: %v", err)
	}
	m := mods["forwarded"]
	return func(cfg *controlplane.Config) {
		cfg.WasmFilters = append(cfg.WasmFilters, xds.WasmFilter{
			Name: xds.ForwardedFilterName, Path: m.Path, SHA256: m.SHA256, RunWhen: xds.ForwardedConditions(), FailOpen: true,
		})
	}
}

// The app sees the Forwarded header Knative's queue-proxy builds (pkg/queue/forwarded_shim.go,
// TestForwardedShimHandler): one for= per X-Forwarded-For entry, the first with host= and
// proto=. The common request gets it from the route's formatter; a client's X-Forwarded-For
// chain or X-Forwarded-Host runs the forwarded wasm filter, and only those do.
func TestForwardedAsQueueProxy(t *testing.T) {
	s := startSkiff(t, t.TempDir(), withForwardedFilter(t))
	s.apply(serviceYAML("hello", "x", ""))
	s.waitReady("ksvc", "hello", nil)
	get := func(set map[string]string) map[string]string { return s.echo(helloHost, set).Headers }
	const success = "http." + xds.ListenerName + ".composite.delegation_success"
	for _, tc := range []struct {
		name    string
		set     map[string]string
		want    string
		matched int64 // requests that ran the filter so far
	}{
		{"plain", nil, "for=127.0.0.1;proto=http", 0},
		{"client X-Forwarded-For", map[string]string{"X-Forwarded-For": "1.2.3.4"}, "for=1.2.3.4;proto=http, for=127.0.0.1", 1},
		{"X-Forwarded-Host", map[string]string{"X-Forwarded-Host": "example.com"}, "for=127.0.0.1;host=example.com;proto=http", 2},
		{"both, IPv6 entry", map[string]string{"X-Forwarded-For": "2001:db8::1", "X-Forwarded-Host": "h"}, `for="[2001:db8::1]";host=h;proto=http, for=127.0.0.1`, 3},
		{"client Forwarded kept", map[string]string{"X-Forwarded-For": "1.2.3.4", "Forwarded": "for=a"}, "for=a", 4},
	} {
		h := get(tc.set)
		if got := h["Forwarded"]; got != tc.want {
			t.Errorf("%s: Forwarded = %q, want %q", tc.name, got, tc.want)
		}
		// Envoy appends the peer after a bare comma (Utility::appendXff).
		if xff, ok := tc.set["X-Forwarded-For"]; ok && h["X-Forwarded-For"] != xff+",127.0.0.1" {
			t.Errorf("%s: X-Forwarded-For = %q, want %q", tc.name, h["X-Forwarded-For"], xff+",127.0.0.1")
		}
		if got := proxyStat(t, s.adminURL, success); got != tc.matched {
			t.Errorf("%s: %s = %d, want %d", tc.name, success, got, tc.matched)
		}
	}
}
