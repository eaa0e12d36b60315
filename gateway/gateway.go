// Package gateway is Skiff's Envoy-compatible local data plane. It knows the
// control plane only over xDS (gRPC ADS), exactly as Envoy would: listeners,
// routes, clusters and endpoints arrive as Envoy resources, are validated
// (and NACKed when invalid or unsupported), and are served with Envoy's
// routing, load balancing, retries, local replies and stat names.
package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/tetratelabs/wazero"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/admin"
	"github.com/skiff-dev/skiff/gateway/codec"
	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/filter/extproc"
	"github.com/skiff-dev/skiff/gateway/filter/wasm"
	"github.com/skiff-dev/skiff/gateway/proxy"
	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
	"github.com/skiff-dev/skiff/gateway/xdsclient"
	"github.com/skiff-dev/skiff/telemetry"
)

// UserAgentName is the user_agent_name the gateway reports in its Node.
const UserAgentName = "skiff-gateway"

// hcmTypeURL is the typed_config type of the HTTP connection manager.
const hcmTypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// Config configures a gateway.
type Config struct {
	// ADSAddress is the control plane's ADS gRPC address (host:port).
	ADSAddress string
	// NodeID and NodeCluster identify the gateway (Envoy's --service-node / --service-cluster).
	NodeID, NodeCluster string
	// AdminAddress is where the admin interface listens, e.g. 127.0.0.1:9901; "" disables it.
	AdminAddress string
	// Delta selects incremental xDS instead of state of the world.
	Delta bool
	// Logger receives the gateway's logs; nil means slog.Default().
	Logger *slog.Logger
	// ListenerAddressOverride, if set, is the address every LDS listener
	// binds instead of its socket_address (e.g. "127.0.0.1:0" in tests).
	ListenerAddressOverride string
	// HTTPFilters are extra HTTP filter factories available to listeners
	// besides the router and the built-in ext_proc
	// (envoy.filters.http.ext_proc) and Wasm (envoy.filters.http.wasm)
	// filters; a factory for an already known type URL replaces the
	// built-in one.
	HTTPFilters []filter.Factory
	// DrainTimeout bounds the graceful drain of listeners on shutdown and
	// removal (default 5s).
	DrainTimeout time.Duration
	// WasmCacheDir, if set, keeps the machine code of compiled Wasm modules
	// on disk, so a restarted gateway loads its filters without compiling
	// them again (seconds for a Go-built module).
	WasmCacheDir string
	// Telemetry, when set, records Knative's request metrics
	// (http.server.request.duration, ...) for every request to a revision's cluster (one
	// whose metadata filter_metadata["skiff"] names a revision and its configuration).
	// Tracing needs nothing here: it comes over LDS, as the HTTP connection manager's
	// tracing configuration, as for Envoy.
	Telemetry *telemetry.Telemetry
	// RequestLogDir, when set, appends a line in Envoy's default access log format for
	// every request to a revision to <RequestLogDir>/<namespace>/<revision>.log, after
	// RequestLogPrefix (skiff up's revision logs, beside the instances' output).
	RequestLogDir string
	// TLS, if set, is the gateway's certificate material: ADS over mTLS, and
	// the static secrets clusters' TLS transport sockets refer to.
	TLS *TLSConfig
}

// Run runs a gateway for cfg until ctx is done, then drains and returns.
func Run(ctx context.Context, cfg Config) error {
	g, err := New(cfg)
	if err != nil {
		return err
	}
	return g.Run(ctx)
}

// Gateway is a running data plane. Create it with New and start it with Run.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	stats    *stats.Store
	clusters *upstream.Manager
	filters  *filter.Registry
	extProc  *extproc.Factory
	wasm     *wasm.Factory
	// wasmCache is the on-disk compilation cache of WasmCacheDir, if any.
	wasmCache wazero.CompilationCache
	xds       *xdsclient.Client
	// reqMetrics, reqLog and tracers are what proxies record of requests (nil when off).
	reqMetrics *telemetry.RequestMetrics
	reqLog     *requestLog
	tracers    *tracers

	// wg tracks every goroutine Run starts (servers, drains, the ADS client).
	wg sync.WaitGroup

	mu        sync.RWMutex
	listeners map[string]*listener
	routes    map[string]*route.Table
	// routeMsgs are the RouteConfigurations routes were compiled from: one the ADS client
	// hands back unchanged is not compiled again.
	routeMsgs map[string]proto.Message
	// scopeIndex maps a scope key (the host, repeated per fragment, joined by NUL) to its
	// RouteConfiguration; haveScopes is set once SRDS has been applied. listenerRDS are the
	// RouteConfigurations listeners name directly.
	scopeIndex  map[string]string
	haveScopes  bool
	listenerRDS []string
	// scoped are the scoped tables of listeners by their RouteConfigName (see scopedName).
	scoped    sync.Map
	raw       map[string]map[string]xdsclient.Resource
	adminAddr net.Addr
	// secrets are the SDS certificates by secret name.
	secrets map[string]*tls.Certificate
}

