// Package xdsclient is the gateway's Aggregated Discovery Service (ADS)
// client. It speaks the xDS transport protocol over gRPC exactly as Envoy
// does, in both the state-of-the-world and the incremental (delta) variants:
// it subscribes to listeners and clusters (wildcard) and to the route
// configurations and endpoint assignments the gateway asks for, hands every
// response to a Handler, and ACKs or NACKs it depending on the Handler's
// verdict.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/stats"
)

// Type URLs of the resources the client subscribes to.
const (
	ListenerType = resourcev3.ListenerType
	RouteType    = resourcev3.RouteType
	ClusterType  = resourcev3.ClusterType
	EndpointType = resourcev3.EndpointType
	SecretType   = resourcev3.SecretType
	// ScopedRouteType (SRDS) is subscribed with a wildcard, and only once the Handler asks for
	// it (Subscribe with any names), as Envoy does when a listener has scoped_rds.
	ScopedRouteType = resourcev3.ScopedRouteType
)

// resourceWrapperType is the type URL of discovery.v3.Resource, which a
// state-of-the-world server may use to wrap resources (for TTLs).
const resourceWrapperType = "type.googleapis.com/envoy.service.discovery.v3.Resource"

// subscriptionOrder is the order in which Envoy sends its initial requests on
// an ADS stream: clusters before listeners, each before its dependants.
var subscriptionOrder = []string{ClusterType, EndpointType, ListenerType, ScopedRouteType, RouteType, SecretType}

// isWildcard reports whether typeURL is subscribed with a wildcard (all
// resources) rather than by name. Envoy treats a state-of-the-world response of each
// of them as the complete set (for scopes: ScopedRdsConfigSubscription).
func isWildcard(typeURL string) bool {
	return typeURL == ListenerType || typeURL == ClusterType || typeURL == ScopedRouteType
}

// optIn reports whether the wildcard typeURL is only requested once subscribed.
func optIn(typeURL string) bool { return typeURL == ScopedRouteType }

// Resource is one decoded xDS resource.
type Resource struct {
	// Name is the resource name (Listener.name, Cluster.name,
	// RouteConfiguration.name or ClusterLoadAssignment.cluster_name).
	Name string
	// Version is the per-resource version (delta) or the response's
	// version_info (state of the world).
	Version string
	// Message is the decoded resource. A resource received again with the same bytes is
	// not decoded again: it keeps its Resource, Message included, so a Handler can tell
	// an unchanged resource by its Message pointer.
	Message proto.Message

	raw string // the encoded resource
}

// Handler receives configuration from the client. Apply is given the complete
// new set of resources of one type (after merging the response into what was
// accepted before) and must either apply all of it or none of it: a non-nil
// error rejects the response (the client NACKs it with the error's text and
// keeps the previous set). Apply is always called from a single goroutine and
// may call Client.Subscribe.
type Handler interface {
	Apply(ctx context.Context, typeURL string, resources map[string]Resource) error
}

// Config configures a Client.
type Config struct {
	// Address is the control plane's gRPC address (host:port).
	Address string
	// Node identifies this gateway to the control plane.
	Node *corev3.Node
	// Delta selects the incremental xDS protocol instead of state of the world.
	Delta bool
	// Handler validates and applies received resources.
	Handler Handler
	// Logger receives protocol events; nil means slog.Default().
	Logger *slog.Logger
	// Stats receives control_plane.* and cds/lds update stats; nil disables them.
	Stats *stats.Store
	// DialOptions are extra gRPC dial options (transport credentials default to insecure).
	DialOptions []grpc.DialOption
	// InitialBackoff and MaxBackoff bound the reconnect backoff (defaults 250ms and 10s).
	InitialBackoff, MaxBackoff time.Duration
}

// Client is an ADS client. Create it with New and start it with Run.
type Client struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	subs   map[string][]string // requested names of non-wildcard types, sorted
	notify chan struct{}

	// Owned by the Run goroutine.
	state    map[string]map[string]Resource
	byRaw    map[string]map[string]Resource // per type: the accepted resources by their encoding
	versions map[string]string // SotW: last accepted version_info per type
}

