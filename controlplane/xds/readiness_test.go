package xds

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// eventually polls cond (which may call the Server) until it holds, within the
// test deadline.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	for !cond() {
		select {
		case <-h.ctx.Done():
			h.t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// changeEcho changes the "echo" Route and assembles the RouteConfiguration,
// so that every RDS subscriber is sent a new one.
func (h *harness) changeEcho(timeout time.Duration) {
	h.t.Helper()
	routes := fixtureRoutes()
	routes[1].VirtualHosts[0].Timeout = timeout
	if err := h.srv.SetRoute(routes[1]); err != nil {
		h.t.Fatal(err)
	}
	if err := h.srv.flushRoutes(); err != nil {
		h.t.Fatal(err)
	}
}

// nodeStatus returns the status of the stream of node id (zero while there is none).
func (h *harness) nodeStatus(id string) NodeStatus {
	for _, n := range h.srv.Nodes() {
		if n.NodeID == id {
			return n
		}
	}
	return NodeStatus{}
}

// Proxies that are not meant to serve (another node cluster, or another id when
// ids are configured) are sent the resources but never waited for: one that
// NACKs everything does not keep a Route from being ready, and its NACKs are not
// reported. (Issue 13, item 5: any extra xDS client kept new Services at
// Ready=Unknown.)
func TestReadinessCountsOnlyServingNodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		rogue *corev3.Node
	}{
		{"other node cluster", Options{}, &corev3.Node{Id: "rogue", Cluster: "someone-else"}},
		{"other node id", Options{ServingNodes: NodeSelector{IDs: []string{"gw"}}}, &corev3.Node{Id: "stale-gw", Cluster: "skiff-gateway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.ListenerAddress, tc.opts.ListenerPort = "127.0.0.1", 18080
			h := newHarnessWith(t, tc.opts)
			gw := h.sotw("gw")
			sotwSubscribeAll(t, gw)
			rogue := h.sotw("")
			rogue.node = tc.rogue
			rogue.subscribe(resourcev3.EndpointType, helloV1, helloV2, echoV1)
			rogue.subscribe(resourcev3.RouteType, RouteConfigName)
			// The rogue NACKs whatever it is sent (claiming to keep that version,
			// so that the server does not resend it at once).
			go func() {
				for {
					resp, err := rogue.stream.Recv()
					if err != nil {
						return
					}
					req := &discoveryv3.DiscoveryRequest{
						Node: rogue.node, TypeUrl: resp.GetTypeUrl(), ResourceNames: rogue.names[resp.GetTypeUrl()],
						VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
						ErrorDetail: &rpcstatus.Status{Code: 3, Message: "rogue: rejected"},
					}
					if rogue.stream.Send(req) != nil {
						return
					}
				}
			}()
			h.eventually("the rogue's first NACKs", func() bool { return h.nodeStatus(tc.rogue.GetId()).NACKs == 2 })

			h.changeEcho(42 * time.Second)
			gw.ack(gw.recv(resourcev3.RouteType))
			h.eventually("echo acked by the serving proxy", func() bool { return h.srv.RouteAcked("default", "echo") })
			if st := h.srv.RouteStatus("default", "echo"); !st.Acked || st.Rejected != "" {
				t.Errorf("RouteStatus(echo) = %+v, want acked and nothing rejected", st)
			}

			v, err := h.srv.SetEndpoints(echoV1, []Endpoint{{Address: "10.0.2.9", Port: 8080}})
			if err != nil {
				t.Fatal(err)
			}
			gw.ack(gw.recv(resourcev3.EndpointType))
			h.expectAcked(echoV1, v)
			h.eventually("echo acked with its new endpoints", func() bool { return h.srv.RouteAcked("default", "echo") })

			h.eventually("the rogue's NACKs", func() bool { return h.nodeStatus(tc.rogue.GetId()).NACKs == 4 })
			if n := h.nodeStatus(tc.rogue.GetId()); n.Serving || n.NACKs != 4 {
				t.Errorf("rogue node status %+v, want not serving, 4 NACKs", n)
			}
			if n := h.nodeStatus("gw"); !n.Serving {
				t.Errorf("gateway node status %+v, want serving", n)
			}
		})
	}
}

