package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	imcGVR       = schema.GroupVersionResource{Group: "messaging.knative.dev", Version: "v1", Resource: "inmemorychannels"}
	subGVR       = schema.GroupVersionResource{Group: "messaging.knative.dev", Version: "v1", Resource: "subscriptions"}
	apiSourceGVR = schema.GroupVersionResource{Group: "sources.knative.dev", Version: "v1", Resource: "apiserversources"}
	ctrSourceGVR = schema.GroupVersionResource{Group: "sources.knative.dev", Version: "v1", Resource: "containersources"}
	coreSvcGVR   = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	saGVR        = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	roleGVR      = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}
	bindingGVR   = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}
	deployGVR    = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// events is a sink in the test process recording every CloudEvent's type, id, subject and
// data, per path.
type events struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string][]map[string]string
}

func newEvents(t testing.TB) *events {
	e := &events{got: map[string][]map[string]string{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ev := map[string]string{"type": r.Header.Get("Ce-Type"), "id": r.Header.Get("Ce-Id"), "subject": r.Header.Get("Ce-Subject"),
			"name": r.Header.Get("Ce-Name"), "data": string(b)}
		e.mu.Lock()
		e.got[r.URL.Path] = append(e.got[r.URL.Path], ev)
		e.mu.Unlock()
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *events) at(path string) []map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got[path])
}

// create creates every object of a multi-document YAML in namespace default.
func (c *cluster) create(t *testing.T, gvrs map[string]schema.GroupVersionResource, doc string) {
	t.Helper()
	for _, u := range decodeObjects(t, []byte(doc)) {
		gvr, ok := gvrs[u.GetKind()]
		if !ok {
			t.Fatalf("create: kind %s not known to the test", u.GetKind())
		}
		if _, err := c.dyn.Resource(gvr).Namespace("default").Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// condition is one condition of an object in the cluster.
func (c *cluster) condition(gvr schema.GroupVersionResource, name, typ string) (status, reason, message string) {
	u, err := c.dyn.Resource(gvr).Namespace("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "", "", err.Error()
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, x := range conds {
		m, _ := x.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			return s, r, msg
		}
	}
	return "", "", ""
}

// On Kubernetes, with the CRDs of deploy/crds: an InMemoryChannel and its Subscription
// (written with the dynamic client, as kubectl would) deliver an event posted through the
// gateway to the channel's address; an ApiServerSource watching core Services with a ServiceAccount
// that may read them reports a Service created and deleted in the real API server, while
// one whose ServiceAccount may not says so; a ContainerSource becomes a Deployment with
// K_SINK and K_CE_OVERRIDES.
func TestMessagingAndSourcesOnKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and kube-controller-manager")
	}
	natsURL := startNATS(t)
	c := startCluster(t)
	var proxy atomic.Value
	ctrl, _ := runControllerWith(t, c, "messaging", withEventing(natsURL, &proxy, nil))
	gw := runGateway(t, ctrl.XDSAddr().String())
	proxy.Store(gw)
	ev := newEvents(t)
	gvrs := map[string]schema.GroupVersionResource{
		"InMemoryChannel": imcGVR, "Subscription": subGVR, "ApiServerSource": apiSourceGVR,
		"ContainerSource": ctrSourceGVR, "Service": coreSvcGVR, "ServiceAccount": saGVR, "Role": roleGVR, "RoleBinding": bindingGVR,
	}

	c.create(t, gvrs, fmt.Sprintf(`apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: to-sink}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: %s}
`, ev.srv.URL+"/channel"))
	imc := c.waitReady(t, imcGVR, "orders")
	if url, _, _ := unstructured.NestedString(imc.Object, "status", "address", "url"); url != "http://orders-kn-channel.default.svc.cluster.local" {
		t.Errorf("channel address %q", url)
	}
	c.waitReady(t, subGVR, "to-sink")
	eventually(t, 30*time.Second, "an event posted to the channel through the gateway", func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+gw+"/", strings.NewReader(`{"n":1}`))
		req.Host = "orders-kn-channel.default.svc.cluster.local"
		for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "k-1", "Ce-Source": "/e2e", "Ce-Type": "t", "Content-Type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusAccepted
	})
	eventually(t, 30*time.Second, "the subscriber gets the channel's event", func() bool {
		got := ev.at("/channel")
		return len(got) > 0 && got[0]["id"] == "k-1"
	})

	// ApiServerSource: a ServiceAccount that may read Services, one that may not.
	c.create(t, gvrs, fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: watcher}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nobody}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-services}