// New returns a Client for cfg. It does not connect until Run is called.
func New(cfg Config) *Client {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Stats == nil {
		cfg.Stats = stats.NewStore()
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	return &Client{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "xds"),
		subs:     map[string][]string{},
		notify:   make(chan struct{}, 1),
		state:    map[string]map[string]Resource{},
		byRaw:    map[string]map[string]Resource{},
		versions: map[string]string{},
	}
}

// Subscribe sets the resource names requested for a non-wildcard type
// (RouteType, EndpointType or SecretType), or turns on the wildcard subscription of
// ScopedRouteType (names are then ignored). The client sends the new subscription on the
// stream if it changed. It is safe to call from any goroutine, including from
// Handler.Apply.
func (c *Client) Subscribe(typeURL string, names []string) {
	names = slices.Clone(names)
	sort.Strings(names)
	names = slices.Compact(names)
	if optIn(typeURL) {
		names = []string{}
	}
	c.mu.Lock()
	c.subs[typeURL] = names
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *Client) subscription(typeURL string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[typeURL]
}

// wanted reports whether a wildcard type is to be requested.
func (c *Client) wanted(typeURL string) bool {
	if !optIn(typeURL) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.subs[typeURL]
	return ok
}

// Run connects to the control plane and keeps the ADS stream up, reconnecting
// with jittered exponential backoff, until ctx is done. The last accepted
// configuration stays in force while disconnected.
func (c *Client) Run(ctx context.Context) error {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, c.cfg.DialOptions...)
	conn, err := grpc.NewClient(c.cfg.Address, opts...)
	if err != nil {
		return fmt.Errorf("creating gRPC client for ADS server %s: %w", c.cfg.Address, err)
	}
	defer conn.Close()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)

	backoff := c.cfg.InitialBackoff
	for {
		var progressed bool
		if c.cfg.Delta {
			progressed, err = c.runDelta(ctx, ads)
		} else {
			progressed, err = c.runSotW(ctx, ads)
		}
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			backoff = c.cfg.InitialBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		c.log.Warn("ADS stream closed; reconnecting", "address", c.cfg.Address, "error", err, "backoff", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// streamIO runs the receive side of a stream in its own goroutine and stops
// it when the stream's context is cancelled.
type streamIO[T any] struct {
	recv chan T
	errc chan error
	wg   sync.WaitGroup
}

func startRecv[T any](ctx context.Context, recv func() (T, error)) *streamIO[T] {
	s := &streamIO[T]{recv: make(chan T), errc: make(chan error, 1)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			m, err := recv()
			if err != nil {
				s.errc <- err
				return
			}
			select {
			case s.recv <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

// nackState paces repeated NACKs of the same rejected configuration: a
// control plane that resends a rejected response at once would otherwise
// make the client spin.
type nackState struct {
	count   int
	due     time.Time
	pending any // *discoveryv3.DiscoveryRequest or *discoveryv3.DeltaDiscoveryRequest
}

func nackDelay(count int) time.Duration {
	if count <= 1 {
		return 0
	}
	return min(250*time.Millisecond<<min(count-2, 6), 8*time.Second)
}

// nextDue returns a timer channel firing at the earliest pending NACK, or nil.
func nextDue(nacks map[string]*nackState) (<-chan time.Time, *time.Timer) {
	var earliest time.Time
	for _, n := range nacks {
		if n.pending != nil && (earliest.IsZero() || n.due.Before(earliest)) {
			earliest = n.due
		}
	}
	if earliest.IsZero() {
		return nil, nil
	}
	t := time.NewTimer(time.Until(earliest))
	return t.C, t
}

func (c *Client) runSotW(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return false, fmt.Errorf("opening ADS stream: %w", err)
	}
	connected := c.cfg.Stats.Gauge("control_plane.connected_state")
	connected.Set(1)
	defer connected.Set(0)
	io := startRecv(ctx, stream.Recv)
	defer func() { cancel(); io.wg.Wait() }()

	nodeSent := false
	send := func(req *discoveryv3.DiscoveryRequest) error {
		if !nodeSent {
			req.Node = c.cfg.Node
			nodeSent = true
		}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("sending %s request: %w", req.GetTypeUrl(), err)
		}
		return nil
	}
	nonces := map[string]string{}
	sent := map[string][]string{}
	started := map[string]bool{}
	nacks := map[string]*nackState{}

	sendSubscriptions := func() error {
		for _, t := range subscriptionOrder {
			names := c.subscription(t)
			if isWildcard(t) {
				if started[t] || !c.wanted(t) {
					continue
				}
				names = nil
			} else if (!started[t] && len(names) == 0) || (started[t] && slices.Equal(names, sent[t])) {
				continue
			}
			req := &discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: c.versions[t], ResourceNames: names, ResponseNonce: nonces[t]}
			if err := send(req); err != nil {
				return err
			}
			started[t], sent[t] = true, names
		}
		return nil
	}
	if err := sendSubscriptions(); err != nil {
		return false, err
	}

	for {
		timerC, timer := nextDue(nacks)
		select {
		case <-ctx.Done():
			stopTimer(timer)
			return progressed, ctx.Err()
		case err := <-io.errc:
			stopTimer(timer)
			return progressed, fmt.Errorf("receiving from ADS stream: %w", err)
		case <-c.notify:
			stopTimer(timer)
			if err := sendSubscriptions(); err != nil {
				return progressed, err
			}
		case <-timerC:
			for _, n := range nacks {
				if req, ok := n.pending.(*discoveryv3.DiscoveryRequest); ok && !time.Now().Before(n.due) {
					n.pending = nil
					if err := send(req); err != nil {
						return progressed, err
					}
				}
			}
		case resp := <-io.recv:
			stopTimer(timer)
			progressed = true
			t := resp.GetTypeUrl()
			nonces[t] = resp.GetNonce()
			err := c.applySotW(ctx, resp)
			names := c.subscription(t)
			if isWildcard(t) {
				names = nil
			}
			req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResourceNames: names, ResponseNonce: resp.GetNonce()}
			started[t], sent[t] = true, names
			n := nacks[t]
			if n == nil {
				n = &nackState{}
				nacks[t] = n
			}
			n.pending = nil
			if err == nil {
				n.count = 0
				c.versions[t] = resp.GetVersionInfo()
				req.VersionInfo = resp.GetVersionInfo()
				if err := send(req); err != nil {
					return progressed, err
				}
				continue
			}
			req.VersionInfo = c.versions[t]
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
			n.count++
			if d := nackDelay(n.count); d > 0 {
				n.due, n.pending = time.Now().Add(d), req
				continue
			}
			if err := send(req); err != nil {
				return progressed, err
			}
		}
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// applySotW decodes a state-of-the-world response, builds the new resource
// set for its type and hands it to the Handler.
func (c *Client) applySotW(ctx context.Context, resp *discoveryv3.DiscoveryResponse) error {
	t := resp.GetTypeUrl()
	c.updateStat(t, "update_attempt")
	next := map[string]Resource{}
	var subs map[string]bool
	if !isWildcard(t) {
		subs = set(c.subscription(t))
		// RDS and EDS responses only carry the resources they name;
		// resources not mentioned stay as they were.
		for name := range subs {
			if r, ok := c.state[t][name]; ok {
				next[name] = r
			}
		}
	}
	seen := map[string]bool{}
	for _, a := range resp.GetResources() {
		r, err := c.decodeResource(t, a, resp.GetVersionInfo())
		if err != nil {
			return c.reject(t, resp.GetVersionInfo(), err)
		}
		if seen[r.Name] {
			return c.reject(t, resp.GetVersionInfo(), fmt.Errorf("duplicate %s resource %q in response", shortType(t), r.Name))
		}
		seen[r.Name] = true
		if !isWildcard(t) && !subs[r.Name] {
			continue
		}
		next[r.Name] = r
	}
	if err := c.cfg.Handler.Apply(ctx, t, next); err != nil {
		return c.reject(t, resp.GetVersionInfo(), err)
	}
	c.accept(t, next)
	c.updateStat(t, "update_success")
	c.log.Debug("accepted xDS update", "type", shortType(t), "version", resp.GetVersionInfo(), "resources", len(next))
	return nil
}

// decodeResource decodes a resource of a SotW response, or returns the accepted one with the
// same encoding as it was.
func (c *Client) decodeResource(t string, a *anypb.Any, version string) (Resource, error) {
	if r, ok := c.byRaw[t][string(a.GetValue())]; ok && a.GetTypeUrl() == t {
		return r, nil
	}
	msg, err := decode(t, a)
	if err != nil {
		return Resource{}, err
	}
	return Resource{Name: resourceName(msg), Version: version, Message: msg, raw: string(a.GetValue())}, nil
}

// accept makes next the accepted resources of type t.
func (c *Client) accept(t string, next map[string]Resource) {
	c.state[t] = next
	byRaw := make(map[string]Resource, len(next))
	for _, r := range next {
		if r.raw != "" {
			byRaw[r.raw] = r
		}
	}
	c.byRaw[t] = byRaw
}

// set returns names as a set.
func set(names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out
}

func (c *Client) reject(typeURL, version string, err error) error {
	c.updateStat(typeURL, "update_rejected")
	c.log.Warn("rejected xDS update (NACK)", "type", shortType(typeURL), "version", version, "error", err)
	return err
}

func (c *Client) updateStat(typeURL, name string) {
	var prefix string
	switch typeURL {
	case ClusterType:
		prefix = "cluster_manager.cds."
	case ListenerType:
		prefix = "listener_manager.lds."
	default:
		return // RDS and EDS stats are per resource; the Handler keeps them.
	}
	c.cfg.Stats.Counter(prefix + name).Inc()
}

func (c *Client) runDelta(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return false, fmt.Errorf("opening delta ADS stream: %w", err)
	}
	connected := c.cfg.Stats.Gauge("control_plane.connected_state")
	connected.Set(1)
	defer connected.Set(0)
	io := startRecv(ctx, stream.Recv)
	defer func() { cancel(); io.wg.Wait() }()

	nodeSent := false
	send := func(req *discoveryv3.DeltaDiscoveryRequest) error {
		if !nodeSent {
			req.Node = c.cfg.Node
			nodeSent = true
		}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("sending delta %s request: %w", req.GetTypeUrl(), err)
		}
		return nil
	}
	sent := map[string][]string{}
	started := map[string]bool{}
	nacks := map[string]*nackState{}

	sendSubscriptions := func() error {
		for _, t := range subscriptionOrder {
			if !started[t] {
				var names []string
				if isWildcard(t) && !c.wanted(t) {
					continue
				}
				if !isWildcard(t) {
					names = c.subscription(t)
					if len(names) == 0 {
						continue
					}
				}
				initial := map[string]string{}
				wanted := set(names)
				for name, r := range c.state[t] {
					if isWildcard(t) || wanted[name] {
						initial[name] = r.Version
					}
				}
				req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: names, InitialResourceVersions: initial}
				if err := send(req); err != nil {
					return err
				}
				started[t], sent[t] = true, names
				continue
			}
			if isWildcard(t) {
				continue
			}
			names := c.subscription(t)
			add, remove := diff(sent[t], names)
			if len(add) == 0 && len(remove) == 0 {
				continue
			}
			if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: remove}); err != nil {
				return err
			}
			sent[t] = names
		}
		return nil
	}
	if err := sendSubscriptions(); err != nil {
		return false, err
	}

	for {
		timerC, timer := nextDue(nacks)
		select {
		case <-ctx.Done():
			stopTimer(timer)
			return progressed, ctx.Err()
		case err := <-io.errc:
			stopTimer(timer)
			return progressed, fmt.Errorf("receiving from delta ADS stream: %w", err)
		case <-c.notify:
			stopTimer(timer)
			if err := sendSubscriptions(); err != nil {
				return progressed, err
			}
		case <-timerC:
			for _, n := range nacks {
				if req, ok := n.pending.(*discoveryv3.DeltaDiscoveryRequest); ok && !time.Now().Before(n.due) {
					n.pending = nil
					if err := send(req); err != nil {
						return progressed, err
					}
				}
			}
		case resp := <-io.recv:
			stopTimer(timer)
			progressed = true
			t := resp.GetTypeUrl()
			err := c.applyDelta(ctx, resp)
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
			n := nacks[t]
			if n == nil {
				n = &nackState{}
				nacks[t] = n
			}
			n.pending = nil
			if err == nil {
				n.count = 0
				if err := send(req); err != nil {
					return progressed, err
				}
				continue
			}
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
			n.count++
			if d := nackDelay(n.count); d > 0 {
				n.due, n.pending = time.Now().Add(d), req
				continue
			}
			if err := send(req); err != nil {
				return progressed, err
			}
		}
	}
}

