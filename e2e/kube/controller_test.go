package kube

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/gateway"
)

var (
	servicesGVR  = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "services"}
	revisionsGVR = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "revisions"}
	configsGVR   = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "configurations"}
	routesGVR    = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "routes"}
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runController starts `skiff controller` in-process against the cluster; the returned func stops it.
func runController(t testing.TB, c *cluster, identity string) (*kube.Controller, func()) {
	t.Helper()
	return runControllerWith(t, c, identity, nil)
}

// runControllerWith is runController with the configuration changed by edit first.
func runControllerWith(t testing.TB, c *cluster, identity string, edit func(*kube.Config)) (*kube.Controller, func()) {
	t.Helper()
	ctrl, stop := startControllerNoWait(t, c, identity, edit)
	eventually(t, 30*time.Second, identity+" leading", ctrl.Leading)
	return ctrl, stop
}

// startControllerNoWait is runControllerWith without waiting for the replica to lead.
func startControllerNoWait(t testing.TB, c *cluster, identity string, edit func(*kube.Config)) (*kube.Controller, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := kube.Config{
		Rest: c.rest, XDSAddress: "127.0.0.1:0", HealthAddress: "-", HTTPAddress: "127.0.0.1:0", WebhookAddress: "-", Domain: "example.com",
		ProxyListenPort: 0, Identity: identity, LeaseNamespace: "default",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		Logger: log,
	}
	if edit != nil {
		edit(&cfg)
	}
	ctrl, err := kube.New(cfg)
	if err != nil {
		t.Fatalf("start controller: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := ctrl.Run(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("controller %s: %v", identity, err)
		}
	})
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return ctrl, stop
}

// runGateway starts `skiff gateway` against the controller's xDS and returns its HTTP address.
func runGateway(t testing.TB, xdsAddr string) string {
	t.Helper()
	return runGatewayAdmin(t, xdsAddr, "127.0.0.1:0")
}

