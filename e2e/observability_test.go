package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/telemetry"
	"github.com/skiff-dev/skiff/telemetry/otlptest"
)

// observed is the telemetry of one `skiff up` under test: spans go to a real OTLP receiver
// (the control plane's own, and the gateway's, which it is told to export over LDS), and
// metrics are scraped from its Prometheus endpoint over HTTP.
type observed struct {
	rcv     *otlptest.Receiver
	tel     *telemetry.Telemetry
	metrics string // the scrape URL
}

// withTelemetry sets up telemetry as `skiff up --otlp-endpoint` does (gRPC, every trace
// sampled, legacy names on) and gives it to the control plane and the gateway.
func withTelemetry(t *testing.T) (*observed, func(*controlplane.Config)) {
	t.Helper()
	// Spans are exported in batches; a short delay keeps the tests short (the apps read it
	// too: they inherit the environment).
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	o := &observed{rcv: otlptest.Start(t)}
	var err error
	o.tel, err = telemetry.Setup(context.Background(), telemetry.Options{
		ServiceName: "skiff-e2e", Prometheus: true, LegacyNames: true,
		OTLPEndpoint: o.rcv.GRPCAddr(), OTLPProtocol: telemetry.ProtocolGRPC, SamplingRate: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o.tel.MetricsHandler())
	t.Cleanup(func() {
		srv.Close()
		_ = o.tel.Shutdown(context.Background())
	})
	o.metrics = srv.URL + "/metrics"
	return o, func(cfg *controlplane.Config) { cfg.Telemetry = o.tel }
}

// scrape reads the metrics as Prometheus does.
func (o *observed) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(o.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse the scrape: %v", err)
	}
	return fams
}

// value is the sum over the samples of family name whose labels include want: counters,
// gauges, and histograms' counts.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	total, found := 0.0, false
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
		found = true
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	return total, found
}

// After 100 requests to a Service the scrape counts exactly 100, with Knative's labels under
// the current names (http.server.request.duration) and the OpenCensus-era ones
// (revision_request_count); the autoscaler's gauges follow the revision as load scales it.
func TestMetricsCountRequestsAndFollowScaling(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	o, obs := withTelemetry(t)
	s := startSkiff(t, t.TempDir(), fastAutoscaler, obs)
	s.apply(annotated("counted", map[string]string{
		"autoscaling.knative.dev/window":                        "6s",
		"autoscaling.knative.dev/target":                        "1",
		"autoscaling.knative.dev/target-utilization-percentage": "100",
		"autoscaling.knative.dev/min-scale":                     "1",
		"autoscaling.knative.dev/max-scale":                     "3",
	}, ""))
	s.waitReady("ksvc", "counted", nil)
	for i := range 100 {
		if code, _, body := s.get("counted.default.localhost", "/"); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
	}
	kn := map[string]string{"k8s_namespace_name": "default", "kn_service_name": "counted", "kn_configuration_name": "counted",
		"kn_revision_name": "counted-00001", "http_response_status_code": "200", "http_request_method": "GET"}
	legacy := map[string]string{"namespace_name": "default", "service_name": "counted", "configuration_name": "counted",
		"revision_name": "counted-00001", "response_code": "200", "response_code_class": "2xx"}
	var fams map[string]*dto.MetricFamily
	eventually(t, 10*time.Second, "the scrape to count 100 requests", func() bool {
		fams = o.scrape(t)
		n, _ := value(fams, "http_server_request_duration_seconds", kn)
		return n == 100
	})
	if n, _ := value(fams, "revision_request_count", legacy); n != 100 {
		t.Fatalf("revision_request_count = %v, want 100", n)
	}
	if n, _ := value(fams, "revision_request_latencies", legacy); n != 100 {
		t.Fatalf("revision_request_latencies count = %v, want 100", n)
	}
	if n, ok := value(fams, "kn_workqueue_adds_total", map[string]string{"name": "serving"}); !ok || n == 0 {
		t.Errorf("kn_workqueue_adds_total{name=serving} = %v (found %v)", n, ok)
	}
	if n, ok := value(fams, "skiff_xds_push_duration_seconds", map[string]string{"skiff_xds_node": "e2e", "skiff_xds_result": "ack"}); !ok || n == 0 {
		t.Errorf("skiff_xds_push_duration_seconds{node=e2e} = %v (found %v)", n, ok)
	}

	revLabels := map[string]string{"k8s_namespace_name": "default", "kn_service_name": "counted", "kn_revision_name": "counted-00001"}
	gauge := func(name string) float64 {
		v, _ := value(o.scrape(t), name, revLabels)
		return v
	}
	// At rest the autoscaler's own wish may be 0 or 1 (the 100 requests were quick, and
	// Knative reports desired_pods before min-scale applies, as this does); what it asks
	// for is min-scale's 1.
	if d, r, a := gauge("kn_revision_pods_desired"), gauge("kn_revision_pods_requested"), gauge("kn_revision_pods_count"); d > 1 || r != 1 || a != 1 {
		t.Fatalf("at rest: desired %v, requested %v, ready %v; want at most 1, 1 and 1", d, r, a)
	}
	stop := make(chan struct{})
	wait := s.load("counted.default.localhost", "/?sleep=400", 3, stop)
	eventually(t, 40*time.Second, "the gauges to show the scale-up", func() bool {
		fams := o.scrape(t)
		d, _ := value(fams, "kn_revision_pods_desired", revLabels)
		a, _ := value(fams, "kn_revision_pods_count", revLabels)
		c, _ := value(fams, "kn_revision_concurrency_stable", revLabels)
		ad, _ := value(fams, "autoscaler_desired_pods", map[string]string{"revision_name": "counted-00001"})
		return d >= 2 && a >= 2 && c > 0 && ad >= 2
	})
	close(stop)
	if ok, failed := wait(); failed > 0 || ok == 0 {
		t.Fatalf("load: %d ok, %d failed", ok, failed)
	}
	if v := gauge("kn_revision_concurrency_target"); v != 1 {
		t.Errorf("kn_revision_concurrency_target = %v, want the target 1", v)
	}
}

