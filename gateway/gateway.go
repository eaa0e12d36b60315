// Package gateway is Skiff's Envoy-compatible local data plane. It knows the
// control plane only over xDS (gRPC ADS), exactly as Envoy would: listeners,
// routes, clusters and endpoints arrive as Envoy resources, are validated
// (and NACKed when invalid or unsupported), and are served with Envoy's
// routing, load balancing, retries, local replies and stat names.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/tetratelabs/wazero"

	"github.com/skiff-dev/skiff/gateway/admin"
	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/filter/composite"
	"github.com/skiff-dev/skiff/gateway/filter/extprocfilter"
	"github.com/skiff-dev/skiff/gateway/filter/wasm"
	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
	"github.com/skiff-dev/skiff/gateway/xdsclient"
	"github.com/skiff-dev/skiff/telemetry"
)

// UserAgentName is the user_agent_name the gateway reports in its Node.
const UserAgentName = "skiff-gateway"

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
	extProc  *extprocfilter.Factory
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
	// scopeIndex maps a scope key (the host, repeated per fragment, joined by NUL) to its
	// RouteConfiguration, scopeOwner to its scope; scopeKeys maps a scope to its key, and
	// rcRefs counts the scopes of each RouteConfiguration. haveScopes is set once SRDS has
	// been applied. listenerRDS are the RouteConfigurations listeners name directly.
	scopeIndex, scopeOwner, scopeKeys map[string]string
	rcRefs                            map[string]int
	haveScopes                        bool
	listenerRDS                       []string
	// scoped are the scoped tables of listeners by their RouteConfigName (see scopedName).
	scoped    sync.Map
	raw       map[string]map[string]xdsclient.Resource
	adminAddr net.Addr
	// secrets are the SDS certificates by secret name.
	secrets map[string]*tls.Certificate
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
	ep := extprocfilter.NewFactory(cfg.Logger)
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
		cfg:        cfg,
		log:        cfg.Logger.With("component", "gateway"),
		stats:      st,
		clusters:   clusters,
		filters:    filter.NewRegistry(append([]filter.Factory{ep, wf, composite.NewFactory()}, cfg.HTTPFilters...)...),
		extProc:    ep,
		wasm:       wf,
		wasmCache:  wopts.CompilationCache,
		listeners:  map[string]*listener{},
		routes:     map[string]*route.Table{},
		scopeIndex: map[string]string{}, scopeOwner: map[string]string{}, scopeKeys: map[string]string{},
		rcRefs:  map[string]int{},
		raw:     map[string]map[string]xdsclient.Resource{},
		secrets: map[string]*tls.Certificate{},

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
