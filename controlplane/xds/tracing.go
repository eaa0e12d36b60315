package xds

import (
	"errors"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/telemetry"
)

const (
	// TracingClusterName is the cluster through which proxies reach the OpenTelemetry
	// collector their OpenTelemetry tracer exports spans to.
	TracingClusterName = "skiff-otel"
	// OpenTelemetryTracerName is Envoy's OpenTelemetry tracer extension.
	OpenTelemetryTracerName = "envoy.tracers.opentelemetry"
	// DefaultTracingServiceName is the service.name of proxies' spans.
	DefaultTracingServiceName = "skiff-gateway"
	// tracingExportTimeout bounds one export of spans.
	tracingExportTimeout = 5 * time.Second
)

// Tracing makes proxies trace every request with Envoy's OpenTelemetry tracer (the HTTP
// connection manager's tracing, W3C trace context) and export the spans over OTLP to a
// collector reached through the TracingClusterName cluster.
type Tracing struct {
	// GRPC selects OTLP/gRPC; otherwise OTLP/HTTP (protobuf) to Path.
	GRPC bool
	// Address is the collector's host:port (plaintext: proxies are given no TLS for it).
	Address string
	// Path is the OTLP/HTTP path, e.g. /v1/traces.
	Path string
	// SamplingRate is the fraction of new traces sampled (random_sampling), 0 to 1; a
	// request arriving with a sampled traceparent is traced whatever it is.
	SamplingRate float64
	// ServiceName is the spans' service.name; default DefaultTracingServiceName.
	ServiceName string
}

// TranslateTracingCluster returns the cluster reaching the collector: STATIC for an IP,
// STRICT_DNS otherwise, HTTP/2 for OTLP/gRPC.
func TranslateTracingCluster(t Tracing) (*clusterv3.Cluster, error) {
	c, err := translateAddressCluster(TracingClusterName, t.Address, t.GRPC)
	if err != nil {
		return nil, fmt.Errorf("translate tracing cluster: %w", err)
	}
	return c, nil
}

// TranslateTracing returns the HTTP connection manager's tracing configuration: the
// OpenTelemetry tracer exporting to the TracingClusterName cluster, with random_sampling
// set from SamplingRate.
func TranslateTracing(t Tracing) (*hcmv3.HttpConnectionManager_Tracing, error) {
	if t.SamplingRate < 0 || t.SamplingRate > 1 {
		return nil, fmt.Errorf("translate tracing: sampling rate %g is not between 0 and 1", t.SamplingRate)
	}
	if t.Address == "" {
		return nil, errors.New("translate tracing: the collector address is required")
	}
	oc := &tracev3.OpenTelemetryConfig{ServiceName: t.ServiceName}
	if oc.ServiceName == "" {
		oc.ServiceName = DefaultTracingServiceName
	}
	if t.GRPC {
		oc.GrpcService = &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: TracingClusterName}},
			Timeout:         durationpb.New(tracingExportTimeout),
		}
	} else {
		path := t.Path
		if path == "" {
			path = "/v1/traces"
		}
		oc.HttpService = &corev3.HttpService{HttpUri: &corev3.HttpUri{
			Uri:              "http://" + t.Address + path,
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: TracingClusterName},
			Timeout:          durationpb.New(tracingExportTimeout),
		}}
	}
	if err := oc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate tracing: %w", err)
	}
	tc, err := anypb.New(oc)
	if err != nil {
		return nil, fmt.Errorf("translate tracing: %w", err)
	}
	out := &hcmv3.HttpConnectionManager_Tracing{
		Provider:          &tracev3.Tracing_Http{Name: OpenTelemetryTracerName, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: tc}},
		RandomSampling:    &typev3.Percent{Value: t.SamplingRate * 100},
		SpawnUpstreamSpan: wrapperspb.Bool(false),
	}
	if err := out.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate tracing: %w", err)
	}
	return out, nil
}

// withTracing returns l with tracing set on every HTTP connection manager it has (nil t:
// l unchanged).
func withTracing(l *listenerv3.Listener, t *Tracing) (*listenerv3.Listener, error) {
	if t == nil {
		return l, nil
	}
	tr, err := TranslateTracing(*t)
	if err != nil {
		return nil, err
	}
	out := proto.Clone(l).(*listenerv3.Listener)
	for _, fc := range append(out.GetFilterChains(), out.GetDefaultFilterChain()) {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc.GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
				continue
			}
			var hcm hcmv3.HttpConnectionManager
			if err := tc.UnmarshalTo(&hcm); err != nil {
				return nil, fmt.Errorf("listener %s: tracing: %w", l.GetName(), err)
			}
			hcm.Tracing = tr
			a, err := anypb.New(&hcm)
			if err != nil {
				return nil, fmt.Errorf("listener %s: tracing: %w", l.GetName(), err)
			}
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
		}
	}
	if err := out.ValidateAll(); err != nil {
		return nil, fmt.Errorf("listener %s: tracing: %w", l.GetName(), err)
	}
	return out, nil
}

// ProxyTracing is the proxies' tracing for the control plane's own span export: the same
// collector and sampling rate; nil when t is nil. Proxies reach the collector in plaintext
// only (the tracing cluster has no TLS), so an https collector is an error.
func ProxyTracing(t *telemetry.Tracing) (*Tracing, error) {
	if t == nil {
		return nil, nil
	}
	if !t.Target.Insecure {
		return nil, fmt.Errorf("proxies export spans in plaintext only, and the collector is %s", t.Target.URL())
	}
	return &Tracing{
		GRPC: t.Target.Protocol == telemetry.ProtocolGRPC, Address: t.Target.Address, Path: t.Target.Path,
		SamplingRate: min(max(t.SamplingRate, 0), 1),
	}, nil
}
