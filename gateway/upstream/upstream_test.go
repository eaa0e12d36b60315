package upstream_test

import (
	"errors"
	"fmt"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
)

// ep is one endpoint of a test cluster: 127.0.0.1:port.
type ep struct {
	port     uint32
	priority uint32
	health   corev3.HealthStatus
}

func staticCluster(name string, lb clusterv3.Cluster_LbPolicy, eps ...ep) *clusterv3.Cluster {
	byPriority := map[uint32]*endpointv3.LocalityLbEndpoints{}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	for _, e := range eps {
		le := byPriority[e.priority]
		if le == nil {
			le = &endpointv3.LocalityLbEndpoints{Priority: e.priority}
			byPriority[e.priority] = le
			cla.Endpoints = append(cla.Endpoints, le)
		}
		le.LbEndpoints = append(le.LbEndpoints, &endpointv3.LbEndpoint{
			HealthStatus: e.health,
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.port},
				}}},
			}},
		})
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LbPolicy:             lb,
		LoadAssignment:       cla,
	}
}

// apply builds c in a fresh manager and returns it with the stats store.
func apply(t *testing.T, c *clusterv3.Cluster) (*upstream.Cluster, *stats.Store) {
	t.Helper()
	s := stats.NewStore()
	m := upstream.NewManager(s, upstream.StaticSecrets{})
	t.Cleanup(m.Close)
	if err := m.ApplyClusters(map[string]*clusterv3.Cluster{c.GetName(): c}); err != nil {
		t.Fatalf("ApplyClusters: %v", err)
	}
	cl := m.Get(c.GetName())
	if cl == nil {
		t.Fatalf("cluster %s not built", c.GetName())
	}
	return cl, s
}

func addr(port uint32) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// picks returns the addresses of n picks, excluding the hosts at the
// addresses in exclude.
func picks(t *testing.T, cl *upstream.Cluster, n int, exclude ...string) []string {
	t.Helper()
	var ex []*upstream.Host
	for _, h := range cl.Hosts() {
		for _, a := range exclude {
			if h.Address == a {
				ex = append(ex, h)
			}
		}
	}
	var out []string
	for range n {
		h, err := cl.Pick(ex)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		out = append(out, h.Address)
	}
	return out
}

func counts(addrs []string) map[string]int {
	m := map[string]int{}
	for _, a := range addrs {
		m[a]++
	}
	return m
}

