package gateway_test

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// The gateway applies xDS updates incrementally: what a response changes is applied, what it
// removes disappears, and what it leaves as it was is kept as it was (a cluster keeps its
// connections, and its endpoints are not counted as updated); a bad cluster or assignment is
// NACKed and changes nothing; a reconnect brings the full state, removals included.
func TestIncrementalApply(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			backends := map[string]*backend{}
			for _, n := range []string{"a", "b", "b2", "c", "d"} {
				backends[n] = newBackend(t, n, false, nil)
			}
			// cfg routes host <name>.example to cluster <name>, whose endpoint is the backend
			// ep[name] names (by default the cluster's own).
			cfg := func(names []string, ep map[string]string, extraClusters []types.Resource, extraCLAs []types.Resource) config {
				var vhs []*routev3.VirtualHost
				c := config{listeners: []types.Resource{httpListener(t, listenerName)}}
				for _, n := range names {
					vhs = append(vhs, vhost(n, []string{n + ".example"}, routeTo("/", n)))
					c.clusters = append(c.clusters, edsCluster(n))
					be := n
					if ep[n] != "" {
						be = ep[n]
					}
					c.endpoints = append(c.endpoints, cla(n, backends[be].addr()))
				}
				c.routes = []types.Resource{routeConfig(listenerName, vhs...)}
				c.clusters = append(c.clusters, extraClusters...)
				c.endpoints = append(c.endpoints, extraCLAs...)
				return c
			}
			x := startXDS(t)
			x.set(t, cfg([]string{"a", "b", "c"}, nil, nil, nil))
			g := startGateway(t, x, delta)
			g.waitReady(t)
			for _, n := range []string{"a", "b", "c"} {
				eventually(t, 10*time.Second, func() bool { return g.do(t, n+".example", "/").body == n }, "%s served", n)
			}
			g.do(t, "a.example", "/")
			conn := backends["a"].lastRequest().RemoteAddr
			aUpdates := g.stat(t, "cluster.a.update_success")

			// c goes (cluster, endpoints, route), b's endpoint moves to b2, d comes (its
			// endpoints follow its cluster).
			x.set(t, cfg([]string{"a", "b", "d"}, map[string]string{"b": "b2"}, nil, nil))
			eventually(t, 10*time.Second, func() bool {
				return g.do(t, "b.example", "/").body == "b2" && g.do(t, "d.example", "/").body == "d" &&
					g.do(t, "c.example", "/").status == 404
			}, "b moved, c removed, d added")
			if got := g.stat(t, "cluster_manager.active_clusters"); got != 3 {
				t.Errorf("active_clusters = %d, want 3 (c removed)", got)
			}
			if got := g.stat(t, "cluster.c.membership_total"); got != 0 {
				t.Errorf("cluster.c.membership_total = %d after c was removed", got)
			}
			if r := g.do(t, "a.example", "/"); r.body != "a" {
				t.Fatalf("a.example answered %d %q", r.status, r.body)
			}
			if got := backends["a"].lastRequest().RemoteAddr; got != conn {
				t.Errorf("a's request came over a new connection (%s, was %s): the unchanged cluster was rebuilt", got, conn)
			}
			if got := g.stat(t, "cluster.a.update_success"); got != aUpdates {
				t.Errorf("cluster.a.update_success went from %d to %d: a's unchanged endpoints were applied again", aUpdates, got)
			}

			// A cluster of an unsupported type is NACKed; nothing of the update applies.
			bad := edsCluster("bad")
			bad.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
			nacks := len(x.nackList())
			// The update also drops d's cluster (its route stays): that must not apply either.
			withBad := cfg([]string{"a", "b", "d"}, map[string]string{"b": "b2"}, []types.Resource{bad}, nil)
			withBad.clusters = slices.DeleteFunc(withBad.clusters, func(r types.Resource) bool { return r.(*clusterv3.Cluster).GetName() == "d" })
			x.set(t, withBad)
			eventually(t, 10*time.Second, func() bool { return nackMentions(x, nacks, `cluster "bad"`) }, "a NACK of the bad cluster")
			if r := g.do(t, "d.example", "/"); r.body != "d" {
				t.Errorf("after the NACKed CDS update d.example answered %d %q, want d still served", r.status, r.body)
			}
			if got := g.stat(t, "cluster_manager.active_clusters"); got != 3 {
				t.Errorf("active_clusters = %d after the NACK, want 3", got)
			}

			// An assignment with a named port is NACKed; b keeps its endpoints.
			badCLA := cla("b", backends["b"].addr())
			badCLA.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: "http"}
			nacks = len(x.nackList())
			c := cfg([]string{"a", "d"}, nil, nil, nil)
			c.clusters = append(c.clusters, edsCluster("b"))
			c.endpoints = append(c.endpoints, badCLA)
			c.routes = []types.Resource{routeConfig(listenerName,
				vhost("a", []string{"a.example"}, routeTo("/", "a")), vhost("b", []string{"b.example"}, routeTo("/", "b")),
				vhost("d", []string{"d.example"}, routeTo("/", "d")))}
			x.set(t, c)
			eventually(t, 10*time.Second, func() bool { return nackMentions(x, nacks, `"b"`) }, "a NACK of b's assignment")
			if r := g.do(t, "b.example", "/"); r.body != "b2" {
				t.Errorf("after the NACKed EDS update b.example answered %d %q, want b2", r.status, r.body)
			}

			// While the gateway is disconnected, b goes; the reconnect's full state removes it.
			x.grpc.Stop()
			eventually(t, 5*time.Second, func() bool { return g.stat(t, "control_plane.connected_state") == 0 }, "disconnect noticed")
			var ln net.Listener
			eventually(t, 5*time.Second, func() bool {
				var err error
				ln, err = net.Listen("tcp", x.addr)
				return err == nil
			}, "rebinding %s", x.addr)
			x2 := startXDSOn(t, ln, x.cache)
			x2.version = x.version
			x2.set(t, cfg([]string{"a", "d"}, nil, nil, nil))
			eventually(t, 15*time.Second, func() bool {
				return g.do(t, "b.example", "/").status == 404 && g.stat(t, "cluster_manager.active_clusters") == 2
			}, "b removed after the reconnect")
			if r := g.do(t, "a.example", "/"); r.body != "a" {
				t.Errorf("after the reconnect a.example answered %d %q", r.status, r.body)
			}
		})
	}
}

// nackMentions reports whether a NACK after the first n mentions s.
func nackMentions(x *xdsServer, n int, s string) bool {
	l := x.nackList()
	for _, m := range l[min(n, len(l)):] {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
