// Package proxy is the gateway's HTTP connection manager and router filter:
// it applies Envoy's request header handling, matches the route, runs the
// HTTP filter chain, and proxies to the chosen cluster with Envoy's timeout,
// retry, circuit-breaking and local-reply behaviour and stats.
package proxy

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/codec"
	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
)

// Envoy's local reply bodies.
const (
	BodyNoHealthyUpstream = "no healthy upstream"
	BodyTimeout           = "upstream request timeout"
	BodyConnectFailure    = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	BodyOverflow          = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	BodyReset             = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	BodyRefusedStream     = "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset"
)

// retryBufferLimit is how much of a request body is kept to replay it on a
// retry (Envoy's default per-connection buffer limit is 1 MiB).
const retryBufferLimit = 1 << 20

// RouteSource looks up route tables received over RDS.
type RouteSource interface {
	// RouteTable returns the table for a RouteConfiguration name, or nil.
	RouteTable(name string) *route.Table
}

// Options configures a ConnectionManager (one HttpConnectionManager).
type Options struct {
	// Listener is the owning listener's name (for logs).
	Listener string
	// StatPrefix is the HCM stat_prefix: stats are http.<StatPrefix>.*.
	StatPrefix string
	// RouteConfigName is the RDS route configuration name; used when InlineRoutes is nil.
	RouteConfigName string
	// InlineRoutes is the HCM's inline route_config, if any.
	InlineRoutes *route.Table
	// Routes provides RDS route tables.
	Routes RouteSource
	// Clusters provides upstream clusters.
	Clusters *upstream.Manager
	// Filters are the HTTP filters before the router.
	Filters []filter.Configured
	// StripAnyHostPort removes any port from the Host header before routing.
	StripAnyHostPort bool
	// StripMatchingHostPort removes the port from Host when it equals ListenerPort.
	StripMatchingHostPort bool
	// ListenerPort is the port the listener is bound to.
	ListenerPort int
	// UseRemoteAddress appends the peer address to X-Forwarded-For (unless
	// SkipXFFAppend) and sets X-Forwarded-Proto, as an edge Envoy does.
	UseRemoteAddress, SkipXFFAppend bool
	// ServerName is the Server response header value ("envoy" by default).
	ServerName string
	// GenerateRequestID makes the manager generate a missing x-request-id
	// (Envoy's default is true).
	GenerateRequestID bool
	// AccessLog logs every request at Info level (otherwise at Debug).
	AccessLog bool
	// MaxRequestHeadersBytes is max_request_headers_kb × 1024, MaxHeadersCount
	// common_http_protocol_options.max_headers_count and AllowChunkedLength
	// http_protocol_options.allow_chunked_length (zero: Envoy's defaults). The
	// listener's codec.Conn checks HTTP/1 requests against them (CodecSettings);
	// the connection manager answers its verdicts, and checks HTTP/2 requests.
	MaxRequestHeadersBytes, MaxHeadersCount int
	AllowChunkedLength                      bool
	// Stats receives the http.* and cluster.* stats.
	Stats *stats.Store
	// Logger receives access and error logs.
	Logger *slog.Logger
	// Observe is what is recorded of each request besides the stats: metrics, spans,
	// request logs.
	Observe Observability
}

// ConnectionManager serves HTTP requests for one listener.
type ConnectionManager struct {
	opts    Options
	handler http.Handler
	rp      *httputil.ReverseProxy
	prefix  string

	rqTotal, rqHTTP1, rqHTTP2, noRoute, noCluster, directResponse, redirects, rqCompleted *stats.Counter
	rqActive                                                                              *stats.Gauge
	// infos caches the current route table's RouteInfos.
	infos atomic.Pointer[routeInfoCache]
	// rqClass caches downstream_rq_<N>xx by N, each created (and so listed) at its first use.
	rqClass [6]atomic.Pointer[stats.Counter]
}

// classCounter returns http.<prefix>.downstream_rq_<N>xx for a status code.
func (cm *ConnectionManager) classCounter(code int) *stats.Counter {
	n := code / 100
	if n < 0 || n >= len(cm.rqClass) {
		return cm.opts.Stats.Counter(cm.prefix + "downstream_rq_" + strconv.Itoa(n) + "xx")
	}
	if c := cm.rqClass[n].Load(); c != nil {
		return c
	}
	c := cm.opts.Stats.Counter(cm.prefix + "downstream_rq_" + strconv.Itoa(n) + "xx")
	cm.rqClass[n].Store(c)
	return c
}

