package kube

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/controlplane/eventing"
	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

var (
	brokersGVR  = schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1", Resource: "brokers"}
	triggersGVR = schema.GroupVersionResource{Group: "eventing.knative.dev", Version: "v1", Resource: "triggers"}
)

// startNATS starts a NATS server with JetStream in the test process, standing in for the
// external NATS cluster `skiff controller --nats-url` connects to; it stops with the test.
func startNATS(t testing.TB) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	emb, err := broker.StartEmbedded(context.Background(), t.TempDir(), log)
	if err != nil {
		t.Fatalf("start NATS with JetStream: %v", err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	return emb.ClientURL()
}

// withEventing makes the controller run eventing on natsURL, with deliveries through the
// proxy *proxy names once the gateway is up, and the cloudevents filter (when given) served
// to proxies as remote code on the controller's HTTP address.
func withEventing(natsURL string, proxy *atomic.Value, filter *wasmbuild.Module) func(*kube.Config) {
	return func(cfg *kube.Config) {
		cfg.Eventing = &kube.EventingConfig{
			NATSURL: natsURL, IngressAddress: "127.0.0.1:0", AckWait: 5 * time.Second,
			ProxyAddress: func() string { s, _ := proxy.Load().(string); return s },
		}
		if filter != nil {
			cfg.Eventing.CloudEventsFilter = &xds.WasmFilter{Name: eventing.CloudEventsFilterName, Path: filter.Path, SHA256: filter.SHA256}
			// The HTTP address must be known before the controller starts, to be advertised.
			cfg.HTTPAddress = cfg.WasmCodeAdvertise
		}
	}
}

// createObjects creates every object of a multi-document YAML in the cluster (namespace
// default when none is given), as `kubectl apply -f` of new objects does.
func (c *cluster) createObjects(t *testing.T, doc string) {
	t.Helper()
	gvrs := map[string]schema.GroupVersionResource{"Broker": brokersGVR, "Trigger": triggersGVR, "Service": servicesGVR}
	for _, u := range decodeObjects(t, []byte(doc)) {
		gvr, ok := gvrs[u.GetKind()]
		if !ok {
			t.Fatalf("createObjects: kind %s not known to the test", u.GetKind())
		}
		ns := u.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		if _, err := c.dyn.Resource(gvr).Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// ceRecorder is a subscriber addressed by URI: it records the ce-id of every request.
type ceRecorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	ids []string
}

func newCERecorder(t testing.TB) *ceRecorder {
	r := &ceRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.ids = append(r.ids, req.Header.Get("Ce-Id"))
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *ceRecorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// postEvent posts a binary-mode CloudEvent through the gateway to a broker URL; an empty
// attribute is left out. It returns the status and body.
func postEvent(t *testing.T, gw, brokerURL string, attrs map[string]string) (int, string) {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatalf("broker URL %q: %v", brokerURL, err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+gw+u.Path, strings.NewReader(`{"hello":"kubernetes"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = u.Host
	req.Header.Set("Content-Type", "application/json")
	for k, v := range attrs {
		if v != "" {
			req.Header.Set("Ce-"+k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post event to %s through the gateway: %v", brokerURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const brokerObjects = `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  namespace: default
  annotations:
    eventing.knative.dev/broker.class: MTChannelBasedBroker
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: to-uri
  namespace: default
spec:
  broker: default
  filter:
    attributes:
      type: dev.example.uri
  subscriber:
    uri: %s
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: to-hello
  namespace: default
spec:
  broker: default
  filter:
    attributes:
      type: dev.example.ksvc
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: hello
`

// TestEventingOnKubernetes runs the controller with eventing on a NATS server with JetStream
// (standing in for the external cluster): Knative's Broker and Trigger YAML become Ready, a
// CloudEvent posted through the gateway to the broker's URL is answered 202 and reaches the
// Trigger's subscriber (a URI, and a Knative Service played by the test kubelet, delivered
// through the proxy), and a malformed event is refused with 400 by the cloudevents filter
// the gateway fetched from the controller.
func TestEventingOnKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and kube-controller-manager")
	}
	mods, err := wasmbuild.Locate(context.Background(), wasmbuild.Options{Root: moduleRoot(t), OutDir: t.TempDir(), Filters: []string{"cloudevents"}})
	if err != nil {
		t.Fatalf("build the cloudevents filter: %v", err)
	}
	filter := mods["cloudevents"]
	natsURL := startNATS(t)
	c := startCluster(t)
	kl := startKubelet(t, c.kube)
	var proxy atomic.Value
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctrl, _ := runControllerWith(t, c, "eventing", func(cfg *kube.Config) {
		cfg.WasmCodeAdvertise = httpAddr
		withEventing(natsURL, &proxy, &filter)(cfg)
	})
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	gw := runGatewayAdmin(t, ctrl.XDSAddr().String(), admin)
	proxy.Store(gw)
	ctx := context.Background()

	c.apply(t, "hello.yaml")
	c.waitReady(t, servicesGVR, "hello")
	sub := newCERecorder(t)
	c.createObjects(t, fmt.Sprintf(brokerObjects, sub.srv.URL+"/events"))
	b := c.waitReady(t, brokersGVR, "default")
	brokerURL, _, _ := unstructured.NestedString(b.Object, "status", "address", "url")
	if brokerURL != "http://broker-ingress.example.com/default/default" {
		t.Errorf("broker status.address.url = %q, want http://broker-ingress.example.com/default/default", brokerURL)
	}
	tr := c.waitReady(t, triggersGVR, "to-uri")
	if got, _, _ := unstructured.NestedString(tr.Object, "status", "subscriberUri"); got != sub.srv.URL+"/events" {
		t.Errorf("trigger to-uri status.subscriberUri = %q, want %q", got, sub.srv.URL+"/events")
	}
	tr = c.waitReady(t, triggersGVR, "to-hello")
	if got, _, _ := unstructured.NestedString(tr.Object, "status", "subscriberUri"); !strings.Contains(got, "hello.default") {
		t.Errorf("trigger to-hello status.subscriberUri = %q, want the Knative Service's address", got)
	}

	// A malformed event (no type) is refused by the filter, naming the attribute; the
	// route and the filter fetched from the controller may take a moment to reach the gateway.
	var code int
	var body string
	// The ingress refuses it too, so wait for the refusal the filter counts.
	eventually(t, 30*time.Second, "a malformed event refused with 400 by the gateway's filter", func() bool {
		code, body = postEvent(t, gw, brokerURL, map[string]string{"Specversion": "1.0", "Id": "bad-1", "Source": "/e2e"})
		return code == http.StatusBadRequest && proxyStat(t, admin, "wasmcustom.skiff_broker_events_rejected.default/default") >= 1
	})
	if !strings.Contains(body, "type") {
		t.Errorf("400 body = %q, want it to name the missing attribute type", body)
	}

	if code, body := postEvent(t, gw, brokerURL, map[string]string{"Specversion": "1.0", "Id": "uri-1", "Source": "/e2e", "Type": "dev.example.uri"}); code != http.StatusAccepted {
		t.Fatalf("post event for to-uri: %d %q, want 202", code, body)
	}
	eventually(t, 30*time.Second, "the URI subscriber receives uri-1", func() bool {
		return slices.Contains(sub.received(), "uri-1")
	})
	if code, body := postEvent(t, gw, brokerURL, map[string]string{"Specversion": "1.0", "Id": "ksvc-1", "Source": "/e2e", "Type": "dev.example.ksvc"}); code != http.StatusAccepted {
		t.Fatalf("post event for to-hello: %d %q, want 202", code, body)
	}
	eventually(t, 30*time.Second, "Knative Service hello receives ksvc-1 through the proxy", func() bool {
		return slices.Contains(kl.cloudEvents("hello-00001"), "ksvc-1")
	})
	// The filter, not only the ingress, is in the path: it counted what it validated.
	if n := proxyStat(t, admin, "wasmcustom.skiff_broker_events_rejected.default/default"); n < 1 {
		t.Errorf("the proxy's cloudevents filter rejected %d events, want the malformed ones (is it in the path?)", n)
	}
	if n := proxyStat(t, admin, "wasmcustom.skiff_broker_events_accepted.default/default"); n != 2 {
		t.Errorf("the proxy's cloudevents filter accepted %d events, want 2", n)
	}
	for _, id := range sub.received() {
		if id != "uri-1" {
			t.Errorf("URI subscriber received %q: only uri-1 matches its filter, and bad-1 was refused", id)
		}
	}

	// Deleting the Broker stops its route to the stream: a later event is 404 at the ingress.
	if err := c.dyn.Resource(brokersGVR).Namespace("default").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "broker default gone", func() bool {
		_, err := c.dyn.Resource(brokersGVR).Namespace("default").Get(ctx, "default", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	eventually(t, 30*time.Second, "events to the deleted broker refused", func() bool {
		code, _ := postEvent(t, gw, brokerURL, map[string]string{"Specversion": "1.0", "Id": "late-1", "Source": "/e2e", "Type": "dev.example.uri"})
		return code == http.StatusNotFound
	})
}
