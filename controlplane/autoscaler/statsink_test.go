package autoscaler

import (
	"context"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	prom "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

func family(name string, gauge bool, v float64) *prom.MetricFamily {
	m := &prom.Metric{}
	t := prom.MetricType_COUNTER
	if gauge {
		t, m.Gauge = prom.MetricType_GAUGE, &prom.Gauge{Value: proto.Float64(v)}
	} else {
		m.Counter = &prom.Counter{Value: proto.Float64(v)}
	}
	return &prom.MetricFamily{Name: proto.String(name), Type: t.Enum(), Metric: []*prom.Metric{m}}
}

// Two Envoys push their stats over gRPC as the metrics_service sink does; the sink sums them
// per revision and forgets an Envoy that stops pushing.
func TestStatSinkOverGRPC(t *testing.T) {
	sink := NewStatSink(ClusterStats, time.Minute)
	now := time.Now()
	sink.now = func() time.Time { return now }
	g := grpc.NewServer()
	sink.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	push := func(node string, active, total float64) metricsv3.MetricsService_StreamMetricsClient {
		stream, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = stream.Send(&metricsv3.StreamMetricsMessage{
			Identifier: &metricsv3.StreamMetricsMessage_Identifier{Node: &corev3.Node{Id: node}},
			EnvoyMetrics: []*prom.MetricFamily{
				family("cluster.default/hello-00001.upstream_rq_active", true, active),
				family("cluster.default/hello-00001.upstream_rq_total", false, total),
				family("cluster.skiff-xds.upstream_rq_active", true, 7),
				family("http.skiff-http.downstream_rq_total", false, 99),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return stream
	}
	a := push("envoy-a", 3, 100)
	b := push("envoy-b", 2, 50)
	want := Sample{InFlight: 5, RequestsTotal: 150}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := sink.Scrape(ctx)
		if got["default/hello-00001"] == want && len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink = %v, want only default/hello-00001 = %+v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := b.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute) // envoy-a has gone quiet too
	got, _ := sink.Scrape(ctx)
	if len(got) != 0 {
		t.Errorf("stale pushes still counted: %v", got)
	}
	_ = a.CloseSend()
}