// New returns a ConnectionManager for opts.
func New(opts Options) *ConnectionManager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ServerName == "" {
		opts.ServerName = "envoy"
	}
	p := "http." + opts.StatPrefix + "."
	s := opts.Stats
	cm := &ConnectionManager{
		opts:           opts,
		prefix:         p,
		rqTotal:        s.Counter(p + "downstream_rq_total"),
		rqHTTP1:        s.Counter(p + "downstream_rq_http1_total"),
		rqHTTP2:        s.Counter(p + "downstream_rq_http2_total"),
		rqCompleted:    s.Counter(p + "downstream_rq_completed"),
		noRoute:        s.Counter(p + "no_route"),
		noCluster:      s.Counter(p + "no_cluster"),
		directResponse: s.Counter(p + "rq_direct_response"),
		redirects:      s.Counter(p + "rq_redirect"),
		rqActive:       s.Gauge(p + "downstream_rq_active"),
	}
	cm.rp = &httputil.ReverseProxy{
		// Without a pool ReverseProxy allocates a 32 KiB copy buffer per request: most of
		// the gateway's garbage, and so of its GC pauses (bench/RESULTS.md, issue 17).
		BufferPool:     &bufferPool{},
		Rewrite:        cm.rewrite,
		Transport:      roundTripperFunc(cm.roundTrip),
		ModifyResponse: cm.modifyResponse,
		ErrorHandler:   cm.errorHandler,
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	cm.handler = filter.Chain(opts.Filters, http.HandlerFunc(cm.router))
	return cm
}

// CodecSettings returns the downstream codec limits (see package codec).
func (cm *ConnectionManager) CodecSettings() codec.Settings {
	return codec.Settings{
		MaxRequestHeadersBytes: cm.opts.MaxRequestHeadersBytes,
		MaxHeadersCount:        cm.opts.MaxHeadersCount,
		AllowChunkedLength:     cm.opts.AllowChunkedLength,
	}
}

// StatPrefix returns the HCM stat prefix.
func (cm *ConnectionManager) StatPrefix() string { return cm.opts.StatPrefix }

// RouteConfigName returns the RDS route configuration name ("" with inline routes).
func (cm *ConnectionManager) RouteConfigName() string {
	if cm.opts.InlineRoutes != nil {
		return ""
	}
	return cm.opts.RouteConfigName
}

// RouteTable returns the route table currently in force, or nil if RDS has
// not delivered it yet.
func (cm *ConnectionManager) RouteTable() *route.Table {
	if cm.opts.InlineRoutes != nil {
		return cm.opts.InlineRoutes
	}
	if cm.opts.Routes == nil {
		return nil
	}
	return cm.opts.Routes.RouteTable(cm.opts.RouteConfigName)
}

// copyBufferSize is io.Copy's buffer size, which ReverseProxy uses without a pool.
const copyBufferSize = 32 << 10

// bufferPool is an httputil.BufferPool over a sync.Pool of copyBufferSize arrays (pooled as
// array pointers, so that Put allocates nothing).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return v[:]
	}
	return new([copyBufferSize]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// reqInfo is the connection manager's per-request record.
type reqInfo struct {
	start       time.Time
	flags       []string
	vh          *route.VirtualHost
	route       *route.Route
	wc          *route.WeightedCluster
	clusterName string
	cluster     *upstream.Cluster
	host        *upstream.Host
	serviceTime time.Duration
	status      int
	timeoutCtx  context.Context // the route-timeout context, to tell timeouts from cancellation
	span        trace.Span      // the request's span when tracing (Observe.Tracer)
	bodyIn      *countingBody   // the request body's byte count when logging requests
	// badBody is set once reading the downstream request body failed with a
	// codec error (the body is read on the transport's goroutine too).
	badBody atomic.Bool
}

func (ri *reqInfo) flag(f string) { ri.flags = append(ri.flags, f) }

type reqInfoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	ri, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return ri
}

