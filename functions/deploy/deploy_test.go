package deploy

import (
	"context"
	"github.com/skiff-dev/skiff/api/fielderr"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

const funcYAML = `specVersion: 0.36.0
name: hello
runtime: go
namespace: fallback
run:
  envs:
  - name: GREETING
    value: hi
deploy:
  annotations: {example.com/team: blue}
  labels:
  - key: app.kubernetes.io/part-of
    value: shop
  options:
    scale: {min: 1, max: 4, target: 20}
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {concurrency: 10}
`

// A function becomes the Knative Service a user would write: Knative Functions' labels,
// func.yaml's annotations and scale as autoscaling annotations on the template, env, the
// readiness path, containerConcurrency from limits.concurrency, and the build's command.
func TestServiceFor(t *testing.T) {
	f, err := funcyaml.Parse([]byte(funcYAML))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := ServiceFor(f, Target{Image: "skiff.local/hello:latest", Command: []string{"/b/hello"}, Build: "abc"}, "team")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Namespace != "team" || svc.Labels[LabelName] != "hello" || svc.Labels[LabelRuntime] != "go" ||
		svc.Labels["app.kubernetes.io/part-of"] != "shop" || svc.Annotations["example.com/team"] != "blue" {
		t.Errorf("metadata %+v", svc.ObjectMeta)
	}
	ann := svc.Spec.Template.Annotations
	for k, want := range map[string]string{
		"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "4",
		"autoscaling.knative.dev/target": "20", AnnotationBuild: "abc", "example.com/team": "blue",
	} {
		if ann[k] != want {
			t.Errorf("template annotation %s = %q, want %q", k, ann[k], want)
		}
	}
	c := svc.Spec.Template.Spec.Containers[0]
	if c.Image != "skiff.local/hello:latest" || strings.Join(c.Command, " ") != "/b/hello" ||
		len(c.Env) != 1 || c.Env[0].Name != "GREETING" || c.Env[0].Value != "hi" {
		t.Errorf("container %+v", c)
	}
	if c.ReadinessProbe.HTTPGet.Path != funcyaml.DefaultReadinessPath {
		t.Errorf("readiness path %q", c.ReadinessProbe.HTTPGet.Path)
	}
	if q := c.Resources.Requests.Cpu().String(); q != "100m" {
		t.Errorf("cpu request %s", q)
	}
	if cc := svc.Spec.Template.Spec.ContainerConcurrency; cc == nil || *cc != 10 {
		t.Errorf("containerConcurrency %v, want 10", cc)
	}
	svc.SetDefaults(context.Background())
	if err := svc.Validate(context.Background()).Filter(fielderr.ErrorLevel); err != nil {
		t.Errorf("the Service does not pass Knative's validation: %v", err)
	}

	bad := strings.Replace(funcYAML, "memory: 64Mi", "memory: lots", 1)
	if f, err := funcyaml.Parse([]byte(bad)); err == nil {
		if _, err := ServiceFor(f, Target{Image: "x"}, "team"); err == nil || !strings.Contains(err.Error(), "deploy.options.resources.requests.memory") {
			t.Errorf("bad quantity: %v, want an error naming the field", err)
		}
	} else if !strings.Contains(err.Error(), "deploy.options.resources.requests.memory") {
		t.Errorf("bad quantity: %v, want an error naming the field", err)
	}
}

func TestNamespace(t *testing.T) {
	f, err := funcyaml.Parse([]byte(funcYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := Namespace(f, ""); got != "fallback" {
		t.Errorf("namespace = %q, want func.yaml's namespace", got)
	}
	f.Deploy.Namespace = "deployns"
	if got := Namespace(f, ""); got != "deployns" {
		t.Errorf("namespace = %q, want deploy.namespace", got)
	}
	if got := Namespace(f, "flag"); got != "flag" {
		t.Errorf("namespace = %q, want the explicit one", got)
	}
	f.Deploy.Namespace, f.Namespace = "", ""
	if got := Namespace(f, ""); got != "default" {
		t.Errorf("namespace = %q, want default", got)
	}
}
