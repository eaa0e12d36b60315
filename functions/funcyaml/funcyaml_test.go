package funcyaml

import (
	"fmt"
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

// The namespaces and the domain are validated as Knative's func validates them; the cases
// come from knative/func pkg/utils/names_test.go (TestValidateNamespace, TestValidateDomain).
// (Issue 13, item 10: the top-level namespace was not validated at all.)
func TestNamespaceAndDomain(t *testing.T) {
	base := "specVersion: 0.36.0\nname: hello\nruntime: go\ncreated: 2026-01-01T00:00:00Z\n"
	for _, ns := range []string{"default", "kube-system", "my-namespace", "myapp", "my-app-123", "a", "a-b", "abc-123-xyz"} {
		for _, field := range []string{"namespace: %s\n", "deploy:\n  namespace: %s\n"} {
			if _, err := Parse([]byte(base + fmt.Sprintf(field, ns))); err != nil {
				t.Errorf("%q: %v", fmt.Sprintf(field, ns), err)
			}
		}
	}
	for _, ns := range []string{"123app", `"1"`, "My-App", "MY-APP", "my_app", `"my app"`, "my@app", "-myapp", "myapp-",
		"my..app", "my/app", `"my:app"`, "my;app", "my,app", `"my*app"`, "my!app", "x/../default", `".."`} {
		for field, doc := range map[string]string{"namespace": "namespace: %s\n", "deploy.namespace": "deploy:\n  namespace: %s\n"} {
			_, err := Parse([]byte(base + fmt.Sprintf(doc, ns)))
			if err == nil || !strings.Contains(err.Error(), field+": ") {
				t.Errorf("%s %s: %v, want an error naming %s", field, ns, err, field)
			}
		}
	}
	for _, d := range []string{"example.com", "api.example.com", "my-app.example.com", "app-123.example.com", "123.example.com",
		"a.b.c.d.e.com", "localhost", "cluster.local", "my-app-123.staging.example.com", "a.co", "123app.example.com"} {
		if _, err := Parse([]byte(base + "domain: " + d + "\n")); err != nil {
			t.Errorf("domain %s: %v", d, err)
		}
	}
	for _, d := range []string{"Example.Com", "MY-APP.COM", "my_app.com", `"my app.com"`, "my@app.com", "app!.com", "-example.com",
		"example-.com", "example.-com.com", "my..app.com", ".example.com", `"my:app.com"`, "my;app.com", "my,app.com",
		`"my*app.com"`, `" example.com"`, `"example.com "`, "example.com.", "example@domain.com", "ex!ample.com", "example.com/path"} {
		if _, err := Parse([]byte(base + "domain: " + d + "\n")); err == nil || !strings.Contains(err.Error(), "domain: ") {
			t.Errorf("domain %s: %v, want an error naming domain", d, err)
		}
	}
}