// ServeHTTP implements http.Handler.
func (cm *ConnectionManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ri := &reqInfo{start: time.Now()}
	cm.rqTotal.Inc()
	if r.ProtoMajor == 2 {
		cm.rqHTTP2.Inc()
	} else {
		cm.rqHTTP1.Inc()
	}
	cm.rqActive.Inc()
	sw := &statusWriter{ResponseWriter: w, server: cm.opts.ServerName}
	defer cm.finish(sw, r, ri)
	if code := cm.checkCodec(r); code != 0 {
		cm.sendCodecError(sw, r, ri, code)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &downstreamBody{ReadCloser: r.Body, ri: ri}
	}

	if cm.opts.StripAnyHostPort {
		r.Host = route.StripPort(r.Host)
	} else if cm.opts.StripMatchingHostPort {
		if _, port, err := net.SplitHostPort(r.Host); err == nil && port == strconv.Itoa(cm.opts.ListenerPort) {
			r.Host = route.StripPort(r.Host)
		}
	}
	if cm.opts.GenerateRequestID && r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", newUUID())
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if cm.opts.UseRemoteAddress {
		if !cm.opts.SkipXFFAppend {
			if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
					r.Header.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+ip)
				} else {
					r.Header.Set("X-Forwarded-For", ip)
				}
			}
		}
		r.Header.Set("X-Forwarded-Proto", scheme)
	} else if r.Header.Get("X-Forwarded-Proto") == "" {
		r.Header.Set("X-Forwarded-Proto", scheme)
	}

	base := r.Context()
	if cm.opts.Observe.RequestLog != nil && r.Body != nil && r.Body != http.NoBody {
		ri.bodyIn = &countingBody{ReadCloser: r.Body}
		r.Body = ri.bodyIn
	}
	if cm.opts.Observe.Tracer != nil {
		base = cm.startSpan(base, r, ri)
	}
	st := &filter.State{}
	ctx := filter.WithState(context.WithValue(base, reqInfoKey{}, ri), st)
	r = r.WithContext(ctx)
	cm.resolveRoute(r, ri, st)
	cm.handler.ServeHTTP(sw, r)
	if ri.badBody.Load() && sw.status == 0 {
		// A filter stopped at the broken body without answering.
		cm.sendCodecError(sw, r, ri, http.StatusBadRequest)
	}
}

// checkCodec returns the status an HTTP/1 request gets from the listener's codec
// (see package codec), or checks an HTTP/2 request's headers against the same
// limits; 0 means the request goes on. Too many HTTP/2 headers reset the stream,
// as in Envoy.
func (cm *ConnectionManager) checkCodec(r *http.Request) int {
	if r.ProtoMajor == 1 {
		if c := codec.FromContext(r.Context()); c != nil {
			return c.NextVerdict().Status
		}
		return 0
	}
	limits := cm.CodecSettings()
	size, count := len("host")+len(r.Host), 1
	for k, vs := range r.Header {
		for _, v := range vs {
			size += len(k) + len(v)
			count++
		}
	}
	switch {
	case count > cmp.Or(limits.MaxHeadersCount, codec.DefaultMaxHeadersCount):
		panic(http.ErrAbortHandler)
	case size > cmp.Or(limits.MaxRequestHeadersBytes, codec.DefaultMaxRequestHeadersKB*1024):
		return http.StatusRequestHeaderFieldsTooLarge
	}
	return 0
}

// sendCodecError answers a request the codec refused, as Envoy does: the status
// and its text, response flag DPE (downstream protocol error), and the HTTP/1
// connection closed.
func (cm *ConnectionManager) sendCodecError(w http.ResponseWriter, r *http.Request, ri *reqInfo, code int) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	cm.sendLocal(w, ri, &localReply{code: code, body: http.StatusText(code), flag: "DPE"})
}

// downstreamBody notes a codec error while the request body is read.
type downstreamBody struct {
	io.ReadCloser
	ri *reqInfo
}

func (b *downstreamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, codec.ErrMalformedBody) {
		b.ri.badBody.Store(true)
	}
	return n, err
}

