package kube

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubectlCluster runs the real kubectl against the cluster with stdin, returning stdout and
// stderr (where kubectl prints the API server's warnings).
func (c *cluster) kubectlCluster(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlPath(t), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+filepath.Join(t.TempDir(), "cache"))
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestRestrictedPodSecurity installs deploy/ as deploy/README.md says, with the real kubectl
// (and its kustomize): the skiff-system Namespace of the manifests, labelled for Pod Security
// "restricted", then `kubectl apply -k deploy/` as a server-side dry run. Every object must be
// accepted without a warning, i.e. every pod template passes "restricted" (seccompProfile
// RuntimeDefault, runAsNonRoot, no privilege escalation, all capabilities dropped). A pod
// that does not comply is refused in that namespace, so the check is live.
func TestRestrictedPodSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	c := startCluster(t)
	kubectlPath(t)
	built, errOut, err := c.kubectlCluster(t, "", "kustomize", "deploy/")
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/: %v\n%s", err, errOut)
	}
	// The Namespaces first (skiff-system, and knative-eventing for Eventing's config-features
	// Role): a server-side dry run creates none, so objects in them would be NotFound.
	var namespaces []string
	for _, doc := range strings.Split(built, "\n---\n") {
		if strings.Contains(doc, "kind: Namespace\n") {
			namespaces = append(namespaces, doc)
		}
	}
	if len(namespaces) == 0 {
		t.Fatal("deploy/ has no Namespace")
	}
	for _, ns := range namespaces {
		if out, errOut, err := c.kubectlCluster(t, ns, "apply", "-f", "-"); err != nil {
			t.Fatalf("kubectl apply the Namespace: %v\n%s%s", err, out, errOut)
		}
	}
	got, err := c.kube.CoreV1().Namespaces().Get(context.Background(), "skiff-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := got.Labels["pod-security.kubernetes.io/enforce"]; l != "restricted" {
		t.Fatalf("namespace skiff-system pod-security.kubernetes.io/enforce = %q, want restricted", l)
	}

	out, errOut, err := c.kubectlCluster(t, "", "apply", "-k", "deploy/", "--dry-run=server")
	if err != nil {
		t.Fatalf("kubectl apply -k deploy/ --dry-run=server: %v\n%s%s", err, out, errOut)
	}
	if strings.Contains(strings.ToLower(errOut), "warning") {
		t.Errorf("kubectl apply -k deploy/ --dry-run=server warned:\n%s", errOut)
	}
	for _, want := range []string{"deployment.apps/skiff-controller", "deployment.apps/skiff-envoy", "deployment.apps/skiff-extproc", "statefulset.apps/nats"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %s:\n%s", want, out)
		}
	}

	// The namespace enforces it: a pod without the restricted settings is refused.
	_, errOut, err = c.kubectlCluster(t, "", "run", "plain", "-n", "skiff-system", "--image=nginx", "--dry-run=server")
	if err == nil || !strings.Contains(errOut, "violates PodSecurity") {
		t.Errorf("a pod without restricted settings in skiff-system: err %v, stderr %q; want it refused (violates PodSecurity)", err, errOut)
	}
}
