package xds

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	// maxEndpointHistory bounds, per cluster, how many past endpoint contents
	// keep their version; an ACK of an older content counts as version 0.
	maxEndpointHistory = 32
	// maxPendingResponses bounds the un-ACKed responses remembered per stream.
	maxPendingResponses = 64
)

// NodeStatus describes one connected xDS stream and what it has ACKed.
type NodeStatus struct {
	// NodeID and NodeCluster come from the node of the stream's first request
	// (empty until that request arrives).
	NodeID, NodeCluster string
	// StreamID is go-control-plane's stream id (SotW and delta count separately).
	StreamID int64
	// Delta is true for incremental (delta) xDS streams.
	Delta bool
	// TypeURL is "" for ADS streams, else the single type the stream serves.
	TypeURL string
	// Acked maps a type URL to the last ACKed version (SotW version_info,
	// delta system_version_info).
	Acked map[string]string
	// Endpoints maps a cluster to the endpoints version (as returned by
	// SetEndpoints) of its last ACKed ClusterLoadAssignment; "0" when that
	// content is no longer known.
	Endpoints map[string]string
	// NACKs counts rejected responses; LastNACK is the last error_detail message.
	NACKs    int
	LastNACK string
	// Serving reports whether the node is one of the proxies meant to serve
	// (Options.ServingNodes): only those make resources ready.
	Serving bool
	// Unresponsive reports that the stream has left a response unanswered
	// for longer than Options.AckTimeout: readiness does not wait for it
	// until it answers.
	Unresponsive bool
}

// NodeSelector selects xDS nodes by their Envoy node id (--service-node) and
// cluster (--service-cluster). A node matches when its cluster is one of
// Clusters (or Clusters is empty) and its id is one of IDs (or IDs is empty).
type NodeSelector struct {
	Clusters []string
	IDs      []string
}

// Matches reports whether node is selected.
func (n NodeSelector) Matches(node *corev3.Node) bool {
	return (len(n.Clusters) == 0 || slices.Contains(n.Clusters, node.GetCluster())) &&
		(len(n.IDs) == 0 || slices.Contains(n.IDs, node.GetId()))
}

// IsZero reports whether the selector names no cluster and no id.
func (n NodeSelector) IsZero() bool { return len(n.Clusters) == 0 && len(n.IDs) == 0 }

// String describes the selector for logs and errors.
func (n NodeSelector) String() string {
	return fmt.Sprintf("clusters=%s ids=%s", strings.Join(n.Clusters, ","), strings.Join(n.IDs, ","))
}

// streamKey identifies a stream: SotW and delta servers number streams separately.
type streamKey struct {
	delta bool
	id    int64
}

// sentResponse is what a stream was sent under one nonce, kept until ACK/NACK.
type sentResponse struct {
	seq     uint64
	typeURL string
	version string
	eds     map[string]string // cluster → content hash of the CLA sent
	rds     map[string]string // route configuration → content hash sent, if any
	sds     map[string]string // secret → content hash sent, if any
	srds    map[string]string // scope → content hash sent, if any
	removed []string          // delta removed_resources
	// names are the resources sent (delta); a SotW response keeps its
	// resources instead, decoded for their names only when needed.
	names     []string
	resources []*anypb.Any
	// sentAt is when the stream was first sent a response of this type that
	// it has not answered since (a SotW response superseding an unanswered
	// one keeps its time); timer wakes waiters once it is AckTimeout old.
	sentAt time.Time
	timer  *time.Timer
}

// resourceNames returns the names of the resources p carried.
func (p *sentResponse) resourceNames() []string {
	if p.names != nil || p.resources == nil {
		return p.names
	}
	out := make([]string, 0, len(p.resources))
	for _, a := range p.resources {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue
		}
		if r, ok := m.(interface{ GetName() string }); ok {
			out = append(out, r.GetName())
		} else if cla, ok := m.(*endpointv3.ClusterLoadAssignment); ok {
			out = append(out, cla.GetClusterName())
		}
	}
	p.names = out
	return out
}

