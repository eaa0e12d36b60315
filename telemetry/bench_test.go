package telemetry

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// BenchmarkRequestMetricsRecord is what the gateway adds to a request to a revision when
// metrics are on: one http.server.request.duration measurement (and, with the legacy
// names, one counter and one histogram), with and without a sampled span on the context.
func BenchmarkRequestMetricsRecord(b *testing.B) {
	for _, bc := range []struct {
		name   string
		legacy bool
		traced bool
	}{{"current", false, false}, {"current+legacy", true, false}, {"current+legacy, traced", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			tel, err := Setup(context.Background(), Options{Prometheus: true, LegacyNames: bc.legacy})
			if err != nil {
				b.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			rm, err := NewRequestMetrics(tel)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if bc.traced {
				sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
				ctx = trace.ContextWithSpanContext(ctx, sc)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rm.Record(ctx, hello, "GET", "http", 1, 200, 3*time.Millisecond)
				}
			})
		})
	}
}
