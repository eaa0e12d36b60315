package gateway_test

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// scopedByHost makes the listener's routes scoped (SRDS over ADS) by the whole host, as
// Skiff's control plane does with its scoped layout.
func scopedByHost(hcm *hcmv3.HttpConnectionManager) {
	ads := &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name: "skiff-http",
		ScopeKeyBuilder: &hcmv3.ScopedRoutes_ScopeKeyBuilder{Fragments: []*hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder{{
			Type: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_{
				HeaderValueExtractor: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor{Name: ":authority"},
			},
		}}},
		RdsConfigSource: ads,
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRds{ScopedRds: &hcmv3.ScopedRds{ScopedRdsConfigSource: ads}},
	}}
}

func scope(name, host, rc string) *routev3.ScopedRouteConfiguration {
	return &routev3.ScopedRouteConfiguration{Name: name, RouteConfigurationName: rc, Key: &routev3.ScopedRouteConfiguration_Key{
		Fragments: []*routev3.ScopedRouteConfiguration_Key_Fragment{{Type: &routev3.ScopedRouteConfiguration_Key_Fragment_StringKey{StringKey: host}}},
	}}
}

// A listener with scoped routes picks the RouteConfiguration of the request's host from its
// scopes (SRDS): a host with no scope gets 404 (NR); changing one RouteConfiguration changes
// the routing of its hosts and leaves the other's compiled table as it was; two scopes with
// one key are NACKed, as Envoy's ScopedRdsConfigSubscription does.
func TestScopedRoutes(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			a, b := newBackend(t, "a", false, nil), newBackend(t, "b", false, nil)
			x := startXDS(t)
			cfg := func(bTarget string, scopes ...types.Resource) config {
				return config{
					listeners: []types.Resource{httpListener(t, "", scopedByHost)},
					routes: []types.Resource{
						routeConfig("skiff-http/b0", vhost("a", []string{"a.example"}, routeTo("/", "a"))),
						routeConfig("skiff-http/b1", vhost("b", []string{"b.example"}, routeTo("/", bTarget))),
					},
					clusters:  []types.Resource{edsCluster("a"), edsCluster("b")},
					endpoints: []types.Resource{cla("a", a.addr()), cla("b", b.addr())},
					scopes:    scopes,
				}
			}
			scopes := []types.Resource{scope("skiff-http/a.example", "a.example", "skiff-http/b0"), scope("skiff-http/b.example", "b.example", "skiff-http/b1")}
			x.set(t, cfg("b", scopes...))
			g := startGateway(t, x, delta)
			g.waitReady(t)
			eventually(t, 10*time.Second, func() bool { return g.do(t, "a.example", "/").body == "a" && g.do(t, "b.example", "/").body == "b" }, "routes by scope")
			if r := g.do(t, "a.example:8080", "/"); r.body != "a" {
				t.Errorf("a.example:8080 (port stripped before the scope lookup) answered %d %q", r.status, r.body)
			}
			if r := g.do(t, "c.example", "/"); r.status != 404 {
				t.Errorf("a host without a scope answered %d, want 404", r.status)
			}
			before := g.gw.RouteTable("skiff-http/b0")
			if before == nil {
				t.Fatal("no table for skiff-http/b0")
			}

			// b's RouteConfiguration changes: b.example now goes to a; b0 is not recompiled.
			x.set(t, cfg("a", scopes...))
			eventually(t, 10*time.Second, func() bool { return g.do(t, "b.example", "/").body == "a" }, "b.example routed by the changed route configuration")
			if g.gw.RouteTable("skiff-http/b0") != before {
				t.Error("the unchanged route configuration skiff-http/b0 was compiled again")
			}

			// A second scope with a.example's key is refused whole; routing stays.
			x.set(t, cfg("a", append(scopes, scope("skiff-http/dup", "a.example", "skiff-http/b1"))...))
			eventually(t, 10*time.Second, func() bool {
				for _, n := range x.nackList() {
					if strings.Contains(n, "scope key conflict found") {
						return true
					}
				}
				return false
			}, "a NACK for the conflicting scope")
			if r := g.do(t, "a.example", "/"); r.body != "a" {
				t.Errorf("after the NACK a.example answered %d %q", r.status, r.body)
			}
		})
	}
}
