package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skiff-dev/skiff/api/config"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
	"github.com/skiff-dev/skiff/e2e/traffic"
	"github.com/skiff-dev/skiff/extproc"
)

// fastAutoscaler decides every 200ms over Knative's smallest stable window (6s) with a 1s
// scale-to-zero grace period, so scaling shows within seconds.
func fastAutoscaler() *autoscaler.Config {
	a := autoscaler.DefaultConfig()
	a.TickInterval = 200 * time.Millisecond
	a.StableWindow = 6 * time.Second
	a.ScaleToZeroGracePeriod = time.Second
	return &a
}

// runExtProc starts the standalone ext_proc activator (`skiff extproc`: extproc.Server and
// the activation feed) and returns its gRPC address; follow makes it follow the controller
// at the given HTTP base URL once known.
func runExtProc(t *testing.T) (addr string, follow func(baseURL string)) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	feed := &extproc.Feed{Instance: "extproc-e2e", Logger: log, ReportEvery: 200 * time.Millisecond}
	srv := extproc.New(extproc.Config{Logger: log, OnDemand: feed.Poke})
	g := grpc.NewServer()
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Serve(lis) })
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })
	return lis.Addr().String(), func(baseURL string) {
		feed.BaseURL = baseURL
		wg.Go(func() { _ = feed.Run(ctx, srv) })
	}
}

// deploymentReplicas reads spec.replicas of a revision's Deployment from the API server.
func (c *cluster) deploymentReplicas(t *testing.T, revision string) int32 {
	t.Helper()
	d, err := c.kube.AppsV1().Deployments("default").Get(context.Background(), revision+"-deployment", metav1.GetOptions{})
	if err != nil {
		return -1
	}
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// load keeps conc requests in flight against host through the gateway until stop is closed;
// wait returns how many answered 200 and how many did not.
func load(gw, host, path string, conc int, stop <-chan struct{}) (wait func() (ok, failed int64)) {
	return traffic.Load(gw, host, path, conc, stop)
}

const autoscaledService = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: scaler
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/window: "6s"
        autoscaling.knative.dev/target: "1"
        autoscaling.knative.dev/target-utilization-percentage: "100"
    spec:
      containers:
        - image: ghcr.io/knative/autoscale-go:latest
`

// The autoscaler scales the Revision's Deployment through the scale subresource: up under
// concurrent load (read from the gateway's /stats), to zero when the load stops, and from
// zero again when a request arrives, which the standalone ext_proc activator holds until the
// new pod's endpoint is in the proxy, then answers 200 from the revision.
func TestAutoscalerScalesDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and kube-controller-manager")
	}
	c := startCluster(t)
	startKubelet(t, c.kube)
	extAddr, follow := runExtProc(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctrl, _ := runControllerWith(t, c, "autoscaler", func(cfg *kube.Config) {
		cfg.Autoscaler = fastAutoscaler()
		cfg.ExtProcAddress = extAddr
		cfg.ProxyStatsURLs = []string{"http://" + admin}
		// config-autoscaler's enable-scale-to-zero over fastAutoscaler (skiff controller's
		// loader does the same over its flags for every key).
		cfg.LoadSettings = func(data map[string]map[string]string) (reconciler.Settings, error) {
			a := *fastAutoscaler()
			if v, ok := data["config-autoscaler"]["enable-scale-to-zero"]; ok {
				on, err := strconv.ParseBool(v)
				if err != nil {
					return reconciler.Settings{}, fmt.Errorf("enable-scale-to-zero: %w", err)
				}
				a.EnableScaleToZero = on
			}
			return reconciler.Settings{Admission: config.Default(), Autoscaler: a}, nil
		}
	})
	follow("http://" + ctrl.HTTPAddr().String())
	gw := runGatewayAdmin(t, ctrl.XDSAddr().String(), admin)
	ctx := context.Background()

	if _, err := c.dyn.Resource(servicesGVR).Namespace("default").Create(ctx, decodeObjects(t, []byte(autoscaledService))[0], metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, servicesGVR, "scaler")
	if n := c.deploymentReplicas(t, "scaler-00001"); n != 1 {
		t.Errorf("initial replicas = %d, want 1 (Knative's initial scale)", n)
	}

	// 4 requests always in flight on a target of 1 per pod: about 4 pods.
	stop := make(chan struct{})
	wait := load(gw, "scaler.default.example.com", "/?sleep=300", 4, stop)
	eventually(t, 60*time.Second, "the Deployment scaled up to at least 3 replicas under load", func() bool {
		return c.deploymentReplicas(t, "scaler-00001") >= 3
	})
	eventually(t, 30*time.Second, "3 replicas serving (EndpointSlices) and the Revision reporting them", func() bool {
		rev, err := c.dyn.Resource(revisionsGVR).Namespace("default").Get(ctx, "scaler-00001", metav1.GetOptions{})
		if err != nil {
			return false
		}
		actual, _, _ := unstructured.NestedInt64(rev.Object, "status", "actualReplicas")
		return actual >= 3
	})
	close(stop)
	if ok, failed := wait(); failed > 0 || ok == 0 {
		t.Errorf("under load: %d requests answered 200, %d did not", ok, failed)
	}

	// No traffic: down to zero, the revision in proxy mode.
	eventually(t, 60*time.Second, "the Deployment scaled to zero after the load stopped", func() bool {
		return c.deploymentReplicas(t, "scaler-00001") == 0
	})
	var last map[string]any
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last Revision status: %v", last)
		}
	})
	eventually(t, 30*time.Second, "the Revision reporting 0 replicas in proxy mode", func() bool {
		rev, err := c.dyn.Resource(revisionsGVR).Namespace("default").Get(ctx, "scaler-00001", metav1.GetOptions{})
		if err != nil {
			return false
		}
		last, _, _ = unstructured.NestedMap(rev.Object, "status")
		actual, _, _ := unstructured.NestedInt64(rev.Object, "status", "actualReplicas")
		mode, _, _ := unstructured.NestedString(rev.Object, "status", "autoscaling", "mode")
		return actual == 0 && mode == string(servingv1.ModeProxy) && ready(rev)
	})

	// A request at zero is held by the activator through the cold start and answered.
	start := time.Now()
	code, rev, body, err := getFrom(gw, "scaler.default.example.com", "/")
	if err != nil || code != 200 || rev != "scaler-00001" {
		t.Fatalf("request at zero: %d from %q (%q, %v), want 200 from scaler-00001", code, rev, body, err)
	}
	t.Logf("cold start through the activator took %s", time.Since(start).Round(time.Millisecond))
	if n := c.deploymentReplicas(t, "scaler-00001"); n < 1 {
		t.Errorf("replicas after the cold start = %d, want at least 1", n)
	}

	// kubectl edit cm config-autoscaler: as Knative's autoscaler follows it, the leader's does
	// too. Idle at zero again, the revision comes back to one pod with no request once scale
	// to zero is turned off.
	eventually(t, 60*time.Second, "the Deployment back to zero after the cold start's request", func() bool {
		return c.deploymentReplicas(t, "scaler-00001") == 0
	})
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "skiff-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config-autoscaler", Namespace: "skiff-system"}, Data: map[string]string{"enable-scale-to-zero": "false"}}
	if _, err := c.kube.CoreV1().ConfigMaps("skiff-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the Deployment scaled back to 1 once config-autoscaler turned scale to zero off", func() bool {
		return c.deploymentReplicas(t, "scaler-00001") == 1
	})
}