// listener is one bound LDS listener.
type listener struct {
	name     string
	bindAddr string
	ln       net.Listener
	srv      *http.Server
	mu       sync.RWMutex
	cm       *proxy.ConnectionManager
	tls      *tlsSpec // nil for a plain listener
}

func (l *listener) manager() *proxy.ConnectionManager {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cm
}

func (l *listener) tlsSpec() *tlsSpec {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.tls
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		// A TLS connection reaches Go's server inside a codec.Conn (see applyListeners),
		// so Go does not fill in r.TLS itself. The handshake is done: the request was read.
		if c := codec.FromContext(r.Context()); c != nil {
			if tc, ok := c.Conn.(*tls.Conn); ok {
				cs := tc.ConnectionState()
				r.TLS = &cs
			}
		}
	}
	l.manager().ServeHTTP(w, r)
}

// New validates cfg and returns a Gateway. Nothing is bound until Run.
func New(cfg Config) (*Gateway, error) {
	if cfg.ADSAddress == "" {
		return nil, errors.New("gateway: ADSAddress is required")
	}
	if cfg.NodeID == "" {
		return nil, errors.New("gateway: NodeID is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	st := stats.NewStore()
	var tm *tlsMaterial
	var secrets upstream.StaticSecrets
	if cfg.TLS != nil {
		var err error
		if tm, err = cfg.TLS.load(); err != nil {
			return nil, err
		}
		secrets = cfg.TLS.secrets(tm)
	}
	ep := extproc.NewFactory(cfg.Logger)
	clusters := upstream.NewManager(st, secrets)
	// Remote Wasm code is fetched with the TLS of its http_uri cluster, as Envoy does.
	wopts := wasm.Options{Logger: cfg.Logger, ClusterTLS: func(name string) *tls.Config {
		if c := clusters.Get(name); c != nil {
			return c.TLSConfig()
		}
		return nil
	}}
	if cfg.WasmCacheDir != "" {
		cc, err := wazero.NewCompilationCacheWithDir(cfg.WasmCacheDir)
		if err != nil {
			return nil, fmt.Errorf("gateway: wasm cache %s: %w", cfg.WasmCacheDir, err)
		}
		wopts.CompilationCache = cc
	}
	wf := wasm.NewFactory(wopts)
	var reqMetrics *telemetry.RequestMetrics
	if cfg.Telemetry != nil {
		var err error
		if reqMetrics, err = telemetry.NewRequestMetrics(cfg.Telemetry); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	g := &Gateway{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "gateway"),
		stats:     st,
		clusters:  clusters,
		filters:   filter.NewRegistry(append([]filter.Factory{ep, wf}, cfg.HTTPFilters...)...),
		extProc:   ep,
		wasm:      wf,
		wasmCache: wopts.CompilationCache,
		listeners: map[string]*listener{},
		routes:    map[string]*route.Table{},
		routeMsgs: map[string]proto.Message{},
		raw:       map[string]map[string]xdsclient.Resource{},
		secrets:   map[string]*tls.Certificate{},

		reqMetrics: reqMetrics,
	}
	g.tracers = newTracers(g.clusters)
	if cfg.RequestLogDir != "" {
		g.reqLog = newRequestLog(cfg.RequestLogDir, g.log)
	}
	g.xds = xdsclient.New(xdsclient.Config{
		Address: cfg.ADSAddress,
		Node: &corev3.Node{
			Id:                   cfg.NodeID,
			Cluster:              cfg.NodeCluster,
			UserAgentName:        UserAgentName,
			UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "dev"},
		},
		Delta:       cfg.Delta,
		DialOptions: xdsDialOptions(cfg, tm),
		Handler:     g,
		Logger:      cfg.Logger,
		Stats:       st,
	})
	return g, nil
}

// Stats returns the gateway's stat store.
func (g *Gateway) Stats() *stats.Store { return g.stats }

// Run serves until ctx is done: it starts the admin server and the ADS
// client, and on cancellation drains the listeners and returns.
func (g *Gateway) Run(ctx context.Context) error {
	serveCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var adminSrv *http.Server
	if g.cfg.AdminAddress != "" {
		ln, err := net.Listen("tcp", g.cfg.AdminAddress)
		if err != nil {
			return fmt.Errorf("gateway: binding admin address %s: %w", g.cfg.AdminAddress, err)
		}
		g.mu.Lock()
		g.adminAddr = ln.Addr()
		g.mu.Unlock()
		adminSrv = &http.Server{
			Handler: admin.Handler(admin.Options{
				Stats: g.stats, Ready: g.Ready, ConfigDump: g.ConfigDump, Clusters: g.clusters,
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := adminSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("admin server stopped", "error", err)
			}
		}()
		g.log.Info("admin listening", "address", ln.Addr().String())
	}

	xdsErr := make(chan error, 1)
	xdsDone := make(chan struct{})
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(xdsDone)
		xdsErr <- g.xds.Run(serveCtx)
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-xdsErr:
		if err != nil {
			runErr = fmt.Errorf("gateway: ADS client: %w", err)
		}
	}
	cancel()
	// The ADS client applies updates on its own goroutine: once it has returned no
	// listener can be started after the drain below has taken the listeners.
	<-xdsDone

	// Drain: stop accepting, let in-flight requests finish.
	drainCtx, drainCancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.DrainTimeout)
	defer drainCancel()
	g.mu.Lock()
	ls := make([]*listener, 0, len(g.listeners))
	for _, l := range g.listeners {
		ls = append(ls, l)
	}
	g.listeners = map[string]*listener{}
	g.mu.Unlock()
	for _, l := range ls {
		if err := l.srv.Shutdown(drainCtx); err != nil {
			_ = l.srv.Close()
		}
	}
	if adminSrv != nil {
		if err := adminSrv.Shutdown(drainCtx); err != nil {
			_ = adminSrv.Close()
		}
	}
	g.wg.Wait()
	g.tracers.close()
	if g.reqLog != nil {
		g.reqLog.close()
	}
	g.extProc.Close()
	g.wasm.Close()
	if g.wasmCache != nil {
		_ = g.wasmCache.Close(context.Background())
	}
	g.clusters.Close()
	return runErr
}

