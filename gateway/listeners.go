package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/codec"
	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/proxy"
	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/xdsclient"
)

// hcmTypeURL is the typed_config type of the HTTP connection manager.
const hcmTypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

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
