package xds

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/telemetry"
)

// Options configures a Server.
type Options struct {
	// ListenerAddress is the IP the "skiff-http" listener binds; default DefaultListenerAddress.
	ListenerAddress string
	// ListenerPort is the port of the "skiff-http" listener; default DefaultListenerPort.
	ListenerPort uint32
	// ExtProcAddress is the host:port of the ext_proc service. When set, the
	// listener runs the ext_proc filter before the router, CDS carries the
	// "skiff-extproc" cluster pointing at it, and routes disable the filter
	// for revisions that are not in proxy mode (WeightedCluster.Activate).
	// Empty means no ext_proc filter and no per-route filter configuration.
	ExtProcAddress string
	// WasmFilters are proxy-wasm filters the listener runs first, before
	// ext_proc (see WasmFilter), e.g. wasm-filters/revision-metrics so that
	// requests held by ext_proc count as in flight.
	WasmFilters []WasmFilter
	// HTTPSListenerAddress and HTTPSListenerPort place the TLS listener
	// ("skiff-https"); port 0 means none. It is sent to proxies once there is a
	// certificate (SetCertificate), as a listener needs a filter chain.
	HTTPSListenerAddress string
	HTTPSListenerPort    uint32
	// HTTPSRedirectPort is the port http-protocol Redirected sends clients to;
	// default HTTPSListenerPort (set 443 when a load balancer maps 443 to it).
	HTTPSRedirectPort uint32
	// LocalListenerAddress and LocalListenerPort place the cluster-local
	// listener ("skiff-local"); port 0 means none, and cluster-local virtual
	// hosts are then served on the plain-HTTP listener.
	LocalListenerAddress string
	LocalListenerPort    uint32
	// WasmCodeServer is the host:port of the HTTP server (WasmCodeHandler)
	// proxies fetch the WasmFilters' modules from, for proxies that do not
	// share a file system with the control plane (Envoy in a cluster). When
	// set, CDS carries the "skiff-wasm" cluster pointing at it, and every
	// filter (each must have a SHA256) is sent as remote code
	// http://{WasmCodeServer}/wasm/{sha256}.wasm, verified by the proxy.
	WasmCodeServer string
	// Tracing, when set, makes proxies trace requests with Envoy's OpenTelemetry tracer
	// (every listener's tracing configuration) and export spans through the
	// TracingClusterName cluster, which CDS then carries.
	Tracing *Tracing
	// Metrics, when set, records how long proxies take to answer responses and their NACKs.
	Metrics *telemetry.XDSMetrics
	// ServingNodes selects the proxies meant to serve traffic: only their
	// ACKs make a Route ready (RouteAcked, RouteStatus, WaitEndpointsAcked)
	// and only their NACKs are reported. Other xDS clients are served the
	// same resources but never waited for. Zero: nodes whose cluster is one
	// of DefaultServingNodeClusters.
	ServingNodes NodeSelector
	// AckTimeout is how long a serving proxy may leave a response
	// unanswered (neither ACK nor NACK) before readiness stops waiting for
	// it; it counts again once it answers. Default DefaultAckTimeout.
	AckTimeout time.Duration
	// ProxyTLS, when set, makes the skiff-extproc and skiff-wasm clusters
	// mTLS (see ProxyTLS) and the wasm modules' URLs https.
	ProxyTLS *ProxyTLS
	// ScopedRoutes selects the scoped route layout (see the package doc): each listener's
	// virtual hosts are split into RouteBuckets RouteConfigurations by a hash of their
	// Route, and the listener picks one per request by the host (SRDS, a scope per host),
	// so a change to one Route re-sends and recompiles one bucket, not every virtual host.
	// False keeps one RouteConfiguration per listener.
	ScopedRoutes bool
	// RouteBuckets is the number of RouteConfigurations per listener with ScopedRoutes;
	// default DefaultRouteBuckets.
	RouteBuckets int
	// RouteFlushInterval is the least time between two assemblies of the RouteConfigurations
	// (default DefaultRouteFlushInterval; negative: none). A change after a quiet spell is
	// pushed at once; changes arriving faster are pushed together, so a burst of Routes
	// (a thousand Services reconciled at once) re-sends each RouteConfiguration a few times
	// a second, not once per Route.
	RouteFlushInterval time.Duration
}

