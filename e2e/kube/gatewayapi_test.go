package kube

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

var (
	gatewayClassesGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gatewayclasses"}
	gatewaysGVR       = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	httpRoutesGVR     = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
)

// installGatewayAPI installs Gateway API's standard CRDs from the sigs.k8s.io/gateway-api
// module Skiff builds with (its config/crd, in the module cache: nothing is downloaded).
func (c *cluster) installGatewayAPI(t *testing.T) {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = c.root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("locate the gateway-api module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	var files []string
	for _, kind := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
		files = append(files, filepath.Join(dir, "gateway.networking.k8s.io_"+kind+".yaml"))
	}
	c.installCRDFiles(t, files)
}

const gatewayAPIObjects = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: skiff
spec:
  controllerName: skiff.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: skiff
  namespace: default
spec:
  gatewayClassName: skiff
  listeners:
    - name: http
      protocol: HTTP
      port: 80
      hostname: "*.example.org"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: hello
  namespace: default
spec:
  parentRefs: [{name: skiff}]
  hostnames: [hello.example.org]
  rules:
    - backendRefs:
        - {group: serving.knative.dev, kind: Service, name: hello}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: broken
  namespace: default
spec:
  parentRefs: [{name: skiff}]
  hostnames: [broken.example.org]
  rules:
    - backendRefs:
        - {group: serving.knative.dev, kind: Service, name: nope}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: filtered
  namespace: default
spec:
  parentRefs: [{name: skiff}]
  hostnames: [filtered.example.org]
  rules:
    - filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: x-a, value: b}]}
      backendRefs:
        - {group: serving.knative.dev, kind: Service, name: hello}
`

// routeCondition returns the status, reason and message of an HTTPRoute's condition in
// Skiff's status.parents entry, at the route's generation.
func routeCondition(u *unstructured.Unstructured, typ string) (status, reason, message string) {
	parents, _, _ := unstructured.NestedSlice(u.Object, "status", "parents")
	for _, p := range parents {
		pm := p.(map[string]any)
		if pm["controllerName"] != "skiff.dev/gateway-controller" {
			continue
		}
		conds, _ := pm["conditions"].([]any)
		for _, cd := range conds {
			m := cd.(map[string]any)
			if m["type"] == typ && m["observedGeneration"] == u.GetGeneration() {
				return m["status"].(string), m["reason"].(string), m["message"].(string)
			}
		}
	}
	return "", "", ""
}

// An HTTPRoute whose backendRef is a Knative Service routes its hostname to the Service's
// revisions through Skiff's xDS, following the Service's traffic split; Skiff reports
// Accepted/ResolvedRefs on the route (BackendNotFound for a missing Service, UnsupportedValue
// for a filter), Programmed and attached routes on the Gateway, Accepted on the GatewayClass.
func TestHTTPRouteToKnativeService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and kube-controller-manager")
	}
	c := startCluster(t)
	c.installGatewayAPI(t)
	startKubelet(t, c.kube)
	ctrl, _ := runController(t, c, "gateway-api")
	gw := runGateway(t, ctrl.XDSAddr().String())
	ctx := context.Background()

	c.apply(t, "hello.yaml")
	c.waitReady(t, servicesGVR, "hello")
	for _, u := range decodeObjects(t, []byte(gatewayAPIObjects)) {
		gvr := map[string]schema.GroupVersionResource{"GatewayClass": gatewayClassesGVR, "Gateway": gatewaysGVR, "HTTPRoute": httpRoutesGVR}[u.GetKind()]
		var err error
		if u.GetNamespace() == "" {
			_, err = c.dyn.Resource(gvr).Create(ctx, u, metav1.CreateOptions{})
		} else {
			_, err = c.dyn.Resource(gvr).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	route := func(name string) *unstructured.Unstructured {
		u, err := c.dyn.Resource(httpRoutesGVR).Namespace("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get HTTPRoute %s: %v", name, err)
		}
		return u
	}
	eventually(t, 30*time.Second, "HTTPRoute hello Accepted and ResolvedRefs", func() bool {
		a, ar, _ := routeCondition(route("hello"), "Accepted")
		r, rr, _ := routeCondition(route("hello"), "ResolvedRefs")
		return a == "True" && ar == "Accepted" && r == "True" && rr == "ResolvedRefs"
	})
	eventually(t, 30*time.Second, "hello.example.org answers from hello-00001 through the HTTPRoute", func() bool {
		code, rev, body, err := getFrom(gw, "hello.example.org", "/")
		return err == nil && code == 200 && rev == "hello-00001" && body == "Hello World!\n"
	})

	// A backendRef to a Knative Service that does not exist.
	eventually(t, 30*time.Second, "HTTPRoute broken: ResolvedRefs False, BackendNotFound", func() bool {
		s, reason, msg := routeCondition(route("broken"), "ResolvedRefs")
		return s == "False" && reason == "BackendNotFound" && strings.Contains(msg, "default/nope")
	})
	if s, _, _ := routeCondition(route("broken"), "Accepted"); s != "True" {
		t.Errorf("HTTPRoute broken: Accepted %q, want True (it attaches; only its backend is missing)", s)
	}
	eventually(t, 30*time.Second, "broken.example.org answers 500 (no valid backend)", func() bool {
		code, _, _, err := getFrom(gw, "broken.example.org", "/")
		return err == nil && code == 500
	})

	// A filter Skiff does not implement: not accepted, the field named; not routed.
	eventually(t, 30*time.Second, "HTTPRoute filtered: Accepted False, UnsupportedValue", func() bool {
		s, reason, msg := routeCondition(route("filtered"), "Accepted")
		return s == "False" && reason == "UnsupportedValue" && strings.Contains(msg, "spec.rules[0].filters")
	})
	if code, _, _, err := getFrom(gw, "filtered.example.org", "/"); err != nil || code != 404 {
		t.Errorf("filtered.example.org: %d %v, want 404 (not routed)", code, err)
	}

	// The Gateway and its class.
	eventually(t, 30*time.Second, "Gateway Programmed with 2 routes attached to listener http", func() bool {
		g, err := c.dyn.Resource(gatewaysGVR).Namespace("default").Get(ctx, "skiff", metav1.GetOptions{})
		if err != nil {
			return false
		}
		listeners, _, _ := unstructured.NestedSlice(g.Object, "status", "listeners")
		return conditionTrue(g, "Programmed") && len(listeners) == 1 && listeners[0].(map[string]any)["attachedRoutes"] == int64(2)
	})
	eventually(t, 30*time.Second, "GatewayClass Accepted", func() bool {
		gc, err := c.dyn.Resource(gatewayClassesGVR).Get(ctx, "skiff", metav1.GetOptions{})
		return err == nil && conditionTrue(gc, "Accepted")
	})

	// The HTTPRoute follows the Knative Service's traffic: after the 50/50 split both
	// revisions answer on the route's hostname.
	c.apply(t, "hello-split.yaml")
	c.waitReady(t, revisionsGVR, "hello-00002")
	c.waitReady(t, servicesGVR, "hello")
	seen := map[string]int{}
	eventually(t, 30*time.Second, "both revisions answer hello.example.org", func() bool {
		if code, rev, _, err := getFrom(gw, "hello.example.org", "/"); err == nil && code == 200 {
			seen[rev]++
		}
		return seen["hello-00001"] > 0 && seen["hello-00002"] > 0
	})

	// Deleting the route takes the hostname off the proxy.
	if err := c.dyn.Resource(httpRoutesGVR).Namespace("default").Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "hello.example.org no longer routed", func() bool {
		code, _, _, err := getFrom(gw, "hello.example.org", "/")
		return err == nil && code == 404
	})
}

// conditionTrue reports whether the object's status condition typ is True at its generation.
func conditionTrue(u *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, cd := range conds {
		m := cd.(map[string]any)
		if m["type"] == typ {
			return m["status"] == "True" && m["observedGeneration"] == u.GetGeneration()
		}
	}
	return false
}

const gatewayTLSObjects = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: skiff
spec:
  controllerName: skiff.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: secure
  namespace: default
spec:
  gatewayClassName: skiff
  listeners:
    - name: https
      protocol: HTTPS
      port: 443
      hostname: "*.secure.org"
      tls:
        certificateRefs: [{name: secure-tls}]
    - name: broken
      protocol: HTTPS
      port: 443
      hostname: "*.broken.org"
      tls:
        certificateRefs: [{name: missing-tls}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: hello
  namespace: default
spec:
  parentRefs: [{name: secure}]
  hostnames: [hello.secure.org]
  rules:
    - backendRefs:
        - {group: serving.knative.dev, kind: Service, name: hello}
`

