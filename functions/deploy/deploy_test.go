package deploy

import (
	"context"
	"fmt"
	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

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
	if err := api.Errors(api.Admit(context.Background(), svc, nil)); err != nil {
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

const configuredYAML = `specVersion: 0.36.0
name: hello
runtime: node
domain: example.org
run:
  envs:
  - name: LITERAL
    value: plain
  - name: FROM_HOST
    value: '{{ env:SKIFF_TEST_HOST_VAR }}'
  - name: PASSWORD
    value: '{{ secret:db:password }}'
  - name: MODE
    value: '{{ configMap:settings:mode }}'
  - value: '{{ secret:api-keys }}'
  - value: '{{ configMap:all-settings }}'
  volumes:
  - secret: tls.certs
    path: /etc/tls
  - configMap: settings
    path: /etc/settings
  - persistentVolumeClaim: {claimName: data, readOnly: true}
    path: /data
  - emptyDir: {medium: Memory, sizeLimit: 64Mi}
    path: /cache
deploy:
  imagePullSecret: regcred
  labels:
  - key: team
    value: '{{ env:SKIFF_TEST_TEAM }}'
  traffic:
  - revisionName: hello-00001
    percent: 80
    tag: stable
  - latestRevision: true
    percent: 20
    tag: canary
`

// func.yaml's env forms, volumes, labels from the environment, domain, pull secret and
// traffic become the Service as Knative func's deployer (k8s.ProcessEnvs, ProcessVolumes,
// GenerateCommonLabels; pkg/k8s/deployer_test.go Test_processEnvs, Test_processVolumes) makes
// them, and the Service passes Knative's validation.
func TestServiceForConfigured(t *testing.T) {
	f, err := funcyaml.Parse([]byte(configuredYAML))
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"SKIFF_TEST_HOST_VAR": "from-host", "SKIFF_TEST_TEAM": "blue"}[k]
		return v, ok
	}
	svc, err := serviceFor(f, Target{Image: "reg/hello@sha256:" + strings.Repeat("a", 64)}, "default", lookup)
	if err != nil {
		t.Fatal(err)
	}
	c := svc.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret " + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom.ConfigMapKeyRef != nil:
			env[e.Name] = "configMap " + e.ValueFrom.ConfigMapKeyRef.Name + "/" + e.ValueFrom.ConfigMapKeyRef.Key
		}
	}
	want := map[string]string{"LITERAL": "plain", "FROM_HOST": "from-host", "PASSWORD": "secret db/password", "MODE": "configMap settings/mode"}
	if fmt.Sprint(env) != fmt.Sprint(want) {
		t.Errorf("env %v, want %v", env, want)
	}
	if len(c.EnvFrom) != 2 || c.EnvFrom[0].SecretRef.Name != "api-keys" || c.EnvFrom[1].ConfigMapRef.Name != "all-settings" {
		t.Errorf("envFrom %+v", c.EnvFrom)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range svc.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("mount %s names volume %s, which the pod does not have", m.MountPath, m.Name)
		}
	}
	if v := vols[mounts["/etc/tls"].Name]; v.Secret == nil || v.Secret.SecretName != "tls.certs" || v.Name != "secret-tls-certs" || !mounts["/etc/tls"].ReadOnly {
		t.Errorf("secret volume %+v mount %+v", v, mounts["/etc/tls"])
	}
	if v := vols[mounts["/etc/settings"].Name]; v.ConfigMap == nil || v.ConfigMap.Name != "settings" || !mounts["/etc/settings"].ReadOnly {
		t.Errorf("configMap volume %+v", v)
	}
	if v := vols[mounts["/data"].Name]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "data" || !v.PersistentVolumeClaim.ReadOnly {
		t.Errorf("pvc volume %+v", v)
	}
	if v := vols[mounts["/cache"].Name]; v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory || v.EmptyDir.SizeLimit.String() != "64Mi" {
		t.Errorf("emptyDir volume %+v", v)
	}
	// The same func.yaml makes the same spec (no random emptyDir name): no new revision.
	again, _ := serviceFor(f, Target{Image: c.Image}, "default", lookup)
	if again.Spec.Template.Spec.Volumes[3].Name != svc.Spec.Template.Spec.Volumes[3].Name {
		t.Errorf("emptyDir volume name changed between deploys")
	}
	if svc.Labels["team"] != "blue" || svc.Labels[LabelDomain] != "example.org" || svc.Spec.Template.Labels["team"] != "blue" {
		t.Errorf("labels %v", svc.Labels)
	}
	if ps := svc.Spec.Template.Spec.ImagePullSecrets; len(ps) != 1 || ps[0].Name != "regcred" {
		t.Errorf("imagePullSecrets %v", ps)
	}
	tr := svc.Spec.Traffic
	if len(tr) != 2 || tr[0].RevisionName != "hello-00001" || *tr[0].Percent != 80 || tr[0].Tag != "stable" ||
		tr[1].LatestRevision == nil || !*tr[1].LatestRevision || *tr[1].Percent != 20 || tr[1].Tag != "canary" {
		t.Errorf("traffic %+v", tr)
	}
	// Defaulted and validated as Knative's webhook would, with the PVC feature on (func.yaml
	// asks for a claim, which Knative allows only behind kubernetes.podspec-persistent-volume-claim).
	cfg := config.Default().Clone()
	cfg.Features.PodSpecPersistentVolumeClaim = config.Enabled
	if err := api.Errors(api.Admit(config.ToContext(context.Background(), cfg), svc, nil)); err != nil {
		t.Errorf("the Service does not pass Knative's validation: %v", err)
	}

	// Values read from this machine are checked when read.
	if _, err := serviceFor(f, Target{Image: "x"}, "default", func(string) (string, bool) { return "", false }); err == nil ||
		!strings.Contains(err.Error(), "run.envs[1] (FROM_HOST): the local environment variable SKIFF_TEST_HOST_VAR is not set") {
		t.Errorf("unset local variable: %v", err)
	}
	bad := func(k string) (string, bool) {
		if k == "SKIFF_TEST_TEAM" {
			return ":not a label", true
		}
		return lookup(k)
	}
	if _, err := serviceFor(f, Target{Image: "x"}, "default", bad); err == nil || !strings.Contains(err.Error(), "deploy.labels[0].value") {
		t.Errorf("label value from the environment that is no label value: %v", err)
	}
}
