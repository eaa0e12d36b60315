package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/skiff-dev/skiff/gateway"
)

// BenchmarkGatewayWasm is the latency of one request through the gateway
// (HTTP/1.1 keep-alive client, one backend) with no Wasm filter, with
// revision-metrics, and with cloudevents (a binary-mode CloudEvent through a
// broker's three trigger filters), each in one run so they compare.
func BenchmarkGatewayWasm(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchGateway(b, "") })
	b.Run("revision-metrics", func(b *testing.B) { benchGateway(b, "revision-metrics") })
	b.Run("cloudevents", func(b *testing.B) { benchGateway(b, "cloudevents") })
	// The forwarded filter behind the composite filter, on requests it does not match:
	// what the common request pays for it (header lookups, no Wasm).
	b.Run("forwarded-unmatched", func(b *testing.B) { benchGateway(b, "forwarded") })
}

func benchGateway(b *testing.B, module string) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer backend.Close()

	var opts []listenerOpt
	switch module {
	case "revision-metrics":
		opts = append(opts, withWasmFirst(wasmFilter(b, "skiff.revision-metrics", "revision-metrics", "")))
	case "cloudevents":
		opts = append(opts, withWasmFirst(wasmFilter(b, "skiff.cloudevents", "cloudevents", brokerFilterConfig)))
	case "forwarded":
		opts = append(opts, withWasmFirst(forwardedComposite(b)))
	}
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {httpListener(b, listenerName, opts...)},
		resourcev3.RouteType:    {routeConfig(listenerName, vhost("all", []string{"*"}, routeTo("/", helloV1)))},
		resourcev3.ClusterType:  {edsCluster(helloV1)},
		resourcev3.EndpointType: {cla(helloV1, backend.Listener.Addr().String())},
	})
	if err != nil {
		b.Fatal(err)
	}
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	if err := cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(context.Background(), cache, nil))
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	gw, err := gateway.New(gateway.Config{
		ADSAddress: ln.Addr().String(), NodeID: nodeID, ListenerAddressOverride: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	var addr net.Addr
	for {
		if a, ok := gw.ListenerAddr(listenerName); ok && gw.Ready() {
			addr = a
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("gateway not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	url := "http://" + addr.String() + "/"
	get := func() { postEvent(b, client, url) }
	const warm = 16 // connections, and one VM instance per GOMAXPROCS slot
	for i := 0; i < warm; i++ {
		get()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		get()
	}
	b.StopTimer()
	if module == "forwarded" {
		if v, _ := gw.Stats().Value("http." + listenerName + ".composite.delegation_success"); v != 0 {
			b.Errorf("the forwarded filter ran on %d requests, want none", v)
		}
	}
	if module == "revision-metrics" {
		if v, _ := gw.Stats().Value(revRequests); v != int64(b.N)+warm {
			b.Errorf("%s = %d, want %d", revRequests, v, b.N+warm)
		}
	}
}

// postEvent sends the benchmarks' request: a binary-mode CloudEvent POST, expecting 200.
func postEvent(b *testing.B, client *http.Client, url string) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"n":1}`))
	for k, v := range map[string]string{
		"ce-specversion": "1.0", "ce-id": "42", "ce-type": "order.created",
		"ce-source": "/eu/shop", "content-type": "application/json",
	} {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}
