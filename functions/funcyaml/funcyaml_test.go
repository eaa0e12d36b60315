package funcyaml

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := "specVersion: 0.36.0\nname: hello\nruntime: go\ncreated: 2026-01-01T00:00:00Z\nrun:\n  envs:\n  - name: A\n    value: b\ndeploy:\n  namespace: team\n  annotations: {example.com/x: \"yes\"}\n  options:\n    scale: {min: 1, max: 3}\n"
	f, err := Parse([]byte(good))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if f.Name != "hello" || *f.Deploy.Options.Scale.Max != 3 || f.EnvList()[0] != "A=b" || f.ImageRef() != "skiff.local/hello:latest" {
		t.Errorf("parsed %+v", f)
	}
	for _, c := range []struct{ doc, want string }{
		{good + "bogus: 1\n", `unknown field "bogus"`},
		{good + "build:\n  builder: docker\n", "build.builder"},
		{strings.Replace(good, "runtime: go", "runtime: rust", 1), `runtime: "rust" is not one of`},
		{strings.Replace(good, "name: hello", "name: Hello_World", 1), "name:"},
		{strings.Replace(good, "{min: 1, max: 3}", "{min: 5, max: 3}", 1), "deploy.options.scale.min"},
		{strings.Replace(good, "- name: A", "- name: 1A=", 1), "run.envs[0].name"},
		{strings.Replace(good, "scale: {min: 1, max: 3}", "scale: {mni: 1}", 1), `unknown field "deploy.options.scale.mni"`},
	} {
		if _, err := Parse([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error containing %q, got %v", c.want, err)
		}
	}
}
