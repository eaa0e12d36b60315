package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestStreamingResponse(t *testing.T) {
	release := make(chan struct{})
	streamer := newBackend(t, "v1", false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		<-release
		fmt.Fprint(w, "data: second\n\n")
	})
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	x.set(t, baseConfig(t, streamer, b2))
	g := startGateway(t, x, false)
	g.waitReady(t)

	req, _ := http.NewRequest("GET", g.url(t, "/"), nil)
	req.Host = "tag-hello.default.localhost"
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event not streamed before the response finished: %q %v", line, err)
	}
	close(release)
}

func TestGRPCOverH2C(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("hello", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b2, b2)
	c.clusters = []types.Resource{edsCluster(helloV1, withH2()), edsCluster(helloV2)}
	c.endpoints = []types.Resource{cla(helloV1, ln.Addr().String()), cla(helloV2, b2.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	addr, _ := g.gw.ListenerAddr(listenerName)
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("tag-hello.default.localhost"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "hello"})
	if err != nil {
		t.Fatalf("gRPC through the gateway: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status %v", resp.GetStatus())
	}
	// A gRPC error status travels in trailers.
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
	if err == nil || !contains(err.Error(), "NotFound") {
		t.Errorf("want NotFound from trailers, got %v", err)
	}
}
