package xds

import (
	"context"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	"github.com/skiff-dev/skiff/telemetry"
)

// pushMetrics measures, per stream and resource type, the time from a response to the
// proxy's answer to it (ACK or NACK, by nonce), for telemetry.XDSMetrics. It keeps only the
// latest response of each stream and type: a proxy answers the newest nonce only.
type pushMetrics struct {
	m   *telemetry.XDSMetrics
	now func() time.Time

	mu    sync.Mutex
	nodes map[streamKey]string
	sent  map[pushKey]sentAt
}

type pushKey struct {
	stream  streamKey
	typeURL string
}

type sentAt struct {
	nonce string
	at    time.Time
}

func newPushMetrics(m *telemetry.XDSMetrics) *pushMetrics {
	return &pushMetrics{m: m, now: time.Now, nodes: map[streamKey]string{}, sent: map[pushKey]sentAt{}}
}

func (p *pushMetrics) request(k streamKey, node *corev3.Node, typeURL, nonce string, nack bool) {
	p.mu.Lock()
	if node.GetId() != "" {
		p.nodes[k] = node.GetId()
	}
	pk := pushKey{k, typeURL}
	s, ok := p.sent[pk]
	if !ok || nonce == "" || s.nonce != nonce {
		p.mu.Unlock()
		return
	}
	delete(p.sent, pk)
	id := p.nodes[k]
	d := p.now().Sub(s.at)
	p.mu.Unlock()
	p.m.Answered(context.Background(), id, typeURL, nack, d)
}

func (p *pushMetrics) response(k streamKey, typeURL, nonce string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent[pushKey{k, typeURL}] = sentAt{nonce: nonce, at: p.now()}
}

func (p *pushMetrics) closed(k streamKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.nodes, k)
	for pk := range p.sent {
		if pk.stream == k {
			delete(p.sent, pk)
		}
	}
}

func (p *pushMetrics) OnStreamOpen(context.Context, int64, string) error { return nil }
func (p *pushMetrics) OnStreamClosed(id int64, _ *corev3.Node)           { p.closed(streamKey{id: id}) }
func (p *pushMetrics) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	p.request(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail() != nil)
	return nil
}
func (p *pushMetrics) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	p.response(streamKey{id: id}, resp.GetTypeUrl(), resp.GetNonce())
}
func (p *pushMetrics) OnDeltaStreamOpen(context.Context, int64, string) error { return nil }
func (p *pushMetrics) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	p.closed(streamKey{delta: true, id: id})
}
func (p *pushMetrics) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	p.request(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail() != nil)
	return nil
}
func (p *pushMetrics) OnStreamDeltaResponse(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	p.response(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetNonce())
}
func (p *pushMetrics) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error {
	return nil
}
func (p *pushMetrics) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {
}

// bothCallbacks calls a, then b (whose errors are ignored: b only observes).
type bothCallbacks struct {
	a serverv3.Callbacks
	b serverv3.Callbacks
}

func (c bothCallbacks) OnStreamOpen(ctx context.Context, id int64, typeURL string) error {
	err := c.a.OnStreamOpen(ctx, id, typeURL)
	_ = c.b.OnStreamOpen(ctx, id, typeURL)
	return err
}
func (c bothCallbacks) OnStreamClosed(id int64, n *corev3.Node) {
	c.a.OnStreamClosed(id, n)
	c.b.OnStreamClosed(id, n)
}
func (c bothCallbacks) OnStreamRequest(id int64, r *discoveryv3.DiscoveryRequest) error {
	err := c.a.OnStreamRequest(id, r)
	_ = c.b.OnStreamRequest(id, r)
	return err
}
func (c bothCallbacks) OnStreamResponse(ctx context.Context, id int64, r *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	c.a.OnStreamResponse(ctx, id, r, resp)
	c.b.OnStreamResponse(ctx, id, r, resp)
}
func (c bothCallbacks) OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error {
	err := c.a.OnDeltaStreamOpen(ctx, id, typeURL)
	_ = c.b.OnDeltaStreamOpen(ctx, id, typeURL)
	return err
}
func (c bothCallbacks) OnDeltaStreamClosed(id int64, n *corev3.Node) {
	c.a.OnDeltaStreamClosed(id, n)
	c.b.OnDeltaStreamClosed(id, n)
}
func (c bothCallbacks) OnStreamDeltaRequest(id int64, r *discoveryv3.DeltaDiscoveryRequest) error {
	err := c.a.OnStreamDeltaRequest(id, r)
	_ = c.b.OnStreamDeltaRequest(id, r)
	return err
}
func (c bothCallbacks) OnStreamDeltaResponse(id int64, r *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	c.a.OnStreamDeltaResponse(id, r, resp)
	c.b.OnStreamDeltaResponse(id, r, resp)
}
func (c bothCallbacks) OnFetchRequest(ctx context.Context, r *discoveryv3.DiscoveryRequest) error {
	err := c.a.OnFetchRequest(ctx, r)
	_ = c.b.OnFetchRequest(ctx, r)
	return err
}
func (c bothCallbacks) OnFetchResponse(r *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	c.a.OnFetchResponse(r, resp)
	c.b.OnFetchResponse(r, resp)
}