func (cm *ConnectionManager) finish(sw *statusWriter, r *http.Request, ri *reqInfo) {
	cm.rqActive.Dec()
	cm.rqCompleted.Inc()
	code := sw.status
	if code == 0 {
		if ri.status != 0 {
			code = ri.status
		} else {
			code = http.StatusOK
		}
	}
	cm.classCounter(code).Inc()
	cm.observe(r, ri, code, sw.written)
	level := slog.LevelDebug
	if cm.opts.AccessLog {
		level = slog.LevelInfo
	}
	if !cm.opts.Logger.Enabled(r.Context(), level) {
		return
	}
	flags := "-"
	if len(ri.flags) > 0 {
		flags = strings.Join(ri.flags, ",")
	}
	host := "-"
	if ri.host != nil {
		host = ri.host.Address
	}
	cm.opts.Logger.Log(r.Context(), level, "access",
		"listener", cm.opts.Listener, "method", r.Method, "authority", r.Host, "path", r.URL.RequestURI(),
		"protocol", r.Proto, "status", code, "flags", flags, "duration_ms", time.Since(ri.start).Milliseconds(),
		"upstream_cluster", ri.clusterName, "upstream_host", host, "request_id", r.Header.Get("X-Request-Id"))
}

// resolveRoute matches the route (and picks the weighted cluster) and
// publishes it to the filters.
func (cm *ConnectionManager) resolveRoute(r *http.Request, ri *reqInfo, st *filter.State) {
	ri.vh, ri.route, ri.wc, ri.clusterName = nil, nil, nil, ""
	t := cm.RouteTable()
	if t == nil {
		st.SetRoute(nil)
		return
	}
	vh, rt := t.Match(r.Host, r)
	ri.vh, ri.route = vh, rt
	if rt == nil {
		st.SetRoute(nil)
		return
	}
	if rt.Kind == route.ActionForward && len(rt.Weighted) > 0 {
		ri.wc = rt.PickWeighted(rand.Uint64N(rt.TotalWeight))
	}
	if rt.Kind != route.ActionForward || rt.ClusterHeader == "" || len(rt.Weighted) > 0 {
		// The same for every request to this route (and weighted cluster): built once.
		info := cm.routeInfos(t).get(vh, rt, ri.wc)
		ri.clusterName = info.Cluster
		st.SetRoute(info)
		return
	}
	info := newRouteInfo(vh, rt, ri.wc)
	ri.clusterName = r.Header.Get(rt.ClusterHeader)
	info.Cluster = ri.clusterName
	st.SetRoute(info)
}

// newRouteInfo builds what filters see of a route (and weighted cluster wc, or nil).
func newRouteInfo(vh *route.VirtualHost, rt *route.Route, wc *route.WeightedCluster) *filter.RouteInfo {
	info := &filter.RouteInfo{VirtualHost: vh.Name, Route: rt.Name, Metadata: rt.Metadata, PerFilterConfig: map[string]*anypb.Any{}}
	for k, v := range vh.PerFilterConfig {
		info.PerFilterConfig[k] = v
	}
	for k, v := range rt.PerFilterConfig {
		info.PerFilterConfig[k] = v
	}
	if rt.Kind == route.ActionForward {
		switch {
		case wc != nil:
			info.Cluster = wc.Name
			for k, v := range wc.PerFilterConfig {
				info.PerFilterConfig[k] = v
			}
		case rt.ClusterHeader == "":
			info.Cluster = rt.Cluster
		}
	}
	return info
}

// maxCachedRouteInfos bounds a routeInfoCache (one entry per route and weighted cluster).
const maxCachedRouteInfos = 1 << 16

// routeInfoCache holds the RouteInfo of each route and weighted cluster of one route table,
// so that a request does not build one (and copy its per-filter configs) every time.
type routeInfoCache struct {
	table *route.Table
	infos sync.Map // routeInfoKey → *filter.RouteInfo
	n     atomic.Int64
}

type routeInfoKey struct {
	vh *route.VirtualHost
	rt *route.Route
	wc *route.WeightedCluster
}

// routeInfos returns the cache of table t, replacing the previous table's.
func (cm *ConnectionManager) routeInfos(t *route.Table) *routeInfoCache {
	if c := cm.infos.Load(); c != nil && c.table == t {
		return c
	}
	c := &routeInfoCache{table: t}
	cm.infos.Store(c)
	return c
}