// ListenerAddr returns the address the named LDS listener is bound to.
func (g *Gateway) ListenerAddr(name string) (net.Addr, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	l, ok := g.listeners[name]
	if !ok {
		return nil, false
	}
	return l.ln.Addr(), true
}

// AdminAddr returns the admin server's bound address, or nil before Run
// has bound it (or when the admin interface is disabled).
func (g *Gateway) AdminAddr() net.Addr {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.adminAddr
}

// Ready reports whether the gateway is LIVE in Envoy's sense: listeners and
// clusters have been received, every listener has its route configuration
// and every EDS cluster its endpoints.
func (g *Gateway) Ready() bool {
	g.mu.RLock()
	_, lds := g.raw[xdsclient.ListenerType]
	_, cds := g.raw[xdsclient.ClusterType]
	ls := make([]*listener, 0, len(g.listeners))
	for _, l := range g.listeners {
		ls = append(ls, l)
	}
	g.mu.RUnlock()
	if !lds || !cds {
		return false
	}
	for _, l := range ls {
		if l.manager().RouteTable() == nil {
			return false
		}
		// Like Envoy's listener warming: a TLS listener waits for its certificates.
		for _, name := range l.tlsSpec().secrets() {
			if g.secret(name) == nil {
				return false
			}
		}
	}
	return g.clusters.Warm()
}