rules:
  - apiGroups: [""]
    resources: [services]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: watcher-reads-services}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-services}
subjects: [{kind: ServiceAccount, name: watcher, namespace: default}]
---
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: services}
spec:
  mode: Reference
  serviceAccountName: watcher
  resources:
    - {apiVersion: v1, kind: Service}
  sink: {uri: %[1]s/apiserver}
---
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: denied}
spec:
  serviceAccountName: nobody
  resources:
    - {apiVersion: v1, kind: Service}
  sink: {uri: %[1]s/denied}
`, ev.srv.URL))
	src := c.waitReady(t, apiSourceGVR, "services")
	if ns, _, _ := unstructured.NestedStringSlice(src.Object, "status", "namespaces"); len(ns) != 1 || ns[0] != "default" {
		t.Errorf("status.namespaces %v", ns)
	}
	eventually(t, 30*time.Second, "the denied source reported", func() bool {
		s, _, msg := c.condition(apiSourceGVR, "denied", "SufficientPermissions")
		return s == "False" && strings.Contains(msg, "system:serviceaccount:default:nobody cannot get, list, watch resource \"services\"")
	})
	c.create(t, gvrs, "apiVersion: v1\nkind: Service\nmetadata: {name: watched-svc}\nspec:\n  ports: [{port: 80}]\n")
	eventually(t, 30*time.Second, "ref.add for the new Service", func() bool {
		for _, e := range ev.at("/apiserver") {
			if e["type"] == "dev.knative.apiserver.ref.add" && e["name"] == "watched-svc" {
				var ref struct{ Kind, Name, Namespace, APIVersion string }
				return json.Unmarshal([]byte(e["data"]), &ref) == nil && ref.Kind == "Service" && ref.APIVersion == "v1" &&
					e["subject"] == "/apis/v1/namespaces/default/services/watched-svc"
			}
		}
		return false
	})
	if err := c.dyn.Resource(coreSvcGVR).Namespace("default").Delete(context.Background(), "watched-svc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "ref.delete for the deleted Service", func() bool {
		for _, e := range ev.at("/apiserver") {
			if e["type"] == "dev.knative.apiserver.ref.delete" && e["name"] == "watched-svc" {
				return true
			}
		}
		return false
	})
	if got := ev.at("/denied"); len(got) != 0 {
		t.Errorf("the source without permissions sent %d events", len(got))
	}

	// ContainerSource: a Deployment named and labelled as Knative's, with K_SINK.
	c.create(t, gvrs, fmt.Sprintf(`apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: heartbeat}
spec:
  ceOverrides:
    extensions: {team: blue}
  template:
    spec:
      containers:
        - image: example.com/heartbeats
  sink: {uri: %s/beats}
`, ev.srv.URL))
	eventually(t, 30*time.Second, "the ContainerSource's Deployment", func() bool {
		d, err := c.dyn.Resource(deployGVR).Namespace("default").Get(context.Background(), "heartbeat-deployment", metav1.GetOptions{})
		if err != nil {
			return false
		}
		cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		if len(cs) != 1 || d.GetLabels()["sources.knative.dev/containerSource"] != "heartbeat" || len(d.GetOwnerReferences()) != 1 {
			return false
		}
		env := map[string]string{}
		list, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "env")
		for _, e := range list {
			m := e.(map[string]any)
			env[m["name"].(string)], _ = m["value"].(string)
		}
		return env["K_SINK"] == ev.srv.URL+"/beats" && env["K_CE_OVERRIDES"] == `{"extensions":{"team":"blue"}}`
	})
	// The status is written after the Deployment: wait for it.
	var sink string
	eventually(t, 30*time.Second, "the ContainerSource's status.sinkUri", func() bool {
		u, err := c.dyn.Resource(ctrSourceGVR).Namespace("default").Get(context.Background(), "heartbeat", metav1.GetOptions{})
		if err != nil {
			return false
		}
		sink, _, _ = unstructured.NestedString(u.Object, "status", "sinkUri")
		return sink != ""
	})
	if sink != ev.srv.URL+"/beats" {
		t.Errorf("containersource status.sinkUri %q, want %q", sink, ev.srv.URL+"/beats")
	}
}
