package local_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/local"
	"github.com/skiff-dev/skiff/internal/testwait"
)

const echoImport = "github.com/skiff-dev/skiff/examples/echo"

// Built once by TestMain.
var (
	modRoot string // the Skiff module, WorkDir of every test runtime
	echoBin string // examples/echo, built
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return 0, fmt.Errorf("go env GOMOD: %w", err)
	}
	modRoot = filepath.Dir(strings.TrimSpace(string(out)))
	dir, err := os.MkdirTemp("", "skiff-local-test")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	echoBin = filepath.Join(dir, "echo")
	build := exec.Command("go", "build", "-o", echoBin, echoImport)
	build.Dir = modRoot
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building echo: %w\n%s", err, out)
	}
	return m.Run(), nil
}

// changes counts OnChange calls.
type changes struct{ n atomic.Int64 }

func newRuntime(t *testing.T, edit func(*local.Config)) (*local.Runtime, *changes) {
	t.Helper()
	ch := &changes{}
	cfg := local.Config{
		DataDir:        t.TempDir(),
		WorkDir:        modRoot,
		Logger:         slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnChange:       func(string, string) { ch.n.Add(1) },
		DrainTimeout:   20 * time.Millisecond,
		MaxGracePeriod: 5 * time.Second,
		RestartBackoff: 50 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	rt := local.New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rt, ch
}

func newRevision(name string, c corev1.Container) *servingv1.Revision {
	rev := &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{
			servingv1.ServiceLabel: "hello", servingv1.ConfigurationLabel: "hello-config",
		}},
		Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{c}}},
	}
	rev.Spec.SetDefaults(context.Background())
	return rev
}

// eventually is testwait.For, under the name this package's tests call.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, within, what, cond)
}

func waitState(t *testing.T, rt *local.Runtime, rev *servingv1.Revision, within time.Duration, what string, cond func(runtime.State) bool) runtime.State {
	t.Helper()
	var st runtime.State
	eventually(t, within, what, func() bool {
		st = rt.State(rev.Namespace, rev.Name)
		return cond(st)
	})
	return st
}

type echoReply struct {
	Revision string `json:"revision"`
	Service  string `json:"service"`
	Message  string `json:"message"`
}

func get(t *testing.T, ep runtime.Endpoint) (echoReply, http.Header) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(ep.Address, strconv.Itoa(int(ep.Port))) + "/")
	if err != nil {
		t.Fatalf("GET %v: %v", ep, err)
	}
	defer resp.Body.Close()
	var r echoReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decoding the answer of %v: %v", ep, err)
	}
	return r, resp.Header
}

func refused(ep runtime.Endpoint) bool {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(ep.Address, strconv.Itoa(int(ep.Port))), time.Second)
	if err != nil {
		return true
	}
	conn.Close()
	return false
}

func TestKoImageScalesUpAndDown(t *testing.T) {
	rt, ch := newRuntime(t, nil)
	rev := newRevision("hello-00001", corev1.Container{Image: "ko://" + echoImport})
	ctx := context.Background()

	if err := rt.Scale(ctx, rev, 2); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, rev, 60*time.Second, "two ready instances", func(s runtime.State) bool { return s.Ready == 2 })
	if st.Desired != 2 || len(st.Endpoints) != 2 || st.Failed || st.Endpoints[0] == st.Endpoints[1] {
		t.Fatalf("state = %+v, want 2 desired, 2 distinct endpoints, not failed", st)
	}
	for _, ep := range st.Endpoints {
		r, h := get(t, ep)
		if r.Revision != "hello-00001" || h.Get("X-Revision") != "hello-00001" || r.Service != "hello" {
			t.Errorf("endpoint %v answered %+v (X-Revision %q), want revision hello-00001 of service hello", ep, r, h.Get("X-Revision"))
		}
	}
	if ch.n.Load() == 0 {
		t.Error("OnChange was never called")
	}

	if err := rt.Scale(ctx, rev, 1); err != nil { // idempotent scaling down by one
		t.Fatal(err)
	}
	st1 := waitState(t, rt, rev, 10*time.Second, "one ready instance", func(s runtime.State) bool { return s.Ready == 1 && len(s.Endpoints) == 1 })
	if err := rt.Scale(ctx, rev, 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, rev, 10*time.Second, "no ready instance", func(s runtime.State) bool { return s.Ready == 0 && len(s.Endpoints) == 0 && s.Desired == 0 })
	eventually(t, 10*time.Second, "every process to be gone", func() bool {
		return refused(st.Endpoints[0]) && refused(st.Endpoints[1]) && refused(st1.Endpoints[0])
	})
	if st := rt.State(rev.Namespace, rev.Name); st.Restarts != 0 || st.Reason != "" {
		t.Errorf("after scaling to zero: %+v, want no restarts and no reason", st)
	}
}

