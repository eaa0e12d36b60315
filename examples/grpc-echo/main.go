// Command grpc-echo is a tiny gRPC app for Skiff's tests and examples: it serves gRPC over
// cleartext HTTP/2 (h2c) on $PORT (default 8080), as a Knative Service whose port is named
// "h2c". It implements the standard health service (grpc.health.v1.Health), whose Check answers
// SERVING, and Watch, which streams the status every 100ms — enough to see unary and streaming
// calls pass through the proxy. The response metadata carries x-revision ($K_REVISION) and
// x-authority (the :authority the app saw). SIGTERM or SIGINT stop it gracefully.
package main

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", ":"+cmp.Or(os.Getenv("PORT"), "8080"))
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	grpc_health_v1.RegisterHealthServer(srv, &health{revision: os.Getenv("K_REVISION")})
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	os.Stdout.WriteString("grpc-echo: listening on " + ln.Addr().String() + "\n")
	if err := srv.Serve(ln); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// health answers the health service with the app's identity in the response headers.
type health struct {
	grpc_health_v1.UnimplementedHealthServer
	revision string
}

func (h *health) header(ctx context.Context) metadata.MD {
	md := metadata.Pairs("x-revision", h.revision)
	if in, ok := metadata.FromIncomingContext(ctx); ok && len(in.Get(":authority")) > 0 {
		md.Set("x-authority", in.Get(":authority")[0])
	}
	return md
}

func (h *health) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	if err := grpc.SetHeader(ctx, h.header(ctx)); err != nil {
		return nil, err
	}
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

func (h *health) Watch(_ *grpc_health_v1.HealthCheckRequest, stream grpc_health_v1.Health_WatchServer) error {
	if err := stream.SendHeader(h.header(stream.Context())); err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if err := stream.Send(&grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-t.C:
		}
	}
}
