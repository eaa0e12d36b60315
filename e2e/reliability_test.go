package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/controlplane"
)

// exampleBuild is one examples/<name> program built for the package.
type exampleBuild struct {
	once sync.Once
	bin  string
	err  error
}

var exampleBuilds sync.Map // name → *exampleBuild

// exampleBinary builds examples/<name> once for the package, for Services that run it as a
// `command` (no ko:// build per revision and per start).
func exampleBinary(t testing.TB, name string) string {
	t.Helper()
	v, _ := exampleBuilds.LoadOrStore(name, &exampleBuild{})
	b := v.(*exampleBuild)
	b.once.Do(func() {
		b.bin = filepath.Join(shared.dir, "example-"+name)
		build := exec.Command("go", "build", "-o", b.bin, "./examples/"+name)
		build.Dir = moduleRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./examples/%s: %v\n%s", name, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// echoBinary is examples/echo, built.
func echoBinary(t testing.TB) string { return exampleBinary(t, "echo") }

// processAlive reports whether pid is a live process (a zombie is not).
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// readPids reads a file of pids, one a line, which instances append to when they start.
func readPids(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid file line %q: %v", f, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// commandService is a Knative Service running cmd (a shell command line) with env.
func commandService(name, annotations, cmd string, env map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  template:\n", name)
	if annotations != "" {
		fmt.Fprintf(&b, "    metadata:\n      annotations:\n%s", annotations)
	}
	// The local runtime runs the command; the image is only what the API requires.
	fmt.Fprintf(&b, "    spec:\n      containers:\n        - image: docker.io/library/busybox\n          command: [\"sh\", \"-c\", %q]\n          env:\n", cmd)
	for k, v := range env {
		fmt.Fprintf(&b, "            - name: %s\n              value: %q\n", k, v)
	}
	return b.String()
}

// Issue 13, item 1: a Service with initial-scale 100000 and a command made `skiff up` start a
// process per desired instance without bound, and deleting the Service did not stop them.
// Now the local runtime runs at most --max-instances of them, and a delete stops every one
// and starts no more. (This needs the API to accept the annotation: Knative's max-scale-limit
// of 0, no limit.)
func TestHugeInitialScaleIsBoundedAndDeleteStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	const bound = 6
	s := startSkiff(t, t.TempDir(), func(c *controlplane.Config) { c.MaxInstances = bound })
	started := filepath.Join(t.TempDir(), "started")
	s.apply(commandService("many", "        autoscaling.knative.dev/initial-scale: \"100000\"\n",
		`echo $$$$ >> "$STARTED"; exec "$ECHO"`, // $$ is $ after Kubernetes' expansion; exec keeps the pid
		map[string]string{"STARTED": started, "ECHO": echoBinary(t)}))
	s.waitReady("ksvc", "many", nil)
	eventually(t, 30*time.Second, "the bound's worth of ready instances", func() bool {
		return replicas(s.revision("many-00001").Status.ActualReplicas) == bound
	})
	rev := s.revision("many-00001")
	if n := replicas(rev.Status.DesiredReplicas); n != 100000 {
		t.Errorf("desired replicas %d, want 100000", n)
	}
	if pids := readPids(t, started); len(pids) != bound {
		t.Fatalf("%d processes started, want the bound, %d", len(pids), bound)
	}

	if err := s.api.Delete(context.Background(), api.LookupKind("ksvc"), "default", "many"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "every instance of the deleted Service to stop", func() bool {
		for _, pid := range readPids(t, started) {
			if processAlive(pid) {
				return false
			}
		}
		return true
	})
	// Every instance stopped because its revision was removed, which starts no other.
	if pids := readPids(t, started); len(pids) != bound {
		t.Errorf("%d processes started in all, want %d", len(pids), bound)
	}
}

// Issue 13, item 7: removing a revision waited for its instances to drain on a reconciler
// worker, so deleting many Services stalled every other reconcile (100 deleted Services: a new
// Service took 24 s to become Ready). The instances here take as long as the test wants to
// stop (they ignore SIGTERM until released); a new Service must become Ready while they drain.
func TestNewServiceReadyWhileDeletedOnesDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir())
	dir := t.TempDir()
	pidFile, release := filepath.Join(dir, "pids"), filepath.Join(dir, "release")
	t.Cleanup(func() { _ = os.WriteFile(release, nil, 0o644) }) // before the harness stops
	// The shell serves through echo, and on SIGTERM (which echo obeys) waits for the release.
	script := `"$ECHO" & echo $$$$ >> "$PIDS"; trap 'while [ ! -e "$RELEASE" ]; do sleep 0.05; done; exit 0' TERM; while :; do sleep 0.1; done`
	env := map[string]string{"ECHO": echoBinary(t), "PIDS": pidFile, "RELEASE": release}
	const n = 12 // three times the reconciler's workers
	for i := range n {
		s.apply(commandService(fmt.Sprintf("slow-%d", i), "", script, env))
	}
	for i := range n {
		s.waitReady("ksvc", fmt.Sprintf("slow-%d", i), nil)
	}
	pids := readPids(t, pidFile)
	if len(pids) != n {
		t.Fatalf("%d instances started, want %d", len(pids), n)
	}
	for i := range n {
		if err := s.api.Delete(context.Background(), api.LookupKind("ksvc"), "default", fmt.Sprintf("slow-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.apply(commandService("fresh", "", `exec "$ECHO"`, map[string]string{"ECHO": echoBinary(t)}))
	s.waitReady("ksvc", "fresh", nil)
	draining := 0
	for _, pid := range pids {
		if processAlive(pid) {
			draining++
		}
	}
	if draining == 0 {
		t.Errorf("the new Service became Ready only once every deleted instance had stopped: removals held the reconcilers")
	}
	if code, r, body := s.get("fresh.default.localhost", "/"); code != 200 || r.Revision != "fresh-00001" {
		t.Errorf("GET fresh: %d %s", code, body)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the deleted Services' instances to stop once released", func() bool {
		for _, pid := range pids {
			if processAlive(pid) {
				return false
			}
		}
		return true
	})
	t.Logf("%d of %d deleted instances were still draining when the new Service became Ready", draining, n)
}