// RouteTable implements proxy.RouteSource.
func (g *Gateway) RouteTable(name string) *route.Table {
	if strings.HasPrefix(name, scopedPrefix) {
		g.mu.RLock()
		ok := g.haveScopes
		g.mu.RUnlock()
		if t, found := g.scoped.Load(name); ok && found {
			return t.(*route.Table)
		}
		return nil
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.routes[name]
}

// scopedPrefix starts the RouteConfigName the gateway gives a connection manager with
// scoped routes: scopedPrefix + scoped_routes.name + "/" + the number of key fragments.
const scopedPrefix = "srds:"

// scopedTable returns the scoped table of a connection manager whose scope key is the host
// repeated n times.
func (g *Gateway) scopedTable(name string, n int) *route.Table {
	t, _ := g.scoped.LoadOrStore(name, route.NewScoped(name, func(host string) *route.Table {
		key := host
		if n > 1 {
			key = strings.Repeat(host+"\x00", n-1) + host
		}
		g.mu.RLock()
		defer g.mu.RUnlock()
		rc, ok := g.scopeIndex[key]
		if !ok {
			return nil
		}
		return g.routes[rc]
	}))
	return t.(*route.Table)
}

// scopeKey is the key of a ScopedRouteConfiguration as scopedTable looks it up.
func scopeKey(sc *routev3.ScopedRouteConfiguration) string {
	parts := make([]string, 0, len(sc.GetKey().GetFragments()))
	for _, f := range sc.GetKey().GetFragments() {
		parts = append(parts, f.GetStringKey())
	}
	return strings.Join(parts, "\x00")
}

// applyScopes validates the scopes (SRDS) as Envoy does (a route configuration name each,
// no two with one key) and makes them the ones requests are routed by.
func (g *Gateway) applyScopes(res map[string]xdsclient.Resource) error {
	index := make(map[string]string, len(res))
	byKey := make(map[string]string, len(res))
	for _, name := range slices.Sorted(maps.Keys(res)) {
		sc := res[name].Message.(*routev3.ScopedRouteConfiguration)
		if err := sc.ValidateAll(); err != nil {
			return fmt.Errorf("scoped route %q: %w", name, err)
		}
		if sc.GetRouteConfigurationName() == "" {
			return fmt.Errorf("scoped route %q: route_configuration_name is empty", name)
		}
		if sc.GetOnDemand() {
			return fmt.Errorf("scoped route %q: on_demand scopes are not supported", name)
		}
		k := scopeKey(sc)
		if first, dup := byKey[k]; dup {
			return fmt.Errorf("scope key conflict found, first scope is '%s', second scope is '%s'", first, name)
		}
		byKey[k] = name
		index[k] = sc.GetRouteConfigurationName()
	}
	g.mu.Lock()
	g.scopeIndex = index
	g.haveScopes = true
	g.mu.Unlock()
	g.subscribeRoutes()
	return nil
}

// subscribeRoutes asks for the RouteConfigurations listeners name and scopes point to.
func (g *Gateway) subscribeRoutes() {
	g.mu.RLock()
	names := slices.Clone(g.listenerRDS)
	for _, rc := range g.scopeIndex {
		names = append(names, rc)
	}
	g.mu.RUnlock()
	g.xds.Subscribe(xdsclient.RouteType, names)
}

// Apply implements xdsclient.Handler: it validates and applies one type's
// complete resource set, or rejects it leaving the previous one in force.
func (g *Gateway) Apply(ctx context.Context, typeURL string, res map[string]xdsclient.Resource) error {
	var err error
	switch typeURL {
	case xdsclient.ListenerType:
		err = g.applyListeners(res)
	case xdsclient.RouteType:
		err = g.applyRoutes(res)
	case xdsclient.ClusterType:
		err = g.applyClusters(res)
	case xdsclient.EndpointType:
		err = g.applyEndpoints(res)
	case xdsclient.SecretType:
		err = g.applySecrets(res)
	case xdsclient.ScopedRouteType:
		err = g.applyScopes(res)
	default:
		err = fmt.Errorf("unsupported resource type %s", typeURL)
	}
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.raw[typeURL] = res
	g.mu.Unlock()
	return nil
}

func (g *Gateway) applyRoutes(res map[string]xdsclient.Resource) error {
	g.mu.RLock()
	prev, prevMsgs := g.routes, g.routeMsgs
	g.mu.RUnlock()
	tables := make(map[string]*route.Table, len(res))
	msgs := make(map[string]proto.Message, len(res))
	var errs []error
	var changed []string
	for name, r := range res {
		msgs[name] = r.Message
		// Only what changed is compiled: a RouteConfiguration the client hands back as it was
		// keeps its table, so one changed bucket costs its own virtual hosts only.
		if t := prev[name]; t != nil && prevMsgs[name] == r.Message {
			tables[name] = t
			continue
		}
		changed = append(changed, name)
		rc := r.Message.(*routev3.RouteConfiguration)
		t, err := route.Compile(rc)
		if err == nil {
			err = g.validatePerFilterConfigs(rc)
		}
		if err != nil {
			g.rdsStat(name, "update_rejected")
			errs = append(errs, err)
			continue
		}
		tables[name] = t
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	g.mu.Lock()
	g.routes, g.routeMsgs = tables, msgs
	g.mu.Unlock()
	for _, name := range changed {
		g.rdsStat(name, "update_success")
	}
	return nil
}

// validatePerFilterConfigs checks every typed_per_filter_config of rc
// (virtual hosts, routes, weighted clusters) with the filter factory that
// owns its type, as Envoy validates per-route filter configuration when it
// receives the RouteConfiguration.
func (g *Gateway) validatePerFilterConfigs(rc *routev3.RouteConfiguration) error {
	check := func(where string, m map[string]*anypb.Any) error {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if err := g.filters.ValidatePerRoute(m[k]); err != nil {
				return fmt.Errorf("route configuration %q: %s.typed_per_filter_config[%q]: %w", rc.GetName(), where, k, err)
			}
		}
		return nil
	}
	for i, vh := range rc.GetVirtualHosts() {
		vw := fmt.Sprintf("virtual_hosts[%d]", i)
		if err := check(vw, vh.GetTypedPerFilterConfig()); err != nil {
			return err
		}
		for j, rt := range vh.GetRoutes() {
			rw := fmt.Sprintf("%s.routes[%d]", vw, j)
			if err := check(rw, rt.GetTypedPerFilterConfig()); err != nil {
				return err
			}
			for k, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
				if err := check(fmt.Sprintf("%s.route.weighted_clusters.clusters[%d]", rw, k), wc.GetTypedPerFilterConfig()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// rdsStat counts http.<stat_prefix>.rds.<route_config>.<name> for every
// listener using the route configuration.
func (g *Gateway) rdsStat(routeName, name string) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, l := range g.listeners {
		if cm := l.manager(); cm.RouteConfigName() == routeName {
			g.stats.Counter("http." + cm.StatPrefix() + ".rds." + routeName + "." + name).Inc()
		}
	}
}

func (g *Gateway) applyClusters(res map[string]xdsclient.Resource) error {
	cs := make(map[string]*clusterv3.Cluster, len(res))
	for name, r := range res {
		cs[name] = r.Message.(*clusterv3.Cluster)
	}
	if err := g.clusters.ApplyClusters(cs); err != nil {
		return err
	}
	g.xds.Subscribe(xdsclient.EndpointType, g.clusters.EDSServiceNames())
	return nil
}

func (g *Gateway) applyEndpoints(res map[string]xdsclient.Resource) error {
	clas := make(map[string]*endpointv3.ClusterLoadAssignment, len(res))
	for name, r := range res {
		clas[name] = r.Message.(*endpointv3.ClusterLoadAssignment)
	}
	err := g.clusters.ApplyEndpoints(clas)
	result := "update_success"
	if err != nil {
		result = "update_rejected"
	}
	for _, c := range g.clusters.Clusters() {
		if _, ok := clas[c.ServiceName]; ok && c.EDS {
			c.Counter(result).Inc()
		}
	}
	return err
}

// listenerSpec is a validated Listener.
type listenerSpec struct {
	name     string
	bindAddr string
	opts     proxy.Options
	tls      *tlsSpec // nil for a plain listener
	// tracingKey identifies the listener's tracing configuration ("" without one).
	tracingKey string
}

func (g *Gateway) applyListeners(res map[string]xdsclient.Resource) error {
	specs := make([]*listenerSpec, 0, len(res))
	for _, r := range res {
		s, err := g.parseListener(r.Message.(*listenerv3.Listener))
		if err != nil {
			return fmt.Errorf("listener %q: %w", r.Name, err)
		}
		specs = append(specs, s)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].name < specs[j].name })

	g.mu.RLock()
	old := g.listeners
	g.mu.RUnlock()

	// Bind new listeners first so a bind failure rejects the whole update.
	bound := map[string]net.Listener{}
	for _, s := range specs {
		if l, ok := old[s.name]; ok && l.bindAddr == s.bindAddr && (l.tlsSpec() == nil) == (s.tls == nil) {
			continue
		}
		ln, err := net.Listen("tcp", s.bindAddr)
		if err != nil {
			for _, b := range bound {
				b.Close()
			}
			return fmt.Errorf("listener %q: binding %s: %w", s.name, s.bindAddr, err)
		}
		bound[s.name] = ln
	}

	next := make(map[string]*listener, len(specs))
	var started []*listener
	for _, s := range specs {
		if ln, ok := bound[s.name]; ok {
			s.opts.ListenerPort = ln.Addr().(*net.TCPAddr).Port
			l := &listener{name: s.name, bindAddr: s.bindAddr, ln: ln, cm: proxy.New(s.opts), tls: s.tls}
			l.srv = g.newServer(l)
			next[s.name] = l
			started = append(started, l)
			continue
		}
		l := old[s.name]
		s.opts.ListenerPort = l.ln.Addr().(*net.TCPAddr).Port
		cm := proxy.New(s.opts)
		l.mu.Lock()
		l.cm = cm
		l.tls = s.tls
		l.mu.Unlock()
		next[s.name] = l
	}
	g.mu.Lock()
	g.listeners = next
	g.mu.Unlock()

	for _, l := range started {
		g.log.Info("listener serving", "listener", l.name, "address", l.ln.Addr().String())
		ln := l.ln
		if l.tls != nil {
			ln = tls.NewListener(ln, g.tlsConfig(l))
		}
		// Envoy's HTTP/1 codec limits apply to every connection (see package codec); on a
		// TLS listener to the decrypted stream, so Go's server does not see a *tls.Conn
		// (see newServer and listener.ServeHTTP).
		ln = codec.NewListener(ln, func() codec.Settings { return l.manager().CodecSettings() })
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("listener stopped", "listener", l.name, "error", err)
			}
		}()
	}
	for name, l := range old {
		if next[name] == l {
			continue
		}
		g.log.Info("listener draining", "listener", name)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.DrainTimeout)
			defer cancel()
			if err := l.srv.Shutdown(ctx); err != nil {
				_ = l.srv.Close()
			}
		}()
	}
	g.stats.Gauge("listener_manager.total_listeners_active").Set(int64(len(next)))
	used := map[string]bool{}
	for _, s := range specs {
		if s.tracingKey != "" {
			used[s.tracingKey] = true
		}
	}
	g.tracers.retain(used, g.cfg.DrainTimeout, &g.wg)

	var rds, sds []string
	scoped := false
	for _, s := range specs {
		switch {
		case strings.HasPrefix(s.opts.RouteConfigName, scopedPrefix):
			scoped = true
		case s.opts.InlineRoutes == nil && s.opts.RouteConfigName != "":
			rds = append(rds, s.opts.RouteConfigName)
		}
		sds = append(sds, s.tls.secrets()...)
	}
	g.mu.Lock()
	g.listenerRDS = rds
	g.mu.Unlock()
	if scoped {
		g.xds.Subscribe(xdsclient.ScopedRouteType, nil)
	}
	g.subscribeRoutes()
	g.xds.Subscribe(xdsclient.SecretType, sds)
	return nil
}