// A Gateway's HTTPS listener terminates TLS with its certificateRefs' Secret, served to the
// proxy as an SDS secret; a listener whose Secret is missing is not programmed, naming why,
// and the other is unaffected.
func TestGatewayHTTPSListener(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	c := startCluster(t)
	c.installGatewayAPI(t)
	startKubelet(t, c.kube)
	ctrl, _ := runControllerWith(t, c, "gateway-tls", func(cfg *kube.Config) { cfg.ProxyHTTPSPort = 8443 })
	gw := runGatewayTLS(t, ctrl.XDSAddr().String())
	ctx := context.Background()
	c.apply(t, "hello.yaml")
	c.waitReady(t, servicesGVR, "hello")
	pool, certPEM, keyPEM := issueTestCert(t, "*.secure.org")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "secure-tls", Namespace: "default"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}}
	if _, err := c.kube.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range decodeObjects(t, []byte(gatewayTLSObjects)) {
		gvr := map[string]schema.GroupVersionResource{"GatewayClass": gatewayClassesGVR, "Gateway": gatewaysGVR, "HTTPRoute": httpRoutesGVR}[u.GetKind()]
		ri := c.dyn.Resource(gvr)
		var err error
		if u.GetNamespace() != "" {
			_, err = ri.Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
		} else {
			_, err = ri.Create(ctx, u, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	var addr string
	eventually(t, 30*time.Second, "the gateway's TLS listener", func() bool {
		a, ok := gw.ListenerAddr(xds.HTTPSListenerName)
		if ok {
			addr = a.String()
		}
		return ok
	})
	eventually(t, 30*time.Second, "https://hello.secure.org with the listener's certificate", func() bool {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "hello.secure.org"},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://hello.secure.org/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && string(b) == "Hello World!\n"
	})
	eventually(t, 30*time.Second, "listener broken: ResolvedRefs False InvalidCertificateRef naming the Secret", func() bool {
		g, err := c.dyn.Resource(gatewaysGVR).Namespace("default").Get(ctx, "secure", metav1.GetOptions{})
		if err != nil {
			return false
		}
		listeners, _, _ := unstructured.NestedSlice(g.Object, "status", "listeners")
		for _, l := range listeners {
			m := l.(map[string]any)
			conds, _ := m["conditions"].([]any)
			for _, cd := range conds {
				cm := cd.(map[string]any)
				if m["name"] == "broken" && cm["type"] == "ResolvedRefs" {
					msg, _ := cm["message"].(string)
					return cm["status"] == "False" && cm["reason"] == "InvalidCertificateRef" && strings.Contains(msg, "missing-tls")
				}
			}
		}
		return false
	})
}
