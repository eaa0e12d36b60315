package kube

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane"
)

// kubectlPath finds the kubectl `make kube-bins` builds, or skips the test saying why.
func kubectlPath(t testing.TB) string {
	dir := os.Getenv("SKIFF_KUBE_BIN")
	if dir == "" {
		dir = filepath.Join(moduleRoot(t), "bin", "kube")
	}
	p := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping the kubectl tests: kubectl not built (run `make kube-bins`): %v", err)
	}
	return p
}

// skiffUp is `skiff up` in-process: the control plane (with the API) and the gateway, on
// loopback ports; it stops when the test ends.
type skiffUp struct {
	api, http  string
	kubeconfig string
}

func startSkiffUp(t *testing.T) *skiffUp {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cp, err := controlplane.New(controlplane.Config{
		DataDir: t.TempDir(), WorkDir: moduleRoot(t),
		APIAddress: "127.0.0.1:0", XDSAddress: "127.0.0.1:0", ExtProcAddress: "127.0.0.1:0",
		ProxyListenAddress: "127.0.0.1", DrainTimeout: 100 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := cp.Run(ctx); err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	s := &skiffUp{api: cp.APIAddr().String(), http: runGateway(t, cp.XDSAddr().String())}
	// The context `skiff kubeconfig` writes.
	s.kubeconfig = filepath.Join(t.TempDir(), "config")
	if _, err := apiclient.New(s.api).WriteKubeconfig(context.Background(), s.kubeconfig, apiclient.KubeconfigOptions{SetCurrent: true}); err != nil {
		t.Fatal(err)
	}
	return s
}

// kubectl runs kubectl against skiff up and returns its stdout and stderr.
func (s *skiffUp) kubectl(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlPath(t), append([]string{"--kubeconfig", s.kubeconfig}, args...)...)
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+filepath.Join(filepath.Dir(s.kubeconfig), "cache"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (s *skiffUp) mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := s.kubectl(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// lockedBuffer is a goroutine-safe output buffer for a command running in the background.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fields splits kubectl's table output into rows of columns.
func rows(out string) [][]string {
	var r [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		r = append(r, strings.Fields(line))
	}
	return r
}

// The real kubectl against `skiff up`, as a Knative user drives a cluster: apply a Knative
// Service, see it with Knative's columns, wait for it, watch it roll to a new revision,
// patch a traffic split, apply server-side (twice, without conflict), explain its schema,
// have an invalid document refused naming the field, and delete it with what it owns.
func TestKubectlAgainstSkiffUp(t *testing.T) {
	kubectlPath(t)
	s := startSkiffUp(t)

	if out := s.mustKubectl(t, "apply", "-f", "examples/hello.yaml"); !strings.Contains(out, "service.serving.knative.dev/hello created") {
		t.Errorf("apply: %q", out)
	}
	// Knative's printer columns (serving config/core/300-resources/service.yaml).
	got := rows(s.mustKubectl(t, "get", "ksvc"))
	if strings.Join(got[0], " ") != "NAME URL LATESTCREATED LATESTREADY READY REASON" || got[1][0] != "hello" {
		t.Errorf("kubectl get ksvc:\n%v", got)
	}
	s.mustKubectl(t, "wait", "ksvc/hello", "--for=condition=Ready", "--timeout=120s")
	got = rows(s.mustKubectl(t, "get", "ksvc", "hello"))
	if want := []string{"hello", "http://hello.default.localhost", "hello-00001", "hello-00001", "True"}; strings.Join(got[1], " ") != strings.Join(want, " ") {
		t.Errorf("ready ksvc: %v, want %v", got[1], want)
	}

	// kubectl get -w sees the service roll to a new revision.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchCmd := exec.CommandContext(ctx, kubectlPath(t), "--kubeconfig", s.kubeconfig, "get", "ksvc", "hello", "-w")
	var watched lockedBuffer
	watchCmd.Stdout, watchCmd.Stderr = &watched, &watched
	if err := watchCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = watchCmd.Wait() }()
	eventually(t, 30*time.Second, "kubectl get -w printing the service", func() bool { return strings.Contains(watched.String(), "hello-00001") })
	s.mustKubectl(t, "patch", "ksvc", "hello", "--type", "merge", "-p",
		`{"spec":{"template":{"spec":{"containers":[{"image":"ko://github.com/skiff-dev/skiff/examples/echo","env":[{"name":"TARGET","value":"v2"}]}]}}}}`)
	eventually(t, 120*time.Second, "kubectl get -w showing hello-00002 ready", func() bool {
		for _, r := range rows(watched.String()) {
			if len(r) >= 5 && r[2] == "hello-00002" && r[3] == "hello-00002" && r[4] == "True" {
				return true
			}
		}
		return false
	})

	// A traffic split by patch: half to the first revision, half to the latest, tagged.
	s.mustKubectl(t, "patch", "ksvc", "hello", "--type", "merge", "-p",
		`{"spec":{"traffic":[{"revisionName":"hello-00001","percent":50},{"latestRevision":true,"percent":50,"tag":"candidate"}]}}`)
	eventually(t, 60*time.Second, "the split in the service's status", func() bool {
		out, _, err := s.kubectl(t, "get", "ksvc", "hello", "-o", "jsonpath={.status.observedGeneration} {.status.traffic[*].percent} {.status.traffic[*].tag}")
		return err == nil && out == "3 50 50 candidate"
	})
	eventually(t, 30*time.Second, "the candidate tag answered by hello-00002", func() bool {
		code, rev, _, err := getFrom(s.http, "candidate-hello.default.localhost", "/")
		return err == nil && code == 200 && rev == "hello-00002"
	})

	// Server-side apply, twice, by the same manager: no conflict, nothing changes.
	ssa := filepath.Join(t.TempDir(), "ssa.yaml")
	if err := os.WriteFile(ssa, []byte(strings.Replace(mustRead(t, filepath.Join(moduleRoot(t), "examples", "hello.yaml")), "name: hello", "name: hello-ssa", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if out := s.mustKubectl(t, "apply", "--server-side", "-f", ssa); !strings.Contains(out, "service.serving.knative.dev/hello-ssa serverside-applied") {
			t.Errorf("server-side apply %d: %q", i+1, out)
		}
	}
	if gen := s.mustKubectl(t, "get", "ksvc", "hello-ssa", "-o", "jsonpath={.metadata.generation} {.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}"); gen != "1 kubectl Apply" {
		t.Errorf("after two server-side applies: %q, want generation 1 applied by kubectl", gen)
	}

	// kubectl explain reads the OpenAPI v3 schema of deploy/crds.
	explain := s.mustKubectl(t, "explain", "ksvc.spec.traffic")
	for _, want := range []string{"KIND:       Service", "FIELD: traffic <[]Object>", "percent\t<integer>", "revisionName\t<string>"} {
		if !strings.Contains(explain, want) {
			t.Errorf("kubectl explain ksvc.spec.traffic lacks %q:\n%s", want, explain)
		}
	}

	// An invalid document is refused, naming the field.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	for doc, want := range map[string]string{
		"  traffic:\n    - latestRevision: true\n      percent: 90\n":                     "spec.traffic: Traffic targets sum to 90, want 100",
		"  traffic:\n    - latestRevision: true\n      percent: 100\n      colour: red\n": "spec.traffic[0].colour: unknown field",
	} {
		manifest := strings.Replace(mustRead(t, filepath.Join(moduleRoot(t), "examples", "hello.yaml")), "name: hello", "name: bad", 1) + doc
		if err := os.WriteFile(bad, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := s.kubectl(t, "apply", "-f", bad)
		if err == nil || !strings.Contains(errOut, `The Service "bad" is invalid`) || !strings.Contains(errOut, want) {
			t.Errorf("invalid document: %v\n%s%s\nwant it refused naming %q", err, out, errOut, want)
		}
	}
	if _, _, err := s.kubectl(t, "get", "ksvc", "bad"); err == nil {
		t.Errorf("the invalid service was stored")
	}

	// kubectl delete -f waits until it is gone, with what it owned.
	if out := s.mustKubectl(t, "delete", "-f", "examples/hello.yaml"); !strings.Contains(out, `service.serving.knative.dev "hello" deleted`) {
		t.Errorf("delete: %q", out)
	}
	if _, errOut, err := s.kubectl(t, "get", "ksvc", "hello"); err == nil || !strings.Contains(errOut, `services.serving.knative.dev "hello" not found`) {
		t.Errorf("get after delete: %v %s", err, errOut)
	}
	if out := s.mustKubectl(t, "get", "revisions", "-l", "serving.knative.dev/service=hello", "-o", "name"); out != "" {
		t.Errorf("revisions left after deleting their service: %q", out)
	}
}

// The core kinds Knative YAML refers to, with kubectl's typed (protobuf) writes and
// strategic merge patches: namespaces, secrets, config maps, service accounts.
func TestKubectlCoreKinds(t *testing.T) {
	kubectlPath(t)
	s := startSkiffUp(t)
	s.mustKubectl(t, "create", "namespace", "team")
	s.mustKubectl(t, "-n", "team", "create", "secret", "generic", "creds", "--from-literal=token=abc")
	s.mustKubectl(t, "-n", "team", "create", "configmap", "settings", "--from-literal=a=1")
	s.mustKubectl(t, "-n", "team", "create", "serviceaccount", "runner")
	s.mustKubectl(t, "-n", "team", "label", "secret", "creds", "tier=web")
	s.mustKubectl(t, "-n", "team", "patch", "configmap", "settings", "-p", `{"data":{"b":"2"}}`) // strategic merge
	if got := rows(s.mustKubectl(t, "get", "secrets", "-A", "-l", "tier=web")); len(got) != 2 || strings.Join(got[0], " ") != "NAMESPACE NAME TYPE DATA AGE" || got[1][1] != "creds" || got[1][3] != "1" {
		t.Errorf("kubectl get secrets -A -l tier=web: %v", got)
	}
	if got := s.mustKubectl(t, "-n", "team", "get", "configmap", "settings", "-o", "jsonpath={.data}"); got != `{"a":"1","b":"2"}` {
		t.Errorf("patched configmap data %s", got)
	}
	if got := rows(s.mustKubectl(t, "get", "ns")); len(got) != 3 || got[1][0] != "default" || got[2][0] != "team" || got[2][1] != "Active" {
		t.Errorf("kubectl get ns: %v", got)
	}
	s.mustKubectl(t, "delete", "namespace", "team")
	if out, _, _ := s.kubectl(t, "get", "secrets,configmaps,serviceaccounts", "-A", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("left after deleting the namespace: %q", out)
	}
}
