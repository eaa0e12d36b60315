package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	servingv1beta1 "github.com/skiff-dev/skiff/api/serving/v1beta1"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// withNetworking gives the proxy its TLS and cluster-local listeners, as `skiff up` does
// (the gateway binds them on ephemeral ports; 8443 is what redirects point at).
func withNetworking(cfg *controlplane.Config) {
	cfg.HTTPSListenAddress, cfg.HTTPSListenPort = "127.0.0.1", 8443
	cfg.LocalListenAddress, cfg.LocalListenPort = "127.0.0.1", 8081
}

// httpsAddr waits for the gateway's TLS listener (it comes with the first certificate).
func (s *skiff) httpsAddr() string {
	s.t.Helper()
	var addr string
	eventually(s.t, 30*time.Second, "the TLS listener", func() bool {
		a, ok := s.gw.ListenerAddr(xds.HTTPSListenerName)
		if ok {
			addr = a.String()
		}
		return ok
	})
	return addr
}

// localCA is the pool of `skiff up`'s CA, read from {data-dir}/tls/ca.crt as a user would.
func (s *skiff) localCA() *x509.CertPool {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "tls", "ca.crt"))
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		s.t.Fatal("ca.crt holds no certificate")
	}
	return pool
}

// httpsResult is one answer over TLS.
type httpsResult struct {
	status int
	proto  string
	echo   echoReply
	body   string
	leaf   *x509.Certificate
}

// httpsGet sends GET https://{host}{path} to addr (curl --resolve), verifying the server's
// certificate against roots for host (SNI host). Callers wait for Ready first: Ready means the
// proxy has the route and its certificate, so one attempt must succeed.
func httpsGet(t *testing.T, addr, host, path string, roots *x509.CertPool) httpsResult {
	t.Helper()
	r, err := httpsOnce(addr, host, path, roots)
	if err != nil {
		t.Fatalf("GET https://%s%s via %s: %v", host, path, addr, err)
	}
	return r
}

func httpsOnce(addr, host, path string, roots *x509.CertPool) (httpsResult, error) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: host},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + host + path)
	if err != nil {
		return httpsResult{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := httpsResult{status: resp.StatusCode, proto: resp.Proto, body: string(b), leaf: resp.TLS.PeerCertificates[0]}
	_ = json.Unmarshal(b, &r.echo)
	return r, nil
}

// getVia sends GET http://{host}{path} to addr without following redirects.
func getVia(t *testing.T, addr, host, path string) (int, http.Header, echoReply) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = host
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s via %s: %v", host, path, addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r echoReply
	_ = json.Unmarshal(b, &r)
	return resp.StatusCode, resp.Header, r
}

// eventuallyStatus polls GET http://{host}/ via addr until it answers want.
func eventuallyStatus(t *testing.T, addr, host string, want int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s via %s to answer %d", host, addr, want), func() bool {
		code, _, _ := getVia(t, addr, host, "/")
		return code == want
	})
}

func configMap(name string, data map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: knative-serving\ndata:\n", name)
	for k, v := range data {
		fmt.Fprintf(&b, "  %s: %q\n", k, v)
	}
	return b.String()
}

