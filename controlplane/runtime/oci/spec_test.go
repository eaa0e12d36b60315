package oci

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubernetes' rules for command and args against the image's entrypoint and cmd
// (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/#notes).
func TestCommandLine(t *testing.T) {
	img := v1.Config{Entrypoint: []string{"/ep", "-x"}, Cmd: []string{"serve", "--port=$(PORT)"}}
	vars := map[string]string{"PORT": "8080", "NAME": "world"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for _, c := range []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"neither: entrypoint and cmd, not expanded", nil, nil, []string{"/ep", "-x", "serve", "--port=$(PORT)"}},
		{"command only: no image cmd", []string{"/bin/sh", "-c", "echo $(NAME)"}, nil, []string{"/bin/sh", "-c", "echo world"}},
		{"args only: image entrypoint", nil, []string{"--port=$(PORT)", "$$(NAME)", "$(UNKNOWN)"}, []string{"/ep", "-x", "--port=8080", "$(NAME)", "$(UNKNOWN)"}},
		{"both", []string{"/other"}, []string{"a"}, []string{"/other", "a"}},
	} {
		got, err := commandLine(img, &corev1.Container{Command: c.command, Args: c.args}, lookup)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := commandLine(v1.Config{}, &corev1.Container{}, lookup); err == nil {
		t.Error("an image with nothing to run and no command: no error")
	}
}

func rootfsWithUsers(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("passwd", "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\napp:x:1000:1001::/srv:/bin/sh\n")
	write("group", "root:x:0:\nnonroot:x:65532:\napp:x:1001:\nextra:x:4000:app,nonroot\nstaff:x:50:\n")
	return dir
}

func i64(v int64) *int64 { return &v }
func yes() *bool         { b := true; return &b }

func TestResolveUser(t *testing.T) {
	root := rootfsWithUsers(t)
	for _, c := range []struct {
		name      string
		imageUser string
		sc        *corev1.SecurityContext
		pod       *corev1.PodSecurityContext
		want      user
		err       string
	}{
		{name: "default root", want: user{home: "/root"}},
		{name: "image user by name", imageUser: "app", want: user{uid: 1000, gid: 1001, groups: []uint32{4000}, home: "/srv"}},
		{name: "image uid:gid", imageUser: "1234:50", want: user{uid: 1234, gid: 50, home: "/"}},
		{name: "image name:group", imageUser: "app:staff", want: user{uid: 1000, gid: 50, groups: []uint32{4000}, home: "/srv"}},
		{name: "unknown name", imageUser: "nobody", err: `"nobody" is not in its /etc/passwd`},
		{name: "runAsUser over image", imageUser: "app", sc: &corev1.SecurityContext{RunAsUser: i64(65532)},
			want: user{uid: 65532, gid: 65532, groups: []uint32{4000}, home: "/home/nonroot"}},
		{name: "pod runAsUser and group", pod: &corev1.PodSecurityContext{RunAsUser: i64(42), RunAsGroup: i64(43), SupplementalGroups: []int64{7}},
			want: user{uid: 42, gid: 43, groups: []uint32{7}, home: "/"}},
		{name: "runAsNonRoot refuses root", sc: &corev1.SecurityContext{RunAsNonRoot: yes()}, err: "runAsNonRoot and image will run as root"},
		{name: "runAsNonRoot with nonroot image", imageUser: "65532", sc: &corev1.SecurityContext{RunAsNonRoot: yes()},
			want: user{uid: 65532, gid: 65532, groups: []uint32{4000}, home: "/home/nonroot"}},
	} {
		got, err := resolveUser(root, c.imageUser, c.sc, c.pod)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got.uid != c.want.uid || got.gid != c.want.gid || got.home != c.want.home || !slices.Equal(got.groups, c.want.groups) {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestCapabilities(t *testing.T) {
	if got := capabilities(nil); !slices.Equal(got, defaultCapabilities) {
		t.Errorf("default: %v", got)
	}
	got := capabilities(&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}})
	if !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("drop ALL, add NET_BIND_SERVICE: %v", got)
	}
	got = capabilities(&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"CAP_NET_RAW"}, Add: []corev1.Capability{"SYS_PTRACE"}}})
	if slices.Contains(got, "CAP_NET_RAW") || !slices.Contains(got, "CAP_SYS_PTRACE") {
		t.Errorf("drop NET_RAW, add SYS_PTRACE: %v", got)
	}
}

type fakeObjects struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (f fakeObjects) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	if cm := f.cms[ns+"/"+name]; cm != nil {
		return cm, nil
	}
	return nil, ErrNotFound
}

func (f fakeObjects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	if s := f.secrets[ns+"/"+name]; s != nil {
		return s, nil
	}
	return nil, ErrNotFound
}