// DefaultRouteFlushInterval is Options.RouteFlushInterval's default, Istio's debounce
// (PILOT_DEBOUNCE_AFTER): a change waits at most this long behind the previous push.
const DefaultRouteFlushInterval = 100 * time.Millisecond

// DefaultServingNodeClusters are the node clusters of the proxies Skiff
// ships: the gateway of `skiff up` and `skiff gateway` (--node-cluster
// default) and the Envoy Deployment of deploy/ (--service-cluster).
var DefaultServingNodeClusters = []string{"skiff-gateway", "skiff-envoy"}

// DefaultAckTimeout is Options.AckTimeout's default: long enough for a proxy
// that fetches and compiles a Wasm module before it ACKs a listener.
const DefaultAckTimeout = 30 * time.Second

// Server is Skiff's ADS server. It serves state-of-the-world and delta ADS
// (and the separate LDS/RDS/CDS/EDS services) from one changeCache per
// resource type (go-control-plane's LinearCache semantics, with work per update
// and per request that grows with the change; see cache.go), muxed by type URL,
// so updates are incremental:
//
//   - a Cluster or ClusterLoadAssignment change updates only that resource:
//     delta clients get just it, SotW EDS clients get just that CLA (SotW CDS
//     is full-state by protocol, so SotW CDS clients get every cluster again);
//   - a Route change re-translates only that Route's virtual hosts, then
//     reassembles the single "skiff-http" RouteConfiguration. As in Envoy,
//     RDS is one resource per listener, so that one resource is resent; the
//     clusters and endpoints of other Services are not.
//
// Unchanged content is not pushed again. Every resource passes ValidateAll
// before it enters the cache. The server also tracks, per stream, which
// responses were ACKed or NACKed (NACKs are logged), so that
// WaitEndpointsAcked can tell when every proxy has an endpoint update.
type Server struct {
	logger *slog.Logger
	cancel context.CancelFunc
	xds    serverv3.Server
	acks   *ackTracker

	listeners, routes, clusters, endpoints, secrets *changeCache
	// scopes serves the ScopedRouteConfigurations (scoped layout only); every SotW
	// response carries every scope (see scoped.go).
	scopes *changeCache

	// The scoped layout: buckets > 0 is the number of RouteConfigurations per listener;
	// bucketKeys holds the Routes of each bucket, dirtyBuckets those to reassemble,
	// routeScopes the scopes each Route's hosts have, scopeHash each scope's content hash.
	buckets      int
	bucketKeys   map[int]map[string]bool
	dirtyBuckets map[int]bool
	routeScopes  map[string]map[string]*routev3.ScopedRouteConfiguration
	scopeHash    map[string]string

	mu sync.Mutex // serialises model changes and the cache updates they cause
	// vhosts holds each Route's virtual hosts by RouteConfiguration name.
	vhosts       map[string]map[string][]*routev3.VirtualHost
	routeConfigs map[string]*routev3.RouteConfiguration
	clusterRes   map[string]*clusterv3.Cluster
	claRes       map[string]*endpointv3.ClusterLoadAssignment
	// routesVersions are the ACK-tracking versions of the current RouteConfigurations;
	// routeVersions holds, per Route, the versions that first carried its virtual hosts.
	routesVersions map[string]uint64
	routeVersions  map[string]map[string]uint64
	// dirty holds the Routes whose virtual hosts changed since the RouteConfiguration
	// was last assembled; kick wakes the goroutine that assembles it (see flushRoutes).
	dirty   map[string]bool
	domains map[string]string   // lower-case domain or vhost name → Route key, for collisions
	claims  map[string][]string // Route key → the names it holds in domains
	kick    chan struct{}
	// flushInterval is Options.RouteFlushInterval with its default.
	flushInterval time.Duration
	// routeHashes are the hashes of the RouteConfigurations last pushed, by name, so an
	// assembly that changed nothing pushes nothing.
	routeHashes map[string]string
	done        sync.WaitGroup
	// extProc reports whether the listener has the ext_proc filter.
	extProc bool
	// listenerAddress, listenerPort and wasm are what the listener is
	// translated from; wasm changes with SetWasmFilterConfiguration.
	listenerAddress string
	listenerPort    uint32
	wasm            []WasmFilter
	// The optional listeners (see Options) and what they are built from.
	ls                         Listeners
	httpsAddress, localAddress string
	httpsPort, localPort       uint32
	// certs are the certificates the TLS listener serves, by name; listenerRes the
	// listeners last pushed, by name.
	certs       map[string]TLSCertificate
	listenerRes map[string]*listenerv3.Listener
	// tracing is the listeners' tracing configuration (nil: none).
	tracing *Tracing
}

