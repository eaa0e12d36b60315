package oci_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/image"
	"github.com/skiff-dev/skiff/controlplane/runtime/oci"
	"github.com/skiff-dev/skiff/controlplane/runtime/oci/ocitest"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type objects struct {
	mu      sync.Mutex
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (o *objects) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if cm := o.cms[ns+"/"+name]; cm != nil {
		return cm, nil
	}
	return nil, fmt.Errorf("configmap %s: %w", name, oci.ErrNotFound)
}

func (o *objects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.secrets[ns+"/"+name]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("secret %s: %w", name, oci.ErrNotFound)
}

type harness struct {
	t       *testing.T
	rt      *oci.Runtime
	dataDir string
	changed chan struct{}
}

func newRuntime(t *testing.T, objs oci.Objects, adjust ...func(*oci.Config)) *harness {
	cgroups := ocitest.Skip(t)
	dataDir := t.TempDir()
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	store, err := image.OpenStore(image.StoreConfig{Dir: filepath.Join(dataDir, "images"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dataDir: dataDir, changed: make(chan struct{}, 1)}
	cfg := oci.Config{
		DataDir: dataDir, Images: store, Objects: objs, Cgroups: cgroups, Logger: log,
		DrainTimeout: -1, RestartBackoff: 50 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond,
		PullBackoff: 100 * time.Millisecond, MaxPullBackoff: 200 * time.Millisecond,
		OnChange: func(string, string) {
			select {
			case h.changed <- struct{}{}:
			default:
			}
		},
	}
	for _, a := range adjust {
		a(&cfg)
	}
	rt, err := oci.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.rt = rt
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		h.assertClean()
	})
	return h
}

// assertClean checks that nothing of the runtime is left: no container, no mount, no bundle.
func (h *harness) assertClean() {
	h.t.Helper()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), filepath.Join(h.dataDir, "oci")) {
		h.t.Errorf("mounts left under %s", h.dataDir)
	}
	if entries, _ := os.ReadDir(filepath.Join(h.dataDir, "oci", "bundles")); len(entries) > 0 {
		h.t.Errorf("bundles left: %v", entries)
	}
}

// waitState waits (on OnChange, with a deadline) until cond holds for the revision's State.
func (h *harness) waitState(name string, what string, cond func(runtime.State) bool) runtime.State {
	h.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		st := h.rt.State("default", name)
		if cond(st) {
			return st
		}
		select {
		case <-h.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s: state %+v", what, st)
		}
	}
}

func revision(name, image string, mutate ...func(*servingv1.Revision)) *servingv1.Revision {
	rev := &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{
			servingv1.ServiceLabel: "svc", servingv1.ConfigurationLabel: "svc"}},
	}
	rev.Spec.Containers = []corev1.Container{{Image: image}}
	for _, m := range mutate {
		m(rev)
	}
	return rev
}

func getJSON(t *testing.T, ep runtime.Endpoint, path string, out any) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s:%d%s", ep.Address, ep.Port, path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(b)
		} else if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode
}