// newServer returns the HTTP server of a listener: HTTP/1.1 and h2c (prior
// knowledge), as Envoy's codec_type AUTO serves over cleartext, or over TLS
// HTTP/1.1 and HTTP/2 as ALPN negotiates. Request heads are bounded by the
// connection manager's limits (enforced exactly by package codec); Go's own
// bound, which keeps memory in check, is twice as large so that the
// connection manager answers first.
func (g *Gateway) newServer(l *listener) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	// Go's server sees every connection through a codec.Conn, not a *tls.Conn: it
	// serves an HTTP/2 connection (h2c, or h2 over TLS as ALPN negotiated) when the
	// client's first bytes are HTTP/2's connection preface.
	p.SetUnencryptedHTTP2(true)
	cxTotal := func() *stats.Counter {
		return g.stats.Counter("http." + l.manager().StatPrefix() + ".downstream_cx_total")
	}
	cxActive := func() *stats.Gauge {
		return g.stats.Gauge("http." + l.manager().StatPrefix() + ".downstream_cx_active")
	}
	return &http.Server{
		Handler:           l,
		Protocols:         &p,
		ReadHeaderTimeout: 60 * time.Second,
		IdleTimeout:       time.Hour,
		MaxHeaderBytes:    2 * cmp.Or(l.manager().CodecSettings().MaxRequestHeadersBytes, codec.DefaultMaxRequestHeadersKB*1024),
		ConnContext:       codec.WithConn,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				cxTotal().Inc()
				cxActive().Inc()
			case http.StateClosed, http.StateHijacked:
				cxActive().Dec()
			}
		},
	}
}

