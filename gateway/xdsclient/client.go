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
	"google.golang.org/grpc"
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

// MaxResponseSize bounds the size of one xDS response the client receives. gRPC-Go's default
// (4 MiB) is too small for a state-of-the-world CDS response beyond ~15,000 clusters, which
// the client then cannot receive at all (it reconnects, and fails again, forever).
const MaxResponseSize = 1 << 30

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

// Handler receives configuration from the client. Apply is given one response's change to
// the accepted resources of one type: the resources added or changed, and the names of those
// removed (a state-of-the-world response is compared with what was accepted, so an unchanged
// resource is in neither). It must either apply all of it or none of it: a non-nil error
// rejects the response (the client NACKs it with the error's text and keeps what was accepted
// before). Apply is always called from a single goroutine and may call Client.Subscribe and
// Client.UpdateSubscription.
type Handler interface {
	Apply(ctx context.Context, typeURL string, u Update) error
}

// Update is one response's change to the accepted resources of a type.
type Update struct {
	// Changed are the resources added or changed, by name.
	Changed map[string]Resource
	// Removed are the names of accepted resources that are gone: removed by the server, left
	// out of a state-of-the-world response of a wildcard type, or no longer subscribed to.
	Removed []string

	accepted map[string]Resource
}

// All returns every resource of the type once the update applies. It costs O(resources):
// for types with few resources (listeners, secrets).
func (u Update) All() map[string]Resource {
	out := make(map[string]Resource, len(u.accepted)+len(u.Changed))
	for name, r := range u.accepted {
		out[name] = r
	}
	for _, name := range u.Removed {
		delete(out, name)
	}
	for name, r := range u.Changed {
		out[name] = r
	}
	return out
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
	subs   map[string]*subscription // requested names of non-wildcard types (and opted-in wildcard ones)
	notify chan struct{}

	// Owned by the Run goroutine.
	state    map[string]map[string]Resource
	byRaw    map[string]map[string]Resource // per type: the accepted resources by their encoding
	versions map[string]string              // SotW: last accepted version_info per type
}

// subscription is the names requested for one type, and how they changed since a stream
// last sent them.
type subscription struct {
	names map[string]bool
	// version counts changes; list caches the names at listVersion.
	version, listVersion uint64
	list                 []string
	// added and removed are the changes not yet sent on a delta stream; dropped the names
	// removed since an update of the type was last accepted (what it must forget).
	added, removed, dropped map[string]bool
}

func newSubscription() *subscription {
	return &subscription{names: map[string]bool{}, added: map[string]bool{}, removed: map[string]bool{}, dropped: map[string]bool{}}
}

// change adds and removes names, recording what changed.
func (s *subscription) change(add, remove []string) bool {
	changed := false
	for _, n := range remove {
		if !s.names[n] {
			continue
		}
		delete(s.names, n)
		changed = true
		if s.added[n] {
			delete(s.added, n)
		} else {
			s.removed[n] = true
		}
		s.dropped[n] = true
	}
	for _, n := range add {
		if s.names[n] {
			continue
		}
		s.names[n] = true
		changed = true
		if s.removed[n] {
			delete(s.removed, n)
		} else {
			s.added[n] = true
		}
	}
	if changed {
		s.version++
	}
	return changed
}

// sorted returns the names, sorted (cached until they change).
func (s *subscription) sorted() []string {
	if s.list == nil || s.listVersion != s.version {
		s.list = make([]string, 0, len(s.names))
		for n := range s.names {
			s.list = append(s.list, n)
		}
		sort.Strings(s.list)
		s.listVersion = s.version
	}
	return s.list
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
		subs:     map[string]*subscription{},
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
// Handler.Apply. It costs O(names); UpdateSubscription costs what changes.
func (c *Client) Subscribe(typeURL string, names []string) {
	if optIn(typeURL) {
		names = nil
	}
	want := set(names)
	c.mu.Lock()
	_, existed := c.subs[typeURL]
	s := c.subLocked(typeURL)
	var remove []string
	for n := range s.names {
		if !want[n] {
			remove = append(remove, n)
		}
	}
	changed := s.change(names, remove) || !existed
	c.mu.Unlock()
	if changed {
		c.kick()
	}
}

// UpdateSubscription adds names to and removes names from the subscription of a
// non-wildcard type, as Subscribe does with the whole list.
func (c *Client) UpdateSubscription(typeURL string, add, remove []string) {
	c.mu.Lock()
	_, existed := c.subs[typeURL]
	changed := c.subLocked(typeURL).change(add, remove) || !existed
	c.mu.Unlock()
	if changed {
		c.kick()
	}
}

// subLocked returns the subscription of typeURL, creating it (Subscribe of an opt-in
// wildcard type is what creates it); c.mu must be held.
func (c *Client) subLocked(typeURL string) *subscription {
	s := c.subs[typeURL]
	if s == nil {
		s = newSubscription()
		s.version = 1 // a new subscription is news to the stream even when empty
		c.subs[typeURL] = s
	}
	return s
}

func (c *Client) kick() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// subscription returns the requested names of typeURL, sorted, and the subscription's
// version (0 when never subscribed). The slice must not be modified.
func (c *Client) subscription(typeURL string) ([]string, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[typeURL]
	if s == nil {
		return nil, 0
	}
	return s.sorted(), s.version
}

// subscribed reports whether name is requested for typeURL.
func (c *Client) subscribed(typeURL, name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[typeURL]
	return s != nil && s.names[name]
}

// takeDelta returns and forgets the names added to and removed from typeURL's subscription
// since it was last called.
func (c *Client) takeDelta(typeURL string) (added, removed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[typeURL]
	if s == nil {
		return nil, nil
	}
	for n := range s.added {
		added = append(added, n)
	}
	for n := range s.removed {
		removed = append(removed, n)
	}
	clear(s.added)
	clear(s.removed)
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// dropped returns the accepted resources of typeURL that are no longer subscribed to.
func (c *Client) dropped(typeURL string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[typeURL]
	if s == nil {
		return nil
	}
	var out []string
	for n := range s.dropped {
		if _, ok := c.state[typeURL][n]; ok && !s.names[n] {
			out = append(out, n)
		} else {
			delete(s.dropped, n) // resubscribed, or never received
		}
	}
	return out
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
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxResponseSize)),
	}, c.cfg.DialOptions...)
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
			progressed, err = runStream(ctx, c, ads.DeltaAggregatedResources, newDeltaStream(c))
		} else {
			progressed, err = runStream(ctx, c, ads.StreamAggregatedResources, newSotWStream(c))
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

// accept applies an update the Handler accepted to the accepted resources of type t.
func (c *Client) accept(t string, u Update) {
	state, byRaw := c.state[t], c.byRaw[t]
	if state == nil {
		state, byRaw = map[string]Resource{}, map[string]Resource{}
		c.state[t], c.byRaw[t] = state, byRaw
	}
	forget := func(name string) {
		if old, ok := state[name]; ok {
			if old.raw != "" && byRaw[old.raw].Name == name {
				delete(byRaw, old.raw)
			}
			delete(state, name)
		}
	}
	for _, name := range u.Removed {
		forget(name)
	}
	for name, r := range u.Changed {
		forget(name)
		state[name] = r
		if r.raw != "" {
			byRaw[r.raw] = r
		}
	}
	c.mu.Lock()
	if s := c.subs[t]; s != nil {
		for _, name := range u.Removed {
			delete(s.dropped, name)
		}
	}
	c.mu.Unlock()
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
