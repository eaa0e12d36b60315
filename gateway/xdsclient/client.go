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
	versions map[string]string              // SotW: last accepted version_info per type
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