// applyDelta merges a delta response into the accepted resources of its type
// and hands the result to the Handler.
func (c *Client) applyDelta(ctx context.Context, resp *discoveryv3.DeltaDiscoveryResponse) error {
	t := resp.GetTypeUrl()
	c.updateStat(t, "update_attempt")
	next := make(map[string]Resource, len(c.state[t]))
	for name, r := range c.state[t] {
		next[name] = r
	}
	seen := map[string]bool{}
	for _, r := range resp.GetResources() {
		msg, err := decode(t, r.GetResource())
		if err != nil {
			return c.reject(t, resp.GetSystemVersionInfo(), fmt.Errorf("resource %q: %w", r.GetName(), err))
		}
		name := r.GetName()
		if name == "" {
			name = resourceName(msg)
		}
		if seen[name] {
			return c.reject(t, resp.GetSystemVersionInfo(), fmt.Errorf("duplicate %s resource %q in response", shortType(t), name))
		}
		seen[name] = true
		next[name] = Resource{Name: name, Version: r.GetVersion(), Message: msg}
	}
	for _, name := range resp.GetRemovedResources() {
		delete(next, name)
	}
	if !isWildcard(t) {
		subs := set(c.subscription(t))
		for name := range next {
			if !subs[name] {
				delete(next, name)
			}
		}
	}
	if err := c.cfg.Handler.Apply(ctx, t, next); err != nil {
		return c.reject(t, resp.GetSystemVersionInfo(), err)
	}
	c.state[t] = next
	c.updateStat(t, "update_success")
	c.log.Debug("accepted delta xDS update", "type", shortType(t), "nonce", resp.GetNonce(), "resources", len(next))
	return nil
}

