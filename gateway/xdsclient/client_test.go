package xdsclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/skiff-dev/skiff/gateway/xdsclient"
	"github.com/skiff-dev/skiff/internal/testwait"
)

const nodeID = "test-node"

// reply is one request the ADS server received for the cluster type after
// a response: an ACK or a NACK.
type reply struct {
	version string // SotW version_info (empty for delta)
	nonce   string
	nack    string // error_detail.message; empty for an ACK
}

// adsServer is go-control-plane's ADS server on loopback, recording the
// client's ACKs and NACKs of clusters.
type adsServer struct {
	addr  string
	cache cachev3.SnapshotCache

	mu      sync.Mutex
	replies []reply
	node    string
}

func startADS(t *testing.T) *adsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &adsServer{addr: ln.Addr().String(), cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)}
	record := func(node *corev3.Node, typeURL, version, nonce, nack string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if node.GetId() != "" {
			s.node = node.GetId()
		}
		if typeURL == resourcev3.ClusterType && nonce != "" {
			s.replies = append(s.replies, reply{version: version, nonce: nonce, nack: nack})
		}
	}
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			record(req.GetNode(), req.GetTypeUrl(), req.GetVersionInfo(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			record(req.GetNode(), req.GetTypeUrl(), "", req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
			return nil
		},
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(context.Background(), s.cache, cb))
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return s
}

func (s *adsServer) setClusters(t *testing.T, version string, names ...string) {
	t.Helper()
	var rs []types.Resource
	for _, n := range names {
		rs = append(rs, &clusterv3.Cluster{Name: n, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}})
	}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{resourcev3.ClusterType: rs})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		t.Fatal(err)
	}
}

// last returns the latest cluster reply and the node the stream named.
func (s *adsServer) last() (reply, string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.replies) == 0 {
		return reply{}, s.node, 0
	}
	return s.replies[len(s.replies)-1], s.node, len(s.replies)
}

// handler accepts clusters unless one is named "bad", recording the
// accepted sets.
type handler struct {
	mu      sync.Mutex
	applied []string // names of the last accepted cluster set
	calls   int
}

func (h *handler) Apply(_ context.Context, typeURL string, u xdsclient.Update) error {
	if typeURL != xdsclient.ClusterType {
		return nil
	}
	res := u.All()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	var names []string
	for n, r := range res {
		if _, ok := r.Message.(*clusterv3.Cluster); !ok {
			return fmt.Errorf("resource %s is %T, not a Cluster", n, r.Message)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	if slices.Contains(names, "bad") {
		return errors.New(`cluster "bad": rejected by the test handler`)
	}
	h.applied = names
	return nil
}

func (h *handler) state() ([]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.applied), h.calls
}

// TestAckNack drives the client against go-control-plane's ADS server, in
// both protocol variants: an accepted response is ACKed (SotW: with its
// version), a rejected one is NACKed with the Handler's error (SotW: with
// the last accepted version) and leaves the accepted set in force, and a
// later good response is ACKed again.
func TestAckNack(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			srv := startADS(t)
			srv.setClusters(t, "1", "a")
			h := &handler{}
			c := xdsclient.New(xdsclient.Config{
				Address:        srv.addr,
				Node:           &corev3.Node{Id: nodeID, Cluster: "skiff"},
				Delta:          delta,
				Handler:        h,
				InitialBackoff: 10 * time.Millisecond,
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})

			ackOf := func(version string, n int) func() bool {
				return func() bool {
					r, _, count := srv.last()
					return count > n && r.nack == "" && (delta || r.version == version)
				}
			}
			testwait.For(t, 10*time.Second, "ACK of clusters version 1", ackOf("1", 0))
			if got, _ := h.state(); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("applied clusters = %v, want [a]", got)
			}
			if _, node, _ := srv.last(); node != nodeID {
				t.Fatalf("stream node = %q, want %q", node, nodeID)
			}

			_, _, before := srv.last()
			srv.setClusters(t, "2", "a", "bad")
			testwait.For(t, 10*time.Second, "NACK of clusters version 2", func() bool {
				r, _, n := srv.last()
				return n > before && r.nack != ""
			})
			r, _, _ := srv.last()
			if !strings.Contains(r.nack, `cluster "bad"`) {
				t.Errorf("NACK error_detail = %q, want the handler's error", r.nack)
			}
			if !delta && r.version != "1" {
				t.Errorf("NACK version_info = %q, want the last accepted version 1", r.version)
			}
			if got, _ := h.state(); !slices.Equal(got, []string{"a"}) {
				t.Errorf("after NACK applied clusters = %v, want [a] still in force", got)
			}

			_, _, before = srv.last()
			srv.setClusters(t, "3", "a", "b")
			testwait.For(t, 10*time.Second, "ACK of clusters version 3", ackOf("3", before))
			if got, _ := h.state(); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("applied clusters = %v, want [a b]", got)
			}
		})
	}
}