// NewServer returns a Server holding the "skiff-http" listener (on
// opts.ListenerAddress:opts.ListenerPort) and an empty "skiff-http"
// RouteConfiguration. Call Register to serve it and Close to end its streams.
func NewServer(logger *slog.Logger, opts Options) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "xds")
	extProc := opts.ExtProcAddress != ""
	if opts.WasmCodeServer != "" {
		scheme := "http"
		if opts.ProxyTLS != nil {
			scheme = "https"
		}
		remote, err := remoteWasmFilters(scheme, opts.WasmCodeServer, opts.WasmFilters)
		if err != nil {
			return nil, fmt.Errorf("new xds server: %w", err)
		}
		opts.WasmFilters = remote
	}
	ls := Listeners{
		HTTPS: opts.HTTPSListenerPort != 0, HTTPSRedirectPort: cmp.Or(opts.HTTPSRedirectPort, opts.HTTPSListenerPort),
		Local: opts.LocalListenerPort != 0,
	}

	gcpLogger := slogAdapter{logger}
	// The prefix makes versions unique per server instance, so a proxy that
	// reconnects after a control plane restart is always sent fresh state.
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	newCache := func(typeURL string) *changeCache { return newChangeCache(typeURL, prefix, false) }
	serving := opts.ServingNodes
	if serving.IsZero() {
		serving = NodeSelector{Clusters: slices.Clone(DefaultServingNodeClusters)}
	}
	s := &Server{
		logger:        logger,
		acks:          newAckTracker(logger, serving, cmp.Or(opts.AckTimeout, DefaultAckTimeout)),
		listeners:     newCache(resourcev3.ListenerType),
		routes:        newCache(resourcev3.RouteType),
		clusters:      newCache(resourcev3.ClusterType),
		endpoints:     newCache(resourcev3.EndpointType),
		secrets:       newCache(resourcev3.SecretType),
		scopes:        newChangeCache(resourcev3.ScopedRouteType, prefix, true),
		bucketKeys:    make(map[int]map[string]bool),
		dirtyBuckets:  make(map[int]bool),
		routeScopes:   make(map[string]map[string]*routev3.ScopedRouteConfiguration),
		scopeHash:     make(map[string]string),
		vhosts:        make(map[string]map[string][]*routev3.VirtualHost),
		routeConfigs:  make(map[string]*routev3.RouteConfiguration),
		routeHashes:   make(map[string]string),
		clusterRes:    make(map[string]*clusterv3.Cluster),
		claRes:        make(map[string]*endpointv3.ClusterLoadAssignment),
		routeVersions: make(map[string]map[string]uint64),

		routesVersions: make(map[string]uint64),
		dirty:          make(map[string]bool),
		domains:        make(map[string]string),
		claims:         make(map[string][]string),
		kick:           make(chan struct{}, 1),
		flushInterval:  cmp.Or(opts.RouteFlushInterval, DefaultRouteFlushInterval),
		extProc:        extProc,

		listenerAddress: cmp.Or(opts.ListenerAddress, DefaultListenerAddress),
		listenerPort:    cmp.Or(opts.ListenerPort, DefaultListenerPort),
		wasm:            slices.Clone(opts.WasmFilters),

		ls:           ls,
		httpsAddress: cmp.Or(opts.HTTPSListenerAddress, DefaultListenerAddress),
		httpsPort:    opts.HTTPSListenerPort,
		localAddress: cmp.Or(opts.LocalListenerAddress, DefaultListenerAddress),
		localPort:    opts.LocalListenerPort,
		certs:        make(map[string]TLSCertificate),
		listenerRes:  make(map[string]*listenerv3.Listener),
		tracing:      opts.Tracing,
	}
	if opts.ScopedRoutes {
		s.buckets = cmp.Or(opts.RouteBuckets, DefaultRouteBuckets)
		if s.buckets < 0 {
			return nil, fmt.Errorf("new xds server: routeBuckets %d must be positive", opts.RouteBuckets)
		}
	}
	if err := s.updateListenersLocked(s.wasm, s.certs); err != nil {
		return nil, fmt.Errorf("new xds server: %w", err)
	}
	rc, err := TranslateRouteConfiguration(nil)
	if err != nil {
		return nil, fmt.Errorf("new xds server: %w", err)
	}
	for _, name := range ls.RouteConfigNames() {
		if s.buckets > 0 {
			break // the scoped layout has no RouteConfiguration until a Route has hosts
		}
		rc := proto.Clone(rc).(*routev3.RouteConfiguration)
		rc.Name = name
		if err := s.routes.UpdateResource(name, rc); err != nil {
			return nil, fmt.Errorf("new xds server: set route configuration %s: %w", name, err)
		}
		s.routeConfigs[name] = rc
	}
	if extProc {
		cl, err := TranslateExtProcCluster(opts.ExtProcAddress)
		if err != nil {
			return nil, fmt.Errorf("new xds server: %w", err)
		}
		if opts.ProxyTLS != nil {
			if err := opts.ProxyTLS.secure(cl, opts.ProxyTLS.ExtProcServerName, "h2"); err != nil {
				return nil, fmt.Errorf("new xds server: %w", err)
			}
		}
		if err := s.clusters.UpdateResource(ExtProcClusterName, cl); err != nil {
			return nil, fmt.Errorf("new xds server: set ext_proc cluster: %w", err)
		}
		s.clusterRes[ExtProcClusterName] = cl
	}
	if opts.Tracing != nil {
		cl, err := TranslateTracingCluster(*opts.Tracing)
		if err != nil {
			return nil, fmt.Errorf("new xds server: %w", err)
		}
		if err := s.clusters.UpdateResource(TracingClusterName, cl); err != nil {
			return nil, fmt.Errorf("new xds server: set tracing cluster: %w", err)
		}
		s.clusterRes[TracingClusterName] = cl
	}
	if opts.WasmCodeServer != "" {
		cl, err := TranslateWasmCodeCluster(opts.WasmCodeServer)
		if err != nil {
			return nil, fmt.Errorf("new xds server: %w", err)
		}
		if opts.ProxyTLS != nil {
			if err := opts.ProxyTLS.secure(cl, opts.ProxyTLS.WasmServerName); err != nil {
				return nil, fmt.Errorf("new xds server: %w", err)
			}
		}
		if err := s.clusters.UpdateResource(WasmCodeClusterName, cl); err != nil {
			return nil, fmt.Errorf("new xds server: set wasm code cluster: %w", err)
		}
		s.clusterRes[WasmCodeClusterName] = cl
	}
	mux := &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return r.GetTypeUrl() },
		Caches: map[string]cache.Cache{
			resourcev3.ListenerType:    s.listeners,
			resourcev3.RouteType:       s.routes,
			resourcev3.ClusterType:     s.clusters,
			resourcev3.EndpointType:    s.endpoints,
			resourcev3.SecretType:      s.secrets,
			resourcev3.ScopedRouteType: s.scopes,
		},
	}
	s.acks.describe = s.describe
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Go(func() { s.assembleRoutes(ctx) })
	var callbacks serverv3.Callbacks = s.acks
	if opts.Metrics != nil {
		callbacks = bothCallbacks{s.acks, newPushMetrics(opts.Metrics)}
	}
	s.xds = serverv3.NewServer(ctx, mux, callbacks, sotwv3.WithLogger(gcpLogger))
	return s, nil
}