// diff returns the names in next but not in prev, and those in prev but not in next.
func diff(prev, next []string) (added, removed []string) {
	p, n := set(prev), set(next)
	for _, name := range next {
		if !p[name] {
			added = append(added, name)
		}
	}
	for _, name := range prev {
		if !n[name] {
			removed = append(removed, name)
		}
	}
	return added, removed
}

// decode unpacks one resource of typeURL, unwrapping a discovery Resource
// wrapper if present.
func decode(typeURL string, a *anypb.Any) (proto.Message, error) {
	if a == nil {
		return nil, errors.New("empty resource")
	}
	if a.GetTypeUrl() == resourceWrapperType {
		var wrapped discoveryv3.Resource
		if err := a.UnmarshalTo(&wrapped); err != nil {
			return nil, fmt.Errorf("decoding Resource wrapper: %w", err)
		}
		return decode(typeURL, wrapped.GetResource())
	}
	if a.GetTypeUrl() != typeURL {
		return nil, fmt.Errorf("resource of type %s in a %s response", a.GetTypeUrl(), typeURL)
	}
	var msg proto.Message
	switch typeURL {
	case ListenerType:
		msg = &listenerv3.Listener{}
	case RouteType:
		msg = &routev3.RouteConfiguration{}
	case ClusterType:
		msg = &clusterv3.Cluster{}
	case EndpointType:
		msg = &endpointv3.ClusterLoadAssignment{}
	case SecretType:
		msg = &tlsv3.Secret{}
	case ScopedRouteType:
		msg = &routev3.ScopedRouteConfiguration{}
	default:
		return nil, fmt.Errorf("unsupported resource type %s", typeURL)
	}
	if err := a.UnmarshalTo(msg); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", typeURL, err)
	}
	return msg, nil
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case *tlsv3.Secret:
		return r.GetName()
	case *routev3.ScopedRouteConfiguration:
		return r.GetName()
	}
	return ""
}

func shortType(typeURL string) string {
	switch typeURL {
	case ListenerType:
		return "LDS"
	case RouteType:
		return "RDS"
	case ClusterType:
		return "CDS"
	case EndpointType:
		return "EDS"
	case SecretType:
		return "SDS"
	case ScopedRouteType:
		return "SRDS"
	}
	return typeURL
}