func (c *routeInfoCache) get(vh *route.VirtualHost, rt *route.Route, wc *route.WeightedCluster) *filter.RouteInfo {
	k := routeInfoKey{vh, rt, wc}
	if v, ok := c.infos.Load(k); ok {
		return v.(*filter.RouteInfo)
	}
	info := newRouteInfo(vh, rt, wc)
	if c.n.Load() >= maxCachedRouteInfos {
		return info
	}
	if v, loaded := c.infos.LoadOrStore(k, info); loaded {
		return v.(*filter.RouteInfo)
	}
	c.n.Add(1)
	return info
}

// localReply is an Envoy-generated response.
type localReply struct {
	code int
	body string
	flag string
}

func (l *localReply) Error() string {
	return fmt.Sprintf("local reply %d (%s): %s", l.code, l.flag, l.body)
}

func (cm *ConnectionManager) sendLocal(w http.ResponseWriter, ri *reqInfo, lr *localReply) {
	if lr.flag != "" {
		ri.flag(lr.flag)
	}
	ri.status = lr.code
	if lr.body != "" {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(lr.body)))
	}
	w.WriteHeader(lr.code)
	if lr.body != "" {
		_, _ = io.WriteString(w, lr.body)
	}
}

// router is the terminal filter (envoy.filters.http.router).
func (cm *ConnectionManager) router(w http.ResponseWriter, r *http.Request) {
	ri := infoFrom(r.Context())
	if st := filter.StateFromContext(r.Context()); st != nil && st.RouteCacheCleared() {
		cm.resolveRoute(r, ri, st)
	}
	rt := ri.route
	if rt == nil {
		cm.noRoute.Inc()
		cm.sendLocal(w, ri, &localReply{code: http.StatusNotFound, flag: "NR"})
		return
	}
	switch rt.Kind {
	case route.ActionDirect:
		cm.directResponse.Inc()
		cm.applyResponseHeaderOps(w.Header(), ri)
		cm.sendLocal(w, ri, &localReply{code: rt.Direct.Status, body: rt.Direct.Body})
		return
	case route.ActionRedirect:
		cm.redirects.Inc()
		cm.redirect(w, r, ri)
		return
	}
	cl := cm.opts.Clusters.Get(ri.clusterName)
	if cl == nil {
		cm.noCluster.Inc()
		cm.sendLocal(w, ri, &localReply{code: http.StatusServiceUnavailable, flag: "NC"})
		return
	}
	ri.cluster = cl
	ctx := r.Context()
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	ri.timeoutCtx = ctx
	cm.rp.ServeHTTP(w, r.WithContext(ctx))
}

func (cm *ConnectionManager) redirect(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	rd := ri.route.Redirect
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if rd.Scheme != "" {
		u.Scheme = rd.Scheme
	}
	if rd.Host != "" {
		u.Host = rd.Host
	}
	if rd.Port != 0 {
		u.Host = net.JoinHostPort(route.StripPort(u.Host), strconv.Itoa(int(rd.Port)))
	}
	if rd.Path != "" {
		u.Path = rd.Path
	} else if rd.PrefixRewrite != "" {
		if p, ok := ri.route.MatchedPrefix(r.URL.Path); ok {
			u.Path = rd.PrefixRewrite + strings.TrimPrefix(r.URL.Path, p)
		}
	}
	if rd.StripQuery {
		u.RawQuery = ""
	}
	code := rd.Status
	if code == 0 {
		code = http.StatusMovedPermanently
	}
	w.Header().Set("Location", u.String())
	cm.sendLocal(w, ri, &localReply{code: code})
}