type whoami struct {
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	Cwd      string   `json:"cwd"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	Groups   []int    `json:"groups"`
	Hostname string   `json:"hostname"`
}

// An image runs as Kubernetes would run it: the image's entrypoint with the container's args,
// the image's env under the container's (values, ConfigMaps, Secrets) and Knative's variables,
// the container's user and working directory, ConfigMap and Secret volumes read-only, an
// emptyDir writable, a writable root filesystem of its own; its output in the revision's log;
// and nothing is left once it is removed.
func TestRunImage(t *testing.T) {
	objs := &objects{
		cms:     map[string]*corev1.ConfigMap{"default/cfg": {ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"greeting": "hi", "app.conf": "conf"}}},
		secrets: map[string]*corev1.Secret{"default/sec": {ObjectMeta: metav1.ObjectMeta{Name: "sec"}, Data: map[string][]byte{"token": []byte("t0k")}}},
	}
	h := newRuntime(t, objs)
	host := ocitest.Registry(t)
	ref := ocitest.Push(t, host+"/testapp:v1", ocitest.GoImage(t, ocitest.TestApp, func(c *v1.Config) {
		c.Cmd = []string{"-ignored-when-args-are-set"}
		c.WorkingDir = "/tmp"
	}))
	rev := revision("run-00001", ref, func(r *servingv1.Revision) {
		c := &r.Spec.Containers[0]
		c.Args = []string{"-ignore-term=false"}
		c.WorkingDir = "/home/nonroot"
		c.Env = []corev1.EnvVar{{Name: "FROM_ENV", Value: "port-$(PORT)"},
			{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "greeting"}}}}
		c.EnvFrom = []corev1.EnvFromSource{{Prefix: "SEC_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}}}
		c.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr(int64(65532))}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/app", ReadOnly: true}, {Name: "sec", MountPath: "/var/secret", ReadOnly: true},
			{Name: "scratch", MountPath: "/scratch"}}
		r.Spec.Volumes = []corev1.Volume{
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}
	})
	if err := h.rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	st := h.waitState("run-00001", "one ready instance", func(s runtime.State) bool { return s.Ready == 1 || s.Failed })
	if st.Failed {
		t.Fatalf("revision failed: %+v", st)
	}
	ep := st.Endpoints[0]
	var w whoami
	getJSON(t, ep, "/", &w)
	if !slices.Equal(w.Args, []string{"/app", "-ignore-term=false"}) {
		t.Errorf("args %q, want the image's entrypoint with the container's args", w.Args)
	}
	port := fmt.Sprint(ep.Port)
	for _, e := range []string{"PORT=" + port, "K_REVISION=run-00001", "K_SERVICE=svc", "K_CONFIGURATION=svc", "IMAGE_ONLY=from-image",
		"FROM_ENV=port-" + port, "GREETING=hi", "SEC_token=t0k", "HOME=/home/nonroot", "HOST=127.0.0.1"} {
		if !slices.Contains(w.Env, e) {
			t.Errorf("env lacks %s: %q", e, w.Env)
		}
	}
	if w.UID != 65532 || w.GID != 65532 || !slices.Contains(w.Groups, 4000) || w.Cwd != "/home/nonroot" || w.Hostname != "run-00001-0" {
		t.Errorf("process: uid %d gid %d groups %v cwd %s hostname %s; want 65532/65532 with 4000, /home/nonroot, run-00001-0", w.UID, w.GID, w.Groups, w.Cwd, w.Hostname)
	}
	var body string
	if code := getJSON(t, ep, "/file?path=/etc/app/app.conf", &body); code != 200 || body != "conf" {
		t.Errorf("configMap volume: %d %q", code, body)
	}
	if code := getJSON(t, ep, "/file?path=/var/secret/token", &body); code != 200 || body != "t0k" {
		t.Errorf("secret volume: %d %q", code, body)
	}
	if code := getJSON(t, ep, "/write?path=/etc/app/x", &body); code != 500 || !strings.Contains(body, "read-only") {
		t.Errorf("writing into the configMap volume: %d %q, want a read-only file system error", code, body)
	}
	for _, p := range []string{"/scratch/x", "/home/nonroot/x", "/tmp/x"} {
		if code := getJSON(t, ep, "/write?path="+p, &body); code != 200 {
			t.Errorf("writing %s: %d %s", p, code, body)
		}
	}
	logs, _ := os.ReadFile(filepath.Join(h.dataDir, "logs", "default", "run-00001.log"))
	if !strings.Contains(string(logs), "[0] testapp listening on 127.0.0.1:"+port) || !strings.Contains(string(logs), "[pull] pulled image") {
		t.Errorf("log file:\n%s", logs)
	}

	if err := h.rt.Remove(context.Background(), "default", "run-00001"); err != nil {
		t.Fatal(err)
	}
	if st := h.rt.State("default", "run-00001"); st.Ready != 0 || len(st.Endpoints) != 0 {
		t.Errorf("state after Remove: %+v", st)
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.rt.Running("default", "run-00001") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the container is still there 30s after Remove")
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs, _ = os.ReadFile(filepath.Join(h.dataDir, "logs", "default", "run-00001.log"))
	if !strings.Contains(string(logs), "[0] got SIGTERM") {
		t.Errorf("the container was not sent SIGTERM:\n%s", logs)
	}
}

func ptr[T any](v T) *T { return &v }

// An image that cannot run gives a reason naming the cause: missing, for another
// architecture, an entrypoint that does not exist, a program exiting at once, a missing
// Secret, runAsNonRoot with a root image. A pull that failed is retried: once the image is
// pushed, the revision runs.
func TestBadImages(t *testing.T) {
	h := newRuntime(t, &objects{})
	host := ocitest.Registry(t)
	app := ocitest.GoImage(t, ocitest.TestApp)
	arm := ocitest.Push(t, host+"/arm:v1", ocitest.WithArch(t, app, "arm64"))
	noEntry := ocitest.Push(t, host+"/noentry:v1", ocitest.Image(t, []v1.Layer{ocitest.Base(t)}))
	good := ocitest.Push(t, host+"/testapp:v1", app)
	for _, c := range []struct {
		name, image string
		mutate      func(*servingv1.Revision)
		reason      string
		says        string
	}{
		{"missing-00001", host + "/missing:v1", nil, image.ReasonNotFound, host + "/missing:v1"},
		{"arm-00001", arm, nil, image.ReasonPlatform, "arm64"},
		{"noentry-00001", noEntry, nil, runtime.ReasonStartError, "/app"},
		{"exits-00001", good, func(r *servingv1.Revision) { r.Spec.Containers[0].Args = []string{"-exit", "3"} }, "ExitCode3", "exiting 3"},
		{"nosecret-00001", good, func(r *servingv1.Revision) {
			r.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}}}}
		}, oci.ReasonCreateContainerConfigError, `secret "absent" not found`},
		{"nonroot-00001", good, func(r *servingv1.Revision) {
			r.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr(true)}
		}, oci.ReasonCreateContainerConfigError, "runAsNonRoot"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m []func(*servingv1.Revision)
			if c.mutate != nil {
				m = append(m, c.mutate)
			}
			if err := h.rt.Scale(context.Background(), revision(c.name, c.image, m...), 1); err != nil {
				t.Fatal(err)
			}
			st := h.waitState(c.name, "failed with "+c.reason, func(s runtime.State) bool { return s.Failed && s.Reason == c.reason })
			if !strings.Contains(st.Message, c.says) {
				t.Errorf("message %q does not say %q", st.Message, c.says)
			}
			if err := h.rt.Remove(context.Background(), "default", c.name); err != nil {
				t.Fatal(err)
			}
		})
	}

	// Pushed later, the missing image is found on a retry.
	if err := h.rt.Scale(context.Background(), revision("late-00001", host+"/late:v1"), 1); err != nil {
		t.Fatal(err)
	}
	h.waitState("late-00001", "failed: not found", func(s runtime.State) bool { return s.Failed && s.Reason == image.ReasonNotFound })
	ocitest.Push(t, host+"/late:v1", app)
	h.waitState("late-00001", "ready after the push", func(s runtime.State) bool { return s.Ready == 1 && !s.Failed })
}

// A liveness probe that fails restarts the container; a container that ignores SIGTERM is
// killed after its grace period.
func TestLivenessAndGrace(t *testing.T) {
	h := newRuntime(t, &objects{})
	host := ocitest.Registry(t)
	ref := ocitest.Push(t, host+"/testapp:v1", ocitest.GoImage(t, ocitest.TestApp))
	rev := revision("live-00001", ref, func(r *servingv1.Revision) {
		c := &r.Spec.Containers[0]
		c.Args = []string{"-ignore-term"}
		c.LivenessProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 2,
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}}}
		r.Spec.TerminationGracePeriodSeconds = ptr(int64(1))
	})
	if err := h.rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	st := h.waitState("live-00001", "ready", func(s runtime.State) bool { return s.Ready == 1 })
	getJSON(t, st.Endpoints[0], "/sick", nil)
	st = h.waitState("live-00001", "restarted after the liveness probe failed", func(s runtime.State) bool { return s.Restarts >= 1 })
	if !strings.Contains(st.Message, "Liveness probe failed") {
		t.Errorf("message %q", st.Message)
	}
	h.waitState("live-00001", "ready again", func(s runtime.State) bool { return s.Ready == 1 })
	if err := h.rt.Remove(context.Background(), "default", "live-00001"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.rt.Running("default", "live-00001") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a container ignoring SIGTERM is still there 30s after Remove (grace 1s)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs, _ := os.ReadFile(filepath.Join(h.dataDir, "logs", "default", "live-00001.log"))
	if strings.Count(string(logs), "got SIGTERM") < 2 {
		t.Errorf("want SIGTERM at the liveness restart and at removal:\n%s", logs)
	}
}

// resources.limits become the container's cgroup limits where the host allows it.
func TestResourceLimits(t *testing.T) {
	if !ocitest.Skip(t) {
		t.Skip("runc cannot create cgroups here: limits are not applied")
	}
	h := newRuntime(t, &objects{})
	host := ocitest.Registry(t)
	ref := ocitest.Push(t, host+"/testapp:v1", ocitest.GoImage(t, ocitest.TestApp))
	rev := revision("limits-00001", ref, func(r *servingv1.Revision) {
		r.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("96Mi")}
	})
	if err := h.rt.Scale(context.Background(), rev, 1); err != nil {
		t.Fatal(err)
	}
	st := h.waitState("limits-00001", "ready", func(s runtime.State) bool { return s.Ready == 1 || s.Failed })
	if st.Failed {
		t.Fatalf("failed: %+v", st)
	}
	var body string
	for _, p := range []string{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"} {
		if code := getJSON(t, st.Endpoints[0], "/file?path="+p, &body); code == 200 {
			break
		}
	}
	if strings.TrimSpace(body) != fmt.Sprint(96<<20) {
		t.Errorf("memory limit in the container's cgroup: %q, want %d", body, 96<<20)
	}
}

// A runtime that starts after one was killed removes the containers, mounts and bundles left.
func TestNewSweepsLeftovers(t *testing.T) {
	// No restart of the swept container: this runtime stands for one that was killed.
	h := newRuntime(t, &objects{}, func(c *oci.Config) { c.RestartBackoff, c.MaxRestartBackoff = time.Hour, time.Hour })
	host := ocitest.Registry(t)
	ref := ocitest.Push(t, host+"/testapp:v1", ocitest.GoImage(t, ocitest.TestApp))
	if err := h.rt.Scale(context.Background(), revision("left-00001", ref), 1); err != nil {
		t.Fatal(err)
	}
	h.waitState("left-00001", "ready", func(s runtime.State) bool { return s.Ready == 1 })
	// A second runtime over the same directory stands for the next start after a crash.
	store, err := image.OpenStore(image.StoreConfig{Dir: filepath.Join(h.dataDir, "images2")})
	if err != nil {
		t.Fatal(err)
	}
	rt2, err := oci.New(oci.Config{DataDir: h.dataDir, Images: store})
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close(context.Background())
	if n := rt2.Running("default", "left-00001"); n != 0 {
		t.Errorf("%d containers left after New swept", n)
	}
	h.assertClean()
}
