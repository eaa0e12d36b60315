package local_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// InstanceUsage finds a ready instance's process group and reports its CPU time and memory:
// here a shell starts a busy loop and then becomes the app, so the group burns about a core.
func TestInstanceUsageMeasuresTheProcessGroup(t *testing.T) {
	rt, _ := newRuntime(t, nil)
	rev := newRevision("busy-00001", corev1.Container{
		Command: []string{"sh", "-c", "while :; do :; done & exec " + echoBin},
	})
	if err := rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, rev, 30*time.Second, "one ready instance", func(s runtime.State) bool { return s.Ready == 1 })
	first := rt.InstanceUsage()["default/busy-00001"]
	if len(first) != 1 {
		t.Fatalf("usage = %+v, want one instance", first)
	}
	var id string
	for k := range first {
		id = k
	}
	if first[id].MemoryBytes <= 0 {
		t.Fatalf("usage %+v: no resident memory", first[id])
	}
	var second runtime.InstanceUsage
	eventually(t, 20*time.Second, "the busy loop's CPU time to show", func() bool {
		second = rt.InstanceUsage()["default/busy-00001"][id]
		return second.CPUSeconds-first[id].CPUSeconds >= 0.3
	})
	if err := rt.Scale(context.Background(), rev, 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, rev, 20*time.Second, "no ready instance", func(s runtime.State) bool { return s.Ready == 0 })
	if got := rt.InstanceUsage()["default/busy-00001"]; len(got) != 0 {
		t.Fatalf("usage after scaling to zero = %+v, want none", got)
	}
}