// scopeFragments checks the scoped routes of a connection manager are what the gateway
// implements (scopes over ADS, RouteConfigurations over ADS, a key of whole-host fragments)
// and returns the number of fragments.
func scopeFragments(sr *hcmv3.ScopedRoutes) (int, error) {
	if sr.GetScopedRds() == nil || sr.GetScopedRds().GetScopedRdsConfigSource().GetAds() == nil || sr.GetScopedRds().GetSrdsResourcesLocator() != "" {
		return 0, errors.New("only scoped_rds over ADS is supported")
	}
	if sr.GetRdsConfigSource().GetAds() == nil {
		return 0, errors.New("rds_config_source: only ADS is supported")
	}
	fs := sr.GetScopeKeyBuilder().GetFragments()
	for i, f := range fs {
		h := f.GetHeaderValueExtractor()
		name := strings.ToLower(h.GetName())
		if h == nil || (name != ":authority" && name != "host") || h.GetElementSeparator() != "" || h.GetIndex() != 0 || h.GetElement() != nil {
			return 0, fmt.Errorf("scope_key_builder.fragments[%d]: only the whole :authority header is supported as a fragment", i)
		}
	}
	if len(fs) == 0 {
		return 0, errors.New("scope_key_builder: at least one fragment is required")
	}
	return len(fs), nil
}