// describe names a resource of a response of the cache of typeURL and gives its content
// hash, without decoding it (see changeCache.describe).
func (s *Server) describe(typeURL string, a *anypb.Any) (name, hash string, ok bool) {
	var c *changeCache
	switch typeURL {
	case resourcev3.RouteType:
		c = s.routes
	case resourcev3.ScopedRouteType:
		c = s.scopes
	case resourcev3.SecretType:
		c = s.secrets
	case resourcev3.EndpointType:
		c = s.endpoints
	case resourcev3.ClusterType:
		c = s.clusters
	case resourcev3.ListenerType:
		c = s.listeners
	default:
		return "", "", false
	}
	return c.describe(a)
}

// Register registers ADS (SotW and delta) and the per-type LDS, RDS, CDS,
// EDS and SDS services on g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	secretservice.RegisterSecretDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
}

// Close ends every open xDS stream handled by this Server. Stop the gRPC
// server as well to refuse new ones.
func (s *Server) Close() {
	s.cancel()
	s.done.Wait()
}

// Nodes returns every connected xDS stream with the versions it has ACKed,
// for status and debugging.
func (s *Server) Nodes() []NodeStatus {
	return s.acks.nodes()
}

// WaitEndpointsAcked blocks until every serving proxy stream that carries
// EDS (ADS or EDS streams of a node Options.ServingNodes selects that asked
// for endpoints and answer within Options.AckTimeout; at least one) has
// ACKed a ClusterLoadAssignment of cluster at a version >= version (as
// returned by SetEndpoints), or ctx ends. Streams count separately, so two
// proxies sharing a node id must both ACK.
func (s *Server) WaitEndpointsAcked(ctx context.Context, cluster string, version string) error {
	return s.acks.waitEndpointsAcked(ctx, cluster, version)
}

