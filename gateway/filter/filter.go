// Package filter defines the gateway's HTTP filter chain: the equivalent of
// Envoy's http_filters in an HttpConnectionManager. A filter is built from
// its typed_config by a Factory found in a Registry (by the config's type
// URL, as Envoy selects extensions) and wraps the rest of the chain. The
// router is always the terminal filter and lives in package proxy.
//
// New filters (ext_proc, wasm) are added by implementing Factory and
// registering it in the Registry the gateway is built with.
package filter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
)

// RouterTypeURL is the typed_config type of Envoy's router filter.
const RouterTypeURL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

// filterConfigTypeURL is the generic per-route config.route.v3.FilterConfig.
const filterConfigTypeURL = "type.googleapis.com/envoy.config.route.v3.FilterConfig"

// Filter is one configured HTTP filter.
type Filter interface {
	// Wrap returns a handler that runs the filter and then (unless the filter
	// answers the request itself) calls next. Per-request route information
	// is available through RouteFromContext.
	Wrap(next http.Handler) http.Handler
}

// Factory builds filters of one kind from their configuration.
type Factory interface {
	// ConfigTypes lists the typed_config type URLs this factory builds.
	ConfigTypes() []string
	// New builds a filter named name (the HttpFilter.name, which is also the
	// key of its per-route typed_per_filter_config) from config, running in bc
	// (a zero BuildContext for a filter built outside a listener, e.g. to check
	// its configuration).
	New(bc BuildContext, name string, config *anypb.Any) (Filter, error)
}

// BuildContext tells a filter where it runs: the HTTP connection manager
// that owns it and the gateway services it may use.
type BuildContext struct {
	// Listener is the owning listener's name.
	Listener string
	// StatPrefix is the HCM stat_prefix: filter stats go under http.<StatPrefix>.
	StatPrefix string
	// Stats is the gateway's stat store.
	Stats *stats.Store
	// Clusters are the gateway's upstream clusters (for filters that call
	// out to a cluster, as ext_proc does with grpc_service.envoy_grpc).
	Clusters *upstream.Manager
	// Logger receives the filter's logs.
	Logger *slog.Logger
	// Registry builds filters a filter delegates to (the composite filter's
	// ExecuteFilterAction); BuildWith sets it to its own registry when nil.
	Registry *Registry
}

// PerRouteValidator is implemented by factories whose filters accept a
// typed per-route configuration (typed_per_filter_config) of their own type.
// The gateway validates such configurations when a RouteConfiguration
// arrives, so that a bad one is NACKed as Envoy would.
type PerRouteValidator interface {
	// PerRouteConfigTypes lists the per-route config type URLs validated.
	PerRouteConfigTypes() []string
	// ValidatePerRoute checks one per-route configuration.
	ValidatePerRoute(config *anypb.Any) error
}

// Registry maps typed_config type URLs to factories.
type Registry struct {
	factories map[string]Factory
	perRoute  map[string]PerRouteValidator
}

// NewRegistry returns a Registry holding factories. A later factory for the
// same type URL replaces an earlier one.
func NewRegistry(factories ...Factory) *Registry {
	r := &Registry{factories: map[string]Factory{}, perRoute: map[string]PerRouteValidator{}}
	for _, f := range factories {
		for _, t := range f.ConfigTypes() {
			r.factories[t] = f
		}
		if v, ok := f.(PerRouteValidator); ok {
			for _, t := range v.PerRouteConfigTypes() {
				r.perRoute[t] = v
			}
		}
	}
	return r
}

// ValidatePerRoute validates a typed_per_filter_config value: a
// route.v3.FilterConfig wrapper is unwrapped, and a config whose type a
// registered factory validates is checked by it. Other types are accepted.
func (r *Registry) ValidatePerRoute(config *anypb.Any) error {
	if r == nil || config == nil {
		return nil
	}
	inner, _, err := UnwrapPerRoute(config)
	if err != nil {
		return err
	}
	if inner == nil {
		return nil
	}
	if v, ok := r.perRoute[inner.GetTypeUrl()]; ok {
		return v.ValidatePerRoute(inner)
	}
	return nil
}

// UnwrapPerRoute returns the filter-specific configuration inside a
// per-route config: config itself, or the config of a route.v3.FilterConfig
// wrapper (nil when it has none), and whether the wrapper disables the filter.
func UnwrapPerRoute(config *anypb.Any) (inner *anypb.Any, disabled bool, err error) {
	if config.GetTypeUrl() != filterConfigTypeURL {
		return config, false, nil
	}
	var fc routev3.FilterConfig
	if err := config.UnmarshalTo(&fc); err != nil {
		return nil, false, fmt.Errorf("decoding FilterConfig: %w", err)
	}
	return fc.GetConfig(), fc.GetDisabled(), nil
}

// Lookup returns the factory for a typed_config type URL.
func (r *Registry) Lookup(typeURL string) (Factory, bool) {
	if r == nil {
		return nil, false
	}
	f, ok := r.factories[typeURL]
	return f, ok
}

// RouteInfo is what filters can learn about the route chosen for a request. It is shared by
// every request to the same route (and weighted cluster): filters must not change it.
type RouteInfo struct {
	// VirtualHost and Route are the names of the matched virtual host and route.
	VirtualHost, Route string
	// Metadata is the route's metadata (Skiff puts filter_metadata["skiff"] here).
	Metadata *corev3.Metadata
	// PerFilterConfig merges typed_per_filter_config of the virtual host,
	// the route and the chosen weighted cluster (most specific wins).
	PerFilterConfig map[string]*anypb.Any
	// Cluster is the chosen upstream cluster, when already known.
	Cluster string
}

