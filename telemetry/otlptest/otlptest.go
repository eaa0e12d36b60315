// Package otlptest is an OTLP receiver for tests: a real OTLP/gRPC and OTLP/HTTP (protobuf)
// server decoding what it receives with OpenTelemetry's own protocol buffers
// (go.opentelemetry.io/proto/otlp), as a collector would, and keeping the spans and metric
// data points for the test to inspect.
package otlptest

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	collmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	Name                      string
	TraceID, SpanID, ParentID string // hex; ParentID "" for a root span
	Service                   string // the resource's service.name
	Kind                      string
	Attributes                map[string]string
	Links                     []Link
	StatusError               bool
	Start, End                time.Time
}

// Link is a span link.
type Link struct{ TraceID, SpanID string }

// Point is one received metric data point (sum, gauge or histogram count), flattened.
type Point struct {
	Metric     string
	Service    string
	Attributes map[string]string
	// Value is a sum's or gauge's value, or a histogram's count.
	Value float64
}

// Receiver is a running OTLP receiver.
type Receiver struct {
	grpcLis, httpLis net.Listener
	grpc             *grpc.Server
	http             *http.Server

	mu      sync.Mutex
	spans   []Span
	metrics []Point
	changed chan struct{}
}

// Start runs a receiver on loopback until the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// New runs a receiver on loopback until Close.
func New() (*Receiver, error) {
	r := &Receiver{changed: make(chan struct{})}
	var err error
	if r.grpcLis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if r.httpLis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		r.grpcLis.Close()
		return nil, err
	}
	r.grpc = grpc.NewServer()
	colltracepb.RegisterTraceServiceServer(r.grpc, traceService{r: r})
	collmetricspb.RegisterMetricsServiceServer(r.grpc, metricsService{r: r})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		var m colltracepb.ExportTraceServiceRequest
		if !decode(w, req, &m) {
			return
		}
		r.addSpans(&m)
		writeProto(w, &colltracepb.ExportTraceServiceResponse{})
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		var m collmetricspb.ExportMetricsServiceRequest
		if !decode(w, req, &m) {
			return
		}
		r.addMetrics(&m)
		writeProto(w, &collmetricspb.ExportMetricsServiceResponse{})
	})
	r.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.grpc.Serve(r.grpcLis) }()
	go func() { _ = r.http.Serve(r.httpLis) }()
	return r, nil
}

// Close stops the receiver.
func (r *Receiver) Close() {
	r.grpc.Stop()
	_ = r.http.Close()
}

// Discard drops what was received so far (long runs keep memory flat).
func (r *Receiver) Discard() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans, r.metrics = nil, nil
}

// GRPCAddr is the OTLP/gRPC endpoint (host:port).
func (r *Receiver) GRPCAddr() string { return r.grpcLis.Addr().String() }

// HTTPAddr is the OTLP/HTTP endpoint (host:port), serving /v1/traces and /v1/metrics.
func (r *Receiver) HTTPAddr() string { return r.httpLis.Addr().String() }

func decode(w http.ResponseWriter, req *http.Request, m proto.Message) bool {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return false
	}
	body, err := io.ReadAll(req.Body)
	if err == nil {
		err = proto.Unmarshal(body, m)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, _ := proto.Marshal(m)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

type traceService struct {
	colltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(_ context.Context, m *colltracepb.ExportTraceServiceRequest) (*colltracepb.ExportTraceServiceResponse, error) {
	s.r.addSpans(m)
	return &colltracepb.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	collmetricspb.UnimplementedMetricsServiceServer
	r *Receiver
}

func (s metricsService) Export(_ context.Context, m *collmetricspb.ExportMetricsServiceRequest) (*collmetricspb.ExportMetricsServiceResponse, error) {
	s.r.addMetrics(m)
	return &collmetricspb.ExportMetricsServiceResponse{}, nil
}

func attrString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return v.String()
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = attrString(kv.GetValue())
	}
	return out
}

func (r *Receiver) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Receiver) addSpans(m *colltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range m.GetResourceSpans() {
		svc := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{
					Name: sp.GetName(), TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					Service: svc, Kind: sp.GetKind().String(), Attributes: attrs(sp.GetAttributes()),
					StatusError: sp.GetStatus().GetCode() == 2,
					Start:       time.Unix(0, int64(sp.GetStartTimeUnixNano())), End: time.Unix(0, int64(sp.GetEndTimeUnixNano())),
				}
				if len(sp.GetParentSpanId()) > 0 {
					s.ParentID = hex.EncodeToString(sp.GetParentSpanId())
				}
				for _, l := range sp.GetLinks() {
					s.Links = append(s.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				r.spans = append(r.spans, s)
			}
		}
	}
	r.notify()
}

func (r *Receiver) addMetrics(m *collmetricspb.ExportMetricsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range m.GetResourceMetrics() {
		svc := attrs(rm.GetResource().GetAttributes())["service.name"]
		for _, sm := range rm.GetScopeMetrics() {
			for _, mt := range sm.GetMetrics() {
				add := func(a []*commonpb.KeyValue, v float64) {
					r.metrics = append(r.metrics, Point{Metric: mt.GetName(), Service: svc, Attributes: attrs(a), Value: v})
				}
				number := func(dp *metricspb.NumberDataPoint) float64 {
					if _, ok := dp.GetValue().(*metricspb.NumberDataPoint_AsInt); ok {
						return float64(dp.GetAsInt())
					}
					return dp.GetAsDouble()
				}
				for _, dp := range mt.GetSum().GetDataPoints() {
					add(dp.GetAttributes(), number(dp))
				}
				for _, dp := range mt.GetGauge().GetDataPoints() {
					add(dp.GetAttributes(), number(dp))
				}
				for _, dp := range mt.GetHistogram().GetDataPoints() {
					add(dp.GetAttributes(), float64(dp.GetCount()))
				}
			}
		}
	}
	r.notify()
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Points returns the metric data points received so far, oldest first.
func (r *Receiver) Points() []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Point(nil), r.metrics...)
}

// ErrTimeout is returned by Wait when the condition did not hold in time.
var ErrTimeout = errors.New("otlptest: timed out")

// Wait waits until cond holds for what has been received, or within passes.
func (r *Receiver) Wait(within time.Duration, cond func(spans []Span, points []Point) bool) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond(append([]Span(nil), r.spans...), append([]Point(nil), r.metrics...))
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return ErrTimeout
		}
	}
}