// get reads kind/ns/name into out.
func (s *skiff) getObj(kind, ns, name string, out any) {
	s.t.Helper()
	raw, err := s.api.Get(context.Background(), api.LookupKind(kind), ns, name)
	if err != nil {
		s.t.Fatalf("get %s %s/%s: %v", kind, ns, name, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		s.t.Fatal(err)
	}
}

// waitCondition waits until kind/ns/name has condition t with status.
func (s *skiff) waitCondition(kind, ns, name string, t duck.ConditionType, status duck.ConditionStatus) *duck.Condition {
	s.t.Helper()
	var c *duck.Condition
	eventually(s.t, 60*time.Second, fmt.Sprintf("%s %s/%s %s=%s", kind, ns, name, t, status), func() bool {
		raw, err := s.api.Get(context.Background(), api.LookupKind(kind), ns, name)
		if err != nil {
			return false
		}
		var o struct {
			Status duck.Status `json:"status"`
		}
		_ = json.Unmarshal(raw, &o)
		c = o.Status.GetCondition(t)
		return c != nil && c.Status == status
	})
	return c
}

// external-domain-tls with the local CA, http-protocol Redirected (and a Service opting back
// into plain HTTP), and DomainMappings over HTTPS: a certificate from the local CA, a user's
// certificate from a Secret, a bad Secret failing its own host alone, and a domain claimed by
// another namespace.
func TestTLSDomainMappingsAndRedirects(t *testing.T) {
	s := startSkiff(t, t.TempDir(), withNetworking)
	s.apply(configMap("config-network", map[string]string{"external-domain-tls": "Enabled", "http-protocol": "Redirected"}))
	s.apply(serviceYAML("hello", "TLS", ""))
	s.apply(strings.Replace(serviceYAML("plain", "plain", ""), "metadata:\n  name: plain\n",
		"metadata:\n  name: plain\n  annotations:\n    networking.knative.dev/http-protocol: Enabled\n", 1))
	var hello servingv1.Service
	s.waitReady("ksvc", "hello", &hello)
	if hello.Status.URL != "https://hello.default.localhost" {
		t.Errorf("status.url = %q, want https://hello.default.localhost (external-domain-tls)", hello.Status.URL)
	}
	if c := hello.Status.GetCondition("RoutesReady"); c == nil || c.Status != duck.True {
		t.Errorf("RoutesReady = %+v", c)
	}
	httpsAddr := s.httpsAddr()
	ca := s.localCA()

	// The external-domain-tls certificate for hello.default.localhost verifies against ca.crt.
	r := httpsGet(t, httpsAddr, "hello.default.localhost", "/", ca)
	if r.status != 200 || r.echo.Revision != "hello-00001" || r.proto != "HTTP/2.0" {
		t.Errorf("https://hello.default.localhost: %d %s revision %q; want 200 over HTTP/2 from hello-00001", r.status, r.proto, r.echo.Revision)
	}
	if err := r.leaf.VerifyHostname("hello.default.localhost"); err != nil {
		t.Error(err)
	}

	// Redirected: plain HTTP gets 301 to https; the annotated Service is served over HTTP.
	code, hdr, _ := getVia(t, s.http, "hello.default.localhost", "/a?b=c")
	if code != http.StatusMovedPermanently || hdr.Get("Location") != "https://hello.default.localhost:8443/a?b=c" {
		t.Errorf("plain GET: %d Location %q; want 301 to https://hello.default.localhost:8443/a?b=c", code, hdr.Get("Location"))
	}
	s.waitReady("ksvc", "plain", nil)
	if code, _, r := getVia(t, s.http, "plain.default.localhost", "/"); code != 200 || r.Revision != "plain-00001" {
		t.Errorf("http-protocol Enabled annotation: plain GET = %d %q, want 200", code, r.Revision)
	}

	// A DomainMapping gets its certificate from the local CA and reaches the Service with the
	// Service's host, as in Knative.
	s.apply(`apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: hello.example.com
spec:
  ref:
    name: hello
    kind: Service
    apiVersion: serving.knative.dev/v1
`)
	var dm servingv1beta1.DomainMapping
	s.waitReady("domainmapping", "hello.example.com", &dm)
	if dm.Status.URL != "https://hello.example.com" {
		t.Errorf("DomainMapping status.url = %q", dm.Status.URL)
	}
	for _, c := range []duck.ConditionType{"DomainClaimed", "ReferenceResolved", "CertificateProvisioned", "IngressReady"} {
		if cc := dm.Status.GetCondition(c); cc == nil || cc.Status != duck.True {
			t.Errorf("DomainMapping %s = %+v", c, cc)
		}
	}
	r = httpsGet(t, httpsAddr, "hello.example.com", "/", ca)
	if r.status != 200 || r.echo.Revision != "hello-00001" || r.echo.Host != "hello.default.svc.cluster.local" {
		t.Errorf("https://hello.example.com: %d revision %q host %q; want 200 from hello-00001 with the Service's host", r.status, r.echo.Revision, r.echo.Host)
	}

	// A user's certificate, from a Secret.
	userCA, certPEM, keyPEM := userCertificate(t, "byo.example.com")
	s.apply(tlsSecretYAML("byo-tls", certPEM, keyPEM) + "---\n" + `apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: byo.example.com
spec:
  ref: {name: hello, kind: Service, apiVersion: serving.knative.dev/v1}
  tls: {secretName: byo-tls}
`)
	s.waitReady("domainmapping", "byo.example.com", &dm)
	if c := dm.Status.GetCondition("CertificateProvisioned"); c.Reason != "CertificateExternallyProvided" {
		t.Errorf("BYO CertificateProvisioned reason = %q", c.Reason)
	}
	if r := httpsGet(t, httpsAddr, "byo.example.com", "/", userCA); r.status != 200 || r.echo.Revision != "hello-00001" {
		t.Errorf("https://byo.example.com with the user's certificate: %d %q", r.status, r.echo.Revision)
	}

	// A Secret that does not hold a usable certificate fails that host alone, naming why.
	_, other, _ := userCertificate(t, "bad.example.com")
	s.apply(tlsSecretYAML("bad-tls", other, []byte("not a key")) + "---\n" + `apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: bad.example.com
spec:
  ref: {name: hello, kind: Service, apiVersion: serving.knative.dev/v1}
  tls: {secretName: bad-tls}
`)
	c := s.waitCondition("domainmapping", "default", "bad.example.com", "CertificateProvisioned", duck.False)
	if c.Reason != "SecretInvalid" || !strings.Contains(c.Message, "bad-tls") || !strings.Contains(c.Message, "do not load") {
		t.Errorf("bad Secret: CertificateProvisioned = %+v, want SecretInvalid naming the Secret and why", c)
	}
	if _, err := httpsOnce(httpsAddr, "bad.example.com", "/", userCA); err == nil {
		t.Error("a TLS connection for the host with the bad certificate succeeded")
	}
	if r := httpsGet(t, httpsAddr, "hello.example.com", "/", ca); r.status != 200 {
		t.Errorf("another host after the bad certificate: %d", r.status)
	}

	// Another namespace cannot take a domain this one holds.
	s.apply(`apiVersion: serving.knative.dev/v1beta1
kind: DomainMapping
metadata:
  name: hello.example.com
  namespace: other
spec:
  ref: {name: hello, kind: Service, apiVersion: serving.knative.dev/v1}
`)
	c = s.waitCondition("domainmapping", "other", "hello.example.com", "DomainClaimed", duck.False)
	if c.Reason != "DomainAlreadyClaimed" {
		t.Errorf("second namespace: DomainClaimed = %+v, want DomainAlreadyClaimed", c)
	}
	var out bytes.Buffer
	objs, err := s.api.List(context.Background(), api.LookupKind("domainmappings"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := apiclient.Print(&out, api.LookupKind("dm"), "", objs, false); err != nil || !strings.Contains(out.String(), "https://hello.example.com") {
		t.Errorf("skiff get domainmappings: %v\n%s", err, out.String())
	}
}

// userCertificate makes a CA of the user's and a certificate for host signed by it.
func userCertificate(t *testing.T, host string) (*x509.CertPool, []byte, []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "user CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func tlsSecretYAML(name string, certPEM, keyPEM []byte) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\ntype: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
		name, base64.StdEncoding.EncodeToString(certPEM), base64.StdEncoding.EncodeToString(keyPEM))
}

// Cluster-local visibility (the label on a Service, and one tag by annotation) keeps a
// target off the external listener, serves it on the local one, and gives it the
// svc.cluster.local URL; config-domain picks a domain by label; a template change re-renders
// every route; an invalid template is refused naming its key and the old one stays.
func TestVisibilityAndDomainConfig(t *testing.T) {
	s := startSkiff(t, t.TempDir(), withNetworking)
	s.apply(strings.Replace(serviceYAML("private", "private", ""), "metadata:\n  name: private\n",
		"metadata:\n  name: private\n  labels:\n    networking.knative.dev/visibility: cluster-local\n", 1))
	s.apply(strings.Replace(serviceYAML("hello", "hello", `  traffic:
    - latestRevision: true
      percent: 100
    - latestRevision: true
      percent: 0
      tag: canary
`), "metadata:\n  name: hello\n", "metadata:\n  name: hello\n  annotations:\n    networking.skiff.dev/cluster-local-tags: canary\n", 1))
	var private, hello servingv1.Service
	s.waitReady("ksvc", "private", &private)
	s.waitReady("ksvc", "hello", &hello)
	if private.Status.URL != "http://private.default.svc.cluster.local" {
		t.Errorf("cluster-local status.url = %q, want http://private.default.svc.cluster.local", private.Status.URL)
	}
	for _, host := range []string{"private.default.localhost", "private.default.svc.cluster.local"} {
		if code, _, _ := getVia(t, s.http, host, "/"); code != http.StatusNotFound {
			t.Errorf("cluster-local Service via the external listener as %s: %d, want 404", host, code)
		}
	}
	for _, host := range []string{"private.default.svc.cluster.local", "private.default.svc", "private.default"} {
		if code, _, r := getVia(t, s.local, host, "/"); code != 200 || r.Revision != "private-00001" {
			t.Errorf("cluster-local Service via the local listener as %s: %d %q, want 200", host, code, r.Revision)
		}
	}
	// A public Service: external name outside, cluster-local names inside, as in Knative.
	if code, _, _ := getVia(t, s.http, "hello.default.localhost", "/"); code != 200 {
		t.Errorf("public Service via the external listener: %d", code)
	}
	if code, _, _ := getVia(t, s.http, "hello.default.svc.cluster.local", "/"); code != http.StatusNotFound {
		t.Errorf("a cluster-local name via the external listener: %d, want 404", code)
	}
	if code, _, _ := getVia(t, s.local, "hello.default.svc.cluster.local", "/"); code != 200 {
		t.Errorf("public Service via the local listener: %d", code)
	}
	// The canary tag is cluster-local.
	var canaryURL string
	for _, tr := range hello.Status.Traffic {
		if tr.Tag == "canary" {
			canaryURL = tr.URL
		}
	}
	if canaryURL != "http://canary-hello.default.svc.cluster.local" {
		t.Errorf("cluster-local tag URL = %q", canaryURL)
	}
	if code, _, _ := getVia(t, s.http, "canary-hello.default.localhost", "/"); code != http.StatusNotFound {
		t.Errorf("cluster-local tag via the external listener: %d, want 404", code)
	}
	if code, _, _ := getVia(t, s.local, "canary-hello.default.svc.cluster.local", "/"); code != 200 {
		t.Errorf("cluster-local tag via the local listener: %d", code)
	}

	// config-domain selects a domain by label.
	s.apply(configMap("config-domain", map[string]string{"localhost": "", "example.org": "selector:\n  app: prod\n"}))
	s.apply(strings.Replace(serviceYAML("shop", "shop", ""), "metadata:\n  name: shop\n", "metadata:\n  name: shop\n  labels:\n    app: prod\n", 1))
	var shop servingv1.Service
	s.waitReady("ksvc", "shop", &shop)
	if shop.Status.URL != "http://shop.default.example.org" {
		t.Errorf("labelled Service status.url = %q, want http://shop.default.example.org", shop.Status.URL)
	}
	if code, _, r := getVia(t, s.http, "shop.default.example.org", "/"); code != 200 || r.Revision != "shop-00001" {
		t.Errorf("shop.default.example.org: %d %q", code, r.Revision)
	}

	// A new domain template re-renders every route.
	s.apply(configMap("config-network", map[string]string{"domain-template": "{{.Name}}-{{.Namespace}}.{{.Domain}}"}))
	eventually(t, 30*time.Second, "hello's URL from the new template", func() bool {
		s.getObj("ksvc", "default", "hello", &hello)
		return hello.Status.URL == "http://hello-default.localhost"
	})
	eventuallyStatus(t, s.http, "hello-default.localhost", 200)
	eventuallyStatus(t, s.http, "shop-default.example.org", 200)
	eventuallyStatus(t, s.http, "hello.default.localhost", http.StatusNotFound)

	// An invalid template is refused, naming the key; the one in force stays.
	err := s.tryApply(configMap("config-network", map[string]string{"domain-template": "{{.Name}.{{.Namespace}}.{{.Domain}}"}))
	if err == nil || !strings.Contains(err.Error(), "data[domain-template]") {
		t.Errorf("invalid domain-template: %v, want a refusal naming data[domain-template]", err)
	}
	err = s.tryApply(configMap("config-network", map[string]string{"http-protocol": "Sometimes"}))
	if err == nil || !strings.Contains(err.Error(), "data[http-protocol]") {
		t.Errorf("invalid http-protocol: %v, want a refusal naming data[http-protocol]", err)
	}
	s.getObj("ksvc", "default", "hello", &hello)
	if hello.Status.URL != "http://hello-default.localhost" {
		t.Errorf("after a refused template status.url = %q", hello.Status.URL)
	}
	if code, _, _ := getVia(t, s.http, "hello-default.localhost", "/"); code != 200 {
		t.Errorf("after a refused template: %d", code)
	}
}