// rewrite prepares the upstream request (ReverseProxy.Rewrite).
func (cm *ConnectionManager) rewrite(pr *httputil.ProxyRequest) {
	ri := infoFrom(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = "upstream.invalid" // set per attempt by roundTrip
	out.Host = pr.In.Host
	// ReverseProxy strips the X-Forwarded-* headers; the connection manager
	// already set them the way Envoy does.
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
		if v := pr.In.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	rt := ri.route
	if rt.PrefixRewrite != "" {
		if p, ok := rt.MatchedPrefix(pr.In.URL.Path); ok {
			out.URL.Path = rt.PrefixRewrite + strings.TrimPrefix(pr.In.URL.Path, p)
			out.URL.RawPath = ""
		}
	} else if rt.RegexRewrite != nil {
		out.URL.Path = rt.RegexRewrite.ReplaceAllString(pr.In.URL.Path, rt.RegexSubstitute)
		out.URL.RawPath = ""
	}
	if rt.HostRewrite != "" {
		out.Host = rt.HostRewrite
	}
	// Most specific first, so the route configuration level wins, as in
	// Envoy with most_specific_header_mutations_wins unset.
	if ri.wc != nil {
		ri.wc.Headers.ApplyRequest(out.Header)
	}
	rt.Headers.ApplyRequest(out.Header)
	ri.vh.Headers.ApplyRequest(out.Header)
	if t := cm.RouteTable(); t != nil {
		t.Headers.ApplyRequest(out.Header)
	}
	if rt.Timeout > 0 {
		out.Header.Set("X-Envoy-Expected-Rq-Timeout-Ms", strconv.FormatInt(rt.Timeout.Milliseconds(), 10))
	}
	cm.injectTrace(pr.In.Context(), out.Header)
}

func (cm *ConnectionManager) applyResponseHeaderOps(h http.Header, ri *reqInfo) {
	if ri.wc != nil {
		ri.wc.Headers.ApplyResponse(h)
	}
	if ri.route != nil {
		ri.route.Headers.ApplyResponse(h)
	}
	if ri.vh != nil {
		ri.vh.Headers.ApplyResponse(h)
	}
	if t := cm.RouteTable(); t != nil {
		t.Headers.ApplyResponse(h)
	}
}

func (cm *ConnectionManager) modifyResponse(resp *http.Response) error {
	ri := infoFrom(resp.Request.Context())
	resp.Header.Set("X-Envoy-Upstream-Service-Time", strconv.FormatInt(ri.serviceTime.Milliseconds(), 10))
	cm.applyResponseHeaderOps(resp.Header, ri)
	return nil
}

func (cm *ConnectionManager) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ri := infoFrom(r.Context())
	if ri.badBody.Load() {
		// The upstream request failed because the downstream body is malformed.
		cm.sendCodecError(w, r, ri, http.StatusBadRequest)
		return
	}
	var lr *localReply
	if errors.As(err, &lr) {
		cm.sendLocal(w, ri, lr)
		return
	}
	if ri.timeoutCtx != nil && errors.Is(ri.timeoutCtx.Err(), context.DeadlineExceeded) {
		if ri.cluster != nil {
			ri.cluster.Counter("upstream_rq_timeout").Inc()
		}
		cm.sendLocal(w, ri, &localReply{code: http.StatusGatewayTimeout, body: BodyTimeout, flag: "UT"})
		return
	}
	if r.Context().Err() != nil {
		// The downstream went away.
		ri.flag("DC")
		ri.status = 499
		return
	}
	cm.opts.Logger.Debug("upstream error", "listener", cm.opts.Listener, "error", err)
	cm.sendLocal(w, ri, &localReply{code: http.StatusServiceUnavailable, body: BodyReset, flag: "UC"})
}

// errPerTryTimeout is the cancellation cause of an attempt that exceeded
// the retry policy's per_try_timeout.
var errPerTryTimeout = errors.New("per try timeout")

// failure classifies an attempt's error the way Envoy's router does.
type failure struct {
	retryOn []string // retry_on conditions that cover it
	reply   *localReply
}

func classify(ctx context.Context, err error) failure {
	var ce *upstream.ConnectError
	switch {
	case errors.Is(context.Cause(ctx), errPerTryTimeout):
		return failure{retryOn: []string{"5xx", "gateway-error", "reset"}, reply: &localReply{http.StatusGatewayTimeout, BodyTimeout, "UT"}}
	case errors.As(err, &ce):
		return failure{retryOn: []string{"connect-failure", "reset", "5xx", "gateway-error"}, reply: &localReply{http.StatusServiceUnavailable, BodyConnectFailure, "UF"}}
	case strings.Contains(err.Error(), "REFUSED_STREAM"):
		return failure{retryOn: []string{"refused-stream", "reset", "5xx", "gateway-error"}, reply: &localReply{http.StatusServiceUnavailable, BodyRefusedStream, "UR"}}
	default:
		return failure{retryOn: []string{"reset", "5xx", "gateway-error"}, reply: &localReply{http.StatusServiceUnavailable, BodyReset, "UC"}}
	}
}

func retriableStatus(p *route.RetryPolicy, code int) bool {
	switch {
	case p.On["5xx"] && code >= 500:
		return true
	case p.On["gateway-error"] && (code == 502 || code == 503 || code == 504):
		return true
	case p.On["retriable-status-codes"] && p.RetriableStatusCodes[code]:
		return true
	}
	return false
}