// State is the per-request state shared by the connection manager, the
// filters and the router.
type State struct {
	mu         sync.Mutex
	route      *RouteInfo
	clearCache bool
	dynamic    map[string]*structpb.Struct
}

// SetDynamicMetadata merges fields into the request's dynamic metadata
// namespace ns, as Envoy's StreamInfo::setDynamicMetadata does: top-level
// keys of fields replace the namespace's keys of the same name.
func (s *State) SetDynamicMetadata(ns string, fields *structpb.Struct) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dynamic == nil {
		s.dynamic = map[string]*structpb.Struct{}
	}
	cur := s.dynamic[ns]
	if cur == nil {
		cur = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		s.dynamic[ns] = cur
	}
	for k, v := range fields.GetFields() {
		cur.Fields[k] = proto.Clone(v).(*structpb.Value)
	}
}

// DynamicMetadata returns a copy of the request's dynamic metadata (nil when
// no filter set any).
func (s *State) DynamicMetadata() *corev3.Metadata {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dynamic) == 0 {
		return nil
	}
	md := &corev3.Metadata{FilterMetadata: make(map[string]*structpb.Struct, len(s.dynamic))}
	for ns, st := range s.dynamic {
		md.FilterMetadata[ns] = proto.Clone(st).(*structpb.Struct)
	}
	return md
}

type stateKey struct{}

// WithState returns ctx carrying s.
func WithState(ctx context.Context, s *State) context.Context {
	return context.WithValue(ctx, stateKey{}, s)
}

// StateFromContext returns the request's State, or nil.
func StateFromContext(ctx context.Context) *State {
	s, _ := ctx.Value(stateKey{}).(*State)
	return s
}

// SetRoute records the matched route.
func (s *State) SetRoute(ri *RouteInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.route, s.clearCache = ri, false
}

// Route returns the matched route, or nil when none matched.
func (s *State) Route() *RouteInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.route
}

// ClearRouteCache asks the router to match the route again, as a filter
// must after changing headers that routing depends on.
func (s *State) ClearRouteCache() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearCache = true
}

// RouteCacheCleared reports whether ClearRouteCache was called since the
// route was last set.
func (s *State) RouteCacheCleared() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clearCache
}

// RouteFromContext returns the route matched for the request in ctx.
func RouteFromContext(ctx context.Context) (*RouteInfo, bool) {
	if s := StateFromContext(ctx); s != nil {
		if r := s.Route(); r != nil {
			return r, true
		}
	}
	return nil, false
}

// Configured is a filter of a chain with its Envoy settings.
type Configured struct {
	// Name is the HttpFilter.name.
	Name string
	// Filter is the built filter.
	Filter Filter
	// Disabled marks a filter that only runs on routes that enable it with
	// typed_per_filter_config (HttpFilter.disabled).
	Disabled bool
}

// Chain builds the handler running filters in order in front of terminal.
// A filter is skipped on a request whose route disables it (a per-route
// FilterConfig with disabled: true) or, for a filter disabled by default,
// whose route carries no per-route config for it.
func Chain(filters []Configured, terminal http.Handler) http.Handler {
	h := terminal
	for i := len(filters) - 1; i >= 0; i-- {
		f := filters[i]
		wrapped := f.Filter.Wrap(h)
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if enabled(f, r.Context()) {
				wrapped.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	return h
}

func enabled(f Configured, ctx context.Context) bool {
	ri, ok := RouteFromContext(ctx)
	if !ok {
		return !f.Disabled
	}
	cfg, ok := ri.PerFilterConfig[f.Name]
	if !ok {
		return !f.Disabled
	}
	if cfg.GetTypeUrl() == filterConfigTypeURL {
		var fc routev3.FilterConfig
		if err := cfg.UnmarshalTo(&fc); err == nil {
			return !fc.GetDisabled()
		}
	}
	return true
}

// Build turns a list of HttpFilter descriptions into a chain description:
// it checks that the router is present and last, builds known filters with
// reg, skips unknown optional filters and rejects unknown required ones.
func Build(reg *Registry, filters []*hcmv3.HttpFilter) ([]Configured, error) {
	return BuildWith(reg, BuildContext{}, filters)
}

// BuildWith is Build for filters running in bc, which every factory is given.
func BuildWith(reg *Registry, bc BuildContext, filters []*hcmv3.HttpFilter) ([]Configured, error) {
	if bc.Registry == nil {
		bc.Registry = reg
	}
	var out []Configured
	routerSeen := false
	for i, hf := range filters {
		fname, cfg, optional, disabled := hf.GetName(), hf.GetTypedConfig(), hf.GetIsOptional(), hf.GetDisabled()
		if routerSeen {
			return nil, fmt.Errorf("http_filters[%d] (%s): the router filter must be the last filter", i, fname)
		}
		if cfg == nil {
			return nil, fmt.Errorf("http_filters[%d] (%s): only typed_config is supported", i, fname)
		}
		if cfg.GetTypeUrl() == RouterTypeURL {
			routerSeen = true
			continue
		}
		f, ok := reg.Lookup(cfg.GetTypeUrl())
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("http_filters[%d] (%s): unknown filter type %s (mark it is_optional to allow it)", i, fname, cfg.GetTypeUrl())
		}
		built, err := f.New(bc, fname, cfg)
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d] (%s): %w", i, fname, err)
		}
		out = append(out, Configured{Name: fname, Filter: built, Disabled: disabled})
	}
	if !routerSeen {
		return nil, fmt.Errorf("http_filters: the router filter (%s) is required as the last filter", RouterTypeURL)
	}
	return out, nil
}