// SetWasmFilterConfiguration replaces the plugin configuration of the wasm
// filter named name (one of Options.WasmFilters) and pushes the new listener.
// It is how the control plane hands a filter data that changes at run time,
// e.g. the cloudevents filter its brokers and triggers.
//
// The configuration lives in the listener's HTTP filter chain, so a change is
// an LDS update: only the "skiff-http" listener is resent (routes, clusters
// and endpoints are not), and Envoy drains the old listener's connections
// while new ones get the new filter chain (its Wasm VM is reused, as the
// vm_config is unchanged; only the plugin is configured again). That makes
// a change cost more than an RDS update would, which is why it suits data
// that changes at the rate of user edits (Triggers), not per request. An
// unchanged configuration pushes nothing.
func (s *Server) SetWasmFilterConfiguration(name, configuration string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.wasm, func(w WasmFilter) bool { return w.Name == name })
	if i < 0 {
		return fmt.Errorf("set wasm filter configuration: the listener has no wasm filter %q", name)
	}
	if s.wasm[i].Configuration == configuration {
		return nil
	}
	next := slices.Clone(s.wasm)
	next[i].Configuration = configuration
	if err := s.updateListenersLocked(next, s.certs); err != nil {
		return fmt.Errorf("set wasm filter configuration of %q: %w", name, err)
	}
	s.wasm = next
	return nil
}

// updateListenersLocked translates every listener from wasm and certs and pushes the ones
// that changed; the TLS listener exists only with a certificate. s.mu must be held (or s not
// yet shared).
func (s *Server) updateListenersLocked(wasm []WasmFilter, certs map[string]TLSCertificate) error {
	next := map[string]*listenerv3.Listener{}
	scoped := s.buckets > 0
	l, err := translateHTTPListener(ListenerName, RouteConfigName, s.listenerAddress, s.listenerPort, s.extProc, nil, wasm, scoped)
	if err != nil {
		return err
	}
	next[ListenerName] = l
	if s.ls.Local {
		if next[LocalListenerName], err = translateHTTPListener(LocalListenerName, LocalRouteConfigName, s.localAddress, s.localPort, s.extProc, nil, wasm, scoped); err != nil {
			return err
		}
	}
	if s.ls.HTTPS && len(certs) > 0 {
		chains := make([]TLSCertificate, 0, len(certs))
		for _, c := range certs {
			chains = append(chains, TLSCertificate{Name: c.Name, Hosts: c.Hosts})
		}
		if next[HTTPSListenerName], err = translateHTTPListener(HTTPSListenerName, HTTPSRouteConfigName, s.httpsAddress, s.httpsPort, s.extProc, chains, wasm, scoped); err != nil {
			return err
		}
	}
	for name, l := range next {
		if next[name], err = withTracing(l, s.tracing); err != nil {
			return err
		}
	}
	for name, l := range next {
		if proto.Equal(l, s.listenerRes[name]) {
			continue
		}
		if err := s.listeners.UpdateResource(name, l); err != nil {
			return fmt.Errorf("update listener %s: %w", name, err)
		}
		s.listenerRes[name] = l
	}
	for name := range s.listenerRes {
		if next[name] == nil {
			if err := s.listeners.DeleteResource(name); err != nil {
				return fmt.Errorf("delete listener %s: %w", name, err)
			}
			delete(s.listenerRes, name)
		}
	}
	return nil
}