func TestCommandRevisionGetsEnvAndLogs(t *testing.T) {
	dataDir := t.TempDir()
	rt, _ := newRuntime(t, func(c *local.Config) { c.DataDir = dataDir })
	rev := newRevision("cmd-00001", corev1.Container{
		Image:   "registry.example.com/ignored:latest", // command wins over the image
		Command: []string{echoBin},
		Env:     []corev1.EnvVar{{Name: "TARGET", Value: "$(K_REVISION) on $(PORT)"}, {Name: "PORT", Value: "1"}},
	})
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, rev, 10*time.Second, "a ready instance", func(s runtime.State) bool { return s.Ready == 1 })
	r, _ := get(t, st.Endpoints[0])
	want := fmt.Sprintf("Hello cmd-00001 on %d!", st.Endpoints[0].Port)
	if r.Revision != "cmd-00001" || r.Message != want {
		t.Errorf("answer %+v, want revision cmd-00001 and message %q", r, want)
	}

	start := time.Now()
	if err := rt.Remove(context.Background(), rev.Namespace, rev.Name); err != nil {
		t.Fatal(err)
	}
	if st := rt.State(rev.Namespace, rev.Name); st.Desired != 0 || len(st.Endpoints) != 0 {
		t.Errorf("state after Remove = %+v, want zero", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.WaitRemoved(ctx, rev.Namespace, rev.Name); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second { // echo stops on SIGTERM; no SIGKILL needed
		t.Errorf("stopping took %v, want echo to stop on SIGTERM at once", took)
	}
	if !refused(st.Endpoints[0]) {
		t.Error("the instance still listens after WaitRemoved returned")
	}
	logs, err := os.ReadFile(filepath.Join(dataDir, "logs", "default", "cmd-00001.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), `[0] echo: revision "cmd-00001" listening on`) {
		t.Errorf("log file lacks the app's prefixed output:\n%s", logs)
	}
}

func TestUnrunnableRevisionsFailFast(t *testing.T) {
	rt, ch := newRuntime(t, nil)
	for _, tc := range []struct {
		name      string
		container corev1.Container
		reason    string
		message   []string
	}{
		{"image-00001", corev1.Container{Image: "nginx:1.27"}, runtime.ReasonImageUnsupported,
			[]string{`"nginx:1.27"`, "spec.containers[0].command", "ko://"}},
		{"valuefrom-00001", corev1.Container{Image: "ko://" + echoImport, Env: []corev1.EnvVar{
			{Name: "A", Value: "a"},
			{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}},
		}}, runtime.ReasonUnsupported, []string{"spec.containers[0].env[1].valueFrom"}},
		{"grpc-00001", corev1.Container{Command: []string{echoBin}, ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 8080}},
		}}, runtime.ReasonUnsupported, []string{"readinessProbe.grpc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := newRevision(tc.name, tc.container)
			if err := rt.Scale(context.Background(), rev, 1); err != nil {
				t.Fatal(err)
			}
			st := rt.State(rev.Namespace, rev.Name) // no waiting: admission is synchronous
			if !st.Failed || st.Reason != tc.reason || st.Desired != 1 || st.Ready != 0 {
				t.Fatalf("state = %+v, want Failed with reason %s", st, tc.reason)
			}
			for _, m := range tc.message {
				if !strings.Contains(st.Message, m) {
					t.Errorf("message %q does not mention %s", st.Message, m)
				}
			}
		})
	}
	eventually(t, 5*time.Second, "OnChange", func() bool { return ch.n.Load() > 0 })
}

