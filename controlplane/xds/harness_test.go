package xds

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// testTimeout bounds every protocol test; each step waits on a condition
// (a received message, an ACK) within it.
const testTimeout = 10 * time.Second

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a Server loaded with the fixture, served over real gRPC on 127.0.0.1.
type harness struct {
	t    *testing.T
	ctx  context.Context
	srv  *Server
	conn *grpc.ClientConn
	logs *syncBuffer
}

func newHarness(t *testing.T) *harness {
	return newHarnessWith(t, Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080})
}

// newHarnessWith is newHarness with the server built from opts.
func newHarnessWith(t *testing.T, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	logs := &syncBuffer{}
	srv, err := NewServer(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})), opts)
	if err != nil {
		t.Fatal(err)
	}
	loadFixture(t, srv)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Close()
		g.Stop()
		<-served
	})
	return &harness{t: t, ctx: ctx, srv: srv, conn: conn, logs: logs}
}

// waitFor waits (within the test deadline) for cond over the server's ACK
// state; cond runs with the tracker's lock held (use nodesLocked).
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	if err := h.srv.acks.waitFor(h.ctx, cond); err != nil {
		h.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// expectNotAcked checks that WaitEndpointsAcked is still blocked: it must hit
// a short deadline.
func (h *harness) expectNotAcked(cluster, version string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 50*time.Millisecond)
	defer cancel()
	if err := h.srv.WaitEndpointsAcked(ctx, cluster, version); err == nil {
		h.t.Fatalf("WaitEndpointsAcked(%s, %s) returned before the ACK", cluster, version)
	} else if ctx.Err() == nil {
		h.t.Fatalf("WaitEndpointsAcked(%s, %s): %v", cluster, version, err)
	}
}

func (h *harness) expectAcked(cluster, version string) {
	h.t.Helper()
	if err := h.srv.WaitEndpointsAcked(h.ctx, cluster, version); err != nil {
		h.t.Fatalf("WaitEndpointsAcked(%s, %s): %v", cluster, version, err)
	}
}

func testNode(id string) *corev3.Node { return &corev3.Node{Id: id, Cluster: "skiff-gateway"} }

// sotwClient is an ADS state-of-the-world client.
type sotwClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	names  map[string][]string // subscribed names per type
}

func (h *harness) sotw(nodeID string) *sotwClient {
	h.t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(h.conn).StreamAggregatedResources(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return &sotwClient{t: h.t, stream: stream, node: testNode(nodeID), names: map[string][]string{}}
}

func (c *sotwClient) send(req *discoveryv3.DiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// subscribe sends the first request of a type.
func (c *sotwClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.names[typeURL] = names
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
}

// recv receives the next response, which must be of typeURL.
func (c *sotwClient) recv(typeURL string) *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	resp, err := c.stream.Recv()
	if err != nil {
		c.t.Fatalf("recv %s: %v", typeURL, err)
	}
	if resp.GetTypeUrl() != typeURL {
		c.t.Fatalf("received %s (%d resources), want %s", resp.GetTypeUrl(), len(resp.GetResources()), typeURL)
	}
	return resp
}

func (c *sotwClient) ack(resp *discoveryv3.DiscoveryResponse) {
	c.t.Helper()
	c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: c.names[resp.GetTypeUrl()], VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
}

func (c *sotwClient) nack(resp *discoveryv3.DiscoveryResponse, keptVersion, msg string) {
	c.t.Helper()
	c.send(&discoveryv3.DiscoveryRequest{
		TypeUrl: resp.GetTypeUrl(), ResourceNames: c.names[resp.GetTypeUrl()], VersionInfo: keptVersion, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg},
	})
}

// deltaClient is an ADS incremental client.
type deltaClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node
}

func (h *harness) delta(nodeID string) *deltaClient {
	h.t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(h.conn).DeltaAggregatedResources(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return &deltaClient{t: h.t, stream: stream, node: testNode(nodeID)}
}

func (c *deltaClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *deltaClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

func (c *deltaClient) recv(typeURL string) *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	resp, err := c.stream.Recv()
	if err != nil {
		c.t.Fatalf("recv %s: %v", typeURL, err)
	}
	if resp.GetTypeUrl() != typeURL {
		c.t.Fatalf("received %s (%d resources), want %s", resp.GetTypeUrl(), len(resp.GetResources()), typeURL)
	}
	return resp
}

func (c *deltaClient) ack(resp *discoveryv3.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
}

func (c *deltaClient) nack(resp *discoveryv3.DeltaDiscoveryResponse, msg string) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(), ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg}})
}

// deltaNames are the names of a delta response's resources, sorted.
func deltaNames(resp *discoveryv3.DeltaDiscoveryResponse) []string {
	var out []string
	for _, r := range resp.GetResources() {
		out = append(out, r.GetName())
	}
	slices.Sort(out)
	return out
}

// claNames are the cluster names of the CLAs in a SotW response, sorted.
func claNames(t *testing.T, resources []*anypb.Any) []string {
	t.Helper()
	var out []string
	for _, a := range resources {
		var cla endpointv3.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			t.Fatal(err)
		}
		out = append(out, cla.GetClusterName())
	}
	slices.Sort(out)
	return out
}

// unmarshalAny decodes a into a new M.
func unmarshalAny[M proto.Message](t *testing.T, a *anypb.Any, m M) M {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func wantNames(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func wantLog(t *testing.T, logs *syncBuffer, parts ...string) {
	t.Helper()
	s := logs.String()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Fatalf("log does not contain %q:\n%s", p, s)
		}
	}
}