// stop stops p's timer once p is answered or forgotten.
func (p *sentResponse) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// streamState is the ACK state of one stream.
type streamState struct {
	typeURL  string
	node     *corev3.Node
	pending  map[string]*sentResponse // by nonce
	acked    map[string]string        // type URL → version
	eds      map[string]string        // cluster → ACKed content hash
	rds      map[string]string        // route configuration → ACKed content hash
	sds      map[string]string        // secret → ACKed content hash
	srds     map[string]string        // scope → ACKed content hash
	nacks    int
	lastNACK string
	// requested holds the types the stream has asked for: only a stream
	// that asked for a type can be waited on to ACK it (a proxy asks for
	// secrets once it has a TLS listener).
	requested map[string]bool
	// rejected maps a type URL and resource name to the error_detail of the
	// last NACK of a response carrying it, until a response carrying it is
	// ACKed.
	rejected map[string]map[string]string
}

// contentHistory maps the content hashes of a resource's recent versions (a
// cluster's CLA, or a RouteConfiguration) to the version that last set that
// content.
type contentHistory struct {
	current  string
	versions map[string]uint64
}

// ackTracker implements go-control-plane's server callbacks: it remembers what
// each stream was sent and what it ACKed, logs NACKs, and wakes waiters.
type ackTracker struct {
	logger *slog.Logger
	// serving selects the proxies whose ACKs count; timeout is how long a
	// response may go unanswered before its stream stops counting.
	serving NodeSelector
	timeout time.Duration

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change
	seq     uint64        // last endpoints version handed out
	sent    uint64        // response counter, orders pending responses
	eds     map[string]*contentHistory
	rds     map[string]*contentHistory // the same bookkeeping per RouteConfiguration
	streams map[streamKey]*streamState
	// describe, when set, names a sent resource and gives its content hash without decoding
	// it (Server.describe); set before the server serves.
	describe func(typeURL string, a *anypb.Any) (name, hash string, ok bool)
}

var _ serverv3.Callbacks = (*ackTracker)(nil)

func newAckTracker(logger *slog.Logger, serving NodeSelector, timeout time.Duration) *ackTracker {
	return &ackTracker{
		logger:  logger,
		serving: serving,
		timeout: timeout,
		changed: make(chan struct{}),
		eds:     make(map[string]*contentHistory),
		rds:     make(map[string]*contentHistory),
		streams: make(map[streamKey]*streamState),
	}
}

// broadcast wakes every waiter; t.mu must be held.
func (t *ackTracker) broadcast() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// recordEndpoints registers content hash as the cluster's current CLA. It
// returns the endpoints version of that content and whether it changed.
func (t *ackTracker) recordEndpoints(cluster, hash string) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.eds[cluster]
	if h == nil {
		h = &contentHistory{versions: make(map[string]uint64)}
		t.eds[cluster] = h
	}
	v, changed := h.record(hash, &t.seq)
	if changed {
		t.broadcast()
	}
	return v, changed
}

// record makes hash the current content, giving new content the next version from seq and
// forgetting the oldest contents beyond maxEndpointHistory. It returns the content's version
// and whether it changed.
func (h *contentHistory) record(hash string, seq *uint64) (uint64, bool) {
	if h.current == hash {
		return h.versions[hash], false
	}
	*seq++
	h.current = hash
	h.versions[hash] = *seq
	for len(h.versions) > maxEndpointHistory {
		oldest := ""
		for k, v := range h.versions {
			if k != h.current && (oldest == "" || v < h.versions[oldest]) {
				oldest = k
			}
		}
		delete(h.versions, oldest)
	}
	return *seq, true
}

// forgetCluster drops the endpoint history of a deleted cluster and the
// streams' ACKs of it.
func (t *ackTracker) forgetCluster(cluster string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.eds, cluster)
	for _, st := range t.streams {
		delete(st.eds, cluster)
	}
	t.broadcast()
}

