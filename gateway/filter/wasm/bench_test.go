package wasm

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"

	"github.com/skiff-dev/skiff/gateway/filter"
)

// discardWriter is a reusable ResponseWriter.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

func benchRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://hello.default.example.com/", nil)
	st := &filter.State{}
	st.SetRoute(&filter.RouteInfo{VirtualHost: "default/hello", Route: "r", Cluster: testCluster})
	return r.WithContext(filter.WithState(r.Context(), st))
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
})

// BenchmarkRevisionMetrics is the host-side cost of one request through the
// revision-metrics filter: context create, request headers (property
// xds.cluster_name, counter and gauge), response headers, done, log, delete.
// Compare with BenchmarkNoFilter (the same handler without the filter).
func BenchmarkRevisionMetrics(b *testing.B) {
	f := NewFactory(Options{Logger: testLogger(), Instances: 1, CompilationCache: compileCache})
	defer f.Close()
	flt, err := f.New(filter.BuildContext{}, "skiff.revision-metrics", wasmConfig(b, "revision-metrics", "skiff.revision-metrics", "", wasmv3.FailurePolicy_FAIL_RELOAD))
	if err != nil {
		b.Fatal(err)
	}
	h := flt.Wrap(okHandler)
	r := benchRequest()
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(w, r)
	}
	b.StopTimer()
	if w.code != 200 {
		b.Fatalf("status %d", w.code)
	}
}

// BenchmarkRevisionMetricsParallel runs requests from GOMAXPROCS goroutines
// over as many instances.
func BenchmarkRevisionMetricsParallel(b *testing.B) {
	f := NewFactory(Options{Logger: testLogger(), CompilationCache: compileCache})
	defer f.Close()
	flt, err := f.New(filter.BuildContext{}, "skiff.revision-metrics", wasmConfig(b, "revision-metrics", "skiff.revision-metrics", "", wasmv3.FailurePolicy_FAIL_RELOAD))
	if err != nil {
		b.Fatal(err)
	}
	h := flt.Wrap(okHandler)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := benchRequest()
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			h.ServeHTTP(w, r)
		}
	})
}

// benchBrokerConfig is a broker with three triggers, one per filter dialect
// family (legacy attributes, the new filters, CESQL).
const benchBrokerConfig = `{"broker": "default/default", "triggers": [
  {"name": "orders", "filter": {"attributes": {"type": "order.created"}}},
  {"name": "eu", "filters": [{"prefix": {"source": "/eu/"}}]},
  {"name": "big", "filters": [{"cesql": "type LIKE 'order.%' AND source <> '/test'"}]}
]}`

// BenchmarkCloudEvents is the host-side cost of one binary-mode CloudEvent
// through the cloudevents filter: validation, three trigger filters and the
// x-skiff-triggers header. The request headers are reset each time since the
// filter rewrites them.
func BenchmarkCloudEvents(b *testing.B) {
	f := NewFactory(Options{Logger: testLogger(), Instances: 1, CompilationCache: compileCache})
	defer f.Close()
	flt, err := f.New(filter.BuildContext{}, "skiff.cloudevents", wasmConfig(b, "cloudevents", "skiff.cloudevents", benchBrokerConfig, wasmv3.FailurePolicy_FAIL_RELOAD))
	if err != nil {
		b.Fatal(err)
	}
	h := flt.Wrap(okHandler)
	r := benchRequest()
	r.Method = http.MethodPost
	r.URL.Path = "/default/default" // the broker's path, which the filter looks the broker up by
	ce := http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"42"}, "Ce-Type": {"order.created"},
		"Ce-Source": {"/eu/shop"}, "Content-Type": {"application/json"},
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Header = ce.Clone()
		h.ServeHTTP(w, r)
	}
	b.StopTimer()
	if w.code != 200 {
		b.Fatalf("status %d", w.code)
	}
	if got := r.Header.Get("X-Skiff-Triggers"); got != "orders,eu,big" {
		b.Fatalf("x-skiff-triggers = %q", got)
	}
}

// BenchmarkNoFilter is the baseline of BenchmarkRevisionMetrics.
func BenchmarkNoFilter(b *testing.B) {
	r := benchRequest()
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		okHandler.ServeHTTP(w, r)
	}
}
