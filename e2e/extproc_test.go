package e2e

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/extproc"
)

// A standalone `skiff extproc` (what runs beside Envoy in a cluster) follows the control
// plane's activation feed: it enforces containerConcurrency with the endpoints the feed
// gives it, and its poke brings a revision back from zero.
func TestStandaloneActivator(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startSkiff(t, t.TempDir(), fastAutoscaler, func(c *controlplane.Config) {
		c.ExtProcAdvertise = lis.Addr().String()
	})
	s.cp.StopExtProc() // only the standalone one may answer

	feed := &extproc.Feed{BaseURL: s.api.BaseURL, Instance: "e2e", ReportEvery: 100 * time.Millisecond}
	srv := extproc.New(extproc.Config{OnDemand: feed.Poke})
	g := grpc.NewServer()
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Serve(lis) })
	wg.Go(func() { _ = feed.Run(ctx, srv) })
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })

	s.apply(annotated("limited", map[string]string{"autoscaling.knative.dev/min-scale": "1"}, "      containerConcurrency: 1\n"))
	s.apply(annotated("sleepy", map[string]string{"autoscaling.knative.dev/window": "6s"}, ""))
	s.waitReady("ksvc", "limited", nil)
	s.waitReady("ksvc", "sleepy", nil)
	for range 5 {
		if code, r, body := s.get("limited.default.localhost", "/"); code != 200 || r.Revision != "limited-00001" {
			t.Fatalf("through the standalone activator: %d %s", code, body)
		}
	}
	if st := srv.Stats()["default/limited-00001"]; st.Total < 5 {
		t.Errorf("the standalone activator saw %d requests, want >= 5", st.Total)
	}
	eventually(t, 40*time.Second, "sleepy-00001 scaled to zero", func() bool {
		return replicas(s.revision("sleepy-00001").Status.ActualReplicas) == 0
	})
	if code, r, body := s.get("sleepy.default.localhost", "/"); code != 200 || r.Revision != "sleepy-00001" {
		t.Fatalf("cold start through the standalone activator: %d %s", code, body)
	}
}