func TestBuildFailure(t *testing.T) {
	rt, _ := newRuntime(t, nil)
	rev := newRevision("broken-00001", corev1.Container{Image: "ko://github.com/skiff-dev/skiff/examples/does-not-exist"})
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, rev, 60*time.Second, "the build to fail", func(s runtime.State) bool { return s.Failed })
	if st.Reason != runtime.ReasonBuildFailed || !strings.Contains(st.Message, "does-not-exist") || st.Ready != 0 {
		t.Errorf("state = %+v, want BuildFailed naming the package", st)
	}
}

func TestCrashingInstanceIsRestarted(t *testing.T) {
	rt, _ := newRuntime(t, func(c *local.Config) { c.CrashLoopLimit = 3 })
	rev := newRevision("crash-00001", corev1.Container{
		Command: []string{"sh", "-c", "echo starting; echo boom >&2; exit 3"},
	})
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, rev, 10*time.Second, "a restart", func(s runtime.State) bool { return s.Restarts >= 1 })
	if st.Reason != "ExitCode3" || st.Message != "Container failed with: boom" || st.Ready != 0 {
		t.Errorf("state = %+v, want reason ExitCode3 and message %q", st, "Container failed with: boom")
	}
	if st.Restarts < 3 && st.Failed {
		t.Errorf("failed after %d restarts, want after 3", st.Restarts)
	}
	st = waitState(t, rt, rev, 10*time.Second, "the crash loop to fail the revision", func(s runtime.State) bool { return s.Failed })
	if st.Restarts < 3 || st.Reason != "ExitCode3" {
		t.Errorf("state = %+v, want Failed after 3 restarts with reason ExitCode3", st)
	}
}

func TestMissingCommandFailsToStart(t *testing.T) {
	rt, _ := newRuntime(t, func(c *local.Config) { c.CrashLoopLimit = 2 })
	rev := newRevision("missing-00001", corev1.Container{Command: []string{"./no/such/program"}})
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, rev, 10*time.Second, "the revision to fail", func(s runtime.State) bool { return s.Failed })
	if st.Reason != runtime.ReasonStartError || !strings.Contains(st.Message, filepath.Join(modRoot, "no/such/program")) {
		t.Errorf("state = %+v, want StartError naming the program resolved against WorkDir", st)
	}
}

func TestReadinessProbePathIsHonoured(t *testing.T) {
	rt, _ := newRuntime(t, nil)
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromInt32(8080), // the container port: locally the instance's PORT is probed
				HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}},
			}},
			PeriodSeconds: 1, FailureThreshold: 1,
		}
	}
	bad := newRevision("unready-00001", corev1.Container{Command: []string{echoBin}, ReadinessProbe: probe("/?status=503")})
	good := newRevision("ready-00001", corev1.Container{Command: []string{echoBin}, ReadinessProbe: probe("/healthz")})
	for _, rev := range []*servingv1.Revision{bad, good} {
		if err := rt.Scale(context.Background(), rev, 1); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, rt, good, 10*time.Second, "the /healthz revision to be ready", func(s runtime.State) bool { return s.Ready == 1 })
	st := waitState(t, rt, bad, 10*time.Second, "the 503 revision to report its probe",
		func(s runtime.State) bool { return s.Reason == runtime.ReasonReadinessProbeFailed })
	if st.Ready != 0 || len(st.Endpoints) != 0 || st.Failed || !strings.Contains(st.Message, "503") {
		t.Errorf("state = %+v, want unready, not failed, a message naming 503", st)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	rt := local.New(local.Config{DataDir: t.TempDir(), WorkDir: modRoot, DrainTimeout: -1,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	rev := newRevision("close-00001", corev1.Container{Command: []string{echoBin}})
	if err := rt.Scale(context.Background(), rev, 2); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, rev, 10*time.Second, "two ready instances", func(s runtime.State) bool { return s.Ready == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ep := range st.Endpoints {
		if !refused(ep) {
			t.Errorf("%v still listens after Close", ep)
		}
	}
	if err := rt.Scale(context.Background(), rev, 1); !errors.Is(err, local.ErrClosed) {
		t.Errorf("Scale after Close = %v, want ErrClosed", err)
	}
	if err := rt.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