// TestPick covers Envoy's host selection: the policy spreads requests over
// the healthy hosts of the best priority that has any, hosts already tried
// are avoided while another healthy host exists, and a cluster with no
// healthy host answers no healthy upstream.
func TestPick(t *testing.T) {
	healthy, unhealthy := corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNHEALTHY
	tests := []struct {
		name    string
		lb      clusterv3.Cluster_LbPolicy
		eps     []ep
		exclude []string
		want    map[string]int // picks per address out of 6
	}{
		{name: "round robin spreads evenly", lb: clusterv3.Cluster_ROUND_ROBIN,
			eps:  []ep{{port: 1}, {port: 2}, {port: 3}},
			want: map[string]int{addr(1): 2, addr(2): 2, addr(3): 2}},
		{name: "unhealthy hosts are skipped", lb: clusterv3.Cluster_ROUND_ROBIN,
			eps:  []ep{{port: 1, health: unhealthy}, {port: 2, health: healthy}, {port: 3}},
			want: map[string]int{addr(2): 3, addr(3): 3}},
		{name: "best priority with healthy hosts wins", lb: clusterv3.Cluster_ROUND_ROBIN,
			eps:  []ep{{port: 1}, {port: 2, priority: 1}},
			want: map[string]int{addr(1): 6}},
		{name: "failover to the next priority", lb: clusterv3.Cluster_RANDOM,
			eps:  []ep{{port: 1, health: unhealthy}, {port: 2, priority: 1}, {port: 3, priority: 1, health: unhealthy}},
			want: map[string]int{addr(2): 6}},
		{name: "tried hosts are avoided", lb: clusterv3.Cluster_RANDOM,
			eps: []ep{{port: 1}, {port: 2}, {port: 3}}, exclude: []string{addr(1), addr(3)},
			want: map[string]int{addr(2): 6}},
		{name: "all tried: pick among them again", lb: clusterv3.Cluster_ROUND_ROBIN,
			eps: []ep{{port: 1}, {port: 2}}, exclude: []string{addr(1), addr(2)},
			want: map[string]int{addr(1): 3, addr(2): 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, _ := apply(t, staticCluster("c", tt.lb, tt.eps...))
			got := counts(picks(t, cl, 6, tt.exclude...))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("picks = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPickNoHealthy: no healthy host is ErrNoHealthyUpstream and counts
// upstream_cx_none_healthy, as in Envoy.
func TestPickNoHealthy(t *testing.T) {
	cl, s := apply(t, staticCluster("c", clusterv3.Cluster_ROUND_ROBIN, ep{port: 1, health: corev3.HealthStatus_UNHEALTHY}))
	if _, err := cl.Pick(nil); !errors.Is(err, upstream.ErrNoHealthyUpstream) {
		t.Fatalf("Pick = %v, want ErrNoHealthyUpstream", err)
	}
	if v, _ := s.Value("cluster.c.upstream_cx_none_healthy"); v != 1 {
		t.Errorf("upstream_cx_none_healthy = %d, want 1", v)
	}
}

// TestLeastRequest: of two hosts, least request picks the one with fewer
// active requests (with two hosts both are always among the two choices).
func TestLeastRequest(t *testing.T) {
	cl, _ := apply(t, staticCluster("c", clusterv3.Cluster_LEAST_REQUEST, ep{port: 1}, ep{port: 2}))
	var busy *upstream.Host
	for _, h := range cl.Hosts() {
		if h.Address == addr(1) {
			busy = h
		}
	}
	done := cl.StartRequest(busy)
	if got := counts(picks(t, cl, 20)); got[addr(2)] != 20 {
		t.Errorf("with host 1 busy picks = %v, want all on host 2", got)
	}
	done()
	second := cl.StartRequest(cl.Hosts()[1])
	defer second()
	if got := counts(picks(t, cl, 20)); got[addr(1)] != 20 {
		t.Errorf("with host 2 busy picks = %v, want all on host 1", got)
	}
}

// TestCircuitBreakers covers max_requests and max_retries: a slot is taken
// while under the threshold, refused (and counted as an overflow) at it,
// and available again once released; the defaults are Envoy's (1024
// requests, 3 retries).
func TestCircuitBreakers(t *testing.T) {
	type breaker struct {
		acquire  func(*upstream.Cluster) bool
		release  func(*upstream.Cluster)
		overflow string
	}
	requests := breaker{(*upstream.Cluster).AcquireRequest, (*upstream.Cluster).ReleaseRequest, "cluster.c.upstream_rq_pending_overflow"}
	retries := breaker{(*upstream.Cluster).AcquireRetry, (*upstream.Cluster).ReleaseRetry, "cluster.c.upstream_rq_retry_overflow"}
	tests := []struct {
		name       string
		thresholds *clusterv3.CircuitBreakers_Thresholds
		b          breaker
		limit      int
	}{
		{"max_requests", &clusterv3.CircuitBreakers_Thresholds{MaxRequests: wrapperspb.UInt32(2)}, requests, 2},
		{"max_requests default", nil, requests, 1024},
		{"max_retries", &clusterv3.CircuitBreakers_Thresholds{MaxRetries: wrapperspb.UInt32(1)}, retries, 1},
		{"max_retries zero", &clusterv3.CircuitBreakers_Thresholds{MaxRetries: wrapperspb.UInt32(0)}, retries, 0},
		{"max_retries default", nil, retries, 3},
		{"high priority thresholds do not apply", &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority_HIGH, MaxRetries: wrapperspb.UInt32(1)}, retries, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := staticCluster("c", clusterv3.Cluster_ROUND_ROBIN, ep{port: 1})
			if tt.thresholds != nil {
				raw.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{tt.thresholds}}
			}
			cl, s := apply(t, raw)
			for i := range tt.limit {
				if !tt.b.acquire(cl) {
					t.Fatalf("acquire %d of %d refused", i+1, tt.limit)
				}
			}
			if tt.b.acquire(cl) {
				t.Fatalf("acquire %d admitted past the limit %d", tt.limit+1, tt.limit)
			}
			if v, _ := s.Value(tt.b.overflow); v != 1 {
				t.Errorf("%s = %d, want 1", tt.b.overflow, v)
			}
			if tt.limit == 0 {
				return
			}
			tt.b.release(cl)
			if !tt.b.acquire(cl) {
				t.Errorf("acquire after a release refused")
			}
		})
	}
}