// endpointsVersion is the endpoints version of an ACKed content hash; t.mu must be held.
func (t *ackTracker) endpointsVersion(cluster, hash string) uint64 {
	if h := t.eds[cluster]; h != nil {
		return h.versions[hash]
	}
	return 0
}

func (t *ackTracker) open(k streamKey, typeURL string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams[k] = &streamState{
		typeURL:   typeURL,
		pending:   make(map[string]*sentResponse),
		acked:     make(map[string]string),
		eds:       make(map[string]string),
		rds:       make(map[string]string),
		sds:       make(map[string]string),
		srds:      make(map[string]string),
		requested: make(map[string]bool),
		rejected:  make(map[string]map[string]string),
	}
	t.broadcast()
}

func (t *ackTracker) close(k streamKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.streams[k]; st != nil {
		for _, p := range st.pending {
			p.stop()
		}
	}
	delete(t.streams, k)
	t.broadcast()
}

// wake wakes the waiters when a response's answer is overdue, so that they
// stop waiting for its stream.
func (t *ackTracker) wake() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.broadcast()
}

// unresponsiveLocked reports whether st has left a response unanswered for
// longer than the timeout; t.mu must be held.
func (t *ackTracker) unresponsiveLocked(st *streamState, now time.Time) bool {
	for _, p := range st.pending {
		if now.Sub(p.sentAt) >= t.timeout {
			return true
		}
	}
	return false
}

// counts reports whether readiness waits for st to ACK resources of typeURL:
// it is a serving proxy's stream that carries the type, has asked for it and
// answers; t.mu must be held.
func (t *ackTracker) counts(st *streamState, typeURL string, now time.Time) bool {
	return st.node != nil && t.serving.Matches(st.node) &&
		(st.typeURL == resourcev3.AnyType || st.typeURL == typeURL) &&
		st.requested[typeURL] && !t.unresponsiveLocked(st, now)
}

// request handles an incoming request: a response_nonce without error_detail
// ACKs the response sent under that nonce, with error_detail it NACKs it.
func (t *ackTracker) request(k streamKey, node *corev3.Node, typeURL, nonce, version string, nack *statusDetail) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[k]
	if st == nil {
		return
	}
	changed := false
	if st.node == nil && node != nil {
		st.node = node
		changed = true
	}
	if typeURL != "" && !st.requested[typeURL] {
		st.requested[typeURL] = true
		changed = true
	}
	if p := st.pending[nonce]; nonce != "" && p != nil {
		delete(st.pending, nonce)
		p.stop()
		changed = true
		if nack != nil {
			st.nacks++
			st.lastNACK = nack.message
			rej := st.rejected[p.typeURL]
			if rej == nil {
				rej = make(map[string]string)
				st.rejected[p.typeURL] = rej
			}
			for _, name := range p.resourceNames() {
				rej[name] = nack.message
			}
			t.logger.Warn("xds NACK",
				"node", st.node.GetId(), "node_cluster", st.node.GetCluster(), "stream", k.id, "delta", k.delta,
				"type", cmp.Or(typeURL, p.typeURL), "nonce", nonce, "rejected_version", p.version,
				"kept_version", version, "code", nack.code, "error", nack.message)
		} else {
			if rej := st.rejected[p.typeURL]; len(rej) > 0 {
				for _, name := range p.resourceNames() {
					delete(rej, name)
				}
				for _, name := range p.removed {
					delete(rej, name)
				}
			}
			st.acked[p.typeURL] = p.version
			maps.Copy(st.eds, p.eds)
			maps.Copy(st.rds, p.rds)
			maps.Copy(st.sds, p.sds)
			if p.typeURL == resourcev3.ScopedRouteType && !k.delta {
				// A SotW scopes response is the whole set: what it lacks is gone.
				st.srds = make(map[string]string, len(p.srds))
			}
			maps.Copy(st.srds, p.srds)
			for _, name := range p.removed {
				switch p.typeURL {
				case resourcev3.EndpointType:
					delete(st.eds, name)
				case resourcev3.ScopedRouteType:
					delete(st.srds, name)
				}
			}
		}
	}
	if changed {
		t.broadcast()
	}
}