// A serving proxy's NACK is reported on the Route it concerns with the proxy's
// error_detail message, until a later configuration is ACKed. Routes the proxy
// already serves are not affected.
func TestNACKIsReportedOnTheRoute(t *testing.T) {
	t.Run("sotw route configuration and endpoints", func(t *testing.T) {
		h := newHarness(t)
		gw := h.sotw("gw-1")
		sotwSubscribeAll(t, gw)
		h.eventually("hello acked", func() bool { return h.srv.RouteAcked("default", "hello") })

		kept := h.nodeStatus("gw-1").Acked[resourcev3.RouteType]
		h.changeEcho(42 * time.Second)
		rds := gw.recv(resourcev3.RouteType)
		gw.nack(rds, kept, "Proto constraint validation failed: timeout too long")
		want := `proxy "gw-1" rejected route configuration skiff-http: Proto constraint validation failed: timeout too long`
		h.eventually("the NACK on echo", func() bool { return h.srv.RouteStatus("default", "echo").Rejected == want })
		if st := h.srv.RouteStatus("default", "echo"); st.Acked {
			t.Errorf("echo acked after a NACK: %+v", st)
		}
		if st := h.srv.RouteStatus("default", "hello"); !st.Acked || st.Rejected != "" {
			t.Errorf("hello, served before the NACK: %+v, want acked", st)
		}

		// The user fixes the Route: the next configuration is ACKed.
		h.changeEcho(43 * time.Second)
		gw.ack(gw.recv(resourcev3.RouteType))
		h.eventually("echo acked after the fix", func() bool { return h.srv.RouteStatus("default", "echo") == RouteStatus{Acked: true} })

		// Endpoints a proxy rejects are reported on the Routes sending them traffic.
		if _, err := h.srv.SetEndpoints(echoV1, []Endpoint{{Address: "10.0.2.9", Port: 8080}}); err != nil {
			t.Fatal(err)
		}
		gw.nack(gw.recv(resourcev3.EndpointType), h.nodeStatus("gw-1").Acked[resourcev3.EndpointType], "malformed IP address: 10.0.2.9x")
		want = `proxy "gw-1" rejected the endpoints of cluster default/echo-00001: malformed IP address: 10.0.2.9x`
		h.eventually("the EDS NACK on echo", func() bool { return h.srv.RouteStatus("default", "echo").Rejected == want })
		if st := h.srv.RouteStatus("default", "hello"); !st.Acked {
			t.Errorf("hello does not use echo's cluster: %+v", st)
		}
	})
	t.Run("delta cluster", func(t *testing.T) {
		h := newHarness(t)
		gw := h.delta("gw-2")
		deltaSubscribeAll(t, gw)
		h.eventually("echo acked", func() bool { return h.srv.RouteAcked("default", "echo") })
		clusters := fixtureClusters()
		clusters[2].ConnectTimeout = 2 * time.Second
		if err := h.srv.SetCluster(clusters[2]); err != nil {
			t.Fatal(err)
		}
		gw.nack(gw.recv(resourcev3.ClusterType), "cluster: unsupported lb policy")
		// A new RouteConfiguration for echo, which the proxy accepts; the cluster
		// it sends traffic to was rejected.
		h.changeEcho(44 * time.Second)
		gw.ack(gw.recv(resourcev3.RouteType))
		h.eventually("routes ACKed", func() bool {
			return h.nodeStatus("gw-2").Acked[resourcev3.RouteType] != ""
		})
		if _, err := h.srv.SetEndpoints(echoV1, []Endpoint{{Address: "10.0.2.10", Port: 8080}}); err != nil {
			t.Fatal(err)
		}
		_ = gw.recv(resourcev3.EndpointType) // left unanswered: the cluster was rejected
		want := `proxy "gw-2" rejected cluster default/echo-00001: cluster: unsupported lb policy`
		h.eventually("the CDS NACK on echo", func() bool { return h.srv.RouteStatus("default", "echo").Rejected == want })
	})
}

