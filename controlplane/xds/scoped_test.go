package xds

import (
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// scopedOptions is the scoped layout with few buckets, so that Routes share some.
func scopedOptions() Options {
	return Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080, ScopedRoutes: true, RouteBuckets: 4}
}

// recvSotW receives responses (ACKing each) until one of every type in want has come, and
// returns the last of each type.
func (c *sotwClient) recvAll(want ...string) map[string]*discoveryv3.DiscoveryResponse {
	c.t.Helper()
	got := map[string]*discoveryv3.DiscoveryResponse{}
	for {
		done := true
		for _, w := range want {
			done = done && got[w] != nil
		}
		if done {
			return got
		}
		resp, err := c.stream.Recv()
		if err != nil {
			c.t.Fatalf("recv %v: %v", want, err)
		}
		got[resp.GetTypeUrl()] = resp
		c.ack(resp)
	}
}

// scopes decodes a SotW scopes response into name → scope.
func scopes(t *testing.T, resp *discoveryv3.DiscoveryResponse) map[string]*routev3.ScopedRouteConfiguration {
	t.Helper()
	out := map[string]*routev3.ScopedRouteConfiguration{}
	for _, a := range resp.GetResources() {
		sc := unmarshalAny(t, a, &routev3.ScopedRouteConfiguration{})
		if err := sc.ValidateAll(); err != nil {
			t.Fatalf("scope %s: %v", sc.GetName(), err)
		}
		out[sc.GetName()] = sc
	}
	return out
}

// routeConfigs decodes a SotW RDS response into name → RouteConfiguration.
func routeConfigs(t *testing.T, resp *discoveryv3.DiscoveryResponse) map[string]*routev3.RouteConfiguration {
	t.Helper()
	out := map[string]*routev3.RouteConfiguration{}
	for _, a := range resp.GetResources() {
		rc := unmarshalAny(t, a, &routev3.RouteConfiguration{})
		if err := rc.ValidateAll(); err != nil {
			t.Fatalf("route configuration %s: %v", rc.GetName(), err)
		}
		out[rc.GetName()] = rc
	}
	return out
}

