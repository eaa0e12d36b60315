package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/skiff-dev/skiff/gateway/upstream"
)

// openTelemetryTracer is the name of Envoy's OpenTelemetry tracer extension, the one
// tracing provider the gateway runs.
const openTelemetryTracer = "envoy.tracers.opentelemetry"

// tracers holds one tracer provider (exporter, batcher, sampler) per distinct HTTP
// connection manager tracing configuration in use; a configuration no listener uses any
// more is shut down.
type tracers struct {
	clusters *upstream.Manager

	mu    sync.Mutex
	byKey map[string]*tracerEntry
}

type tracerEntry struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

func newTracers(clusters *upstream.Manager) *tracers {
	return &tracers{clusters: clusters, byKey: map[string]*tracerEntry{}}
}

// key identifies a tracing configuration.
func tracingKey(t *hcmv3.HttpConnectionManager_Tracing) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(t)
	return string(b)
}

// parsedTracing is a validated tracing configuration.
type parsedTracing struct {
	grpc        bool
	cluster     string
	path        string
	serviceName string
	rate        float64
}

// parseTracing validates an HTTP connection manager's tracing as the gateway runs it: the
// OpenTelemetry tracer exporting through a cluster (grpc_service.envoy_grpc or
// http_service), random_sampling; every other knob at its default.
func parseTracing(t *hcmv3.HttpConnectionManager_Tracing) (parsedTracing, error) {
	var p parsedTracing
	prov := t.GetProvider()
	if prov == nil {
		return p, errors.New("tracing.provider is required (the gateway has no default tracer)")
	}
	if prov.GetName() != openTelemetryTracer {
		return p, fmt.Errorf("tracing.provider %q is not supported (only %s)", prov.GetName(), openTelemetryTracer)
	}
	var oc tracev3.OpenTelemetryConfig
	if err := prov.GetTypedConfig().UnmarshalTo(&oc); err != nil {
		return p, fmt.Errorf("tracing.provider.typed_config: want envoy.config.trace.v3.OpenTelemetryConfig: %w", err)
	}
	if err := oc.ValidateAll(); err != nil {
		return p, fmt.Errorf("tracing.provider: %w", err)
	}
	switch {
	case oc.GetSampler() != nil, len(oc.GetResourceDetectors()) > 0, oc.GetExporter() != nil:
		return p, errors.New("tracing.provider: sampler, resource_detectors and exporter are not supported")
	case len(t.GetCustomTags()) > 0:
		return p, errors.New("tracing.custom_tags is not supported")
	}
	if cs := t.GetClientSampling(); cs != nil && cs.GetValue() != 100 {
		return p, errors.New("tracing.client_sampling other than 100% is not supported")
	}
	if os := t.GetOverallSampling(); os != nil && os.GetValue() != 100 {
		return p, errors.New("tracing.overall_sampling other than 100% is not supported")
	}
	p.serviceName = oc.GetServiceName()
	if p.serviceName == "" {
		p.serviceName = "unknown_service:envoy" // Envoy's default
	}
	p.rate = 1 // Envoy's default random_sampling is 100%
	if rs := t.GetRandomSampling(); rs != nil {
		p.rate = rs.GetValue() / 100
	}
	switch {
	case oc.GetGrpcService() != nil:
		eg := oc.GetGrpcService().GetEnvoyGrpc()
		if eg == nil {
			return p, errors.New("tracing.provider: grpc_service must be envoy_grpc (a cluster)")
		}
		p.grpc, p.cluster = true, eg.GetClusterName()
	case oc.GetHttpService() != nil:
		uri := oc.GetHttpService().GetHttpUri()
		p.cluster = uri.GetCluster()
		u, err := url.Parse(uri.GetUri())
		if err != nil || p.cluster == "" {
			return p, fmt.Errorf("tracing.provider.http_service.http_uri: want a uri and a cluster (uri %q)", uri.GetUri())
		}
		p.path = u.Path
		if p.path == "" {
			p.path = "/v1/traces"
		}
	default:
		return p, errors.New("tracing.provider: grpc_service or http_service is required")
	}
	return p, nil
}