// The container's environment in the kubelet's order and with its expansion rules, from
// values, ConfigMaps, Secrets and the pod's fields; the reserved variables win in mergeEnv.
func TestContainerEnv(t *testing.T) {
	objs := fakeObjects{
		cms:     map[string]*corev1.ConfigMap{"ns/cfg": {Data: map[string]string{"A": "from-cm", "B": "b"}}},
		secrets: map[string]*corev1.Secret{"ns/sec": {Data: map[string][]byte{"token": []byte("s3cret")}}},
	}
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
			{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: yes()}},
		},
		Env: []corev1.EnvVar{
			{Name: "A", Value: "overridden"},
			{Name: "URL", Value: "http://x:$(PORT)/$(B)"},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "token"}}},
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "none", Optional: yes()}}},
		},
	}
	src := &envSources{ctx: context.Background(), objects: objs, ns: "ns"}
	vars := map[string]string{"PORT": "9999"}
	env, err := containerEnv(src, c, podInfo{name: "rev-0", limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}, vars)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"B=b", "S_token=s3cret", "A=overridden", "URL=http://x:9999/b", "TOKEN=s3cret", "POD=rev-0", "MEM=67108864"}
	if !slices.Equal(env, want) {
		t.Errorf("env:\n got %q\nwant %q", env, want)
	}
	merged := mergeEnv([]string{"PATH=/img", "PORT=1", "IMG=1"}, append(env, "K_REVISION=mine"), map[string]string{"PORT": "9999", "K_REVISION": "rev"}, "h", "/home")
	for _, w := range []string{"PATH=/img", "IMG=1", "PORT=9999", "K_REVISION=rev", "HOME=/home", "HOSTNAME=h", "A=overridden"} {
		if !slices.Contains(merged, w) {
			t.Errorf("merged env %q lacks %s", merged, w)
		}
	}

	for name, bad := range map[string]corev1.Container{
		"missing secret": {EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}}},
		"missing key": {Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "nope"}}}}},
	} {
		_, err := containerEnv(&envSources{ctx: context.Background(), objects: objs, ns: "ns"}, &bad, podInfo{}, map[string]string{})
		var ce *configError
		if err == nil || !asConfigError(err, &ce) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s: %v, want a config error naming it", name, err)
		}
	}
}

func asConfigError(err error, ce **configError) bool {
	for err != nil {
		if c, ok := err.(*configError); ok {
			*ce = c
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// configMap and secret volumes become read-only files (items, modes), emptyDir a writable
// directory or tmpfs; a missing source is a config error.
// Containers share the host's network, so every instance gets HOST=127.0.0.1 as processes do
// (issue 13, item 6): over an image's own HOST (written for a network namespace of its own),
// under the container's env, which is the user's explicit choice.
func TestMergeEnvListensOnLoopback(t *testing.T) {
	reserved := map[string]string{"PORT": "9999"}
	host := func(env []string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "HOST="); ok {
				return v
			}
		}
		return ""
	}
	if h := host(mergeEnv(nil, nil, reserved, "h", "")); h != "127.0.0.1" {
		t.Errorf("HOST = %q, want 127.0.0.1", h)
	}
	if h := host(mergeEnv([]string{"HOST=0.0.0.0"}, nil, reserved, "h", "")); h != "127.0.0.1" {
		t.Errorf("with the image's HOST=0.0.0.0: HOST = %q, want 127.0.0.1", h)
	}
	if h := host(mergeEnv([]string{"HOST=0.0.0.0"}, []string{"HOST=::"}, reserved, "h", "")); h != "::" {
		t.Errorf("with the container's env HOST=::: HOST = %q, want ::", h)
	}
}

func TestVolumeMounts(t *testing.T) {
	objs := fakeObjects{
		cms:     map[string]*corev1.ConfigMap{"ns/cfg": {ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"a.conf": "A", "b.conf": "B"}}},
		secrets: map[string]*corev1.Secret{"ns/sec": {ObjectMeta: metav1.ObjectMeta{Name: "sec"}, Data: map[string][]byte{"key": []byte("K")}}},
	}
	mode := int32(0o400)
	vols := []corev1.Volume{
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
			Items: []corev1.KeyToPath{{Key: "a.conf", Path: "sub/a"}}}}},
		{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec", DefaultMode: &mode}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
	}
	mounts := []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}, {Name: "sec", MountPath: "/var/sec", ReadOnly: true},
		{Name: "scratch", MountPath: "/scratch"}, {Name: "mem", MountPath: "/mem"}}
	dir := t.TempDir()
	got, err := volumeMounts(&envSources{ctx: context.Background(), objects: objs, ns: "ns"}, vols, mounts, dir, user{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cfg", "sub", "a")); string(b) != "A" {
		t.Errorf("configMap item: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "cfg", "b.conf")); err == nil {
		t.Error("a key not in items was written")
	}
	if fi, err := os.Stat(filepath.Join(dir, "sec", "key")); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("secret file: %v %v, want mode 0400", fi, err)
	}
	ro := map[string]bool{}
	types := map[string]string{}
	for _, m := range got {
		ro[m.Destination] = slices.Contains(m.Options, "ro")
		types[m.Destination] = m.Type
	}
	if !ro["/etc/cfg"] || !ro["/var/sec"] || ro["/scratch"] || types["/mem"] != "tmpfs" {
		t.Errorf("mounts: %+v; want configMap and secret read-only, emptyDir writable, memory emptyDir a tmpfs", got)
	}
	_, err = volumeMounts(&envSources{ctx: context.Background(), objects: fakeObjects{}, ns: "ns"}, vols[:1], mounts[:1], t.TempDir(), user{})
	var ce *configError
	if !asConfigError(err, &ce) || !strings.Contains(err.Error(), `configmap "cfg" not found`) {
		t.Errorf("missing configMap: %v", err)
	}
}

func TestResources(t *testing.T) {
	c := &corev1.Container{Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi"), corev1.ResourceCPU: resource.MustParse("500m")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
	}}
	r := resources(c)
	if r.Memory == nil || *r.Memory.Limit != 128<<20 {
		t.Errorf("memory: %+v", r.Memory)
	}
	if r.CPU == nil || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.CPU.Shares != 256 {
		t.Errorf("cpu: %+v", r.CPU)
	}
}

func TestHostname(t *testing.T) {
	if h := hostname("hello-00001", 3); h != "hello-00001-3" {
		t.Errorf("hostname %q", h)
	}
	if h := hostname(strings.Repeat("a", 70), 12); len(h) > 63 || !strings.HasSuffix(h, "-12") {
		t.Errorf("long hostname %q", h)
	}
}
