package up

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

func testConfig(t *testing.T) Config {
	return Config{
		ControlPlane: controlplane.Config{
			DataDir:    t.TempDir(),
			APIAddress: "127.0.0.1:0", XDSAddress: "127.0.0.1:0", ExtProcAddress: "127.0.0.1:0",
			ProxyListenAddress: "127.0.0.1",
			Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
		AdminAddress:            "127.0.0.1:0",
		ListenerAddressOverride: "127.0.0.1:0",
	}
}

// The stack serves: the gateway gets its listener over xDS and answers an unknown host with
// Envoy's 404, its admin endpoint (port 0 resolved before start) serves /stats, and ending
// the context given to Start stops every part.
func TestStartServesUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wait, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	addr, err := s.ListenerAddr(wait, xds.ListenerName)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr.String()+"/", nil)
	req.Host = "nothing.default.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown host: %d, want 404", resp.StatusCode)
	}
	if strings.HasSuffix(s.AdminAddr(), ":0") {
		t.Errorf("admin address %s: port 0 was not resolved", s.AdminAddr())
	}
	resp, err = http.Get("http://" + s.AdminAddr() + "/stats")
	if err != nil {
		t.Fatalf("admin /stats: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("admin /stats: %d, want 200", resp.StatusCode)
	}

	cancel()
	select {
	case <-s.Done():
	case <-time.After(time.Minute):
		t.Fatal("the stack did not stop when its context ended")
	}
	if err := s.Wait(); err != nil {
		t.Errorf("Wait after the context ended: %v, want nil", err)
	}
	if _, err := net.Dial("tcp", s.ControlPlane().APIAddr().String()); err == nil {
		t.Error("the API still accepts connections after the stack stopped")
	}
}

// When one part fails the other stops too, and Wait says why: here the gateway cannot bind
// its admin endpoint.
func TestStopsWhenOnePartFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t)
	cfg.AdminAddress = taken.Addr().String()
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(time.Minute):
		s.Close()
		t.Fatal("the stack kept running without its gateway")
	}
	if err := s.Wait(); err == nil || !strings.Contains(err.Error(), "admin address") {
		t.Errorf("Wait: %v, want the gateway's admin address error", err)
	}
}

func TestBadAdminAddress(t *testing.T) {
	cfg := testConfig(t)
	cfg.AdminAddress = "no-port"
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "admin address") {
		t.Errorf("Start: %v, want an error naming the admin address", err)
	}
}
