package deploy_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// workloads are the pod templates of deploy/skiff.yaml's Deployments and StatefulSets.
func workloads(t *testing.T, objs []*unstructured.Unstructured) map[string]*corev1.PodTemplateSpec {
	t.Helper()
	out := map[string]*corev1.PodTemplateSpec{}
	for _, u := range objs {
		switch u.GetKind() {
		case "Deployment":
			out[u.GetName()] = &find[appsv1.Deployment](t, objs, "Deployment", u.GetName()).Spec.Template
		case "StatefulSet":
			out[u.GetName()] = &find[appsv1.StatefulSet](t, objs, "StatefulSet", u.GetName()).Spec.Template
		}
	}
	return out
}

// TestWorkloadsHardened: every container of deploy/ has resource requests and limits,
// readiness and liveness probes, a read-only root file system, no privilege escalation and
// every capability dropped; every pod runs as non-root with the RuntimeDefault seccomp
// profile, is spread over nodes, and has a PodDisruptionBudget. (Pod Security "restricted"
// itself is checked by the API server: e2e/kube TestRestrictedPodSecurity.)
func TestWorkloadsHardened(t *testing.T) {
	objs := manifests(t)
	pdbs := map[string]bool{}
	for _, u := range objs {
		if u.GetKind() == "PodDisruptionBudget" {
			p := find[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", u.GetName())
			pdbs[p.Spec.Selector.MatchLabels["app"]] = true
		}
	}
	ws := workloads(t, objs)
	if len(ws) != 4 {
		t.Fatalf("deploy/ has workloads %v, want the controller, extproc, Envoy and NATS", len(ws))
	}
	for name, tpl := range ws {
		ps := tpl.Spec.SecurityContext
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 ||
			ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v, want runAsNonRoot, a non-zero runAsUser and seccompProfile RuntimeDefault", name, ps)
		}
		if len(tpl.Spec.TopologySpreadConstraints) == 0 && (tpl.Spec.Affinity == nil || tpl.Spec.Affinity.PodAntiAffinity == nil) {
			t.Errorf("%s: no topology spread or pod anti-affinity: replicas may share a node", name)
		}
		if !pdbs[tpl.Labels["app"]] {
			t.Errorf("%s: no PodDisruptionBudget selects app=%s", name, tpl.Labels["app"])
		}
		for _, c := range tpl.Spec.Containers {
			where := name + "/" + c.Name
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					t.Errorf("%s: no %s request", where, r)
				}
				if _, ok := c.Resources.Limits[r]; !ok {
					t.Errorf("%s: no %s limit", where, r)
				}
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s: readiness %v, liveness %v: want both probes", where, c.ReadinessProbe != nil, c.LivenessProbe != nil)
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
				*sc.AllowPrivilegeEscalation || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: securityContext %+v, want a read-only root file system, no privilege escalation, every capability dropped", where, sc)
			}
		}
	}
	envoy := ws["skiff-envoy"].Spec.Containers[0]
	if envoy.Lifecycle == nil || envoy.Lifecycle.PreStop == nil {
		t.Error("skiff-envoy: no preStop drain")
	}
}

// TestOneEnvoyVersion: the bootstrap, the manifests and both READMEs name the same Envoy
// minor version, and the image is pinned to a release of it (not a moving -latest tag).
func TestOneEnvoyVersion(t *testing.T) {
	ws := workloads(t, manifests(t))
	image := ws["skiff-envoy"].Spec.Containers[0].Image
	m := regexp.MustCompile(`^envoyproxy/envoy:v(1\.\d+)\.\d+(@sha256:[0-9a-f]{64})?$`).FindStringSubmatch(image)
	if m == nil {
		t.Fatalf("skiff-envoy image %q: want envoyproxy/envoy:vX.Y.Z (optionally @sha256:...), a pinned release", image)
	}
	version := "v" + m[1]
	for _, f := range []string{"envoy/bootstrap.yaml", "envoy/README.md", "README.md", "../README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		named := regexp.MustCompile(`Envoy (?:v|≥ ?)?(1\.\d+)`).FindAllStringSubmatch(string(b), -1)
		if len(named) == 0 {
			t.Errorf("%s names no Envoy version", f)
		}
		for _, n := range named {
			if "v"+n[1] != version {
				t.Errorf("%s names %q, but the manifests run Envoy %s", f, n[0], version)
			}
		}
		if !strings.Contains(string(b), "Envoy "+version) {
			t.Errorf("%s does not name Envoy %s, the version deploy/skiff.yaml runs", f, version)
		}
	}
}