// statusDetail is the part of a request's error_detail that is logged.
type statusDetail struct {
	code    int32
	message string
}

// response remembers what a stream was sent under a nonce.
func (t *ackTracker) response(k streamKey, nonce string, p *sentResponse) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[k]
	if st == nil {
		return
	}
	t.sent++
	p.seq = t.sent
	p.sentAt = time.Now()
	if !k.delta {
		// A SotW server ignores requests carrying an older nonce of the same
		// type, so only the latest response of a type can still be ACKed; it
		// is overdue when the first unanswered one is.
		for n, old := range st.pending {
			if old.typeURL == p.typeURL {
				delete(st.pending, n)
				old.stop()
				p.sentAt = old.sentAt
			}
		}
	}
	p.timer = time.AfterFunc(t.timeout-time.Since(p.sentAt), t.wake)
	st.pending[nonce] = p
	for len(st.pending) > maxPendingResponses {
		oldest := ""
		for n, old := range st.pending {
			if oldest == "" || old.seq < st.pending[oldest].seq {
				oldest = n
			}
		}
		st.pending[oldest].stop()
		delete(st.pending, oldest)
	}
}

// sentHashes returns name → content hash of the resources of a SotW response. The server's
// caches know them by the marshalled resource they share with the response (a SotW scopes
// response carries every scope: they are not decoded again); a resource a cache no longer
// holds is decoded.
func (t *ackTracker) sentHashes(stream int64, typeURL string, res []*anypb.Any) map[string]string {
	out := make(map[string]string, len(res))
	for _, a := range res {
		if t.describe != nil {
			if name, hash, ok := t.describe(typeURL, a); ok {
				out[name] = hash
				continue
			}
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			t.logger.Error("xds: decode sent resource", "stream", stream, "type", typeURL, "error", err)
			continue
		}
		out[cache.GetResourceName(m)] = cache.HashResource(a.GetValue())
	}
	return out
}

// claHashes returns cluster → content hash of the CLAs among resources.
func claHashes(resources []*discoveryv3.Resource) map[string]string {
	out := make(map[string]string, len(resources))
	for _, r := range resources {
		out[r.GetName()] = cache.HashResource(r.GetResource().GetValue())
	}
	return out
}

// OnStreamOpen is a go-control-plane callback: a SotW stream opened.
func (t *ackTracker) OnStreamOpen(_ context.Context, id int64, typeURL string) error {
	t.open(streamKey{id: id}, typeURL)
	return nil
}

// OnStreamClosed is a go-control-plane callback: a SotW stream closed.
func (t *ackTracker) OnStreamClosed(id int64, _ *corev3.Node) { t.close(streamKey{id: id}) }

// OnStreamRequest is a go-control-plane callback: a SotW request arrived.
func (t *ackTracker) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	t.request(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), detail(req.GetErrorDetail()))
	return nil
}

// OnStreamResponse is a go-control-plane callback: a SotW response is being sent.
func (t *ackTracker) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	p := &sentResponse{typeURL: resp.GetTypeUrl(), version: resp.GetVersionInfo(), resources: resp.GetResources()}
	switch p.typeURL {
	case resourcev3.RouteType:
		p.rds = t.sentHashes(id, p.typeURL, resp.GetResources())
	case resourcev3.ScopedRouteType:
		p.srds = t.sentHashes(id, p.typeURL, resp.GetResources())
	case resourcev3.SecretType:
		p.sds = t.sentHashes(id, p.typeURL, resp.GetResources())
	case resourcev3.EndpointType:
		p.eds = t.sentHashes(id, p.typeURL, resp.GetResources())
	}
	t.response(streamKey{id: id}, resp.GetNonce(), p)
}