// get returns the tracer for a tracing configuration, creating its provider on first use.
func (ts *tracers) get(t *hcmv3.HttpConnectionManager_Tracing) (trace.Tracer, string, error) {
	p, err := parseTracing(t)
	if err != nil {
		return nil, "", err
	}
	key := tracingKey(t)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if e, ok := ts.byKey[key]; ok {
		return e.tracer, key, nil
	}
	exp, err := ts.exporter(p)
	if err != nil {
		return nil, "", fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", p.serviceName)))
	if err != nil {
		return nil, "", fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(p.rate))))
	e := &tracerEntry{tp: tp, tracer: tp.Tracer("envoy")}
	ts.byKey[key] = e
	return e.tracer, key, nil
}

// dialCluster connects to a host of the named cluster, picked by its load balancer at each
// connection, as Envoy's async clients reach a cluster; over TLS when the cluster has a TLS
// transport socket, offering alpn (unless the socket names its own ALPN protocols).
func (ts *tracers) dialCluster(name, alpn string) func(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context) (net.Conn, error) {
		cl := ts.clusters.Get(name)
		if cl == nil {
			return nil, fmt.Errorf("tracing cluster %q not found", name)
		}
		h, err := cl.Pick(nil)
		if err != nil {
			return nil, fmt.Errorf("tracing cluster %q: %w", name, err)
		}
		conn, err := d.DialContext(ctx, "tcp", h.Address)
		if err != nil || cl.TLSConfig() == nil {
			return conn, err
		}
		// The transport socket is below the exporter's protocol, as in Envoy: SNI and the
		// certificate checks are the cluster's.
		cfg := cl.TLSConfig().Clone()
		if len(cfg.NextProtos) == 0 {
			cfg.NextProtos = []string{alpn}
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tracing cluster %q: %w", name, err)
		}
		return tc, nil
	}
}

func (ts *tracers) exporter(p parsedTracing) (sdktrace.SpanExporter, error) {
	alpn := "http/1.1"
	if p.grpc {
		alpn = "h2"
	}
	dial := ts.dialCluster(p.cluster, alpn)
	ctx := context.Background()
	if p.grpc {
		return otlptracegrpc.New(ctx,
			otlptracegrpc.WithEndpoint("passthrough:///"+p.cluster), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithDialOption(grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx) })),
			otlptracegrpc.WithTimeout(5*time.Second))
	}
	tr := &http.Transport{
		DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		MaxIdleConns:    4,
		IdleConnTimeout: time.Minute,
	}
	return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(p.cluster), otlptracehttp.WithURLPath(p.path),
		otlptracehttp.WithInsecure(), otlptracehttp.WithHTTPClient(&http.Client{Transport: tr}),
		otlptracehttp.WithTimeout(5*time.Second))
}

// retain shuts down, after drain, the providers whose configuration no listener uses.
func (ts *tracers) retain(used map[string]bool, drain time.Duration, wg *sync.WaitGroup) {
	ts.mu.Lock()
	var gone []*tracerEntry
	for k, e := range ts.byKey {
		if !used[k] {
			gone = append(gone, e)
			delete(ts.byKey, k)
		}
	}
	ts.mu.Unlock()
	for _, e := range gone {
		wg.Go(func() {
			// Requests on draining listeners may still end their spans meanwhile.
			time.Sleep(drain)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = e.tp.Shutdown(ctx)
		})
	}
}

// close flushes and stops every provider.
func (ts *tracers) close() {
	ts.mu.Lock()
	es := ts.byKey
	ts.byKey = map[string]*tracerEntry{}
	ts.mu.Unlock()
	for _, e := range es {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = e.tp.Shutdown(ctx)
		cancel()
	}
}
