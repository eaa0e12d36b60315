package proxy

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/skiff-dev/skiff/telemetry"
)

// Observability is what the connection manager records of each request besides Envoy's
// stats. The zero value records nothing.
type Observability struct {
	// Tracer, when set, traces every request as Envoy's HTTP connection manager tracing does:
	// one server span per request continuing the traceparent it came with (the tracer's
	// sampler decides for requests without one), whose context goes upstream in
	// traceparent/tracestate (replacing the client's) and to the ext_proc service in the
	// stream's gRPC metadata.
	Tracer trace.Tracer
	// Metrics records every request routed to a revision's cluster (Knative's request
	// metrics), probes (K-Network-Probe) aside.
	Metrics *telemetry.RequestMetrics
	// RequestLog receives an access log line in Envoy's default format for every request
	// routed to a revision's cluster.
	RequestLog RequestLogger
}

// RequestLogger receives request logs by revision.
type RequestLogger interface {
	// LogRequest takes one access log line (ending in a newline) of a request to rev.
	LogRequest(rev telemetry.Revision, line []byte)
}

// probeHeader marks Knative's network probes, which its request metrics leave out.
const probeHeader = "K-Network-Probe"

// startSpan starts the request's server span from the trace context r carries.
func (cm *ConnectionManager) startSpan(ctx context.Context, r *http.Request, ri *reqInfo) context.Context {
	ctx = telemetry.Propagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, ri.span = cm.opts.Observe.Tracer.Start(ctx, "ingress", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(ri.start))
	if ri.span.IsRecording() {
		ri.span.SetAttributes(
			attribute.String("component", "proxy"),
			attribute.String("http.method", r.Method),
			attribute.String("http.url", "http://"+r.Host+r.URL.RequestURI()),
			attribute.String("http.protocol", r.Proto),
			attribute.String("downstream_cluster", "-"),
			attribute.String("user_agent", r.UserAgent()),
			attribute.String("guid:x-request-id", r.Header.Get("X-Request-Id")),
		)
	}
	return ctx
}

// injectTrace replaces the trace context of an upstream request with the request's span.
func (cm *ConnectionManager) injectTrace(ctx context.Context, h http.Header) {
	if cm.opts.Observe.Tracer == nil {
		return
	}
	h.Del("Traceparent")
	h.Del("Tracestate")
	telemetry.Propagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// observe records a finished request: its metrics, its request log line and its span.
func (cm *ConnectionManager) observe(r *http.Request, ri *reqInfo, code int, sent int64) {
	o := &cm.opts.Observe
	if o.Metrics == nil && o.RequestLog == nil && ri.span == nil {
		return
	}
	d := time.Since(ri.start)
	cl := ri.cluster
	if cl == nil && ri.clusterName != "" && cm.opts.Clusters != nil {
		// Answered before the router (e.g. by the activator): still the revision's request.
		cl = cm.opts.Clusters.Get(ri.clusterName)
	}
	rev, isRev := cl.Revision()
	ctx := context.Background()
	if ri.span != nil {
		ctx = trace.ContextWithSpan(ctx, ri.span)
	}
	if isRev && o.Metrics != nil && r.Header.Get(probeHeader) == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		o.Metrics.Record(ctx, rev, r.Method, scheme, r.ProtoMajor, code, d)
	}
	if isRev && o.RequestLog != nil {
		o.RequestLog.LogRequest(rev, accessLine(r, ri, code, sent, d))
	}
	if sp := ri.span; sp != nil {
		if sp.IsRecording() {
			attrs := []attribute.KeyValue{
				attribute.Int("http.status_code", code),
				attribute.String("response_flags", flagsOf(ri)),
				attribute.String("upstream_cluster", ri.clusterName),
			}
			if ri.host != nil {
				attrs = append(attrs, attribute.String("upstream_address", ri.host.Address))
			}
			if isRev {
				attrs = append(attrs, telemetry.KeyNamespace.String(rev.Namespace), telemetry.KeyRevision.String(rev.Name))
			}
			sp.SetAttributes(attrs...)
			if code >= 500 {
				sp.SetStatus(codes.Error, strconv.Itoa(code))
			}
		}
		sp.End()
	}
}

func flagsOf(ri *reqInfo) string {
	if len(ri.flags) == 0 {
		return "-"
	}
	return strings.Join(ri.flags, ",")
}

// accessLine formats a request in Envoy's default access log format:
//
//	[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//	%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//	%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//	"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
func accessLine(r *http.Request, ri *reqInfo, code int, sent int64, d time.Duration) []byte {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	path := r.Header.Get("X-Envoy-Original-Path")
	if path == "" {
		path = r.URL.RequestURI()
	}
	svc := "-"
	if ri.serviceTime > 0 {
		svc = strconv.FormatInt(ri.serviceTime.Milliseconds(), 10)
	}
	host := "-"
	if ri.host != nil {
		host = ri.host.Address
	}
	var in int64
	if ri.bodyIn != nil {
		in = ri.bodyIn.n.Load()
	}
	b := make([]byte, 0, 256)
	b = append(b, '[')
	b = ri.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, "] \""...)
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, ' ')
	b = append(b, r.Proto...)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, flagsOf(ri)...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, in, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, d.Milliseconds(), 10)
	b = append(b, ' ')
	b = append(b, svc...)
	for _, v := range []string{r.Header.Get("X-Forwarded-For"), r.UserAgent(), r.Header.Get("X-Request-Id"), r.Host, host} {
		b = append(b, " \""...)
		b = append(b, dash(v)...)
		b = append(b, '"')
	}
	return append(b, '\n')
}

// countingBody counts the request body bytes read (BYTES_RECEIVED).
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
