package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Options says what a process exports. The zero value exports nothing.
type Options struct {
	// ServiceName is the service.name resource attribute (OTEL_SERVICE_NAME wins, as in
	// Knative), e.g. "skiff-up".
	ServiceName string
	// Config is config-observability.
	Config Config
	// Prometheus builds the Prometheus exporter whose scrape endpoint MetricsHandler serves.
	// config-observability's metrics-protocol prometheus turns it on too.
	Prometheus bool
	// LegacyNames adds the OpenCensus-era Prometheus metrics Knative reported before it moved
	// to OpenTelemetry (revision_request_count, autoscaler_desired_pods, event_count, ...)
	// to the scrape endpoint, beside the current names.
	LegacyNames bool
	// OTLPEndpoint exports metrics and traces over OTLP to this collector: host:port
	// (plaintext) or a base URL (http:// or https://; /v1/metrics and /v1/traces are
	// appended for http/protobuf), as OTEL_EXPORTER_OTLP_ENDPOINT. It wins over the
	// OTEL_EXPORTER_OTLP_* environment, which wins over config-observability.
	OTLPEndpoint string
	// OTLPProtocol is grpc or http/protobuf for OTLPEndpoint; empty reads
	// OTEL_EXPORTER_OTLP_PROTOCOL, else grpc.
	OTLPProtocol string
	// SamplingRate is the fraction of new traces sampled when config-observability does not
	// set tracing-sampling-rate (OTEL_TRACES_SAMPLER_ARG wins over both, as in Knative).
	SamplingRate float64
	// Readers and SpanProcessors are added to the providers (tests read what was recorded).
	Readers        []sdkmetric.Reader
	SpanProcessors []sdktrace.SpanProcessor
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Target is where one signal is exported over OTLP.
type Target struct {
	// Protocol is grpc or http/protobuf.
	Protocol string
	// Address is host:port.
	Address string
	// Path is the URL path for http/protobuf (e.g. /v1/traces).
	Path string
	// Insecure is true for plaintext (http:// or a bare host:port).
	Insecure bool
}

// URL is the target as a URL (http/protobuf) or host:port (grpc), for messages.
func (t Target) URL() string {
	scheme := "https"
	if t.Insecure {
		scheme = "http"
	}
	if t.Protocol == ProtocolGRPC {
		return scheme + "://" + t.Address
	}
	return scheme + "://" + t.Address + t.Path
}

// Tracing is how a process traces: where spans go and how many are sampled. Proxies are
// given the same over xDS (Envoy's OpenTelemetry tracer).
type Tracing struct {
	Target Target
	// SamplingRate is the fraction of new traces sampled, 0 to 1; a request arriving with a
	// sampled traceparent is traced whatever it is.
	SamplingRate float64
}

// Telemetry is a process's OpenTelemetry setup: its meter and tracer providers and its
// Prometheus scrape endpoint. A nil *Telemetry records nothing.
type Telemetry struct {
	meter   metric.MeterProvider
	tracer  trace.TracerProvider
	handler http.Handler
	legacy  *Legacy
	tracing *Tracing
	promEP  string
	closers []func(context.Context) error
}

// Setup builds the providers opts ask for. Shutdown flushes and stops them.
func Setup(ctx context.Context, opts Options) (*Telemetry, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	// A zero Config is Knative's defaults.
	for _, p := range []*string{&opts.Config.Metrics.Protocol, &opts.Config.RequestMetrics.Protocol, &opts.Config.Tracing.Protocol} {
		if *p == "" {
			*p = ProtocolNone
		}
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", ConfigName, err)
	}
	t := &Telemetry{}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", cmp.Or(getenv("OTEL_SERVICE_NAME"), opts.ServiceName, "skiff"))))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}

	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	metricsOn := false
	cfg := opts.Config
	if opts.Prometheus || cfg.Metrics.Protocol == ProtocolPrometheus {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		exp, err := otelprom.New(otelprom.WithRegisterer(reg),
			otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(exp))
		t.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
		if opts.LegacyNames {
			t.legacy = newLegacy(reg)
		}
		if cfg.Metrics.Protocol == ProtocolPrometheus {
			t.promEP = cfg.Metrics.Endpoint
		}
		metricsOn = true
	}
	mt, ok, err := metricsTarget(opts, getenv)
	if err != nil {
		return nil, err
	}
	if ok {
		exp, err := metricExporter(ctx, mt)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP metrics to %s: %w", mt.URL(), err)
		}
		var ropts []sdkmetric.PeriodicReaderOption
		if getenv("OTEL_METRIC_EXPORT_INTERVAL") == "" && cfg.Metrics.ExportInterval > 0 {
			ropts = append(ropts, sdkmetric.WithInterval(cfg.Metrics.ExportInterval))
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, ropts...)))
		metricsOn = true
	}
	for _, r := range opts.Readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
		metricsOn = true
	}
	if metricsOn {
		mp := sdkmetric.NewMeterProvider(mopts...)
		t.meter = mp
		t.closers = append(t.closers, mp.Shutdown)
	}

	tt, ok, err := traceTarget(opts, getenv)
	if err != nil {
		return nil, err
	}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	tracingOn := false
	rate := opts.SamplingRate
	if cfg.Tracing.SamplingRateSet {
		rate = cfg.Tracing.SamplingRate
	}
	if v := getenv("OTEL_TRACES_SAMPLER_ARG"); v != "" {
		if rate, err = strconv.ParseFloat(v, 64); err != nil {
			return nil, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG %q: not a number", v)
		}
	}
	if getenv("OTEL_TRACES_SAMPLER") == "" {
		topts = append(topts, sdktrace.WithSampler(Sampler(rate)))
	}
	if ok {
		exp, err := spanExporter(ctx, tt)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP traces to %s: %w", tt.URL(), err)
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
		t.tracing = &Tracing{Target: tt, SamplingRate: rate}
		tracingOn = true
	} else if cfg.Tracing.Protocol == ProtocolStdout {
		exp, err := stdouttrace.New()
		if err != nil {
			return nil, fmt.Errorf("telemetry: stdout traces: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
		tracingOn = true
	}
	for _, p := range opts.SpanProcessors {
		topts = append(topts, sdktrace.WithSpanProcessor(p))
		tracingOn = true
	}
	if tracingOn {
		tp := sdktrace.NewTracerProvider(topts...)
		t.tracer = tp
		t.closers = append(t.closers, tp.Shutdown)
	}
	return t, nil
}

// Sampler is Knative's sampler for a sampling rate (knative.dev/pkg/observability/tracing):
// every trace at 1 or more, none at 0 or less, else that fraction of new traces, following
// the parent's decision for the rest.
func Sampler(rate float64) sdktrace.Sampler {
	switch {
	case rate >= 1:
		return sdktrace.AlwaysSample()
	case rate <= 0:
		return sdktrace.NeverSample()
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(rate))
}

// MeterProvider is the process's meter provider (a no-op one when metrics are off).
func (t *Telemetry) MeterProvider() metric.MeterProvider {
	if t == nil || t.meter == nil {
		return metricnoop.NewMeterProvider()
	}
	return t.meter
}

// TracerProvider is the process's tracer provider (a no-op one when tracing is off).
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t == nil || t.tracer == nil {
		return tracenoop.NewTracerProvider()
	}
	return t.tracer
}

