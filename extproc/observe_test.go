package extproc_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/metadata"

	"github.com/skiff-dev/skiff/extproc"
	"github.com/skiff-dev/skiff/telemetry"
)

// A held request is a throttler_try span (Knative's activator span for the wait), child of
// the span whose context the proxy sent in the stream's metadata, and is counted in
// kn.revision.request.queued while held, in kn.revision.request.active once released, and
// in skiff.activator.hold.duration.
func TestHoldSpanAndMetrics(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{Readers: []sdkmetric.Reader{reader}, SpanProcessors: []sdktrace.SpanProcessor{rec}, SamplingRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	am, err := telemetry.NewActivatorMetrics(tel)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, extproc.Config{Tracer: tel.TracerProvider(), Metrics: am})

	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-"+parent+"-01"))
	defer cancel()
	stream, err := h.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(headers(rev)); err != nil {
		t.Fatal(err)
	}
	h.waitHeld(t, rev, 1)
	if got := sumOf(t, reader, telemetry.MetricRequestQueued); got != 1 {
		t.Fatalf("%s while held = %v, want 1", telemetry.MetricRequestQueued, got)
	}
	h.srv.SetRevision(rev, extproc.Revision{Timeout: time.Minute, Endpoints: []string{"10.0.0.1:8080"}})
	resp, err := stream.Recv()
	if err != nil || !isContinue(resp) {
		t.Fatalf("want CONTINUE, got %v %v", resp, err)
	}
	if got := sumOf(t, reader, telemetry.MetricRequestQueued); got != 0 {
		t.Fatalf("%s once released = %v, want 0", telemetry.MetricRequestQueued, got)
	}
	eventually(t, "active counted", func() bool { return sumOf(t, reader, telemetry.MetricRequestActive) == 1 })
	(&request{stream: stream, cancel: cancel}).end(t)
	eventually(t, "active back to 0", func() bool { return sumOf(t, reader, telemetry.MetricRequestActive) == 0 })
	if got := sumOf(t, reader, telemetry.MetricHoldDuration); got != 1 {
		t.Fatalf("%s count %v, want 1", telemetry.MetricHoldDuration, got)
	}

	var hold sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == telemetry.SpanHold {
			hold = s
		}
	}
	if hold == nil {
		t.Fatal("no throttler_try span")
	}
	if hold.SpanContext().TraceID().String() != traceID || hold.Parent().SpanID().String() != parent || !hold.Parent().IsRemote() {
		t.Fatalf("throttler_try in trace %s with parent %s, want trace %s and the proxy's span %s",
			hold.SpanContext().TraceID(), hold.Parent().SpanID(), traceID, parent)
	}
	attrs := map[string]string{}
	for _, a := range hold.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["skiff.held"] != "true" || attrs["kn.revision.name"] != "hello-00001" || attrs["k8s.namespace.name"] != "default" {
		t.Fatalf("throttler_try attributes %v", attrs)
	}
}

// sumOf is the sum of a metric's data points (a histogram's counts).
func sumOf(t *testing.T, reader sdkmetric.Reader, name string) float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					total += float64(dp.Value)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					total += float64(dp.Count)
				}
			}
		}
	}
	return total
}