// OnDeltaStreamOpen is a go-control-plane callback: a delta stream opened.
func (t *ackTracker) OnDeltaStreamOpen(_ context.Context, id int64, typeURL string) error {
	t.open(streamKey{delta: true, id: id}, typeURL)
	return nil
}

// OnDeltaStreamClosed is a go-control-plane callback: a delta stream closed.
func (t *ackTracker) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	t.close(streamKey{delta: true, id: id})
}

// OnStreamDeltaRequest is a go-control-plane callback: a delta request arrived.
func (t *ackTracker) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	t.request(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "", detail(req.GetErrorDetail()))
	return nil
}

// OnStreamDeltaResponse is a go-control-plane callback: a delta response is being sent.
func (t *ackTracker) OnStreamDeltaResponse(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	p := &sentResponse{typeURL: resp.GetTypeUrl(), version: resp.GetSystemVersionInfo(), removed: resp.GetRemovedResources()}
	p.names = make([]string, 0, len(resp.GetResources()))
	for _, r := range resp.GetResources() {
		p.names = append(p.names, r.GetName())
	}
	if p.typeURL == resourcev3.EndpointType {
		p.eds = claHashes(resp.GetResources())
	}
	if p.typeURL == resourcev3.RouteType {
		p.rds = make(map[string]string, len(resp.GetResources()))
		for _, r := range resp.GetResources() {
			p.rds[r.GetName()] = cache.HashResource(r.GetResource().GetValue())
		}
	}
	if p.typeURL == resourcev3.ScopedRouteType {
		p.srds = make(map[string]string, len(resp.GetResources()))
		for _, r := range resp.GetResources() {
			p.srds[r.GetName()] = cache.HashResource(r.GetResource().GetValue())
		}
	}
	if p.typeURL == resourcev3.SecretType {
		p.sds = make(map[string]string, len(resp.GetResources()))
		for _, r := range resp.GetResources() {
			p.sds[r.GetName()] = cache.HashResource(r.GetResource().GetValue())
		}
	}
	t.response(streamKey{delta: true, id: id}, resp.GetNonce(), p)
}

// OnFetchRequest is a go-control-plane callback for REST fetches, which Skiff does not serve.
func (t *ackTracker) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }

// OnFetchResponse is a go-control-plane callback for REST fetches, which Skiff does not serve.
func (t *ackTracker) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {
}

// detail extracts the logged part of a request's error_detail; nil means ACK.
func detail(s *rpcstatus.Status) *statusDetail {
	if s == nil {
		return nil
	}
	return &statusDetail{code: s.GetCode(), message: s.GetMessage()}
}

// nodes returns the status of every connected stream, sorted by (delta, id).
func (t *ackTracker) nodes() []NodeStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nodesLocked()
}