// parseListener validates a Listener and turns it into a listenerSpec.
func (g *Gateway) parseListener(l *listenerv3.Listener) (*listenerSpec, error) {
	if err := l.ValidateAll(); err != nil {
		return nil, err
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil || sa.GetProtocol() != corev3.SocketAddress_TCP {
		return nil, errors.New("only TCP socket_address listeners are supported")
	}
	if l.GetApiListener() != nil || l.GetInternalListener() != nil || len(l.GetAdditionalAddresses()) > 0 {
		return nil, errors.New("api_listener, internal_listener and additional_addresses are not supported")
	}
	pv, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_PortValue)
	if !ok {
		return nil, errors.New("named ports are not supported")
	}
	bind := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(pv.PortValue)))
	if g.cfg.ListenerAddressOverride != "" {
		bind = g.cfg.ListenerAddressOverride
	}
	chains := slices.Clone(l.GetFilterChains())
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains, l.GetDefaultFilterChain())
	}
	var nf *listenerv3.Filter
	var tspec *tlsSpec
	switch {
	case len(chains) == 0:
		return nil, errors.New("at least one filter chain is required")
	case len(chains) > 1 || chains[0].GetTransportSocket() != nil:
		// TLS termination: filter chains selected by SNI, one HTTP connection manager.
		var err error
		if tspec, nf, err = parseTLSChains(l, chains); err != nil {
			return nil, err
		}
	default:
		fc := chains[0]
		if len(l.GetListenerFilters()) > 0 {
			return nil, errors.New("listener_filters are only supported with TLS filter chains")
		}
		if m := fc.GetFilterChainMatch(); m != nil && !proto.Equal(m, &listenerv3.FilterChainMatch{}) {
			return nil, errors.New("filter_chains[0].filter_chain_match is not supported without TLS")
		}
		if len(fc.GetFilters()) != 1 {
			return nil, fmt.Errorf("exactly one network filter (the HTTP connection manager) is supported, got %d", len(fc.GetFilters()))
		}
		nf = fc.GetFilters()[0]
	}
	tc := nf.GetTypedConfig()
	if tc.GetTypeUrl() != hcmTypeURL {
		return nil, fmt.Errorf("network filter %q: unsupported type %q (only %s)", nf.GetName(), tc.GetTypeUrl(), hcmTypeURL)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := anypb.UnmarshalTo(tc, &hcm, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("decoding http_connection_manager: %w", err)
	}
	if err := hcm.ValidateAll(); err != nil {
		return nil, fmt.Errorf("http_connection_manager: %w", err)
	}
	opts, err := g.hcmOptions(l.GetName(), &hcm)
	if err != nil {
		return nil, fmt.Errorf("http_connection_manager: %w", err)
	}
	spec := &listenerSpec{name: l.GetName(), bindAddr: bind, opts: opts, tls: tspec}
	if tr := hcm.GetTracing(); tr != nil {
		spec.tracingKey = tracingKey(tr)
	}
	return spec, nil
}

