package xds

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// deltaSubscribeAll subscribes c to every type and ACKs each response.
func deltaSubscribeAll(t *testing.T, c *deltaClient) {
	t.Helper()
	c.subscribe(resourcev3.ListenerType)
	l := c.recv(resourcev3.ListenerType)
	wantNames(t, "listeners", deltaNames(l), ListenerName)
	c.ack(l)

	c.subscribe(resourcev3.ClusterType)
	cds := c.recv(resourcev3.ClusterType)
	wantNames(t, "clusters", deltaNames(cds), helloV1, helloV2, echoV1)
	c.ack(cds)

	c.subscribe(resourcev3.EndpointType, helloV1, helloV2, echoV1)
	eds := c.recv(resourcev3.EndpointType)
	wantNames(t, "CLAs", deltaNames(eds), helloV1, helloV2, echoV1)
	c.ack(eds)

	c.subscribe(resourcev3.RouteType, RouteConfigName)
	rds := c.recv(resourcev3.RouteType)
	wantNames(t, "routes", deltaNames(rds), RouteConfigName)
	c.ack(rds)
}

func TestDeltaIncrementalUpdates(t *testing.T) {
	h := newHarness(t)
	c := h.delta("envoy-delta")
	deltaSubscribeAll(t, c)

	// A cluster change sends only that cluster.
	clusters := fixtureClusters()
	clusters[1].MaxRequestsPerEndpoint = 20
	if err := h.srv.SetCluster(clusters[1]); err != nil {
		t.Fatal(err)
	}
	cds := c.recv(resourcev3.ClusterType)
	wantNames(t, "clusters after change", deltaNames(cds), helloV2)
	if len(cds.GetRemovedResources()) != 0 {
		t.Fatalf("removed %v", cds.GetRemovedResources())
	}
	cl := unmarshalAny(t, cds.GetResources()[0].GetResource(), &clusterv3.Cluster{})
	if got := cl.GetCircuitBreakers().GetThresholds()[0].GetMaxRequests().GetValue(); got != 20 {
		t.Fatalf("max_requests = %d", got)
	}
	c.ack(cds)

	// A route change sends the one RouteConfiguration.
	routes := fixtureRoutes()
	routes[0].VirtualHosts[0].Clusters = []WeightedCluster{{Name: helloV1, Weight: 50}, {Name: helloV2, Weight: 50}}
	if err := h.srv.SetRoute(routes[0]); err != nil {
		t.Fatal(err)
	}
	rds := c.recv(resourcev3.RouteType)
	wantNames(t, "routes after change", deltaNames(rds), RouteConfigName)
	rc := unmarshalAny(t, rds.GetResources()[0].GetResource(), &routev3.RouteConfiguration{})
	if w := rc.GetVirtualHosts()[1].GetRoutes()[0].GetRoute().GetWeightedClusters().GetClusters()[0].GetWeight().GetValue(); w != 50 {
		t.Fatalf("weight = %d after route change", w)
	}
	c.ack(rds)

	// An endpoint change sends only that CLA, and is waited for until ACKed.
	v, err := h.srv.SetEndpoints(echoV1, []Endpoint{{Address: "10.0.2.1", Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	h.expectNotAcked(echoV1, v)
	eds := c.recv(resourcev3.EndpointType)
	wantNames(t, "CLAs after endpoint change", deltaNames(eds), echoV1)
	h.expectNotAcked(echoV1, v)
	c.ack(eds)
	h.expectAcked(echoV1, v)
	if got := h.srv.Nodes()[0].Endpoints[echoV1]; got != v {
		t.Fatalf("Nodes() endpoints version = %q, want %q", got, v)
	}

	// Deleting a cluster removes it and its CLA, and nothing else.
	h.srv.DeleteCluster(echoV1)
	got := map[string]*discoveryv3.DeltaDiscoveryResponse{}
	for range 2 {
		resp, err := c.stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got[resp.GetTypeUrl()] = resp
		c.ack(resp)
	}
	for _, typeURL := range []string{resourcev3.ClusterType, resourcev3.EndpointType} {
		resp := got[typeURL]
		if resp == nil || len(resp.GetResources()) != 0 || !slices.Equal(resp.GetRemovedResources(), []string{echoV1}) {
			t.Fatalf("%s after delete: %v", typeURL, resp)
		}
	}
	h.waitFor("CLA removal ACKed", func() bool {
		n := h.srv.acks.nodesLocked()
		_, ok := n[0].Endpoints[echoV1]
		return n[0].Acked[resourcev3.EndpointType] == got[resourcev3.EndpointType].GetSystemVersionInfo() && !ok
	})

	// The sentinel: nothing else was sent in between.
	v1, err := h.srv.SetEndpoints(helloV1, nil)
	if err != nil {
		t.Fatal(err)
	}
	eds = c.recv(resourcev3.EndpointType)
	wantNames(t, "CLAs after sentinel", deltaNames(eds), helloV1)
	c.ack(eds)
	h.expectAcked(helloV1, v1)
}

func TestDeltaNACK(t *testing.T) {
	h := newHarness(t)
	c := h.delta("envoy-delta-nack")
	deltaSubscribeAll(t, c)

	clusters := fixtureClusters()
	clusters[0].LeastRequest = true
	if err := h.srv.SetCluster(clusters[0]); err != nil {
		t.Fatal(err)
	}
	cds := c.recv(resourcev3.ClusterType)
	c.nack(cds, "delta: cluster rejected")
	h.waitFor("NACK recorded", func() bool {
		n := h.srv.acks.nodesLocked()
		return len(n) == 1 && n[0].NACKs == 1 && n[0].LastNACK == "delta: cluster rejected"
	})
	wantLog(t, h.logs, "xds NACK", "delta: cluster rejected", "delta=true")
}

func TestWaitEndpointsAckedEveryNode(t *testing.T) {
	h := newHarness(t)

	// With no proxy connected there is nobody to ACK: it must block.
	v, err := h.srv.SetEndpoints(helloV1, []Endpoint{{Address: "10.0.0.7", Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	h.expectNotAcked(helloV1, v)

	a := h.sotw("envoy-a")
	sotwSubscribeAll(t, a)
	b := h.delta("envoy-b")
	deltaSubscribeAll(t, b)
	h.expectAcked(helloV1, v) // both got and ACKed it on subscription

	v2, err := h.srv.SetEndpoints(helloV1, []Endpoint{{Address: "10.0.0.8", Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	edsA := a.recv(resourcev3.EndpointType)
	edsB := b.recv(resourcev3.EndpointType)
	a.ack(edsA)
	h.waitFor("envoy-a ACK", func() bool {
		return h.srv.acks.nodesLocked()[0].Endpoints[helloV1] == v2
	})
	h.expectNotAcked(helloV1, v2) // envoy-b has not ACKed yet
	b.ack(edsB)
	h.expectAcked(helloV1, v2)

	// An older version is satisfied by a newer ACK.
	h.expectAcked(helloV1, v)
}

// TestEDSOnlyStream checks that a proxy using the separate EDS service (no
// ADS) is served and counted by WaitEndpointsAcked.
func TestEDSOnlyStream(t *testing.T) {
	h := newHarness(t)
	v, err := h.srv.SetEndpoints(helloV2, []Endpoint{{Address: "10.0.1.5", Port: 8012}})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := endpointservice.NewEndpointDiscoveryServiceClient(h.conn).StreamEndpoints(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &sotwClient{t: t, stream: stream, node: testNode("envoy-eds"), names: map[string][]string{}}
	c.subscribe(resourcev3.EndpointType, helloV2)
	resp := c.recv(resourcev3.EndpointType)
	wantNames(t, "CLAs", claNames(t, resp.GetResources()), helloV2)
	h.expectNotAcked(helloV2, v)
	c.ack(resp)
	h.expectAcked(helloV2, v)
	if n := h.srv.Nodes(); len(n) != 1 || n[0].TypeURL != resourcev3.EndpointType {
		t.Fatalf("Nodes() = %+v", n)
	}
}