// roundTrip is the router's upstream request: it picks hosts, enforces the
// circuit breakers, and retries per the route's retry policy.
func (cm *ConnectionManager) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	ri := infoFrom(ctx)
	cl := ri.cluster
	policy := ri.route.Retry
	retriesLeft := 0
	if policy != nil {
		retriesLeft = policy.NumRetries
	}
	var body *replayBody
	if retriesLeft > 0 && req.Body != nil && req.Body != http.NoBody {
		body = &replayBody{src: req.Body, limit: retryBufferLimit}
	}
	var tried []*upstream.Host
	retried := false
	lbc := upstream.LBContext{Headers: req.Header}
	if st := filter.StateFromContext(ctx); st != nil {
		// Dynamic metadata set by filters (e.g. ext_proc's envoy.lb) steers
		// an override_host load balancing policy.
		lbc.Metadata = st.DynamicMetadata()
	}
	for attempt := 0; ; attempt++ {
		if !cl.AcquireRequest() {
			return nil, &localReply{http.StatusServiceUnavailable, BodyOverflow, "UO"}
		}
		host, err := cl.PickFor(lbc, tried)
		if err != nil {
			cl.ReleaseRequest()
			return nil, &localReply{http.StatusServiceUnavailable, BodyNoHealthyUpstream, "UH"}
		}
		tried = append(tried, host)
		ri.host = host
		resp, actx, err := cm.attempt(req, cl, host, body)
		if err == nil {
			cl.CountResponse(host, resp.StatusCode)
			if policy != nil && retriesLeft > 0 && retriableStatus(policy, resp.StatusCode) && body.replayable() && cl.AcquireRetry() {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				retriesLeft--
				retried = true
				cl.Counter("upstream_rq_retry").Inc()
				err := backoff(ctx, policy, attempt)
				cl.ReleaseRetry()
				if err != nil {
					return nil, err
				}
				continue
			}
			if retried {
				cl.Counter("upstream_rq_retry_success").Inc()
			}
			return resp, nil
		}
		if ri.badBody.Load() {
			// Not the upstream's fault and not retriable: errorHandler answers 400.
			return nil, err
		}
		if ctx.Err() != nil {
			// Route timeout or downstream cancellation; errorHandler tells which.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				cl.CountResponse(host, http.StatusGatewayTimeout)
			}
			return nil, err
		}
		f := classify(actx, err)
		if f.reply.flag == "UT" {
			cl.Counter("upstream_rq_per_try_timeout").Inc()
		}
		if policy != nil && retriesLeft > 0 && retryCovers(policy, f.retryOn) && body.replayable() && cl.AcquireRetry() {
			retriesLeft--
			retried = true
			cl.Counter("upstream_rq_retry").Inc()
			err := backoff(ctx, policy, attempt)
			cl.ReleaseRetry()
			if err != nil {
				return nil, err
			}
			continue
		}
		if f.reply.flag == "UT" {
			cl.Counter("upstream_rq_timeout").Inc()
		}
		cl.CountResponse(host, f.reply.code)
		cm.opts.Logger.Debug("upstream request failed", "cluster", cl.Name, "host", host.Address, "error", err)
		return nil, f.reply
	}
}

func retryCovers(p *route.RetryPolicy, conds []string) bool {
	for _, c := range conds {
		if p.On[c] {
			return true
		}
	}
	return false
}