// runGatewayAdmin is runGateway with the admin endpoint (/stats) on adminAddr.
func runGatewayAdmin(t testing.TB, xdsAddr, adminAddr string) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gw, err := gateway.New(gateway.Config{ADSAddress: xdsAddr, NodeID: "kube-e2e", NodeCluster: "skiff-gateway",
		AdminAddress: adminAddr, Logger: log, ListenerAddressOverride: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = gw.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	var addr string
	eventually(t, 30*time.Second, "gateway listener from LDS", func() bool {
		a, ok := gw.ListenerAddr(xds.ListenerName)
		if ok {
			addr = a.String()
		}
		return ok
	})
	return addr
}

func (c *cluster) apply(t *testing.T, file string) {
	t.Helper()
	for _, u := range readObjects(t, filepath.Join("testdata", file)) {
		ns := u.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ri := c.dyn.Resource(servicesGVR).Namespace(ns)
		cur, err := ri.Get(context.Background(), u.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = ri.Create(context.Background(), u, metav1.CreateOptions{})
		case err == nil:
			u.SetResourceVersion(cur.GetResourceVersion())
			_, err = ri.Update(context.Background(), u, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatalf("apply %s: %v", file, err)
		}
	}
}

// ready reports whether the object's Ready condition is True at its current generation.
func ready(u *unstructured.Unstructured) bool {
	og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if og != u.GetGeneration() {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, cd := range conds {
		m := cd.(map[string]any)
		if m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	return false
}

func (c *cluster) waitReady(t *testing.T, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	var u *unstructured.Unstructured
	eventually(t, 60*time.Second, gvr.Resource+"/"+name+" Ready", func() bool {
		var err error
		u, err = c.dyn.Resource(gvr).Namespace("default").Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && ready(u)
	})
	return u
}

func TestKnativeSampleOnKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and kube-controller-manager")
	}
	c := startCluster(t)
	startKubelet(t, c.kube)
	ctrl, stopCtrl := runController(t, c, "controller-1")
	gw := runGateway(t, ctrl.XDSAddr().String())
	ctx := context.Background()
	// Beside the sample: bad traffic that got in without the webhook reaches status.
	bad := badTraffic{c}
	bad.create(t)

	// Service → Configuration, Route, Revision, Deployment; URL; Ready.
	c.apply(t, "hello.yaml")
	svc := c.waitReady(t, servicesGVR, "hello")
	if url, _, _ := unstructured.NestedString(svc.Object, "status", "url"); url != "http://hello.default.example.com" {
		t.Errorf("status.url = %q, want http://hello.default.example.com", url)
	}
	c.waitReady(t, revisionsGVR, "hello-00001")
	bad.check(t)
	dep, err := c.kube.AppsV1().Deployments("default").Get(ctx, "hello-00001-deployment", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment of hello-00001: %v", err)
	}
	if n := len(dep.Spec.Template.Spec.Containers); n != 1 {
		t.Errorf("deployment has %d containers, want the user container only", n)
	}
	if o := metav1.GetControllerOf(dep); o == nil || o.Kind != "Revision" || o.Name != "hello-00001" {
		t.Errorf("deployment controller = %+v, want Revision hello-00001", o)
	}
	eventually(t, 30*time.Second, "hello answers through the gateway", func() bool {
		code, body, err := get(gw, "hello.default.example.com")
		return err == nil && code == 200 && body == "Hello World!\n"
	})

	// Update → a new Revision; the sample's 50/50 split and tags reach the proxy over xDS.
	c.apply(t, "hello-split.yaml")
	c.waitReady(t, revisionsGVR, "hello-00002")
	c.waitReady(t, servicesGVR, "hello")
	eventually(t, 30*time.Second, "tag current answers from hello-00001", func() bool {
		code, body, err := get(gw, "current-hello.default.example.com")
		return err == nil && code == 200 && body == "Hello World!\n"
	})
	eventually(t, 30*time.Second, "tag latest answers from hello-00002", func() bool {
		code, body, err := get(gw, "latest-hello.default.example.com")
		return err == nil && code == 200 && body == "Hello Knative!\n"
	})
	seen := map[string]int{}
	for i := 0; i < 200 && (seen["Hello World!\n"] == 0 || seen["Hello Knative!\n"] == 0); i++ {
		if code, body, err := get(gw, "hello.default.example.com"); err == nil && code == 200 {
			seen[body]++
		}
	}
	if seen["Hello World!\n"] == 0 || seen["Hello Knative!\n"] == 0 {
		t.Errorf("50/50 split answered %v, want both revisions", seen)
	}

	// Restart: the new leader loses nothing and rewrites no Deployment.
	rvs := map[string]string{}
	deps, err := c.kube.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		rvs[d.Name] = d.ResourceVersion
	}
	stopCtrl()
	ctrl2, _ := runController(t, c, "controller-2")
	gw2 := runGateway(t, ctrl2.XDSAddr().String())
	eventually(t, 30*time.Second, "hello answers through the new leader's xDS", func() bool {
		code, body, err := get(gw2, "current-hello.default.example.com")
		return err == nil && code == 200 && body == "Hello World!\n"
	})
	// A Service created after the restart is reconciled after the resync of everything before it.
	if _, err := c.dyn.Resource(servicesGVR).Namespace("default").Create(ctx, decodeObjects(t, []byte(strings.ReplaceAll(
		mustRead(t, "testdata/hello.yaml"), "name: hello", "name: canary")))[0], metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, servicesGVR, "canary")
	c.waitReady(t, servicesGVR, "hello")
	deps, err = c.kube.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		if rv, ok := rvs[d.Name]; ok && rv != d.ResourceVersion {
			t.Errorf("deployment %s was rewritten across the controller restart (resourceVersion %s → %s)", d.Name, rv, d.ResourceVersion)
		}
	}

	// Deletion cascades: Configuration, Route, Revisions, Deployments go with the Service.
	if err := c.dyn.Resource(servicesGVR).Namespace("default").Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "hello's children deleted", func() bool {
		for _, g := range []schema.GroupVersionResource{configsGVR, routesGVR} {
			if _, err := c.dyn.Resource(g).Namespace("default").Get(ctx, "hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		for _, r := range []string{"hello-00001", "hello-00002"} {
			if _, err := c.dyn.Resource(revisionsGVR).Namespace("default").Get(ctx, r, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
			if _, err := c.kube.AppsV1().Deployments("default").Get(ctx, r+"-deployment", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		return true
	})
	eventually(t, 30*time.Second, "hello no longer routed", func() bool {
		code, _, err := get(gw2, "hello.default.example.com")
		return err == nil && code == 404
	})
}
