package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/gateway"
	"github.com/skiff-dev/skiff/internal/testwait"
	"github.com/skiff-dev/skiff/up"
)

// skiff is one `skiff up` started in-process (package up): control plane and gateway
// talking over real xDS (gRPC) and HTTP on loopback.
type skiff struct {
	t       *testing.T
	dataDir string
	stack   *up.Stack
	cp      *controlplane.ControlPlane
	gw      *gateway.Gateway
	api     *apiclient.Client
	http    string // the gateway's HTTP listener, host:port
	// local is the gateway's cluster-local listener (with LocalListenPort), host:port.
	local string
	// adminURL is the gateway's admin endpoint (/stats).
	adminURL string
}

func moduleRoot(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// startSkiff starts the control plane and gateway on ephemeral loopback ports with dataDir;
// opts adjust the control plane's configuration (e.g. a faster autoscaler).
func startSkiff(t *testing.T, dataDir string, opts ...func(*controlplane.Config)) *skiff {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := controlplane.Config{
		DataDir: dataDir, WorkDir: moduleRoot(t),
		APIAddress: "127.0.0.1:0", XDSAddress: "127.0.0.1:0", ExtProcAddress: "127.0.0.1:0",
		ProxyListenAddress: "127.0.0.1", ProxyListenPort: 0,
		DrainTimeout: 100 * time.Millisecond,
		Logger:       log,
	}
	for _, o := range opts {
		o(&cfg)
	}
	stack, err := up.Start(context.Background(), up.Config{
		ControlPlane: cfg, AdminAddress: "127.0.0.1:0", NodeID: "e2e",
		WasmCacheDir: wasmCacheDir(), ListenerAddressOverride: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatalf("start skiff: %v", err)
	}
	s := &skiff{t: t, dataDir: dataDir, stack: stack, cp: stack.ControlPlane(), gw: stack.Gateway(),
		api: apiclient.New(stack.ControlPlane().APIAddr().String()), adminURL: "http://" + stack.AdminAddr()}
	t.Cleanup(s.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, err := stack.ListenerAddr(ctx, xds.ListenerName)
	if err != nil {
		t.Fatal(err)
	}
	s.http = addr.String()
	if cfg.LocalListenPort != 0 {
		addr, err := stack.ListenerAddr(ctx, xds.LocalListenerName)
		if err != nil {
			t.Fatal(err)
		}
		s.local = addr.String()
	}
	return s
}

// stop shuts both down and waits for every instance to exit.
func (s *skiff) stop() {
	if s.stack == nil {
		return
	}
	if err := s.stack.Close(); err != nil {
		s.t.Errorf("skiff: %v", err)
	}
	s.stack = nil
}

// apply applies a manifest and fails the test on error.
func (s *skiff) apply(manifest string) {
	s.t.Helper()
	if err := s.tryApply(manifest); err != nil {
		s.t.Fatalf("apply: %v", err)
	}
}

func (s *skiff) tryApply(manifest string) error {
	docs, err := apiclient.ReadManifests("-", strings.NewReader(manifest))
	if err != nil {
		return err
	}
	for _, d := range docs {
		if _, err := s.api.Apply(context.Background(), d, "default"); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits until kind/name is Ready and returns it decoded into out.
func (s *skiff) waitReady(kind, name string, out any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	raw, err := apiclient.WaitReady(ctx, s.api, api.LookupKind(kind), "default", name)
	if err != nil {
		s.t.Fatalf("wait for %s %s: %v", kind, name, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatal(err)
		}
	}
}

// echoReply is what examples/echo answers.
type echoReply struct {
	Revision string `json:"revision"`
	Message  string `json:"message"`
	Host     string `json:"host"`
	// MaxInFlight is the most requests the app has had in flight at once.
	MaxInFlight int `json:"maxInFlight"`
	// Listen is the address the app listens on.
	Listen string `json:"listen"`
	// Headers are the request's headers as the app received them.
	Headers map[string]string `json:"headers"`
}

// get sends one request through the gateway with the given Host.
func (s *skiff) get(host, path string) (int, echoReply, string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.http+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r echoReply
	_ = json.Unmarshal(body, &r)
	return resp.StatusCode, r, string(body)
}

// echo sends GET / to host through the gateway with the given request headers and returns
// what the echo app reports; anything but a 200 with its JSON fails the test.
func (s *skiff) echo(host string, header map[string]string) echoReply {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.http+"/", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s with %v: %v", host, header, err)
	}
	defer resp.Body.Close()
	var r echoReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s with %v: %d, %v", host, header, resp.StatusCode, err)
	}
	return r
}

// eventually is testwait.For, under the name this package's tests call.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, within, what, cond)
}

// fastAutoscaler makes the autoscaler decide every 200ms over a 6s stable window (Knative's
// smallest) with a 1s scale-to-zero grace period, so scaling shows within seconds.
func fastAutoscaler(cfg *controlplane.Config) {
	a := autoscaler.DefaultConfig()
	a.TickInterval = 200 * time.Millisecond
	a.StableWindow = 6 * time.Second
	a.ScaleToZeroGracePeriod = time.Second
	cfg.Autoscaler = &a
}

// revision reads a revision.
func (s *skiff) revision(name string) servingv1.Revision {
	s.t.Helper()
	raw, err := s.api.Get(context.Background(), api.LookupKind("rev"), "default", name)
	if err != nil {
		s.t.Fatalf("get revision %s: %v", name, err)
	}
	var r servingv1.Revision
	if err := json.Unmarshal(raw, &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

func replicas(n *int32) int {
	if n == nil {
		return -1
	}
	return int(*n)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("SKIFF_E2E_LOGS") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// taggedHelloYAML is Service hello at its second revision, all traffic on it, its first
// revision kept as tag rev1 at 0%.
func taggedHelloYAML() string {
	return serviceYAML("hello", "two", "") + `  traffic:
    - tag: rev1
      revisionName: hello-00001
      percent: 0
    - latestRevision: true
      percent: 100
`
}

func serviceYAML(name, target string, extra string) string {
	return fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %s
spec:
  template:
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/echo
          env:
            - name: TARGET
              value: %s
%s`, name, target, extra)
}