func (g *Gateway) hcmOptions(name string, hcm *hcmv3.HttpConnectionManager) (proxy.Options, error) {
	o := proxy.Options{
		Listener:               name,
		StatPrefix:             hcm.GetStatPrefix(),
		Routes:                 g,
		Clusters:               g.clusters,
		StripAnyHostPort:       hcm.GetStripAnyHostPort(),
		StripMatchingHostPort:  hcm.GetStripMatchingHostPort(),
		UseRemoteAddress:       hcm.GetUseRemoteAddress().GetValue(),
		SkipXFFAppend:          hcm.GetSkipXffAppend(),
		ServerName:             hcm.GetServerName(),
		GenerateRequestID:      hcm.GetGenerateRequestId() == nil || hcm.GetGenerateRequestId().GetValue(),
		AccessLog:              len(hcm.GetAccessLog()) > 0,
		MaxRequestHeadersBytes: int(hcm.GetMaxRequestHeadersKb().GetValue()) * 1024,
		MaxHeadersCount:        int(hcm.GetCommonHttpProtocolOptions().GetMaxHeadersCount().GetValue()),
		AllowChunkedLength:     hcm.GetHttpProtocolOptions().GetAllowChunkedLength(),
		Stats:                  g.stats,
		Logger:                 g.cfg.Logger,
		Observe:                proxy.Observability{Metrics: g.reqMetrics},
	}
	if g.reqLog != nil {
		o.Observe.RequestLog = g.reqLog
	}
	if tr := hcm.GetTracing(); tr != nil {
		t, _, err := g.tracers.get(tr)
		if err != nil {
			return o, err
		}
		o.Observe.Tracer = t
	}
	switch hcm.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO, hcmv3.HttpConnectionManager_HTTP1, hcmv3.HttpConnectionManager_HTTP2:
	default:
		return o, fmt.Errorf("codec_type %s is not supported", hcm.GetCodecType())
	}
	switch rs := hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		o.RouteConfigName = rs.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_ScopedRoutes:
		n, err := scopeFragments(rs.ScopedRoutes)
		if err != nil {
			return o, fmt.Errorf("scoped_routes: %w", err)
		}
		o.RouteConfigName = scopedPrefix + rs.ScopedRoutes.GetName() + "/" + strconv.Itoa(n)
		g.scopedTable(o.RouteConfigName, n)
	case *hcmv3.HttpConnectionManager_RouteConfig:
		t, err := route.Compile(rs.RouteConfig)
		if err != nil {
			return o, fmt.Errorf("route_config: %w", err)
		}
		o.InlineRoutes = t
	default:
		return o, fmt.Errorf("route specifier %T is not supported", rs)
	}
	filters, err := filter.BuildWith(g.filters, filter.BuildContext{
		Listener:   name,
		StatPrefix: hcm.GetStatPrefix(),
		Stats:      g.stats,
		Clusters:   g.clusters,
		Logger:     g.cfg.Logger,
	}, hcm.GetHttpFilters())
	if err != nil {
		return o, err
	}
	o.Filters = filters
	return o, nil
}

// ConfigDump returns the current resources as Envoy's admin ConfigDump JSON.
func (g *Gateway) ConfigDump() ([]byte, error) {
	g.mu.RLock()
	raw := g.raw
	g.mu.RUnlock()
	sorted := func(typeURL string) []xdsclient.Resource {
		var out []xdsclient.Resource
		for _, r := range raw[typeURL] {
			out = append(out, r)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	var dump adminv3.ConfigDump
	add := func(m proto.Message) error {
		a, err := anypb.New(m)
		if err != nil {
			return err
		}
		dump.Configs = append(dump.Configs, a)
		return nil
	}
	var ld adminv3.ListenersConfigDump
	for _, r := range sorted(xdsclient.ListenerType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: r.Name, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: r.Version, Listener: a},
		})
	}
	var cd adminv3.ClustersConfigDump
	for _, r := range sorted(xdsclient.ClusterType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: r.Version, Cluster: a})
	}
	var rd adminv3.RoutesConfigDump
	for _, r := range sorted(xdsclient.RouteType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: r.Version, RouteConfig: a})
	}
	var ed adminv3.EndpointsConfigDump
	for _, r := range sorted(xdsclient.EndpointType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: r.Version, EndpointConfig: a})
	}
	for _, m := range []proto.Message{&cd, &ed, &ld, &rd} {
		if err := add(m); err != nil {
			return nil, fmt.Errorf("building config dump: %w", err)
		}
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&dump)
	if err != nil {
		return nil, fmt.Errorf("encoding config dump: %w", err)
	}
	return b, nil
}