// backoff waits Envoy's fully jittered exponential backoff before retry n+1.
func backoff(ctx context.Context, p *route.RetryPolicy, n int) error {
	ceiling := p.BaseInterval << min(n, 10)
	if ceiling > p.MaxInterval || ceiling <= 0 {
		ceiling = p.MaxInterval
	}
	if ceiling <= 0 {
		return nil
	}
	t := time.NewTimer(rand.N(ceiling) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// attempt sends one upstream request to host. On success the response body
// is wrapped so the request's accounting ends when the body is closed. It
// also returns the attempt's context so errors can be classified.
func (cm *ConnectionManager) attempt(req *http.Request, cl *upstream.Cluster, host *upstream.Host, body *replayBody) (*http.Response, context.Context, error) {
	ri := infoFrom(req.Context())
	ctx, cancel := context.WithCancelCause(req.Context())
	// phase is 0 while waiting for headers, 1 once they arrived, 2 once the
	// per-try timeout fired first.
	var phase atomic.Int32
	var perTry *time.Timer
	if p := ri.route.Retry; p != nil && p.PerTryTimeout > 0 {
		perTry = time.AfterFunc(p.PerTryTimeout, func() {
			if phase.CompareAndSwap(0, 2) {
				cancel(errPerTryTimeout)
			}
		})
	}
	// A shallow copy with its own URL: the attempt changes only the URL's host, Host and
	// Body, and no attempt writes the header map ReverseProxy already cloned (a deep
	// Clone here was one more copy of every header per request).
	out := req.WithContext(ctx)
	u := *req.URL
	out.URL = &u
	out.URL.Host = host.Address
	if ri.route.AutoHostRewrite {
		out.Host = host.Address
	}
	if body != nil {
		out.Body = body.attempt()
		out.GetBody = nil
	}
	done := cl.StartRequest(host)
	start := time.Now()
	resp, err := cl.Transport(req.ProtoMajor).RoundTrip(out)
	if perTry != nil {
		perTry.Stop()
	}
	if !phase.CompareAndSwap(0, 1) && err == nil {
		// The per-try timeout won the race with the response headers.
		resp.Body.Close()
		resp, err = nil, errPerTryTimeout
	}
	var ce *upstream.ConnectError
	if err == nil || !errors.As(err, &ce) {
		cl.CountRequest(host)
	}
	if err != nil {
		done()
		cl.ReleaseRequest()
		cancel(err)
		return nil, ctx, err
	}
	ri.serviceTime = time.Since(start)
	finish := func() {
		done()
		cl.ReleaseRequest()
		cancel(nil)
	}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &trackedRWBody{ReadWriteCloser: rwc, done: finish}
	} else {
		resp.Body = &trackedBody{ReadCloser: resp.Body, done: finish}
	}
	return resp, ctx, nil
}

// trackedBody calls done once, when the body is closed or fully read.
type trackedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// trackedRWBody is trackedBody for upgraded (101) connections.
type trackedRWBody struct {
	io.ReadWriteCloser
	once sync.Once
	done func()
}

func (b *trackedRWBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.once.Do(b.done)
	return err
}

// replayBody keeps the first bytes of a request body so that a retry can
// send the body again. Each attempt reads through its own reader; starting
// a new attempt invalidates the previous one.
type replayBody struct {
	mu       sync.Mutex
	src      io.ReadCloser
	buf      []byte
	limit    int
	overflow bool
	srcErr   error
	gen      int
}

var errStaleAttempt = errors.New("request body belongs to a newer attempt")

func (b *replayBody) replayable() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

func (b *replayBody) attempt() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	return &attemptReader{b: b, gen: b.gen}
}

type attemptReader struct {
	b   *replayBody
	gen int
	off int
}

func (a *attemptReader) Read(p []byte) (int, error) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.gen != b.gen {
		return 0, errStaleAttempt
	}
	if a.off < len(b.buf) {
		n := copy(p, b.buf[a.off:])
		a.off += n
		return n, nil
	}
	if b.srcErr != nil {
		return 0, b.srcErr
	}
	n, err := b.src.Read(p)
	if n > 0 && !b.overflow {
		if len(b.buf)+n <= b.limit {
			b.buf = append(b.buf, p[:n]...)
			a.off += n
		} else {
			b.overflow = true
		}
	}
	if err != nil {
		b.srcErr = err
	}
	return n, err
}

func (a *attemptReader) Close() error { return nil }

// statusWriter records the status sent downstream and sets the Server header.
type statusWriter struct {
	http.ResponseWriter
	status  int
	server  string
	written int64 // response body bytes written
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
		w.Header().Set("Server", w.server)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// newUUID returns a random (version 4) UUID, Envoy's x-request-id format.
func newUUID() string {
	// math/rand/v2's generator (ChaCha8, securely seeded) rather than crypto/rand, which
	// costs a getrandom system call per request here: the id is a correlation id, as
	// Envoy's (from its own non-cryptographic random generator), not a secret.
	var b [16]byte
	binary.LittleEndian.PutUint64(b[0:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:16], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}
