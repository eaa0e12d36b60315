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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

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
				// As Envoy's Utility::appendXff: the peer joins the list after a bare
				// comma, and headers sent more than once are one comma-joined value.
				if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
					r.Header.Set("X-Forwarded-For", strings.Join(prior, ",")+","+ip)
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
