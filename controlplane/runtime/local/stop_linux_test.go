package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/local"
)

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
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

func TestStopKillsProcessGroupAfterGracePeriod(t *testing.T) {
	rt, _ := newRuntime(t, func(c *local.Config) { c.MaxGracePeriod = 300 * time.Millisecond })
	pidFile := filepath.Join(t.TempDir(), "pids")
	// The shell and its child ignore SIGTERM: only SIGKILL to the whole group stops them.
	rev := newRevision("stubborn-00001", corev1.Container{Command: []string{
		"sh", "-c", `trap "" TERM; sleep 100 & echo $$$$ $! > "$PIDS.tmp"; mv "$PIDS.tmp" "$PIDS"; wait`, // $$ escapes $, as in Kubernetes
	}, Env: []corev1.EnvVar{{Name: "PIDS", Value: pidFile}}})
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	var pids []int
	eventually(t, 10*time.Second, "the instance to write its pids", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
		return true
	})
	if len(pids) != 2 || !alive(pids[0]) || !alive(pids[1]) {
		t.Fatalf("pids %v: want a live shell and its child", pids)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.Remove(ctx, rev.Namespace, rev.Name); err != nil {
		t.Fatal(err)
	}
	if err := rt.WaitRemoved(ctx, rev.Namespace, rev.Name); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("stopping took %v, want the capped grace period (300ms) and then SIGKILL", took)
	}
	eventually(t, 5*time.Second, "the shell and its child to be gone", func() bool { return !alive(pids[0]) && !alive(pids[1]) })
}

func TestRemoveDuringBuildAndScaleAgain(t *testing.T) {
	rt, _ := newRuntime(t, nil)
	rev := newRevision("rebuild-00001", corev1.Container{Image: "ko://" + echoImport})
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	if err := rt.Remove(context.Background(), rev.Namespace, rev.Name); err != nil { // the build is under way
		t.Fatal(err)
	}
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, rt, rev, 60*time.Second, "a ready instance", func(s runtime.State) bool { return s.Ready == 1 })
	if r, _ := get(t, st.Endpoints[0]); r.Revision != rev.Name {
		t.Errorf("answer %+v, want revision %s", r, rev.Name)
	}
}
