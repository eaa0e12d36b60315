package dispatch

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// fake records what it was asked and reports a State with its name in Reason.
type fake struct {
	name    string
	scaled  map[string]int
	removed []string
}

func (f *fake) Scale(_ context.Context, rev *servingv1.Revision, n int) error {
	if f.scaled == nil {
		f.scaled = map[string]int{}
	}
	f.scaled[rev.Name] = n
	return nil
}

func (f *fake) Remove(_ context.Context, _, name string) error {
	f.removed = append(f.removed, name)
	return nil
}

func (f *fake) State(_, name string) runtime.State {
	if _, ok := f.scaled[name]; !ok {
		return runtime.State{}
	}
	return runtime.State{Desired: f.scaled[name], Reason: f.name}
}

func rev(name string, c corev1.Container, ann map[string]string) *servingv1.Revision {
	r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: ann}}
	r.Spec.Containers = []corev1.Container{c}
	return r
}

func TestClass(t *testing.T) {
	for _, c := range []struct {
		rev  *servingv1.Revision
		want string
		err  bool
	}{
		{rev("ko", corev1.Container{Image: "ko://example.com/app"}, nil), ClassProcess, false},
		{rev("cmd", corev1.Container{Image: "skiff.local/fn:latest", Command: []string{"/bin/fn"}}, nil), ClassProcess, false},
		{rev("img", corev1.Container{Image: "ghcr.io/x/app:v1"}, nil), ClassOCI, false},
		{rev("img-args", corev1.Container{Image: "ghcr.io/x/app:v1", Args: []string{"-v"}}, nil), ClassOCI, false},
		{rev("forced", corev1.Container{Image: "busybox", Command: []string{"sh"}}, map[string]string{AnnotationRuntime: "oci"}), ClassOCI, false},
		{rev("bad", corev1.Container{Image: "busybox"}, map[string]string{AnnotationRuntime: "docker"}), "", true},
	} {
		got, err := Class(c.rev)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%s: %q, %v; want %q (error %v)", c.rev.Name, got, err, c.want, c.err)
		}
	}
}

func TestDispatch(t *testing.T) {
	ctx := context.Background()
	proc, oci := &fake{name: "process"}, &fake{name: "oci"}
	d := New(proc, oci, "", nil)
	if err := d.Scale(ctx, rev("ko-1", corev1.Container{Image: "ko://x/y"}, nil), 2); err != nil {
		t.Fatal(err)
	}
	if err := d.Scale(ctx, rev("img-1", corev1.Container{Image: "ghcr.io/x:v1"}, nil), 1); err != nil {
		t.Fatal(err)
	}
	if proc.scaled["ko-1"] != 2 || oci.scaled["img-1"] != 1 || proc.scaled["img-1"] != 0 || oci.scaled["ko-1"] != 0 {
		t.Fatalf("process %v, oci %v", proc.scaled, oci.scaled)
	}
	if st := d.State("default", "img-1"); st.Reason != "oci" {
		t.Errorf("State of img-1 from %q", st.Reason)
	}
	if !d.RunsImages(rev("img-1", corev1.Container{Image: "ghcr.io/x:v1"}, nil)) || d.RunsImages(rev("ko-1", corev1.Container{Image: "ko://x/y"}, nil)) {
		t.Error("RunsImages: want true for an image, false for ko://")
	}
	if err := d.Remove(ctx, "default", "img-1"); err != nil {
		t.Fatal(err)
	}
	if len(oci.removed) != 1 || len(proc.removed) != 0 {
		t.Errorf("Remove went to process %v, oci %v", proc.removed, oci.removed)
	}
	// Unknown after a restart: both are told.
	if err := d.Remove(ctx, "default", "old"); err != nil {
		t.Fatal(err)
	}
	if len(oci.removed) != 2 || len(proc.removed) != 1 {
		t.Errorf("Remove of an unknown revision: process %v, oci %v", proc.removed, oci.removed)
	}
}

// Without an OCI runtime, an image revision fails with ImageUnsupported saying why, and the
// reconciler hears of it.
func TestNoOCIRuntime(t *testing.T) {
	var changed []string
	d := New(&fake{}, nil, "runc not found", func(ns, name string) { changed = append(changed, name) })
	if err := d.Scale(context.Background(), rev("img-1", corev1.Container{Image: "ghcr.io/x:v1"}, nil), 1); err != nil {
		t.Fatal(err)
	}
	st := d.State("default", "img-1")
	if !st.Failed || st.Reason != runtime.ReasonImageUnsupported || !strings.Contains(st.Message, "runc not found") || !strings.Contains(st.Message, "ghcr.io/x:v1") {
		t.Errorf("state %+v", st)
	}
	if len(changed) != 1 {
		t.Errorf("OnChange calls: %v", changed)
	}
	if d.RunsImages(rev("img-1", corev1.Container{Image: "ghcr.io/x:v1"}, nil)) {
		t.Error("RunsImages without an OCI runtime")
	}
}