// A serving proxy that stops answering (a response neither ACKed nor NACKed for
// longer than AckTimeout) is no longer waited for; once it answers it counts again.
func TestUnresponsiveNodeTimesOut(t *testing.T) {
	h := newHarnessWith(t, Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080, AckTimeout: 300 * time.Millisecond})
	a := h.sotw("gw-a")
	sotwSubscribeAll(t, a)
	b := h.sotw("gw-b")
	sotwSubscribeAll(t, b)

	v, err := h.srv.SetEndpoints(helloV1, []Endpoint{{Address: "10.0.0.9", Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	a.ack(a.recv(resourcev3.EndpointType))
	edsB := b.recv(resourcev3.EndpointType) // gw-b goes silent
	h.expectNotAcked(helloV1, v)
	start := time.Now()
	h.expectAcked(helloV1, v)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitEndpointsAcked returned %v after the ACK timeout", d)
	}
	if n := h.nodeStatus("gw-b"); !n.Unresponsive || !n.Serving {
		t.Errorf("silent node: %+v, want serving and unresponsive", n)
	}
	h.eventually("hello acked without gw-b", func() bool { return h.srv.RouteAcked("default", "hello") })

	// gw-b answers: it is waited for again.
	b.ack(edsB)
	h.eventually("gw-b responsive", func() bool { return !h.nodeStatus("gw-b").Unresponsive })
	v2, err := h.srv.SetEndpoints(helloV1, []Endpoint{{Address: "10.0.0.10", Port: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	a.ack(a.recv(resourcev3.EndpointType))
	edsB = b.recv(resourcev3.EndpointType)
	h.expectNotAcked(helloV1, v2)
	b.ack(edsB)
	h.expectAcked(helloV1, v2)
	if !strings.Contains(h.nodeStatus("gw-b").Endpoints[helloV1], v2) {
		t.Errorf("gw-b endpoints %v, want %s", h.nodeStatus("gw-b").Endpoints, v2)
	}
}

// tlsReadinessOptions are the three listeners (issue 14) with a short ACK timeout.
func tlsReadinessOptions() Options {
	return Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080,
		HTTPSListenerAddress: "127.0.0.1", HTTPSListenerPort: 18443, LocalListenerAddress: "127.0.0.1", LocalListenerPort: 18081,
		AckTimeout: 300 * time.Millisecond}
}

// subscribeThreeListeners subscribes c as an Envoy with the three listeners does, ACKing
// everything but the secrets, whose first response it returns unanswered.
func subscribeThreeListeners(t *testing.T, c *sotwClient, secret string) *discoveryv3.DiscoveryResponse {
	t.Helper()
	c.subscribe(resourcev3.ClusterType)
	c.ack(c.recv(resourcev3.ClusterType))
	c.subscribe(resourcev3.EndpointType, helloV1, helloV2, echoV1)
	c.ack(c.recv(resourcev3.EndpointType))
	c.subscribe(resourcev3.ListenerType)
	if l := c.recv(resourcev3.ListenerType); len(l.GetResources()) != 3 {
		t.Fatalf("listeners: %d, want skiff-http, skiff-https and skiff-local", len(l.GetResources()))
	} else {
		c.ack(l)
	}
	c.subscribe(resourcev3.RouteType, RouteConfigName, HTTPSRouteConfigName, LocalRouteConfigName)
	c.ack(c.recv(resourcev3.RouteType))
	c.subscribe(resourcev3.SecretType, secret)
	return c.recv(resourcev3.SecretType)
}

// Issue 13 (items 4 and 5) on issue 14's listeners: readiness waits only for serving
// proxies, for each RouteConfiguration a Route is in and for its hosts' certificates, and a
// serving proxy's NACK of any of them is reported on the Route with its error_detail.
func TestReadinessWithTLSAndLocalListeners(t *testing.T) {
	cert, key := selfSigned(t, time.Now().Add(-time.Minute), time.Hour, "hello.default.example.com")
	helloCert := TLSCertificate{Name: "default/route-1", Hosts: []string{"hello.default.example.com"}, CertPEM: cert, KeyPEM: key}

	t.Run("certificate NACK, and proxies that do not serve", func(t *testing.T) {
		h := newHarnessWith(t, tlsReadinessOptions())
		if err := h.srv.SetCertificate(helloCert); err != nil {
			t.Fatal(err)
		}
		// A client of another node cluster asks for everything and NACKs the certificate
		// and the RouteConfigurations: it is neither waited for nor reported.
		rogue := h.sotw("")
		rogue.node = &corev3.Node{Id: "rogue", Cluster: "someone-else"}
		rogue.subscribe(resourcev3.RouteType, RouteConfigName, HTTPSRouteConfigName, LocalRouteConfigName)
		rogue.subscribe(resourcev3.SecretType, helloCert.Name)
		go func() {
			for {
				resp, err := rogue.stream.Recv()
				if err != nil {
					return
				}
				// Claiming to keep the version, so that the server does not resend it at once.
				req := &discoveryv3.DiscoveryRequest{
					Node: rogue.node, TypeUrl: resp.GetTypeUrl(), ResourceNames: rogue.names[resp.GetTypeUrl()],
					VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
					ErrorDetail: &rpcstatus.Status{Code: 3, Message: "rogue: rejected"},
				}
				if rogue.stream.Send(req) != nil {
					return
				}
			}
		}()
		h.eventually("the rogue's NACKs", func() bool { return h.nodeStatus("rogue").NACKs == 2 })

		gw := h.sotw("gw")
		sds := subscribeThreeListeners(t, gw, helloCert.Name)
		gw.nack(sds, "", "Failed to load certificate chain from <inline>")
		// Having kept no version, it is sent the secret again, and rejects it again.
		again := gw.recv(resourcev3.SecretType)
		gw.nack(again, again.GetVersionInfo(), "Failed to load certificate chain from <inline>")
		want := `proxy "gw" rejected secret default/route-1: Failed to load certificate chain from <inline>`
		h.eventually("the SDS NACK on hello", func() bool { return h.srv.RouteStatus("default", "hello").Rejected == want })
		if st := h.srv.RouteStatus("default", "echo"); !st.Acked {
			t.Errorf("echo has no TLS host with a certificate: %+v, want acked", st)
		}

		// A renewal the proxy accepts serves the route.
		cert2, key2 := selfSigned(t, time.Now().Add(-time.Minute), time.Hour, "hello.default.example.com")
		renewed := helloCert
		renewed.CertPEM, renewed.KeyPEM = cert2, key2
		if err := h.srv.SetCertificate(renewed); err != nil {
			t.Fatal(err)
		}
		gw.ack(gw.recv(resourcev3.SecretType))
		h.eventually("hello acked with its certificate", func() bool { return h.srv.RouteStatus("default", "hello") == RouteStatus{Acked: true} })
		if n := h.nodeStatus("rogue"); n.Serving {
			t.Errorf("rogue: %+v, want not serving", n)
		}
	})

	t.Run("local listener NACK", func(t *testing.T) {
		h := newHarnessWith(t, tlsReadinessOptions())
		if err := h.srv.SetCertificate(helloCert); err != nil {
			t.Fatal(err)
		}
		gw := h.sotw("gw")
		gw.ack(subscribeThreeListeners(t, gw, helloCert.Name))
		h.eventually("hello acked", func() bool { return h.srv.RouteAcked("default", "hello") })

		// A cluster-local Route is only in skiff-local: its NACK names that configuration.
		local := Route{Namespace: "default", Name: "private", VirtualHosts: []VirtualHost{{
			Name: "default/private", Domains: []string{"private.default.svc.cluster.local"}, Visibility: VisibilityClusterLocal,
			Clusters: []WeightedCluster{{Name: echoV1, Weight: 100}}, Timeout: 42 * time.Second,
		}}}
		if err := h.srv.SetRoute(local); err != nil {
			t.Fatal(err)
		}
		if err := h.srv.flushRoutes(); err != nil {
			t.Fatal(err)
		}
		kept := h.nodeStatus("gw").Acked[resourcev3.RouteType]
		gw.nack(gw.recv(resourcev3.RouteType), kept, "route: invalid timeout")
		want := `proxy "gw" rejected route configuration skiff-local: route: invalid timeout`
		h.eventually("the RDS NACK on the cluster-local route", func() bool { return h.srv.RouteStatus("default", "private").Rejected == want })
		if st := h.srv.RouteStatus("default", "hello"); !st.Acked {
			t.Errorf("hello, served before the NACK: %+v, want acked", st)
		}
	})

	t.Run("silent serving proxy", func(t *testing.T) {
		h := newHarnessWith(t, tlsReadinessOptions())
		if err := h.srv.SetCertificate(helloCert); err != nil {
			t.Fatal(err)
		}
		a := h.sotw("gw-a")
		a.ack(subscribeThreeListeners(t, a, helloCert.Name))
		b := h.sotw("gw-b")
		_ = subscribeThreeListeners(t, b, helloCert.Name) // gw-b never answers the secret
		if h.srv.RouteAcked("default", "hello") {
			t.Fatal("hello acked while a serving proxy has not ACKed its certificate")
		}
		h.eventually("hello acked without the silent gw-b", func() bool { return h.srv.RouteAcked("default", "hello") })
		if n := h.nodeStatus("gw-b"); !n.Serving || !n.Unresponsive {
			t.Errorf("gw-b: %+v, want serving and unresponsive", n)
		}
	})
}
