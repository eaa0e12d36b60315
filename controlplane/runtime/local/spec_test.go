package local

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime/probe"
)

func TestPlanEnvAndArgs(t *testing.T) {
	rev := &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{Name: "r-1", Namespace: "ns", Labels: map[string]string{
			servingv1.ServiceLabel: "s", servingv1.ConfigurationLabel: "c"}},
		Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
			Command: []string{"./bin/app", "--rev=$(K_REVISION)"},
			Args:    []string{"--listen=:$(PORT)", "--greeting=$(GREETING)"},
			Env: []corev1.EnvVar{
				{Name: "HOME", Value: "/override"},
				{Name: "GREETING", Value: "hi from $(K_SERVICE)"},
				{Name: "K_SERVICE", Value: "user cannot set this"},
			},
		}}}},
	}
	p, err := newPlan(rev, "/work")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.argv(9000), []string{filepath.Join("/work", "bin/app"), "--rev=r-1", "--listen=:9000", "--greeting=hi from s"}; !slices.Equal(got, want) {
		t.Errorf("argv = %q, want %q", got, want)
	}
	env := p.envFor([]string{"PATH=/bin", "HOME=/home/u", "PORT=1", "K_REVISION=parent", "HOST=laptop.example"}, 9000)
	last := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		last[k] = v
	}
	// HOST makes apps listen on loopback only (issue 13, item 6), whatever the shell had.
	want := map[string]string{"PATH": "/bin", "HOME": "/override", "GREETING": "hi from s", "PORT": "9000",
		"K_SERVICE": "s", "K_CONFIGURATION": "c", "K_REVISION": "r-1", "HOST": "127.0.0.1"}
	for k, v := range want {
		if last[k] != v {
			t.Errorf("env %s = %q, want %q (env %q)", k, last[k], v, env)
		}
	}
	if slices.Contains(env, "PORT=1") || slices.Contains(env, "K_REVISION=parent") || slices.Contains(env, "HOST=laptop.example") {
		t.Errorf("the parent's reserved variables leaked: %q", env)
	}
}

// The plan probes as the spec says (probe.Parse), with Knative's TCP default when it says
// nothing.
func TestPlanReadinessProbe(t *testing.T) {
	rev := func(p *corev1.Probe) *servingv1.Revision {
		return &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: "r-1"}, Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{
			Containers: []corev1.Container{{Command: []string{"app"}, ReadinessProbe: p}}}}}
	}
	p, err := newPlan(rev(nil), "/work")
	if err != nil || p.probe.Kind != probe.TCP || p.probe.Period != time.Second || p.probe.Failures != 3 || p.probe.Successes != 1 || p.probe.Timeout != time.Second {
		t.Errorf("default probe = %+v, %v", p.probe, err)
	}
	p, err = newPlan(rev(&corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: "ready?x=1", Scheme: corev1.URISchemeHTTPS,
		HTTPHeaders: []corev1.HTTPHeader{{Name: "host", Value: "h.example"}, {Name: "X-A", Value: "b"}},
	}}, PeriodSeconds: 2, FailureThreshold: 5}), "/work")
	if err != nil || p.probe.Kind != probe.HTTP || p.probe.Scheme != "https" || p.probe.Path != "/ready?x=1" || p.probe.Host != "h.example" ||
		len(p.probe.Headers) != 1 || p.probe.Period != 2*time.Second || p.probe.Failures != 5 {
		t.Errorf("http probe = %+v, %v", p.probe, err)
	}
}
