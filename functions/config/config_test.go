package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

func newFunc() *funcyaml.Function {
	return &funcyaml.Function{SpecVersion: funcyaml.SpecVersion, Name: "fn", Runtime: "node"}
}

// Envs from flags (func's TestListEnvAdd, cmd/config_test.go) and from prompts, each of func's
// kinds; bad values are refused with the field and nothing is kept.
func TestEnvs(t *testing.T) {
	f := newFunc()
	for _, c := range [][2]string{{"A", "plain"}, {"B", "{{ env:HOME }}"}, {"C", "{{ secret:db:password }}"}, {"", "{{ configMap:settings }}"}} {
		if _, err := AddEnv(f, c[0], c[1]); err != nil {
			t.Fatalf("AddEnv(%q, %q): %v", c[0], c[1], err)
		}
	}
	for _, c := range []struct{ name, value, want string }{
		{"A", "again", "environment variable A is already set"},
		{"1BAD", "x", "run.envs[4].name"},
		{"PORT", "9090", "reserved environment variable"},
		{"D", "{{ secret:only-name-for-a-named-env }}", "run.envs[4].value"},
		{"", "literal-without-name", "run.envs[4].value"},
	} {
		if _, err := AddEnv(f, c.name, c.value); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddEnv(%q, %q): %v, want %q", c.name, c.value, err, c.want)
		}
	}
	if len(f.Run.Envs) != 4 {
		t.Fatalf("a refused env was kept: %+v", f.Run.Envs)
	}

	// Prompts: a key of a Secret, then a whole ConfigMap (no name asked), then a local variable.
	in := strings.NewReader("6\nTOKEN\napi\ntoken\n" + "3\nmore-settings\n" + "2\nUSER_HOME\nHOME\n")
	var out bytes.Buffer
	p := NewPrompter(in, &out)
	for range 3 {
		if _, err := PromptAddEnv(p, f); err != nil {
			t.Fatalf("PromptAddEnv: %v\n%s", err, out.String())
		}
	}
	got := map[string]string{}
	for _, e := range f.Run.Envs {
		got[e.Name+"|"+*e.Value] = e.Describe()
	}
	for _, want := range []string{"TOKEN|{{ secret:api:token }}", "|{{ configMap:more-settings }}", "USER_HOME|{{ env:HOME }}"} {
		if _, ok := got[want]; !ok {
			t.Errorf("prompted env %q missing: %v", want, got)
		}
	}
	if !strings.Contains(out.String(), "Secret: value from a key") {
		t.Errorf("the prompt did not offer func's choices:\n%s", out.String())
	}
	if _, err := PromptAddEnv(NewPrompter(strings.NewReader(""), &out), f); err == nil {
		t.Error("a prompt with no input succeeded")
	}

	var b bytes.Buffer
	if err := WriteEnvs(&b, f, "human"); err != nil || !strings.Contains(b.String(), `Env "C" with value set from key "password" from Secret "db"`) ||
		!strings.Contains(b.String(), `All key=value pairs from ConfigMap "settings"`) {
		t.Errorf("list: %v\n%s", err, b.String())
	}
	b.Reset()
	var listed []funcyaml.Env
	if err := WriteEnvs(&b, f, "json"); err != nil || json.Unmarshal(b.Bytes(), &listed) != nil || len(listed) != 7 {
		t.Errorf("json list: %v %s", err, b.String())
	}

	if err := RemoveEnv(f, "C"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveEnv(f, "{{ configMap:settings }}"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveEnv(f, "C"); err == nil {
		t.Error("removed C twice")
	}
	removed, err := PromptRemoveEnv(NewPrompter(strings.NewReader("1\n"), &out), f)
	if err != nil || removed != `Env "A" with value "plain"` || len(f.Run.Envs) != 4 {
		t.Errorf("PromptRemoveEnv: %q %v %+v", removed, err, f.Run.Envs)
	}
}

// Volumes from flags as func's runAddVolume takes them (cmd/config_volumes.go), and prompts.
func TestVolumes(t *testing.T) {
	f := newFunc()
	for _, s := range []VolumeSpec{
		{Type: "configmap", Source: "my-config", MountPath: "/etc/config"},
		{Type: "secret", Source: "my-secret", MountPath: "/etc/secret"},
		{Type: "pvc", Source: "my-pvc", MountPath: "/data", ReadOnly: true},
		{Type: "emptydir", MountPath: "/tmp/cache", Size: "1Gi", Medium: "Memory"},
	} {
		if _, _, err := AddVolume(f, s); err != nil {
			t.Fatalf("AddVolume(%+v): %v", s, err)
		}
	}
	for _, c := range []struct {
		s    VolumeSpec
		want string
	}{
		{VolumeSpec{Type: "secret", Source: "s"}, "--mount-path is required"},
		{VolumeSpec{Type: "secret", Source: "s", MountPath: "rel"}, "must be an absolute path"},
		{VolumeSpec{Type: "secret", MountPath: "/x"}, "--source is required for secret volumes"},
		{VolumeSpec{Type: "hostpath", Source: "s", MountPath: "/x"}, `--type "hostpath"`},
		{VolumeSpec{Type: "emptydir", MountPath: "/x", Medium: "Disk"}, `--medium "Disk"`},
		{VolumeSpec{Type: "emptydir", MountPath: "/x", Size: "huge"}, "run.volumes[4].emptyDir.sizeLimit"},
		{VolumeSpec{Type: "secret", Source: "s", MountPath: "/etc/config/"}, "run.volumes[4].path"},
		{VolumeSpec{Type: "secret", Source: "s", MountPath: "/dev"}, "reserved path"},
	} {
		if _, _, err := AddVolume(f, c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddVolume(%+v): %v, want %q", c.s, err, c.want)
		}
	}
	if len(f.Run.Volumes) != 4 {
		t.Fatalf("a refused volume was kept: %d", len(f.Run.Volumes))
	}
	var out bytes.Buffer
	v, _, err := PromptAddVolume(NewPrompter(strings.NewReader("3\nclaim\n/claims\n1\n"), &out), f)
	if err != nil || v.PersistentVolumeClaim == nil || *v.PersistentVolumeClaim.ClaimName != "claim" || !v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("PromptAddVolume: %+v %v\n%s", v, err, out.String())
	}
	var b bytes.Buffer
	if err := WriteVolumes(&b, f, "human"); err != nil || !strings.Contains(b.String(), `EmptyDir in memory with size limit "1Gi" at path: "/tmp/cache"`) {
		t.Errorf("list: %v\n%s", err, b.String())
	}
	if err := RemoveVolume(f, "/etc/secret/"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveVolume(f, "/etc/secret"); err == nil || !strings.Contains(err.Error(), "no volume is mounted at /etc/secret") {
		t.Errorf("removing twice: %v", err)
	}
	if removed, err := PromptRemoveVolume(NewPrompter(strings.NewReader("1\n"), &out), f); err != nil || !strings.Contains(removed, "my-config") {
		t.Errorf("PromptRemoveVolume: %q %v", removed, err)
	}
}

// Labels from flags and prompts (func's TestNewConfigLabelsCmd, cmd/config_labels_test.go).
func TestLabels(t *testing.T) {
	f := newFunc()
	if _, err := AddLabel(f, "team", "blue"); err != nil {
		t.Fatal(err)
	}
	if _, err := AddLabel(f, "owner", "{{ env:USER }}"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][3]string{{"team", "red", "already set"}, {",bad", "x", "deploy.labels[2].key"}, {"ok", ":bad", "deploy.labels[2].value"}, {"ok2", "{{ secret:x }}", "deploy.labels[2].value"}} {
		if _, err := AddLabel(f, c[0], c[1]); err == nil || !strings.Contains(err.Error(), c[2]) {
			t.Errorf("AddLabel(%q, %q): %v, want %q", c[0], c[1], err, c[2])
		}
	}
	var out bytes.Buffer
	if _, err := PromptAddLabel(NewPrompter(strings.NewReader("1\ntier\nfront\n"), &out), f); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteLabels(&b, f, "human"); err != nil || !strings.Contains(b.String(), `Label with key "owner" and value set from local env variable "USER"`) ||
		!strings.Contains(b.String(), `Label with key "tier" and value "front"`) {
		t.Errorf("list: %v\n%s", err, b.String())
	}
	if err := RemoveLabel(f, "team"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveLabel(f, "team"); err == nil {
		t.Error("removed team twice")
	}
	if removed, err := PromptRemoveLabel(NewPrompter(strings.NewReader("owner\n"), &out), f); err == nil {
		t.Errorf("chose by text %q, which is not an option's text: %q", "owner", removed)
	}
	if removed, err := PromptRemoveLabel(NewPrompter(strings.NewReader("2\n"), &out), f); err != nil || !strings.Contains(removed, "tier") || len(f.Deploy.Labels) != 1 {
		t.Errorf("PromptRemoveLabel: %q %v", removed, err)
	}
}
