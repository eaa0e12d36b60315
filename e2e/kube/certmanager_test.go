package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/kube/certmanager"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/gateway"
)

// certManagerVersion is the cert-manager release whose CRDs the test installs, from the Go
// module cache (go mod download; nothing else of it is used).
const certManagerVersion = "v1.21.2"

// installCertManager installs cert-manager's CRDs from its module.
func (c *cluster) installCertManager(t *testing.T) {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/cert-manager/cert-manager@"+certManagerVersion)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("cert-manager %s is not in the module cache or proxy: %v", certManagerVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v %s", err, out)
	}
	var files []string
	for _, f := range []string{"cert-manager.io_certificates", "cert-manager.io_certificaterequests", "cert-manager.io_issuers",
		"cert-manager.io_clusterissuers", "acme.cert-manager.io_orders", "acme.cert-manager.io_challenges"} {
		files = append(files, filepath.Join(mod.Dir, "deploy", "crds", f+".yaml"))
	}
	c.installCRDFiles(t, files)
}

// runGatewayTLS is runGateway returning the gateway, to find its TLS listener.
func runGatewayTLS(t testing.TB, xdsAddr string) *gateway.Gateway {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gw, err := gateway.New(gateway.Config{ADSAddress: xdsAddr, NodeID: "kube-e2e-tls", NodeCluster: "skiff-gateway",
		AdminAddress: "127.0.0.1:0", Logger: log, ListenerAddressOverride: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = gw.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return gw
}

// Knative's net-certmanager behaviour: with external-domain-tls on, a Route gets a
// cert-manager Certificate for its host from config-certmanager's issuer (read from the
// controller's namespace), owned by the Route; while it is pending plain HTTP is served
// (HTTPDowngrade); once cert-manager (played here by the test: it writes the Secret and
// marks the Certificate Ready, as cert-manager's controller would) has issued it, the Secret's
// certificate reaches a connected gateway over SDS and the Route's URL is https.
func TestCertManagerCertificateForRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	c := startCluster(t)
	c.installCertManager(t)
	startKubelet(t, c.kube)
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "skiff-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]map[string]string{
		"config-network":     {"external-domain-tls": "Enabled"},
		"config-certmanager": {"issuerRef": "kind: ClusterIssuer\nname: test-ca\n"},
	} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "skiff-system"}, Data: data}
		if _, err := c.kube.CoreV1().ConfigMaps("skiff-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctrl, _ := runControllerWith(t, c, "tls", func(cfg *kube.Config) { cfg.ProxyHTTPSPort = 8443 })
	gw := runGatewayTLS(t, ctrl.XDSAddr().String())
	c.apply(t, "hello.yaml")

	// The Certificate for the Route's host, from the configured issuer, owned by the Route.
	var cert *unstructured.Unstructured
	eventually(t, 60*time.Second, "a cert-manager Certificate for the Route", func() bool {
		list, err := c.dyn.Resource(certmanager.CertificatesGVR).Namespace("default").List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != 1 {
			return false
		}
		cert = &list.Items[0]
		return true
	})
	route, err := c.dyn.Resource(routesGVR).Namespace("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "route-" + string(route.GetUID()); cert.GetName() != want {
		t.Errorf("Certificate name = %q, want Knative's %q", cert.GetName(), want)
	}
	if o := metav1.GetControllerOf(cert); o == nil || o.Kind != "Route" || o.UID != route.GetUID() {
		t.Errorf("Certificate controller = %+v, want the Route", o)
	}
	names, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	issuer, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	if strings.Join(names, ",") != "hello.default.example.com" || issuer["name"] != "test-ca" || issuer["kind"] != "ClusterIssuer" || secretName != cert.GetName() {
		t.Errorf("Certificate spec: dnsNames %v issuerRef %v secretName %q", names, issuer, secretName)
	}
	// Pending: plain HTTP meanwhile (http-protocol Enabled), as Knative's HTTPDowngrade.
	eventually(t, 60*time.Second, "CertificateProvisioned HTTPDowngrade while pending", func() bool {
		r, err := c.dyn.Resource(routesGVR).Namespace("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return false
		}
		s, reason, _ := routeConditionOf(r, "CertificateProvisioned")
		url, _, _ := unstructured.NestedString(r.Object, "status", "url")
		return s == "True" && reason == "HTTPDowngrade" && url == "http://hello.default.example.com"
	})

	// cert-manager issues it: the Secret (with the Certificate's secretTemplate) and Ready.
	caPool, certPEM, keyPEM := issueTestCert(t, "hello.default.example.com")
	tmplLabels, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "secretTemplate", "labels")
	tmplAnnotations, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "secretTemplate", "annotations")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: "default", Labels: tmplLabels, Annotations: tmplAnnotations},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}}
	if _, err := c.kube.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cert, err = c.dyn.Resource(certmanager.CertificatesGVR).Namespace("default").Get(ctx, cert.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedSlice(cert.Object, []any{map[string]any{"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired"}}, "status", "conditions")
	if _, err := c.dyn.Resource(certmanager.CertificatesGVR).Namespace("default").UpdateStatus(ctx, cert, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, servicesGVR, "hello")
	eventually(t, 60*time.Second, "status.url https", func() bool {
		u, err := c.dyn.Resource(servicesGVR).Namespace("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return false
		}
		url, _, _ := unstructured.NestedString(u.Object, "status", "url")
		return url == "https://hello.default.example.com"
	})

	// The connected gateway has the Secret's certificate over SDS and serves the host with it.
	var addr string
	eventually(t, 30*time.Second, "the gateway's TLS listener", func() bool {
		a, ok := gw.ListenerAddr(xds.HTTPSListenerName)
		if ok {
			addr = a.String()
		}
		return ok
	})
	eventually(t, 30*time.Second, "https://hello.default.example.com with the issued certificate", func() bool {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool, ServerName: "hello.default.example.com"},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://hello.default.example.com/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && string(b) == "Hello World!\n" &&
			string(resp.TLS.PeerCertificates[0].Raw) == string(pemBlock(t, certPEM))
	})
}

// routeConditionOf returns a Knative condition's status, reason and message.
func routeConditionOf(u *unstructured.Unstructured, typ string) (string, string, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, cd := range conds {
		m := cd.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			return s, r, msg
		}
	}
	return "", "", ""
}

// issueTestCert is a CA and a certificate for host signed by it, standing in for an issuer.
func issueTestCert(t *testing.T, host string) (*x509.CertPool, []byte, []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func pemBlock(t *testing.T, b []byte) []byte {
	p, _ := pem.Decode(b)
	if p == nil {
		t.Fatal("no PEM block")
	}
	return p.Bytes
}
