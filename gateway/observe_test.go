package gateway_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/skiff-dev/skiff/gateway"
	"github.com/skiff-dev/skiff/telemetry"
	"github.com/skiff-dev/skiff/telemetry/otlptest"
)

const tracedRev = "default/hello-00001"

// revisionCluster is an EDS cluster with the control plane's revision metadata.
func revisionCluster(name string) *clusterv3.Cluster {
	c := edsCluster(name)
	s, _ := structpb.NewStruct(map[string]any{"namespace": "default", "revision": "hello-00001", "service": "hello", "configuration": "hello"})
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"skiff": s}}
	return c
}

// withTracing gives the listener Envoy's OpenTelemetry tracer exporting to cluster over
// gRPC (or over HTTP to its /v1/traces when http), sampling percent% of new traces.
func withTracing(t testing.TB, cluster string, http bool, percent float64) listenerOpt {
	oc := &tracev3.OpenTelemetryConfig{ServiceName: "test-gateway"}
	if http {
		oc.HttpService = &corev3.HttpService{HttpUri: &corev3.HttpUri{
			Uri: "http://" + cluster + "/v1/traces", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster}, Timeout: durationpb.New(5 * time.Second),
		}}
	} else {
		oc.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}}}
	}
	return func(h *hcmv3.HttpConnectionManager) {
		h.Tracing = &hcmv3.HttpConnectionManager_Tracing{
			Provider:       &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(t, oc)}},
			RandomSampling: &typev3.Percent{Value: percent},
		}
	}
}

// The gateway runs the HTTP connection manager's OpenTelemetry tracer from LDS as Envoy
// does: a server span per request, continuing the client's traceparent, exported through
// the collector's cluster, and sent upstream as the request's traceparent. Requests to a
// revision's cluster are counted with Knative's attributes and logged in Envoy's format.
func TestTracingMetricsAndRequestLogs(t *testing.T) {
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			rcv := otlptest.Start(t)
			collector := rcv.GRPCAddr()
			if proto == "http" {
				collector = rcv.HTTPAddr()
			}
			b := newBackend(t, "hello", false, nil)
			x := startXDS(t)
			x.set(t, config{
				listeners: []types.Resource{httpListener(t, "rc", withTracing(t, "otel", proto == "http", 100))},
				routes:    []types.Resource{routeConfig("rc", vhost("hello", []string{"hello.default.example.com"}, routeTo("/", tracedRev)))},
				clusters:  []types.Resource{revisionCluster(tracedRev), staticCluster("otel", []string{collector})},
				endpoints: []types.Resource{cla(tracedRev, b.addr())},
			})
			reader := sdkmetric.NewManualReader()
			tel, err := telemetry.Setup(context.Background(), telemetry.Options{Readers: []sdkmetric.Reader{reader}})
			if err != nil {
				t.Fatal(err)
			}
			logDir := t.TempDir()
			g := startGatewayOpts(t, x, false, nil, func(c *gateway.Config) { c.Telemetry, c.RequestLogDir = tel, logDir })
			g.waitReady(t)

			const parentTrace, parentSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			req, _ := http.NewRequest(http.MethodGet, g.url(t, "/path?q=1"), nil)
			req.Host = "hello.default.example.com"
			req.Header.Set("Traceparent", "00-"+parentTrace+"-"+parentSpan+"-01")
			req.Header.Set("User-Agent", "observe-test")
			resp, err := g.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			up := b.lastRequest().Header.Get("Traceparent")
			m := regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`).FindStringSubmatch(up)
			if m == nil || m[1] != parentTrace || m[2] == parentSpan {
				t.Fatalf("upstream traceparent %q: want trace %s with the gateway's span as parent", up, parentTrace)
			}
			err = rcv.Wait(20*time.Second, func(spans []otlptest.Span, _ []otlptest.Point) bool {
				for _, s := range spans {
					if s.TraceID == parentTrace && s.SpanID == m[2] && s.ParentID == parentSpan && s.Service == "test-gateway" &&
						s.Kind == "SPAN_KIND_SERVER" && s.Attributes["upstream_cluster"] == tracedRev && s.Attributes["http.status_code"] == "200" &&
						s.Attributes["kn.revision.name"] == "hello-00001" {
						return true
					}
				}
				return false
			})
			if err != nil {
				t.Fatalf("no gateway span for the request: %v; got %+v", err, rcv.Spans())
			}

			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			count := uint64(0)
			for _, sm := range rm.ScopeMetrics {
				for _, mt := range sm.Metrics {
					if mt.Name != telemetry.MetricRequestDuration {
						continue
					}
					for _, dp := range mt.Data.(metricdata.Histogram[float64]).DataPoints {
						rev, _ := dp.Attributes.Value(telemetry.KeyRevision)
						svc, _ := dp.Attributes.Value(telemetry.KeyService)
						code, _ := dp.Attributes.Value(telemetry.KeyHTTPStatus)
						if rev.AsString() == "hello-00001" && svc.AsString() == "hello" && code.AsInt64() == 200 {
							count += dp.Count
						}
					}
				}
			}
			if count != 1 {
				t.Fatalf("%s count %d, want 1", telemetry.MetricRequestDuration, count)
			}

			logPath := filepath.Join(logDir, "default", "hello-00001.log")
			eventually(t, 5*time.Second, func() bool { b, _ := os.ReadFile(logPath); return len(b) > 0 }, "request log written")
			line, _ := os.ReadFile(logPath)
			want := regexp.MustCompile(`^\[proxy\] \[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /path\?q=1 HTTP/1\.1" 200 - 0 5 \d+ \d+ "-" "observe-test" "[0-9a-f-]{36}" "hello\.default\.example\.com" "` + regexp.QuoteMeta(b.addr()) + `"\n$`)
			if !want.Match(line) {
				t.Fatalf("request log line %q is not Envoy's default format", line)
			}
		})
	}
}

// Without tracing in the HTTP connection manager the gateway leaves the client's trace
// context alone; an unsupported tracer is NACKed.
func TestTracingOffAndUnsupported(t *testing.T) {
	b := newBackend(t, "hello", false, nil)
	x := startXDS(t)
	c := config{
		listeners: []types.Resource{httpListener(t, "rc")},
		routes:    []types.Resource{routeConfig("rc", vhost("hello", []string{"hello.default.example.com"}, routeTo("/", tracedRev)))},
		clusters:  []types.Resource{revisionCluster(tracedRev)},
		endpoints: []types.Resource{cla(tracedRev, b.addr())},
	}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	req, _ := http.NewRequest(http.MethodGet, g.url(t, "/"), nil)
	req.Host = "hello.default.example.com"
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req.Header.Set("Traceparent", tp)
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := b.lastRequest().Header.Get("Traceparent"); got != tp {
		t.Fatalf("upstream traceparent %q, want the client's %q", got, tp)
	}

	bad := c
	bad.listeners = []types.Resource{httpListener(t, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.Tracing = &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(t, &tracev3.ZipkinConfig{CollectorCluster: "z", CollectorEndpoint: "/api/v2/spans"})}}}
	})}
	before := len(x.nackList())
	x.set(t, bad)
	eventually(t, 5*time.Second, func() bool {
		for _, n := range x.nackList()[before:] {
			if strings.Contains(n, "envoy.tracers.zipkin") && strings.Contains(n, "not supported") {
				return true
			}
		}
		return false
	}, "NACK of the zipkin tracer")
}