// scopeRouteConfigs are the RouteConfigurations scopes point at, sorted.
func scopeRouteConfigs(scs map[string]*routev3.ScopedRouteConfiguration) []string {
	var out []string
	for _, sc := range scs {
		out = append(out, sc.GetRouteConfigurationName())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// subscribeScoped subscribes a SotW client to everything the scoped layout serves, in
// Envoy's order, and returns the scopes and RouteConfigurations it was sent.
func subscribeScoped(t *testing.T, c *sotwClient) (map[string]*routev3.ScopedRouteConfiguration, map[string]*routev3.RouteConfiguration) {
	t.Helper()
	c.subscribe(resourcev3.ClusterType)
	c.ack(c.recv(resourcev3.ClusterType))
	c.subscribe(resourcev3.EndpointType, helloV1, helloV2, echoV1)
	c.ack(c.recv(resourcev3.EndpointType))
	c.subscribe(resourcev3.ListenerType)
	lds := c.recv(resourcev3.ListenerType)
	c.ack(lds)
	l := unmarshalAny(t, lds.GetResources()[0], &listenerv3.Listener{})
	hcm := unmarshalAny(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	sr := hcm.GetScopedRoutes()
	if sr == nil || len(sr.GetScopeKeyBuilder().GetFragments()) != 1 || sr.GetScopeKeyBuilder().GetFragments()[0].GetHeaderValueExtractor().GetName() != AuthorityHeader {
		t.Fatalf("listener's routes are not scoped by the host: %v", hcm.GetRouteSpecifier())
	}
	c.subscribe(resourcev3.ScopedRouteType)
	srds := c.recv(resourcev3.ScopedRouteType)
	c.ack(srds)
	scs := scopes(t, srds)
	c.subscribe(resourcev3.RouteType, scopeRouteConfigs(scs)...)
	rds := c.recv(resourcev3.RouteType)
	c.ack(rds)
	return scs, routeConfigs(t, rds)
}

// vhostOf returns the RouteConfiguration among rcs with the virtual host named vh.
func vhostOf(rcs map[string]*routev3.RouteConfiguration, vh string) string {
	for name, rc := range rcs {
		for _, v := range rc.GetVirtualHosts() {
			if v.GetName() == vh {
				return name
			}
		}
	}
	return ""
}

// In the scoped layout a host has a scope (keyed by the host) pointing at the bucket
// RouteConfiguration of its Route; a Route is ready only once the proxy has ACKed its scopes,
// its bucket and its endpoints; a change to one Route re-sends its bucket only; a new Route
// re-sends every scope (SotW scopes are the full set, as Envoy takes them); a deleted
// Route's scopes leave the set; a NACKed scope is reported on the Route; and a proxy that
// reconnects is sent every scope.
func TestScopedRoutesSotW(t *testing.T) {
	h := newHarnessWith(t, scopedOptions())
	gw := h.sotw("gw")
	scs, rcs := subscribeScoped(t, gw)
	wantNames(t, "scopes", slices.Sorted(func(yield func(string) bool) {
		for n := range scs {
			if !yield(n) {
				return
			}
		}
	}), "skiff-http/hello.default.example.com", "skiff-http/hello.default.svc.cluster.local",
		"skiff-http/prev-hello.default.example.com", "skiff-http/echo.default.example.com")
	for name, sc := range scs {
		host := strings.TrimPrefix(name, "skiff-http/")
		if k := sc.GetKey().GetFragments(); len(k) != 1 || k[0].GetStringKey() != host {
			t.Errorf("scope %s has key %v, want the host", name, k)
		}
		rc := rcs[sc.GetRouteConfigurationName()]
		if rc == nil {
			t.Fatalf("scope %s points at %s, which was not sent", name, sc.GetRouteConfigurationName())
		}
		found := false
		for _, v := range rc.GetVirtualHosts() {
			found = found || slices.Contains(v.GetDomains(), host)
		}
		if !found {
			t.Errorf("route configuration %s of scope %s has no virtual host for %s", rc.GetName(), name, host)
		}
	}
	h.eventually("hello and echo served", func() bool {
		return h.srv.RouteAcked("default", "hello") && h.srv.RouteAcked("default", "echo")
	})

	// One Route changes: its bucket alone is sent.
	echoRC := vhostOf(rcs, "default/echo")
	h.changeEcho(5e9)
	rds := gw.recv(resourcev3.RouteType)
	wantNames(t, "changed route configurations", slices.Sorted(func(yield func(string) bool) {
		for n := range routeConfigs(t, rds) {
			if !yield(n) {
				return
			}
		}
	}), echoRC)
	if h.srv.RouteAcked("default", "echo") {
		t.Fatal("echo is ready before the proxy ACKed its changed route configuration")
	}
	gw.ack(rds)
	h.eventually("changed echo served", func() bool { return h.srv.RouteAcked("default", "echo") })

	// A new Route: every scope comes again, with its own.
	r := Route{Namespace: "default", Name: "new", VirtualHosts: []VirtualHost{{
		Name: "default/new", Domains: []string{"new.default.example.com"}, Clusters: []WeightedCluster{{Name: echoV1, Weight: 100}},
	}}}
	if err := h.srv.SetRoute(r); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.flushRoutes(); err != nil {
		t.Fatal(err)
	}
	var srds *discoveryv3.DiscoveryResponse
	for srds == nil {
		resp, err := gw.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTypeUrl() == resourcev3.ScopedRouteType {
			srds = resp
			continue
		}
		gw.ack(resp) // the new bucket, when the client already asked for it
	}
	scs = scopes(t, srds)
	if len(scs) != 5 || scs["skiff-http/new.default.example.com"] == nil {
		t.Fatalf("scopes after a new Route = %v, want the 4 old ones and new's", scs)
	}
	// NACKed: the Route says so, with the proxy's message.
	gw.nack(srds, "", "bad scope")
	h.eventually("the NACK on the Route", func() bool {
		return strings.Contains(h.srv.RouteStatus("default", "new").Rejected, "bad scope")
	})
	// The proxy then takes them (and asks for the new bucket).
	gw.names[resourcev3.RouteType] = scopeRouteConfigs(scs)
	gw.ack(srds)
	gw.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: gw.names[resourcev3.RouteType]})
	go func() { // keep ACKing whatever comes
		for {
			resp, err := gw.stream.Recv()
			if err != nil {
				return
			}
			gw.ack(resp)
		}
	}()
	h.eventually("new served", func() bool { return h.srv.RouteAcked("default", "new") })

	// Deleted: its scope is no longer in the set a reconnecting proxy gets.
	h.srv.DeleteRoute("default", "echo")
	if err := h.srv.flushRoutes(); err != nil {
		t.Fatal(err)
	}
	again := h.sotw("gw2")
	scs, rcs = subscribeScoped(t, again)
	if len(scs) != 4 || scs["skiff-http/echo.default.example.com"] != nil || scs["skiff-http/new.default.example.com"] == nil {
		t.Fatalf("scopes after deleting echo = %v", scs)
	}
	if vhostOf(rcs, "default/echo") != "" || vhostOf(rcs, "default/new") == "" {
		t.Fatalf("route configurations after deleting echo: %v", rcs)
	}
}

// The same over delta xDS: scopes and buckets come as resources, a change sends the one
// bucket, a deleted Route's scopes are removed_resources.
func TestScopedRoutesDelta(t *testing.T) {
	h := newHarnessWith(t, scopedOptions())
	gw := h.delta("gw")
	gw.subscribe(resourcev3.ClusterType)
	gw.ack(gw.recv(resourcev3.ClusterType))
	gw.subscribe(resourcev3.EndpointType, helloV1, helloV2, echoV1)
	gw.ack(gw.recv(resourcev3.EndpointType))
	gw.subscribe(resourcev3.ListenerType)
	gw.ack(gw.recv(resourcev3.ListenerType))
	gw.subscribe(resourcev3.ScopedRouteType)
	srds := gw.recv(resourcev3.ScopedRouteType)
	gw.ack(srds)
	wantNames(t, "scopes", deltaNames(srds), "skiff-http/hello.default.example.com", "skiff-http/hello.default.svc.cluster.local",
		"skiff-http/prev-hello.default.example.com", "skiff-http/echo.default.example.com")
	var buckets []string
	echoBucket := ""
	for _, r := range srds.GetResources() {
		sc := unmarshalAny(t, r.GetResource(), &routev3.ScopedRouteConfiguration{})
		buckets = append(buckets, sc.GetRouteConfigurationName())
		if strings.HasSuffix(sc.GetName(), "/echo.default.example.com") {
			echoBucket = sc.GetRouteConfigurationName()
		}
	}
	slices.Sort(buckets)
	buckets = slices.Compact(buckets)
	gw.subscribe(resourcev3.RouteType, buckets...)
	rds := gw.recv(resourcev3.RouteType)
	wantNames(t, "route configurations", deltaNames(rds), buckets...)
	gw.ack(rds)
	h.eventually("echo served", func() bool { return h.srv.RouteAcked("default", "echo") })

	h.changeEcho(5e9)
	rds = gw.recv(resourcev3.RouteType)
	wantNames(t, "changed route configurations", deltaNames(rds), echoBucket)
	gw.ack(rds)
	h.eventually("changed echo served", func() bool { return h.srv.RouteAcked("default", "echo") })

	h.srv.DeleteRoute("default", "echo")
	if err := h.srv.flushRoutes(); err != nil {
		t.Fatal(err)
	}
	got := map[string]*discoveryv3.DeltaDiscoveryResponse{}
	for got[resourcev3.ScopedRouteType] == nil {
		resp, err := gw.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got[resp.GetTypeUrl()] = resp
		gw.ack(resp)
	}
	if rm := got[resourcev3.ScopedRouteType].GetRemovedResources(); !slices.Equal(rm, []string{"skiff-http/echo.default.example.com"}) {
		t.Fatalf("removed scopes = %v, want echo's", rm)
	}
}

// With the local listener, cluster-local hosts get scopes keyed by the host twice, so the
// external listener (key: the host once) never finds them, and Envoy sees no key conflict.
func TestScopedRoutesLocalListenerKeys(t *testing.T) {
	opts := scopedOptions()
	opts.LocalListenerAddress, opts.LocalListenerPort = "127.0.0.1", 18081
	h := newHarnessWith(t, opts)
	r := Route{Namespace: "default", Name: "both", VirtualHosts: []VirtualHost{
		{Name: "default/both", Domains: []string{"both.default.example.com"}, Visibility: VisibilityExternal, Clusters: []WeightedCluster{{Name: echoV1, Weight: 100}}},
		{Name: "default/both/local", Domains: []string{"both.default.svc.cluster.local"}, Visibility: VisibilityClusterLocal, Clusters: []WeightedCluster{{Name: echoV1, Weight: 100}}},
	}}
	if err := h.srv.SetRoute(r); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.flushRoutes(); err != nil {
		t.Fatal(err)
	}
	c := h.sotw("gw")
	c.subscribe(resourcev3.ScopedRouteType)
	scs := scopes(t, c.recv(resourcev3.ScopedRouteType))
	keys := map[string]string{}
	for name, sc := range scs {
		var parts []string
		for _, f := range sc.GetKey().GetFragments() {
			parts = append(parts, f.GetStringKey())
		}
		k := strings.Join(parts, "|")
		if other, dup := keys[k]; dup {
			t.Fatalf("scopes %s and %s have the same key %q", other, name, k)
		}
		keys[k] = name
	}
	local := scs["skiff-local/both.default.svc.cluster.local"]
	if local == nil || len(local.GetKey().GetFragments()) != 2 || !strings.HasPrefix(local.GetRouteConfigurationName(), "skiff-local/") {
		t.Fatalf("local scope = %v", local)
	}
	if scs["skiff-http/both.default.svc.cluster.local"] != nil || scs["skiff-local/both.default.example.com"] != nil {
		t.Fatalf("a host is scoped on a listener that does not serve it: %v", scs)
	}
}

// A wildcard domain cannot be a scope key: the scoped layout refuses it up front, naming
// the field, instead of failing when the buckets are assembled.
func TestScopedRoutesRefuseWildcardDomains(t *testing.T) {
	srv, err := NewServer(nil, scopedOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	err = srv.SetRoute(Route{Namespace: "default", Name: "w", VirtualHosts: []VirtualHost{{
		Name: "default/w", Domains: []string{"w.example.com", "*.example.com"}, Clusters: []WeightedCluster{{Name: echoV1, Weight: 100}},
	}}})
	if err == nil || !strings.Contains(err.Error(), "virtualHosts[0].domains[1]") {
		t.Fatalf("SetRoute with a wildcard domain: %v, want an error naming virtualHosts[0].domains[1]", err)
	}
}
