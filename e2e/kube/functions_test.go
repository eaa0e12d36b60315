package kube

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// skiffBinary builds cmd/skiff into the test's temp dir.
func skiffBinary(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "skiff")
	build := exec.Command("go", "build", "-o", bin, "./cmd/skiff")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/skiff: %v\n%s", err, out)
	}
	return bin
}

// TestFuncDeployToKubernetes: `skiff func deploy --kubeconfig` builds the function's OCI image,
// pushes it to the registry (go-containerregistry's, in process) and creates the Knative
// Service in the cluster naming the image by digest, with no host command line; describe
// reads it back; func.yaml's env (literal, Secret key, whole ConfigMap), volumes and labels
// land in the Deployment; deploy --image ref@digest deploys an image without building. The test
// kubelet cannot run the image; it plays its replicas (answering as the hello sample does),
// so the Revision's Deployment becomes available and deploy's wait for Ready ends as in a
// cluster. A deploy that does not become Ready within --timeout is undone; list and delete
// work on the cluster too.
func TestFuncDeployToKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and kube-controller-manager, builds skiff and a function")
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	u, _ := url.Parse(reg.URL)
	registryRepo := u.Host + "/fns"
	c := startCluster(t)
	startKubelet(t, c.kube)
	ctrl, _ := runController(t, c, "func-deploy")
	gw := runGateway(t, ctrl.XDSAddr().String())
	bin := skiffBinary(t, c.root)
	work := t.TempDir()
	cache := filepath.Join(os.TempDir(), "skiff-e2e-func-cache")
	skiffFunc := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"func"}, args...)...)
		cmd.Dir = work
		// No Skiff API is running: everything must go to the cluster.
		cmd.Env = append(os.Environ(), "SKIFF_API_ADDR=127.0.0.1:1", "SKIFF_CACHE_DIR="+cache)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	ctx := context.Background()

	if out, err := skiffFunc("create", "-l", "go", "-t", "http", "fn"); err != nil {
		t.Fatalf("func create: %v\n%s", err, out)
	}
	if out, err := skiffFunc("deploy", "-p", "fn", "--kubeconfig", c.kubeconfig); err == nil || !strings.Contains(out, "--registry") {
		t.Errorf("deploy --kubeconfig without a registry: %v, want an error saying the cluster needs one pushed (--registry)\n%s", err, out)
	}
	out, err := skiffFunc("deploy", "-p", "fn", "--kubeconfig", c.kubeconfig, "--registry", registryRepo, "--timeout", "90s")
	if err != nil {
		t.Fatalf("func deploy --kubeconfig: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Function fn deployed in namespace default (revision fn-00001)") || !strings.Contains(out, "http://fn.default.example.com") {
		t.Errorf("func deploy output:\n%s\nwant fn deployed as fn-00001 at http://fn.default.example.com", out)
	}
	pushed := regexp.MustCompile(`pushed (\S+@sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if pushed == nil {
		t.Fatalf("func deploy output:\n%s\nwant the pushed image's digest", out)
	}
	image := pushed[1]
	if !strings.HasPrefix(image, registryRepo+"/fn@sha256:") {
		t.Errorf("pushed %s, want %s/fn@sha256:…", image, registryRepo)
	}

	// The cluster: the Knative Service, its Revision, and the Deployment naming the image by
	// digest (no command line from this machine).
	svc, err := c.dyn.Resource(servicesGVR).Namespace("default").Get(ctx, "fn", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Knative Service fn: %v", err)
	}
	if !ready(svc) {
		t.Errorf("Service fn is not Ready after deploy returned: %v", svc.Object["status"])
	}
	if l := svc.GetLabels()["function.knative.dev/name"]; l != "fn" {
		t.Errorf("Service fn label function.knative.dev/name = %q, want fn", l)
	}
	if _, err := c.dyn.Resource(revisionsGVR).Namespace("default").Get(ctx, "fn-00001", metav1.GetOptions{}); err != nil {
		t.Fatalf("Revision fn-00001: %v", err)
	}
	dep, err := c.kube.AppsV1().Deployments("default").Get(ctx, "fn-00001-deployment", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Deployment of fn-00001: %v", err)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != image || len(ctr.Command) != 0 {
		t.Errorf("Deployment container image %q command %q, want %s and no command", ctr.Image, ctr.Command, image)
	}
	if p := ctr.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Port.IntValue() != 8080 {
		t.Errorf("Deployment readiness probe %+v, want the function's HTTP probe on the user port 8080", p)
	}
	// The registry has the image the Deployment names.
	ref, err := name.NewDigest(image)
	if err != nil {
		t.Fatalf("parse %s: %v", image, err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("the registry does not serve %s: %v", image, err)
	}
	if cf, err := img.ConfigFile(); err != nil || len(cf.Config.Entrypoint) == 0 {
		t.Errorf("image %s config: %+v, %v; want an entrypoint", image, cf, err)
	}
	// Its URL is routed (the test kubelet's stand-in replica answers, not the image).
	eventually(t, 30*time.Second, "fn answers through the gateway", func() bool {
		code, rev, _, err := getFrom(gw, "fn.default.example.com", "/")
		return err == nil && code == 200 && rev == "fn-00001"
	})

	// describe --kubeconfig reads the function back from the cluster, by path and by name.
	out, err = skiffFunc("describe", "-p", "fn", "--kubeconfig", c.kubeconfig)
	for _, want := range []string{"Function name:\n  fn\n", "Function is built in image:\n  " + image + "\n", "Function is deployed in namespace:\n  default\n",
		"Routes:\n  http://fn.default.example.com\n", "Function is ready:\n  true\n"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("func describe --kubeconfig: %v, lacks %q:\n%s", err, want, out)
		}
	}
	if out, err := skiffFunc("info", "fn", "-n", "default", "-o", "url", "--kubeconfig", c.kubeconfig); err != nil || strings.TrimSpace(out) != "http://fn.default.example.com" {
		t.Errorf("func info fn -o url --kubeconfig: %v %q", err, out)
	}
	// deploy kept the namespace and the pushed image in func.yaml, as func does.
	if y := mustRead(t, filepath.Join(work, "fn", "func.yaml")); !strings.Contains(y, "namespace: default") || !strings.Contains(y, "image: "+image) {
		t.Errorf("func.yaml after deploy --kubeconfig:\n%s", y)
	}

	// func.yaml's configuration lands in the cluster's Deployment: env from a literal, a
	// Secret's key and a whole ConfigMap; a Secret and an emptyDir mounted; a label.
	for _, args := range [][]string{
		{"config", "envs", "add", "-p", "fn", "--name", "GREETING", "--value", "hi"},
		{"config", "envs", "add", "-p", "fn", "--name", "PASSWORD", "--value", "{{ secret:db:password }}"},
		{"config", "envs", "add", "-p", "fn", "--value", "{{ configMap:settings }}"},
		{"config", "volumes", "add", "-p", "fn", "--type", "secret", "--source", "tls", "--mount-path", "/etc/tls"},
		{"config", "volumes", "add", "-p", "fn", "--type", "emptydir", "--mount-path", "/cache"},
		{"config", "labels", "add", "-p", "fn", "--name", "team", "--value", "blue"},
	} {
		if out, err := skiffFunc(args...); err != nil {
			t.Fatalf("func %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err = skiffFunc("deploy", "-p", "fn", "--kubeconfig", c.kubeconfig, "--timeout", "90s")
	if err != nil || !strings.Contains(out, "Function fn updated in namespace default (revision fn-00002)") {
		t.Fatalf("func deploy --kubeconfig with config: %v\n%s", err, out)
	}
	dep2, err := c.kube.AppsV1().Deployments("default").Get(ctx, "fn-00002-deployment", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Deployment of fn-00002: %v", err)
	}
	pod := dep2.Spec.Template.Spec
	ctr2 := pod.Containers[0]
	env := map[string]string{}
	for _, e := range ctr2.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + ":" + e.ValueFrom.SecretKeyRef.Key
		default:
			env[e.Name] = e.Value
		}
	}
	if env["GREETING"] != "hi" || env["PASSWORD"] != "secret:db:password" || len(ctr2.EnvFrom) != 1 || ctr2.EnvFrom[0].ConfigMapRef == nil || ctr2.EnvFrom[0].ConfigMapRef.Name != "settings" {
		t.Errorf("Deployment env %v envFrom %+v", env, ctr2.EnvFrom)
	}
	mounts := map[string]bool{}
	for _, m := range ctr2.VolumeMounts {
		mounts[m.MountPath] = m.ReadOnly || m.MountPath == "/cache"
	}
	vols := map[string]bool{}
	for _, v := range pod.Volumes {
		vols[v.Name] = (v.Secret != nil && v.Secret.SecretName == "tls") || v.EmptyDir != nil
	}
	if !mounts["/etc/tls"] || !mounts["/cache"] || len(vols) != 2 || !vols["secret-tls"] {
		t.Errorf("Deployment volumes %+v mounts %+v", pod.Volumes, ctr2.VolumeMounts)
	}
	if svc, err := c.dyn.Resource(servicesGVR).Namespace("default").Get(ctx, "fn", metav1.GetOptions{}); err != nil || svc.GetLabels()["team"] != "blue" {
		t.Errorf("Service fn labels: %v %v", err, svc)
	}

	// deploy --image ref@digest deploys that image as it is: nothing built, nothing pushed.
	if out, err := skiffFunc("create", "-l", "go", "-t", "http", "byimage"); err != nil {
		t.Fatalf("func create: %v\n%s", err, out)
	}
	out, err = skiffFunc("deploy", "-p", "byimage", "--kubeconfig", c.kubeconfig, "--image", image, "--timeout", "90s")
	if err != nil || !strings.Contains(out, "Function byimage deployed in namespace default") {
		t.Fatalf("func deploy --image DIGEST --kubeconfig: %v\n%s", err, out)
	}
	if strings.Contains(out, "host build") || strings.Contains(out, "pushed") {
		t.Errorf("deploy --image DIGEST built or pushed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(work, "byimage", ".func", "builds")); err == nil {
		t.Errorf("deploy --image DIGEST made a build")
	}
	depImg, err := c.kube.AppsV1().Deployments("default").Get(ctx, "byimage-00001-deployment", metav1.GetOptions{})
	if err != nil || depImg.Spec.Template.Spec.Containers[0].Image != image {
		t.Errorf("Deployment of byimage: %v, image %v, want %s", err, depImg, image)
	}
	if out, err := skiffFunc("deploy", "-p", "byimage", "--kubeconfig", c.kubeconfig, "--image", image, "--build=true"); err == nil || !strings.Contains(out, "--build can not be enabled") {
		t.Errorf("deploy --image DIGEST --build=true: %v\n%s", err, out)
	}

	out, err = skiffFunc("list", "--kubeconfig", c.kubeconfig)
	if err != nil || !regexp.MustCompile(`(?m)^fn\s+default\s+go\s+http://fn.default.example.com\s+True$`).MatchString(out) {
		t.Errorf("func list --kubeconfig: %v\n%s\nwant fn, Ready", err, out)
	}

	// Nothing half-deployed: a deploy that is not Ready within --timeout removes the
	// Service it created (and with it, through the garbage collector, its Revision).
	if out, err := skiffFunc("create", "-l", "go", "-t", "http", "late"); err != nil {
		t.Fatalf("func create: %v\n%s", err, out)
	}
	out, err = skiffFunc("deploy", "-p", "late", "--kubeconfig", c.kubeconfig, "--registry", registryRepo, "--timeout", "1ms")
	if err == nil || !strings.Contains(out, "did not become ready") || !strings.Contains(out, "the Service was removed") {
		t.Errorf("deploy with --timeout 1ms: %v\n%s\nwant it undone", err, out)
	}
	if _, err := c.dyn.Resource(servicesGVR).Namespace("default").Get(ctx, "late", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Service late after the failed deploy: %v, want it removed", err)
	}
	// The garbage collector takes what the Service owned; it watches the CRDs only once its
	// discovery has resynced (every 30s), so allow it that long.
	eventually(t, 90*time.Second, "Revision late-00001 collected", func() bool {
		_, err := c.dyn.Resource(revisionsGVR).Namespace("default").Get(ctx, "late-00001", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	if out, err := skiffFunc("delete", "byimage", "--kubeconfig", c.kubeconfig); err != nil {
		t.Errorf("func delete byimage --kubeconfig: %v\n%s", err, out)
	}
	if out, err := skiffFunc("delete", "fn", "--kubeconfig", c.kubeconfig); err != nil || !strings.Contains(out, "Removed function fn") {
		t.Errorf("func delete --kubeconfig: %v\n%s", err, out)
	}
	eventually(t, 90*time.Second, "fn's Service, Revision and Deployment gone", func() bool {
		_, errS := c.dyn.Resource(servicesGVR).Namespace("default").Get(ctx, "fn", metav1.GetOptions{})
		_, errD := c.kube.AppsV1().Deployments("default").Get(ctx, "fn-00001-deployment", metav1.GetOptions{})
		return apierrors.IsNotFound(errS) && apierrors.IsNotFound(errD)
	})
	if out, err := skiffFunc("delete", "fn", "--kubeconfig", c.kubeconfig); err == nil || !strings.Contains(out, "not deployed") {
		t.Errorf("deleting fn again: %v\n%s, want it reported as not deployed", err, out)
	}
}
