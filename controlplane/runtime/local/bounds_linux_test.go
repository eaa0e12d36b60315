package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/local"
)

// startLog is a file every instance of a test revision appends one line to when its process
// starts (its pid, or a timestamp).
type startLog string

func newStartLog(t *testing.T) startLog { return startLog(filepath.Join(t.TempDir(), "started")) }

func (l startLog) env() corev1.EnvVar { return corev1.EnvVar{Name: "STARTED", Value: string(l)} }

// lines returns the log's lines as integers.
func (l startLog) lines(t *testing.T) []int64 {
	t.Helper()
	b, err := os.ReadFile(string(l))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for f := range strings.FieldsSeq(string(b)) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("start log line %q: %v", f, err)
		}
		out = append(out, n)
	}
	return out
}

// Issue 13, item 1: `initial-scale: "100000"` made the runtime start a goroutine and a process
// per desired instance, and a delete 16 s later still let thousands start. Now a huge desired
// count runs at most MaxInstances processes, a revision left without a slot says so
// (Unschedulable), and Remove stops everything, including instances not started yet.
func TestHugeScaleIsBoundedAndRemoveStopsEverything(t *testing.T) {
	const maxInstances = 6
	rt, _ := newRuntime(t, func(c *local.Config) {
		c.MaxInstances, c.StartRate, c.StartBurst = maxInstances, 50, 3
	})
	started := newStartLog(t)
	huge := newRevision("huge-00001", corev1.Container{
		// exec keeps the pid the shell logged.
		Command: []string{"sh", "-c", `echo $$$$ >> "$STARTED"; exec "$ECHO"`},
		Env:     []corev1.EnvVar{started.env(), {Name: "ECHO", Value: echoBin}},
	})
	if err := rt.Scale(context.Background(), huge, 100000); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, huge, 30*time.Second, "the bound's worth of ready instances", func(s runtime.State) bool { return s.Ready == maxInstances })
	if st.Desired != 100000 || st.Failed {
		t.Errorf("state = %+v, want 100000 desired and not failed", st)
	}
	if pids := started.lines(t); len(pids) != maxInstances {
		t.Fatalf("%d processes started, want the bound, %d", len(pids), maxInstances)
	}

	// Another revision finds no free slot and says why.
	small := newRevision("small-00001", corev1.Container{Command: []string{echoBin}})
	if err := rt.Scale(context.Background(), small, 1); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, rt, small, 10*time.Second, "the small revision to be Unschedulable", func(s runtime.State) bool { return s.Failed })
	if st.Reason != runtime.ReasonUnschedulable || !strings.Contains(st.Message, strconv.Itoa(maxInstances)) || st.Ready != 0 {
		t.Errorf("state = %+v, want Failed, Unschedulable, a message naming the bound %d", st, maxInstances)
	}

	if err := rt.Remove(context.Background(), huge.Namespace, huge.Name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.WaitRemoved(ctx, huge.Namespace, huge.Name); err != nil {
		t.Fatal(err)
	}
	pids := started.lines(t)
	if len(pids) != maxInstances {
		t.Errorf("%d processes started in all, want %d: none may start once the revision is removed", len(pids), maxInstances)
	}
	for _, pid := range pids {
		if alive(int(pid)) {
			t.Errorf("process %d still runs after its revision was removed", pid)
		}
	}
	// The slots freed go to the revision that waited.
	st = waitState(t, rt, small, 10*time.Second, "the small revision to become ready", func(s runtime.State) bool { return s.Ready == 1 })
	if st.Failed || st.Reason != "" {
		t.Errorf("state = %+v, want ready with no reason", st)
	}
}

// Removing a revision whose instances are still being started cancels the ones that have not
// started: none of them starts later.
func TestRemoveCancelsInstancesNotStarted(t *testing.T) {
	rt, _ := newRuntime(t, func(c *local.Config) { c.StartRate, c.StartBurst = 5, 1 })
	started := newStartLog(t)
	rev := newRevision("slow-00001", corev1.Container{
		Command: []string{"sh", "-c", `echo $$$$ >> "$STARTED"; exec sleep 600`},
		Env:     []corev1.EnvVar{started.env()},
	})
	if err := rt.Scale(context.Background(), rev, 1000); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a first process", func() bool { return len(started.lines(t)) > 0 })
	if err := rt.Remove(context.Background(), rev.Namespace, rev.Name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.WaitRemoved(ctx, rev.Namespace, rev.Name); err != nil {
		t.Fatal(err)
	}
	pids := started.lines(t)
	// At 5 starts a second, at most one more may have been on its way when Remove ran.
	if len(pids) > 2 {
		t.Errorf("%d processes started, want the instances waiting for their turn cancelled", len(pids))
	}
	for _, pid := range pids {
		if alive(int(pid)) {
			t.Errorf("process %d still runs after its revision was removed", pid)
		}
	}
}

// Processes start no faster than StartRate (restarts take their turn the same way).
func TestStartRateIsBounded(t *testing.T) {
	rt, _ := newRuntime(t, func(c *local.Config) { c.StartRate, c.StartBurst = 10, 1 })
	started := newStartLog(t)
	rev := newRevision("paced-00001", corev1.Container{
		Command: []string{"sh", "-c", `date +%s%N >> "$STARTED"; exec sleep 600`},
		Env:     []corev1.EnvVar{started.env()},
	})
	if err := rt.Scale(context.Background(), rev, 5); err != nil {
		t.Fatal(err)
	}
	var at []int64
	eventually(t, 10*time.Second, "five processes", func() bool { at = started.lines(t); return len(at) == 5 })
	// Four gaps of at least 100ms between starts; the shell's own delay may shave a little.
	if spread := time.Duration(at[4] - at[0]); spread < 300*time.Millisecond {
		t.Errorf("five starts within %v, want them paced at 10 a second", spread)
	}
}

// Issue 13, item 7: Remove waited for the drain, holding a reconciler worker for as long as the
// slowest instance took to stop. It returns at once now, and the runtime stops the instance.
func TestRemoveReturnsBeforeTheDrain(t *testing.T) {
	rt, _ := newRuntime(t, func(c *local.Config) { c.MaxGracePeriod = time.Second })
	pidFile := filepath.Join(t.TempDir(), "pid")
	rev := newRevision("stubborn-00001", corev1.Container{
		Command: []string{"sh", "-c", `trap "" TERM; echo $$$$ > "$PID.tmp"; mv "$PID.tmp" "$PID"; while :; do sleep 0.1; done`},
		Env:     []corev1.EnvVar{{Name: "PID", Value: pidFile}},
	})
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	var pid int
	eventually(t, 10*time.Second, "the instance's pid", func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	if err := rt.Remove(context.Background(), rev.Namespace, rev.Name); err != nil {
		t.Fatal(err)
	}
	// The process ignores SIGTERM: it lives until SIGKILL, a second from now.
	if !alive(pid) {
		t.Fatal("the process was gone when Remove returned: Remove waited for the drain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.WaitRemoved(ctx, rev.Namespace, rev.Name); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Error("the process still runs after WaitRemoved")
	}
}