// nodesLocked is nodes with t.mu held.
func (t *ackTracker) nodesLocked() []NodeStatus {
	out := make([]NodeStatus, 0, len(t.streams))
	now := time.Now()
	for k, st := range t.streams {
		ns := NodeStatus{
			NodeID: st.node.GetId(), NodeCluster: st.node.GetCluster(),
			StreamID: k.id, Delta: k.delta, TypeURL: st.typeURL,
			Acked:     maps.Clone(st.acked),
			Endpoints: make(map[string]string, len(st.eds)),
			NACKs:     st.nacks, LastNACK: st.lastNACK,
			Serving:      st.node != nil && t.serving.Matches(st.node),
			Unresponsive: t.unresponsiveLocked(st, now),
		}
		for cluster, hash := range st.eds {
			ns.Endpoints[cluster] = strconv.FormatUint(t.endpointsVersion(cluster, hash), 10)
		}
		out = append(out, ns)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int {
		if a.Delta != b.Delta {
			if a.Delta {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.StreamID, b.StreamID)
	})
	return out
}

// endpointsAcked reports whether every stream that counts for EDS (see
// counts), and at least one, has ACKed the cluster's CLA at version >= v;
// t.mu must be held.
func (t *ackTracker) endpointsAcked(cluster string, v uint64) bool {
	n := 0
	now := time.Now()
	for _, st := range t.streams {
		if !t.counts(st, resourcev3.EndpointType, now) {
			continue
		}
		n++
		hash, ok := st.eds[cluster]
		if !ok || t.endpointsVersion(cluster, hash) < v {
			return false
		}
	}
	return n > 0
}

// waitFor blocks until cond (called with t.mu held) is true or ctx ends.
func (t *ackTracker) waitFor(ctx context.Context, cond func() bool) error {
	for {
		t.mu.Lock()
		ok, ch := cond(), t.changed
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// waitEndpointsAcked implements Server.WaitEndpointsAcked.
func (t *ackTracker) waitEndpointsAcked(ctx context.Context, cluster, version string) error {
	v, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return fmt.Errorf("wait endpoints %s acked: bad version %q: %w", cluster, version, err)
	}
	if err := t.waitFor(ctx, func() bool { return t.endpointsAcked(cluster, v) }); err != nil {
		return fmt.Errorf("wait endpoints %s acked at version %s: %w", cluster, version, err)
	}
	return nil
}

// recordRoutes registers hash as the current content of the RouteConfiguration
// name and returns its version (versions grow with every new content).
func (t *ackTracker) recordRoutes(name, hash string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.rds[name]
	if h == nil {
		h = &contentHistory{versions: make(map[string]uint64)}
		t.rds[name] = h
	}
	v, changed := h.record(hash, &t.seq)
	if changed {
		t.broadcast()
	}
	return v
}

// routeNeed is what a Route needs the serving proxies to have ACKed before
// it is served everywhere.
type routeNeed struct {
	// routes maps each RouteConfiguration carrying the Route's virtual hosts
	// (of the listeners proxies have) to the version that carries them.
	routes map[string]uint64
	// clusters are the clusters its virtual hosts send traffic to.
	clusters []string
	// secrets are the SDS secrets of its hosts on the TLS listener.
	secrets []string
	// scopes maps the scopes of its hosts (scoped layout) to their content hashes.
	scopes map[string]string
}

// routeServed reports whether the serving proxies have ACKed all of need:
// routesAcked and secretsAcked.
func (t *ackTracker) routeServed(need routeNeed) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.routeServedLocked(need, time.Now())
}

// routeServedLocked is routeServed with t.mu held.
func (t *ackTracker) routeServedLocked(need routeNeed, now time.Time) bool {
	return t.routesAckedLocked(need.routes, need.clusters, now) && t.secretsAckedLocked(need.secrets, now) &&
		t.scopesAckedLocked(need.scopes, now)
}

// scopesAckedLocked reports whether every stream that counts for SRDS (see counts: a
// serving proxy with a scoped listener) has ACKed each of scopes at its content; t.mu must
// be held.
func (t *ackTracker) scopesAckedLocked(scopes map[string]string, now time.Time) bool {
	if len(scopes) == 0 {
		return true
	}
	n := 0
	for _, st := range t.streams {
		if !t.counts(st, resourcev3.ScopedRouteType, now) {
			continue
		}
		n++
		for name, hash := range scopes {
			if st.srds[name] != hash {
				return false
			}
		}
	}
	return n > 0
}

// routesAcked reports whether every stream that counts for RDS (see counts),
// and at least one, has ACKed each RouteConfiguration of v at its version or
// later, and the current endpoints of every cluster in clusters.
func (t *ackTracker) routesAcked(v map[string]uint64, clusters []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.routesAckedLocked(v, clusters, time.Now())
}

// routesAckedLocked is routesAcked with t.mu held.
func (t *ackTracker) routesAckedLocked(v map[string]uint64, clusters []string, now time.Time) bool {
	n := 0
	for _, st := range t.streams {
		if !t.counts(st, resourcev3.RouteType, now) {
			continue
		}
		n++
		for name, want := range v {
			if !t.routeConfigAckedLocked(st, name, want) {
				return false
			}
		}
	}
	for _, c := range clusters {
		h := t.eds[c]
		if h == nil || !t.endpointsAcked(c, h.versions[h.current]) {
			return false
		}
	}
	return n > 0
}

// routeConfigAckedLocked reports whether st has ACKed the RouteConfiguration
// name at version want or later; t.mu must be held.
func (t *ackTracker) routeConfigAckedLocked(st *streamState, name string, want uint64) bool {
	h := t.rds[name]
	return h != nil && h.versions[st.rds[name]] >= want
}

// secretsAcked reports whether every stream that counts for SDS (see counts:
// a serving proxy that has asked for secrets, so has a TLS listener) has ACKed
// a version of each of secrets: it has a certificate for the route's hosts.
// Any version will do, so a renewal does not make a served route unready.
func (t *ackTracker) secretsAcked(secrets []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.secretsAckedLocked(secrets, time.Now())
}

// secretsAckedLocked is secretsAcked with t.mu held.
func (t *ackTracker) secretsAckedLocked(secrets []string, now time.Time) bool {
	for _, st := range t.streams {
		if !t.counts(st, resourcev3.SecretType, now) {
			continue
		}
		for _, name := range secrets {
			if st.sds[name] == "" {
				return false
			}
		}
	}
	return true
}

// routeRejection returns why a serving proxy rejected what a route needs: one
// of its RouteConfigurations (at the version it needs or later), the cluster
// or endpoints of one of its clusters, or the certificate of one of its TLS
// hosts. It is "" when none did, or when every serving proxy has ACKed the
// route since (it is then served).
func (t *ackTracker) routeRejection(need routeNeed) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.routeServedLocked(need, now) {
		return ""
	}
	keys := slices.SortedFunc(maps.Keys(t.streams), func(a, b streamKey) int {
		if a.delta != b.delta {
			if a.delta {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.id, b.id)
	})
	routes := slices.Sorted(maps.Keys(need.routes))
	for _, k := range keys {
		st := t.streams[k]
		if st.node == nil || !t.serving.Matches(st.node) || t.unresponsiveLocked(st, now) {
			continue
		}
		// A SotW NACK marks every resource of the response rejected; one
		// the proxy has since ACKed at the needed version is not the cause.
		for _, name := range routes {
			if msg, ok := st.rejected[resourcev3.RouteType][name]; ok && !t.routeConfigAckedLocked(st, name, need.routes[name]) {
				return fmt.Sprintf("proxy %q rejected route configuration %s: %s", st.node.GetId(), name, msg)
			}
		}
		for _, c := range need.clusters {
			if msg, ok := st.rejected[resourcev3.ClusterType][c]; ok {
				return fmt.Sprintf("proxy %q rejected cluster %s: %s", st.node.GetId(), c, msg)
			}
			if msg, ok := st.rejected[resourcev3.EndpointType][c]; ok {
				return fmt.Sprintf("proxy %q rejected the endpoints of cluster %s: %s", st.node.GetId(), c, msg)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(need.scopes)) {
			if msg, ok := st.rejected[resourcev3.ScopedRouteType][name]; ok && st.srds[name] != need.scopes[name] {
				return fmt.Sprintf("proxy %q rejected scoped route %s: %s", st.node.GetId(), name, msg)
			}
		}
		for _, name := range need.secrets {
			if msg, ok := st.rejected[resourcev3.SecretType][name]; ok && st.sds[name] == "" {
				return fmt.Sprintf("proxy %q rejected secret %s: %s", st.node.GetId(), name, msg)
			}
		}
	}
	return ""
}
