package xds

import (
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// sotwSubscribeAll subscribes c to every type, as Envoy does, and ACKs each response.
func sotwSubscribeAll(t *testing.T, c *sotwClient) {
	t.Helper()
	c.subscribe(resourcev3.ListenerType)
	l := c.recv(resourcev3.ListenerType)
	if len(l.GetResources()) != 1 {
		t.Fatalf("listeners: %d resources", len(l.GetResources()))
	}
	c.ack(l)

	c.subscribe(resourcev3.ClusterType)
	cds := c.recv(resourcev3.ClusterType)
	if len(cds.GetResources()) != 3 {
		t.Fatalf("clusters: %d resources", len(cds.GetResources()))
	}
	c.ack(cds)

	c.subscribe(resourcev3.EndpointType, helloV1, helloV2, echoV1)
	eds := c.recv(resourcev3.EndpointType)
	wantNames(t, "initial CLAs", claNames(t, eds.GetResources()), helloV1, helloV2, echoV1)
	c.ack(eds)

	c.subscribe(resourcev3.RouteType, RouteConfigName)
	rds := c.recv(resourcev3.RouteType)
	rc := unmarshalAny(t, rds.GetResources()[0], &routev3.RouteConfiguration{})
	if rc.GetName() != RouteConfigName || len(rc.GetVirtualHosts()) != 3 {
		t.Fatalf("route configuration %q with %d virtual hosts", rc.GetName(), len(rc.GetVirtualHosts()))
	}
	c.ack(rds)
}

func TestSotWIncrementalUpdates(t *testing.T) {
	h := newHarness(t)
	c := h.sotw("envoy-1")
	sotwSubscribeAll(t, c)

	// An endpoint change sends only that cluster's CLA; WaitEndpointsAcked
	// blocks until the ACK.
	v, err := h.srv.SetEndpoints(helloV2, []Endpoint{{Address: "10.0.1.1", Port: 8012}, {Address: "10.0.1.2", Port: 8012}})
	if err != nil {
		t.Fatal(err)
	}
	h.expectNotAcked(helloV2, v)
	eds := c.recv(resourcev3.EndpointType)
	wantNames(t, "CLAs after endpoint change", claNames(t, eds.GetResources()), helloV2)
	cla := unmarshalAny(t, eds.GetResources()[0], &endpointv3.ClusterLoadAssignment{})
	if n := len(cla.GetEndpoints()[0].GetLbEndpoints()); n != 2 {
		t.Fatalf("CLA has %d endpoints, want 2", n)
	}
	h.expectNotAcked(helloV2, v)
	c.ack(eds)
	h.expectAcked(helloV2, v)

	// A route change resends the one RouteConfiguration, with the change.
	routes := fixtureRoutes()
	routes[1].VirtualHosts[0].Timeout = 30 * time.Second
	if err := h.srv.SetRoute(routes[1]); err != nil {
		t.Fatal(err)
	}
	rds := c.recv(resourcev3.RouteType)
	rc := unmarshalAny(t, rds.GetResources()[0], &routev3.RouteConfiguration{})
	if got := rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetTimeout().AsDuration(); got != 30*time.Second {
		t.Fatalf("echo timeout = %v after SetRoute", got)
	}
	c.ack(rds)

	// A cluster change: SotW CDS is full-state by protocol.
	clusters := fixtureClusters()
	clusters[2].HTTP2 = true
	if err := h.srv.SetCluster(clusters[2]); err != nil {
		t.Fatal(err)
	}
	cds := c.recv(resourcev3.ClusterType)
	if len(cds.GetResources()) != 3 {
		t.Fatalf("SotW CDS sent %d clusters, want the full state (3)", len(cds.GetResources()))
	}
	c.ack(cds)

	// Neither the route nor the cluster change resent any CLA: the next
	// message is the one for this endpoint change, and carries only its CLA.
	v1, err := h.srv.SetEndpoints(helloV1, []Endpoint{{Address: "10.0.0.3", Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	eds = c.recv(resourcev3.EndpointType)
	wantNames(t, "CLAs after second endpoint change", claNames(t, eds.GetResources()), helloV1)
	c.ack(eds)
	h.expectAcked(helloV1, v1)

	// Setting unchanged content pushes nothing: the next message is the sentinel's.
	if err := h.srv.SetRoute(routes[1]); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.SetCluster(clusters[2]); err != nil {
		t.Fatal(err)
	}
	again, err := h.srv.SetEndpoints(helloV2, []Endpoint{{Address: "10.0.1.2", Port: 8012}, {Address: "10.0.1.1", Port: 8012}})
	if err != nil {
		t.Fatal(err)
	}
	if again != v {
		t.Fatalf("same endpoints got version %s, want %s", again, v)
	}
	ve, err := h.srv.SetEndpoints(echoV1, []Endpoint{{Address: "10.0.2.1", Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	eds = c.recv(resourcev3.EndpointType)
	wantNames(t, "CLAs after sentinel", claNames(t, eds.GetResources()), echoV1)
	c.ack(eds)
	h.expectAcked(echoV1, ve)

	nodes := h.srv.Nodes()
	if len(nodes) != 1 || nodes[0].NodeID != "envoy-1" || nodes[0].Delta || nodes[0].TypeURL != "" {
		t.Fatalf("Nodes() = %+v", nodes)
	}
	if got := nodes[0].Endpoints[helloV2]; got != v {
		t.Errorf("Nodes() endpoints version of %s = %q, want %q", helloV2, got, v)
	}
	if nodes[0].Acked[resourcev3.ClusterType] != cds.GetVersionInfo() {
		t.Errorf("Nodes() acked CDS version = %q, want %q", nodes[0].Acked[resourcev3.ClusterType], cds.GetVersionInfo())
	}
}

func TestSotWNACK(t *testing.T) {
	h := newHarness(t)
	c := h.sotw("envoy-nack")
	sotwSubscribeAll(t, c)
	before := h.srv.Nodes()[0].Acked[resourcev3.EndpointType]

	v, err := h.srv.SetEndpoints(helloV1, []Endpoint{{Address: "10.0.0.9", Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	eds := c.recv(resourcev3.EndpointType)
	c.nack(eds, before, "sotw: endpoint rejected")
	h.waitFor("NACK recorded", func() bool {
		n := h.srv.acks.nodesLocked()
		return len(n) == 1 && n[0].NACKs == 1
	})
	wantLog(t, h.logs, "xds NACK", "sotw: endpoint rejected", "node=envoy-nack")
	if got := h.srv.Nodes()[0].Acked[resourcev3.EndpointType]; got != before {
		t.Fatalf("acked EDS version moved to %q on NACK, want %q", got, before)
	}
	h.expectNotAcked(helloV1, v)
}

// Route changes arriving faster than Options.RouteFlushInterval are pushed together, one
// interval after the previous push, so a burst of Routes does not cost every proxy one
// whole RouteConfiguration per Route (the single layout re-sends every virtual host).
func TestRouteChangesWithinTheFlushIntervalArePushedTogether(t *testing.T) {
	const interval = 500 * time.Millisecond
	h := newHarnessWith(t, Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080, RouteFlushInterval: interval})
	c := h.sotw("gw")
	c.subscribe(resourcev3.RouteType, RouteConfigName)
	c.ack(c.recv(resourcev3.RouteType)) // the fixture

	route := func(name string) Route {
		return Route{Namespace: "default", Name: name, VirtualHosts: []VirtualHost{{
			Name: "default/" + name, Domains: []string{name + ".default.example.com"},
			Clusters: []WeightedCluster{{Name: echoV1, Weight: 100}},
		}}}
	}
	hosts := func(resp *discoveryv3.DiscoveryResponse) map[string]bool {
		var rc routev3.RouteConfiguration
		if err := resp.GetResources()[0].UnmarshalTo(&rc); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, vh := range rc.GetVirtualHosts() {
			out[vh.GetName()] = true
		}
		return out
	}
	setA := time.Now()
	if err := h.srv.SetRoute(route("a")); err != nil {
		t.Fatal(err)
	}
	first := c.recv(resourcev3.RouteType)
	if !hosts(first)["default/a"] {
		t.Fatalf("first push has %v, want default/a", hosts(first))
	}
	c.ack(first)
	// Two more right after it go out together, no sooner than the interval.
	for _, name := range []string{"b", "c"} {
		if err := h.srv.SetRoute(route(name)); err != nil {
			t.Fatal(err)
		}
	}
	next := c.recv(resourcev3.RouteType)
	if got := hosts(next); !got["default/b"] || !got["default/c"] {
		t.Fatalf("the next push has %v, want default/b and default/c together", got)
	}
	// a's round started after setA, and b and c's no sooner than the interval after it: a
	// lower bound, which a slow machine cannot break.
	if gap := time.Since(setA); gap < interval {
		t.Fatalf("b and c arrived %v after a was set, want at least the %v interval", gap, interval)
	}
}
