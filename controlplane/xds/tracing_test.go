package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/skiff-dev/skiff/telemetry"
)

func listenerHCM(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	return &hcm
}

// Proxies get Envoy's OpenTelemetry tracer in the listener (gRPC through the skiff-otel
// cluster, or HTTP to its path) with random_sampling from the sampling rate; every resource
// passes ValidateAll.
func TestTranslateTracing(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Tracing
	}{
		{"grpc", Tracing{GRPC: true, Address: "127.0.0.1:4317", SamplingRate: 0.25}},
		{"http", Tracing{Address: "otel-collector.observability:4318", Path: "/v1/traces", SamplingRate: 1, ServiceName: "envoy-ingress"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := TranslateListener("0.0.0.0", 8080, true)
			if err != nil {
				t.Fatal(err)
			}
			l, err = withTracing(l, &tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.ValidateAll(); err != nil {
				t.Fatal(err)
			}
			tr := listenerHCM(t, l).GetTracing()
			if tr.GetProvider().GetName() != OpenTelemetryTracerName {
				t.Fatalf("provider %q", tr.GetProvider().GetName())
			}
			if got := tr.GetRandomSampling().GetValue(); got != tc.in.SamplingRate*100 {
				t.Fatalf("random_sampling %v, want %v", got, tc.in.SamplingRate*100)
			}
			var oc tracev3.OpenTelemetryConfig
			if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&oc); err != nil {
				t.Fatal(err)
			}
			if tc.in.GRPC {
				if got := oc.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != TracingClusterName {
					t.Fatalf("grpc cluster %q", got)
				}
			} else if got := oc.GetHttpService().GetHttpUri(); got.GetCluster() != TracingClusterName || got.GetUri() != "http://otel-collector.observability:4318/v1/traces" {
				t.Fatalf("http_uri %v", got)
			}
			cl, err := TranslateTracingCluster(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if (cl.GetTypedExtensionProtocolOptions() != nil) != tc.in.GRPC {
				t.Fatalf("HTTP/2 options %v for grpc=%v", cl.GetTypedExtensionProtocolOptions(), tc.in.GRPC)
			}
		})
	}
	for _, bad := range []Tracing{{Address: "127.0.0.1:4317", SamplingRate: 1.5}, {SamplingRate: 1}} {
		if _, err := TranslateTracing(bad); err == nil {
			t.Errorf("TranslateTracing(%+v) accepted", bad)
		}
	}
}

func TestProxyTracing(t *testing.T) {
	got, err := ProxyTracing(&telemetry.Tracing{Target: telemetry.Target{Protocol: telemetry.ProtocolGRPC, Address: "10.0.0.1:4317", Insecure: true}, SamplingRate: 0.5})
	if err != nil || got == nil || !got.GRPC || got.Address != "10.0.0.1:4317" || got.SamplingRate != 0.5 {
		t.Fatalf("ProxyTracing = %+v, %v", got, err)
	}
	if _, err := ProxyTracing(&telemetry.Tracing{Target: telemetry.Target{Protocol: telemetry.ProtocolGRPC, Address: "collector:443"}}); err == nil || !strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("an https collector: %v", err)
	}
	if got, err := ProxyTracing(nil); got != nil || err != nil {
		t.Fatalf("ProxyTracing(nil) = %v, %v", got, err)
	}
}

// A server with Tracing sends the tracing cluster and a listener that traces, also after a
// wasm filter configuration change; with Metrics it records each ACK and NACK by node.
func TestServerTracingAndPushMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{Readers: []sdkmetric.Reader{reader}})
	if err != nil {
		t.Fatal(err)
	}
	xm, err := telemetry.NewXDSMetrics(tel)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080,
		Tracing: &Tracing{GRPC: true, Address: "127.0.0.1:4317", SamplingRate: 1}, Metrics: xm,
		WasmFilters: []WasmFilter{{Name: "w", Path: "/w.wasm"}}})
	if _, ok := h.srv.clusterRes[TracingClusterName]; !ok {
		t.Fatal("no tracing cluster")
	}
	c := h.sotw("envoy-push")
	c.subscribe(resourcev3.ListenerType)
	c.ack(c.recv(resourcev3.ListenerType))
	c.subscribe(resourcev3.ClusterType)
	cds := c.recv(resourcev3.ClusterType)
	c.ack(cds)
	found := false
	for _, r := range cds.GetResources() {
		var cl clusterv3.Cluster
		if err := r.UnmarshalTo(&cl); err != nil {
			t.Fatal(err)
		}
		found = found || cl.GetName() == TracingClusterName
	}
	if !found {
		t.Fatal("CDS has no tracing cluster")
	}
	if err := h.srv.SetWasmFilterConfiguration("w", "{}"); err != nil {
		t.Fatal(err)
	}
	lds := c.recv(resourcev3.ListenerType)
	var l listenerv3.Listener
	if err := lds.GetResources()[0].UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	if listenerHCM(t, &l).GetTracing() == nil {
		t.Fatal("the listener lost its tracing on a wasm configuration change")
	}
	c.nack(lds, lds.GetVersionInfo(), "rejected for the test")

	deadline := time.Now().Add(testTimeout)
	for !func() bool {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		acks, nacks := 0.0, int64(0)
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Histogram[float64]:
					for _, dp := range d.DataPoints {
						if v, _ := dp.Attributes.Value(telemetry.KeyXDSNode); v.AsString() == "envoy-push" {
							if r, _ := dp.Attributes.Value(telemetry.KeyXDSResult); r.AsString() == "ack" {
								acks += float64(dp.Count)
							}
						}
					}
				case metricdata.Sum[int64]:
					if m.Name == telemetry.MetricXDSNACKs {
						for _, dp := range d.DataPoints {
							if v, _ := dp.Attributes.Value(telemetry.KeyXDSType); v.AsString() == "envoy.config.listener.v3.Listener" {
								nacks += dp.Value
							}
						}
					}
				}
			}
		}
		return acks >= 2 && nacks == 1
	}() {
		if time.Now().After(deadline) {
			t.Fatal("the ACKs and the NACK were not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
