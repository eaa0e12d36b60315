package telemetry

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/skiff-dev/skiff/telemetry/otlptest"
)

// scrape reads t's Prometheus endpoint as Prometheus would.
func scrape(t *testing.T, tel *Telemetry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(tel.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse the scrape: %v\n%s", err, body)
	}
	return fams
}

// sample finds the sample of family name whose labels include want.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	f := fams[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

var hello = Revision{Namespace: "default", Service: "hello", Configuration: "hello", Name: "hello-00001"}

// The scrape carries Knative's OpenTelemetry names and attributes (serving
// pkg/activator/handler/metric_handler.go: otelhttp's http.server.request.duration with
// kn.service.name, kn.configuration.name, kn.revision.name, k8s.namespace.name; the
// autoscaler's kn.revision.* gauges, pkg/autoscaler/scaling/metrics.go), translated for
// Prometheus as knative.dev/pkg's exporter does (UnderscoreEscapingWithSuffixes), and the
// OpenCensus-era names with LegacyNames.
func TestPrometheusNames(t *testing.T) {
	tel, err := Setup(context.Background(), Options{ServiceName: "test", Prometheus: true, LegacyNames: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	rm, err := NewRequestMetrics(tel)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rm.Record(context.Background(), hello, "GET", "http", 1, 200, 30*time.Millisecond)
	}
	rm.Record(context.Background(), hello, "GET", "http", 1, 503, time.Second)
	rm.Record(context.Background(), hello, "BREW", "http", 1, 200, time.Millisecond)
	stop, err := RegisterAutoscaler(tel, func() []RevisionScale {
		return []RevisionScale{{Revision: hello, DesiredPods: 3, RequestedPods: 3, ActualPods: 1, ExcessBurstCapacity: -190, Panic: true, Stable: 2.5, PanicValue: 4, Target: 70}}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	fams := scrape(t, tel)
	kn := map[string]string{"k8s_namespace_name": "default", "kn_service_name": "hello", "kn_configuration_name": "hello", "kn_revision_name": "hello-00001"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range kn {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	m, ok := sample(fams, "http_server_request_duration_seconds", with(map[string]string{"http_response_status_code": "200", "http_request_method": "GET"}))
	if !ok || m.GetHistogram().GetSampleCount() != 3 {
		t.Fatalf("http_server_request_duration_seconds{200}: %v %v", ok, m)
	}
	if m, ok := sample(fams, "http_server_request_duration_seconds", with(map[string]string{"http_response_status_code": "503"})); !ok || m.GetHistogram().GetSampleCount() != 1 {
		t.Fatalf("http_server_request_duration_seconds{503}: %v %v", ok, m)
	}
	if _, ok := sample(fams, "http_server_request_duration_seconds", with(map[string]string{"http_request_method": "_OTHER"})); !ok {
		t.Fatal("an unknown method is not _OTHER")
	}
	for name, want := range map[string]float64{
		"kn_revision_pods_desired": 3, "kn_revision_pods_requested": 3, "kn_revision_pods_count": 1,
		"kn_revision_capacity_excess": -190, "kn_revision_panic_mode": 1,
		"kn_revision_concurrency_stable": 2.5, "kn_revision_concurrency_panic": 4, "kn_revision_concurrency_target": 70,
		"autoscaler_desired_pods": 3, "autoscaler_actual_pods": 1, "autoscaler_panic_mode": 1,
		"autoscaler_stable_request_concurrency": 2.5, "autoscaler_target_concurrency_per_pod": 70,
	} {
		labels := kn
		if strings.HasPrefix(name, "autoscaler_") {
			labels = map[string]string{"namespace_name": "default", "service_name": "hello", "configuration_name": "hello", "revision_name": "hello-00001"}
		}
		m, ok := sample(fams, name, labels)
		if !ok || m.GetGauge().GetValue() != want {
			t.Errorf("%s: got %v (found %v), want %v", name, m.GetGauge().GetValue(), ok, want)
		}
	}
	if _, ok := fams["kn_revision_rps_stable"]; ok {
		t.Error("a concurrency-scaled revision reports rps gauges")
	}
	legacy := map[string]string{"namespace_name": "default", "service_name": "hello", "configuration_name": "hello",
		"revision_name": "hello-00001", "response_code": "200", "response_code_class": "2xx"}
	if m, ok := sample(fams, "revision_request_count", legacy); !ok || m.GetCounter().GetValue() != 4 {
		t.Errorf("revision_request_count{200}: %v %v", ok, m)
	}
	if m, ok := sample(fams, "revision_request_latencies", legacy); !ok || m.GetHistogram().GetSampleCount() != 4 {
		t.Errorf("revision_request_latencies{200}: %v %v", ok, m)
	}
}

// Without LegacyNames the scrape has only the current names.
func TestPrometheusWithoutLegacyNames(t *testing.T) {
	tel, err := Setup(context.Background(), Options{Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	rm, _ := NewRequestMetrics(tel)
	rm.Record(context.Background(), hello, "GET", "http", 1, 200, time.Millisecond)
	fams := scrape(t, tel)
	if _, ok := fams["revision_request_count"]; ok {
		t.Fatal("revision_request_count without LegacyNames")
	}
	if _, ok := fams["http_server_request_duration_seconds"]; !ok {
		t.Fatal("no http_server_request_duration_seconds")
	}
}

// Metrics and spans reach a real OTLP receiver over gRPC and over HTTP, from the flag's
// endpoint, from OTEL_EXPORTER_OTLP_ENDPOINT, and from config-observability.
func TestOTLPExport(t *testing.T) {
	rcv := otlptest.Start(t)
	for _, tc := range []struct {
		name string
		opts func(*Options)
	}{
		{"--otlp-endpoint grpc", func(o *Options) { o.OTLPEndpoint = rcv.GRPCAddr() }},
		{"--otlp-endpoint http", func(o *Options) {
			o.OTLPEndpoint, o.OTLPProtocol = "http://"+rcv.HTTPAddr(), ProtocolHTTPProtobuf
		}},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", func(o *Options) {
			env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + rcv.HTTPAddr()}
			o.Getenv = func(k string) string { return env[k] }
		}},
		{"config-observability", func(o *Options) {
			o.Config.Metrics = MetricsConfig{Protocol: ProtocolGRPC, Endpoint: "http://" + rcv.GRPCAddr()}
			o.Config.Tracing = TracingConfig{Protocol: ProtocolHTTPProtobuf, Endpoint: "http://" + rcv.HTTPAddr() + "/v1/traces", SamplingRate: 1, SamplingRateSet: true}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{ServiceName: "svc-" + strings.ReplaceAll(tc.name, " ", "_"), SamplingRate: 1, Config: DefaultConfig()}
			tc.opts(&opts)
			tel, err := Setup(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if !tel.Traces() || tel.Tracing() == nil {
				t.Fatal("tracing is off")
			}
			rm, _ := NewRequestMetrics(tel)
			_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "op")
			rm.Record(trace.ContextWithSpan(context.Background(), span), hello, "GET", "http", 1, 200, time.Millisecond)
			span.End()
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			err = rcv.Wait(10*time.Second, func(spans []otlptest.Span, points []otlptest.Point) bool {
				var gotSpan, gotPoint bool
				for _, s := range spans {
					gotSpan = gotSpan || (s.Service == opts.ServiceName && s.Name == "op")
				}
				for _, p := range points {
					gotPoint = gotPoint || (p.Service == opts.ServiceName && p.Metric == MetricRequestDuration &&
						p.Attributes["kn.revision.name"] == "hello-00001" && p.Value == 1)
				}
				return gotSpan && gotPoint
			})
			if err != nil {
				t.Fatalf("the receiver did not get the span and the data point: %v", err)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		endpoint, protocol string
		base               bool
		want               Target
		err                bool
	}{
		{"localhost:4317", ProtocolGRPC, true, Target{ProtocolGRPC, "localhost:4317", "/v1/traces", true}, false},
		{"http://collector:4318", ProtocolHTTPProtobuf, true, Target{ProtocolHTTPProtobuf, "collector:4318", "/v1/traces", true}, false},
		{"https://collector/otlp", ProtocolHTTPProtobuf, true, Target{ProtocolHTTPProtobuf, "collector:4318", "/otlp/v1/traces", false}, false},
		{"http://jaeger:4318/v1/traces", ProtocolHTTPProtobuf, false, Target{ProtocolHTTPProtobuf, "jaeger:4318", "/v1/traces", true}, false},
		{"https://collector", ProtocolGRPC, false, Target{ProtocolGRPC, "collector:4317", "/v1/traces", false}, false},
		{"collector", ProtocolGRPC, true, Target{}, true},
		{"ftp://collector:21", ProtocolGRPC, true, Target{}, true},
		{"localhost:4317", "thrift", true, Target{}, true},
	} {
		got, err := ParseTarget(tc.endpoint, tc.protocol, "/v1/traces", tc.base)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseTarget(%q, %q, base %v) = %+v, %v; want %+v, error %v", tc.endpoint, tc.protocol, tc.base, got, err, tc.want, tc.err)
		}
	}
}

// Knative's sampler (knative.dev/pkg observability/tracing/provider.go sampleFor): every
// trace at 1, none at 0, a parent-based ratio between.
func TestSampler(t *testing.T) {
	for rate, want := range map[float64]string{1: "AlwaysOnSampler", 2: "AlwaysOnSampler", 0: "AlwaysOffSampler", -1: "AlwaysOffSampler"} {
		if got := Sampler(rate).Description(); got != want {
			t.Errorf("Sampler(%g) = %s, want %s", rate, got, want)
		}
	}
	if got := Sampler(0.25).Description(); !strings.HasPrefix(got, "ParentBased{root:TraceIDRatioBased{0.25}") {
		t.Errorf("Sampler(0.25) = %s", got)
	}
}

// The distributed tracing extension records where an event was created and is not changed
// afterwards (OpenTelemetry's CloudEvents conventions).
func TestEventCreation(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "create")
	defer span.End()
	attrs := map[string]string{"id": "1"}
	if !SetEventCreation(ctx, attrs) {
		t.Fatal("not set")
	}
	sc, ok := EventCreation(attrs)
	if !ok || sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("EventCreation = %v %v, want the span's context %v", sc, ok, span.SpanContext())
	}
	ctx2, other := tp.Tracer("t").Start(context.Background(), "later")
	defer other.End()
	before := attrs[TraceParentAttr]
	if SetEventCreation(ctx2, attrs) || attrs[TraceParentAttr] != before {
		t.Fatal("an event's creation context was replaced")
	}
	if SetEventCreation(context.Background(), map[string]string{}) {
		t.Fatal("set without a span")
	}
	if _, ok := EventCreation(map[string]string{TraceParentAttr: "not-a-traceparent"}); ok {
		t.Fatal("a bad traceparent was read")
	}
}

// The broker's, the work queue's and the xDS server's metrics under their Prometheus names
// (eventing pkg/broker/ingress and filter: kn.eventing.dispatch.duration with the broker,
// the event type and the status code; knative.dev/pkg's kn.workqueue.* by queue name).
func TestPrometheusControlPlaneNames(t *testing.T) {
	tel, err := Setup(context.Background(), Options{Prometheus: true, LegacyNames: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	em, err := NewEventingMetrics(tel)
	if err != nil {
		t.Fatal(err)
	}
	em.Ingress(context.Background(), "default", "default", "dev.example", "http", 202, time.Millisecond)
	em.TriggerAttempt(context.Background(), "default", "default", "t1", "dev.example", "", 200, time.Millisecond)
	em.TriggerAttempt(context.Background(), "default", "default", "t1", "dev.example", "", 500, time.Millisecond)
	wq, err := NewWorkqueueMetrics(tel)
	if err != nil {
		t.Fatal(err)
	}
	wq.NewDepthMetric("serving").Inc()
	wq.NewAddsMetric("serving").Inc()
	xm, err := NewXDSMetrics(tel)
	if err != nil {
		t.Fatal(err)
	}
	xm.Answered(context.Background(), "node-1", "type.googleapis.com/envoy.config.listener.v3.Listener", true, time.Millisecond)

	fams := scrape(t, tel)
	for _, c := range []struct {
		name   string
		labels map[string]string
		count  float64
	}{
		{"kn_eventing_dispatch_duration_seconds", map[string]string{"kn_broker_name": "default", "kn_broker_namespace": "default", "cloudevents_type": "dev.example", "http_response_status_code": "202", "otel_scope_name": ScopeIngress}, 1},
		{"kn_eventing_dispatch_duration_seconds", map[string]string{"messaging_destination_name": "trigger:t1.default", "http_response_status_code": "500", "otel_scope_name": ScopeFilter}, 1},
		{"mt_broker_ingress_event_count", map[string]string{"namespace_name": "default", "broker_name": "default", "event_type": "dev.example", "response_code": "202", "response_code_class": "2xx"}, 1},
		{"mt_broker_filter_event_count", map[string]string{"trigger_name": "t1", "filter_type": "any", "response_code_class": "5xx"}, 1},
		{"kn_workqueue_depth", map[string]string{"name": "serving"}, 1},
		{"kn_workqueue_adds_total", map[string]string{"name": "serving"}, 1},
		{"skiff_xds_nacks_total", map[string]string{"skiff_xds_node": "node-1", "skiff_xds_type": "envoy.config.listener.v3.Listener"}, 1},
		{"skiff_xds_push_duration_seconds", map[string]string{"skiff_xds_node": "node-1", "skiff_xds_result": "nack"}, 1},
	} {
		m, ok := sample(fams, c.name, c.labels)
		if !ok {
			t.Errorf("no %s%v", c.name, c.labels)
			continue
		}
		got := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		if got != c.count {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.count)
		}
	}
}

// JSON logs carry the trace and span ids of the context's span.
func TestLogHandler(t *testing.T) {
	var b strings.Builder
	h, err := NewLogHandler(&b, LogJSON, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "op")
	slog.New(h).With("component", "x").InfoContext(ctx, "hello")
	span.End()
	var rec map[string]any
	if err := json.Unmarshal([]byte(b.String()), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b.String())
	}
	if rec["trace_id"] != span.SpanContext().TraceID().String() || rec["span_id"] != span.SpanContext().SpanID().String() || rec["component"] != "x" {
		t.Fatalf("record %v lacks the span's ids", rec)
	}
	if _, err := NewLogHandler(&b, "xml", slog.LevelInfo); err == nil {
		t.Fatal("log format xml accepted")
	}
}

// Recordings with the same attributes land in one series and different ones in their own,
// also when the attribute set comes from EventingMetrics' cache.
func TestEventingMetricsCachedAttributes(t *testing.T) {
	tel, err := Setup(context.Background(), Options{Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	em, err := NewEventingMetrics(tel)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		em.Ingress(ctx, "ns", "b", "dev.a", "http", 202, time.Millisecond)
		em.TriggerAttempt(ctx, "ns", "b", "t1", "dev.a", "", 200, time.Millisecond)
	}
	em.Ingress(ctx, "ns", "b", "dev.b", "http", 202, time.Millisecond)
	em.Ingress(ctx, "ns", "b", "dev.a", "http", 503, time.Millisecond)
	em.TriggerAttempt(ctx, "ns", "b", "t2", "dev.a", "", 200, time.Millisecond)
	fams := scrape(t, tel)
	for _, c := range []struct {
		labels map[string]string
		count  float64
	}{
		{map[string]string{"cloudevents_type": "dev.a", "http_response_status_code": "202", "otel_scope_name": ScopeIngress}, 3},
		{map[string]string{"cloudevents_type": "dev.b", "http_response_status_code": "202", "otel_scope_name": ScopeIngress}, 1},
		{map[string]string{"cloudevents_type": "dev.a", "http_response_status_code": "503", "otel_scope_name": ScopeIngress}, 1},
		{map[string]string{"messaging_destination_name": "trigger:t1.ns", "otel_scope_name": ScopeFilter}, 3},
		{map[string]string{"messaging_destination_name": "trigger:t2.ns", "otel_scope_name": ScopeFilter}, 1},
	} {
		m, ok := sample(fams, "kn_eventing_dispatch_duration_seconds", c.labels)
		if !ok {
			t.Errorf("no series %v", c.labels)
			continue
		}
		if got := float64(m.GetHistogram().GetSampleCount()); got != c.count {
			t.Errorf("series %v: %v recordings, want %v", c.labels, got, c.count)
		}
	}
}