// Traces reports whether the process records spans (a no-op tracer provider otherwise).
func (t *Telemetry) Traces() bool { return t != nil && t.tracer != nil }

// Tracing is where spans are exported, for proxies configured over xDS; nil when traces are
// not exported over OTLP.
func (t *Telemetry) Tracing() *Tracing {
	if t == nil {
		return nil
	}
	return t.tracing
}

// MetricsHandler serves the Prometheus scrape endpoint; nil without the Prometheus exporter.
func (t *Telemetry) MetricsHandler() http.Handler {
	if t == nil {
		return nil
	}
	return t.handler
}

// PrometheusEndpoint is config-observability's metrics-endpoint with metrics-protocol
// prometheus: where the scrape endpoint should listen ("" when not set there).
func (t *Telemetry) PrometheusEndpoint() string {
	if t == nil {
		return ""
	}
	return t.promEP
}

// Legacy holds the OpenCensus-era metrics; nil when off.
func (t *Telemetry) Legacy() *Legacy {
	if t == nil {
		return nil
	}
	return t.legacy
}

// Shutdown flushes what is buffered and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for _, c := range t.closers {
		if err := c(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ParseTarget reads an OTLP endpoint: host:port (plaintext) or a URL. base says the URL is
// OTEL_EXPORTER_OTLP_ENDPOINT-style, to which the signal's path is appended for
// http/protobuf; otherwise the URL's path is used as given, defaulting to the signal's.
func ParseTarget(endpoint, protocol, signalPath string, base bool) (Target, error) {
	if protocol != ProtocolGRPC && protocol != ProtocolHTTPProtobuf {
		return Target{}, fmt.Errorf("unsupported OTLP protocol %q (want grpc or http/protobuf)", protocol)
	}
	t := Target{Protocol: protocol}
	if !strings.Contains(endpoint, "://") {
		if _, _, err := net.SplitHostPort(endpoint); err != nil {
			return Target{}, fmt.Errorf("OTLP endpoint %q: want host:port or a URL", endpoint)
		}
		t.Address, t.Insecure, t.Path = endpoint, true, signalPath
		return t, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return Target{}, fmt.Errorf("OTLP endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "http":
		t.Insecure = true
	case "https":
	default:
		return Target{}, fmt.Errorf("OTLP endpoint %q: scheme %q (want http or https)", endpoint, u.Scheme)
	}
	t.Address = u.Host
	if u.Port() == "" {
		port := "4318"
		if protocol == ProtocolGRPC {
			port = "4317"
		}
		t.Address = net.JoinHostPort(u.Hostname(), port)
	}
	path := strings.TrimSuffix(u.Path, "/")
	switch {
	case base:
		t.Path = path + signalPath
	case path == "":
		t.Path = signalPath
	default:
		t.Path = path
	}
	return t, nil
}

// metricsTarget resolves where metrics go over OTLP: --otlp-endpoint, else the environment,
// else config-observability.
func metricsTarget(opts Options, getenv func(string) string) (Target, bool, error) {
	return resolve(opts, getenv, "METRICS", "/v1/metrics", opts.Config.Metrics.Protocol, opts.Config.Metrics.Endpoint)
}

func traceTarget(opts Options, getenv func(string) string) (Target, bool, error) {
	return resolve(opts, getenv, "TRACES", "/v1/traces", opts.Config.Tracing.Protocol, opts.Config.Tracing.Endpoint)
}

func resolve(opts Options, getenv func(string) string, signal, path, cmProtocol, cmEndpoint string) (Target, bool, error) {
	envProtocol := cmp.Or(getenv("OTEL_EXPORTER_OTLP_"+signal+"_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	if opts.OTLPEndpoint != "" {
		t, err := ParseTarget(opts.OTLPEndpoint, cmp.Or(opts.OTLPProtocol, envProtocol, ProtocolGRPC), path, true)
		if err != nil {
			return t, false, fmt.Errorf("--otlp-endpoint: %w", err)
		}
		return t, true, nil
	}
	if ep := getenv("OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT"); ep != "" {
		t, err := ParseTarget(ep, cmp.Or(envProtocol, ProtocolHTTPProtobuf), path, false)
		if err != nil {
			return t, false, fmt.Errorf("OTEL_EXPORTER_OTLP_%s_ENDPOINT: %w", signal, err)
		}
		return t, true, nil
	}
	if ep := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); ep != "" {
		t, err := ParseTarget(ep, cmp.Or(envProtocol, ProtocolHTTPProtobuf), path, true)
		if err != nil {
			return t, false, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
		}
		return t, true, nil
	}
	if cmProtocol == ProtocolGRPC || cmProtocol == ProtocolHTTPProtobuf {
		ep := cmEndpoint
		if u, err := url.Parse(ep); err == nil && u.Opaque != "" {
			ep = "https://" + ep // as Knative reads an endpoint without a scheme
		}
		t, err := ParseTarget(ep, cmProtocol, path, false)
		if err != nil {
			return t, false, fmt.Errorf("%s: %w", ConfigName, err)
		}
		return t, true, nil
	}
	return Target{}, false, nil
}

const exportTimeout = 10 * time.Second

func metricExporter(ctx context.Context, t Target) (sdkmetric.Exporter, error) {
	if t.Protocol == ProtocolGRPC {
		o := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(t.Address), otlpmetricgrpc.WithTimeout(exportTimeout)}
		if t.Insecure {
			o = append(o, otlpmetricgrpc.WithInsecure())
		}
		return otlpmetricgrpc.New(ctx, o...)
	}
	o := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(t.Address), otlpmetrichttp.WithURLPath(t.Path), otlpmetrichttp.WithTimeout(exportTimeout)}
	if t.Insecure {
		o = append(o, otlpmetrichttp.WithInsecure())
	}
	return otlpmetrichttp.New(ctx, o...)
}

func spanExporter(ctx context.Context, t Target) (sdktrace.SpanExporter, error) {
	if t.Protocol == ProtocolGRPC {
		o := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(t.Address), otlptracegrpc.WithTimeout(exportTimeout)}
		if t.Insecure {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, o...)
	}
	o := []otlptracehttp.Option{otlptracehttp.WithEndpoint(t.Address), otlptracehttp.WithURLPath(t.Path), otlptracehttp.WithTimeout(exportTimeout)}
	if t.Insecure {
		o = append(o, otlptracehttp.WithInsecure())
	}
	return otlptracehttp.New(ctx, o...)
}

// NewSpanExporter is an OTLP span exporter to t, for proxies that export their own spans
// (the gateway's OpenTelemetry tracer).
func NewSpanExporter(ctx context.Context, t Target) (sdktrace.SpanExporter, error) {
	return spanExporter(ctx, t)
}