// tracedApp is an echo (or event-display) Service exporting its spans to the receiver.
func tracedApp(name, image, annotations string, rcv *otlptest.Receiver) string {
	return fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %s
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/window: "6s"
%s    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/%s
          env:
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: http://%s
            - name: OTEL_EXPORTER_OTLP_PROTOCOL
              value: http/protobuf
            - name: OTEL_SERVICE_NAME
              value: %s-app
`, name, annotations, image, rcv.HTTPAddr(), name)
}

// byID indexes spans by span id.
func byID(spans []otlptest.Span) map[string]otlptest.Span {
	m := map[string]otlptest.Span{}
	for _, s := range spans {
		m[s.SpanID] = s
	}
	return m
}

// One request to a scaled-to-zero Service is one trace: the proxy's span (exported by the
// gateway's OpenTelemetry tracer, configured over LDS), the activator's hold
// (throttler_try, from the context the proxy sent to ext_proc) and the app's span (from
// the traceparent the proxy sent it), both children of the proxy's.
func TestTraceThroughColdStart(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	o, obs := withTelemetry(t)
	s := startSkiff(t, t.TempDir(), fastAutoscaler, obs)
	s.apply(tracedApp("cold", "echo", "", o.rcv))
	s.waitReady("ksvc", "cold", nil)
	eventually(t, 40*time.Second, "cold-00001 scaled to zero", func() bool {
		r := s.revision("cold-00001")
		return replicas(r.Status.ActualReplicas) == 0 && replicas(r.Status.DesiredReplicas) == 0
	})
	if code, r, body := s.get("cold.default.localhost", "/"); code != 200 || r.Revision != "cold-00001" {
		t.Fatalf("cold request: %d %s", code, body)
	}
	var proxy, hold, app otlptest.Span
	err := o.rcv.Wait(30*time.Second, func(spans []otlptest.Span, _ []otlptest.Point) bool {
		ids := byID(spans)
		for _, sp := range spans {
			if sp.Service != "skiff-gateway" || sp.Attributes["upstream_cluster"] != "default/cold-00001" {
				continue
			}
			proxy = sp
			var h, a bool
			for _, c := range spans {
				if c.TraceID != sp.TraceID || c.ParentID != sp.SpanID {
					continue
				}
				switch {
				case c.Name == telemetry.SpanHold && c.Service == "skiff-e2e":
					hold, h = c, true
				case c.Service == "cold-app":
					app, a = c, true
				}
			}
			if h && a {
				_ = ids
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no trace with the proxy's, the hold's and the app's spans linked: %v\nspans: %+v", err, o.rcv.Spans())
	}
	if hold.Attributes["skiff.held"] != "true" || hold.Attributes["kn.revision.name"] != "cold-00001" {
		t.Errorf("hold span attributes %v", hold.Attributes)
	}
	if proxy.Attributes["http.status_code"] != "200" || proxy.Kind != "SPAN_KIND_SERVER" || proxy.ParentID != "" {
		t.Errorf("proxy span %+v: want a 200 root server span", proxy)
	}
	if !app.Start.After(hold.Start) || hold.End.After(app.Start) {
		t.Errorf("the app's span (%s) should start after the hold (%s to %s) ended", app.Start, hold.Start, hold.End)
	}
}

// One event through a broker is one trace to the subscriber: the proxy's span for the POST,
// the ingress's broker:default.default, the dispatcher's trigger:to-display.default (across
// JetStream, linked to the event's creation context), the proxy's span for the delivery and
// the subscriber's own; the delivered event carries the CloudEvents distributed tracing
// extension naming where it entered the broker.
func TestTraceThroughBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	o, obs := withTelemetry(t)
	s := startSkiff(t, t.TempDir(), fastAutoscaler, withEventing(t), obs)
	rec := newRecorder(t, nil)
	s.apply(tracedApp("display", "event-display", "        autoscaling.knative.dev/min-scale: \"1\"\n", o.rcv) +
		fmt.Sprintf(`            - name: FORWARD_URL
              value: %s
---
`, rec.url("/display")) + fmt.Sprintf(brokerYAML, "default") + `---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: to-display
spec:
  broker: default
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: display
`)
	s.waitReady("ksvc", "display", nil)
	url := s.brokerReady("default")
	s.waitReady("trigger", "to-display", nil)
	if code, body, err := newSender(s.http).send(url, newEvent("traced-1", "com.example.traced", "/test", ""), false); err != nil || code != http.StatusAccepted {
		t.Fatalf("send: %d %s %v", code, body, err)
	}
	eventually(t, 30*time.Second, "the subscriber to get the event", func() bool { return rec.accepted("/display")["traced-1"] > 0 })

	var chain []otlptest.Span
	err := o.rcv.Wait(30*time.Second, func(spans []otlptest.Span, _ []otlptest.Point) bool {
		ids := byID(spans)
		for _, app := range spans {
			if app.Service != "display-app" {
				continue
			}
			// Walk up from the subscriber's span to the root.
			chain = []otlptest.Span{app}
			for cur := app; cur.ParentID != ""; {
				p, ok := ids[cur.ParentID]
				if !ok {
					break
				}
				chain = append(chain, p)
				cur = p
			}
			names := make([]string, len(chain))
			for i, c := range chain {
				names[i] = c.Service + ":" + c.Name
			}
			if strings.Join(names, " < ") == "display-app:POST / < skiff-gateway:ingress < skiff-e2e:trigger:to-display.default < skiff-e2e:broker:default.default < skiff-gateway:ingress" {
				return true
			}
		}
		return false
	})
	if err != nil {
		var got []string
		for _, c := range chain {
			got = append(got, c.Service+":"+c.Name)
		}
		t.Fatalf("no trace from the POST to the subscriber: %v; the subscriber's chain: %v", err, got)
	}
	brokerSpan, triggerSpan := chain[3], chain[2]
	if len(triggerSpan.Links) != 1 || triggerSpan.Links[0].SpanID != brokerSpan.SpanID {
		t.Errorf("the delivery's span links %+v, want the event's creation context (the broker span %s)", triggerSpan.Links, brokerSpan.SpanID)
	}
	if triggerSpan.Attributes["messaging.destination.name"] != "trigger:to-display.default" || triggerSpan.Attributes["cloudevents.id"] != "traced-1" {
		t.Errorf("the delivery's span attributes %v", triggerSpan.Attributes)
	}
	ev := rec.events("/display")[0]
	want := "00-" + brokerSpan.TraceID + "-" + brokerSpan.SpanID + "-01"
	if got := ev.Extensions()[telemetry.TraceParentAttr]; fmt.Sprint(got) != want {
		t.Errorf("the delivered event's traceparent extension %v, want %s (where it entered the broker)", got, want)
	}
}
