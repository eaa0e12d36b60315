package extproc_test

import (
	"context"
	"errors"
	"io"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/skiff-dev/skiff/extproc"
)

// BenchmarkReleasedRoundTrip measures what the service adds to a request whose revision has
// capacity: open the Process stream, send the request headers, read CONTINUE, end the stream
// (half-close, read its end), over gRPC on loopback.
func BenchmarkReleasedRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name string
		cc   int
	}{
		{"unlimited", 0},      // no pinning, Envoy load-balances
		{"pinned-cc100", 100}, // least-loaded pick + dynamic metadata
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHarness(b, extproc.Config{})
			h.srv.SetRevision(rev, extproc.Revision{ContainerConcurrency: bc.cc,
				Endpoints: []string{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}})
			req := headers(rev)
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					roundTrip(b, h, req)
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						roundTrip(b, h, req)
					}
				})
			})
		})
	}
}

func roundTrip(b *testing.B, h *harness, req *extprocv3.ProcessingRequest) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := h.client.Process(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(req); err != nil {
		b.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || !isContinue(resp) {
		b.Fatalf("want CONTINUE: %v %v", resp, err)
	}
	if err := stream.CloseSend(); err != nil {
		b.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		b.Fatal(err)
	}
}
