package xds

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// selfSigned returns a PEM certificate and key for hosts, valid from notBefore for ttl.
func selfSigned(t *testing.T, notBefore time.Time, ttl time.Duration, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: notBefore, NotAfter: notBefore.Add(ttl)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// The TLS listener: a tls_inspector, a filter chain per certificate matched by server name,
// TLS 1.2+, ALPN h2 and http/1.1, the certificate from SDS over ADS; all ValidateAll-clean.
func TestTranslateHTTPSListener(t *testing.T) {
	certs := []TLSCertificate{{Name: "ns/b", Hosts: []string{"b.example.com"}}, {Name: "ns/a", Hosts: []string{"a.example.com", "*.a.example.com"}}}
	l, err := TranslateHTTPSListener("0.0.0.0", 8443, true, certs)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.GetListenerFilters()) != 1 || l.GetListenerFilters()[0].GetName() != "envoy.filters.listener.tls_inspector" {
		t.Errorf("listener filters = %v, want the tls_inspector", l.GetListenerFilters())
	}
	if len(l.GetFilterChains()) != 2 || l.GetFilterChains()[0].GetName() != "ns/a" {
		t.Fatalf("filter chains = %v, want two sorted by name", l.GetFilterChains())
	}
	fc := l.GetFilterChains()[0]
	if got := fc.GetFilterChainMatch().GetServerNames(); len(got) != 2 || got[0] != "a.example.com" {
		t.Errorf("server names = %v", got)
	}
	var ctx tlsv3.DownstreamTlsContext
	if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		t.Fatal(err)
	}
	c := ctx.GetCommonTlsContext()
	if c.GetTlsParams().GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_2 ||
		strings.Join(c.GetAlpnProtocols(), ",") != "h2,http/1.1" ||
		c.GetTlsCertificateSdsSecretConfigs()[0].GetName() != "ns/a" || c.GetTlsCertificateSdsSecretConfigs()[0].GetSdsConfig().GetAds() == nil {
		t.Errorf("tls context = %v", c)
	}
	if _, err := TranslateHTTPSListener("0.0.0.0", 8443, false, nil); err == nil {
		t.Error("a TLS listener without certificates was translated")
	}
	if _, err := TranslateHTTPSListener("0.0.0.0", 8443, false, []TLSCertificate{{Name: "x", Hosts: []string{"a.example.com"}}, {Name: "y", Hosts: []string{"A.example.com"}}}); err == nil {
		t.Error("two certificates for one host were translated (Envoy rejects equal filter chain matches)")
	}
	cert, key := selfSigned(t, time.Now().Add(-time.Minute), time.Hour, "a.example.com")
	if s, err := TranslateSecret(TLSCertificate{Name: "ns/a", CertPEM: cert, KeyPEM: key}); err != nil || s.GetTlsCertificate() == nil {
		t.Errorf("TranslateSecret = %v, %v", s, err)
	}
}

// A certificate that cannot be served is refused with the reason, before any proxy sees it.
func TestCheckCertificate(t *testing.T) {
	now := time.Now()
	good, goodKey := selfSigned(t, now.Add(-time.Hour), 2*time.Hour, "a.example.com")
	_, otherKey := selfSigned(t, now.Add(-time.Hour), 2*time.Hour, "a.example.com")
	expired, expiredKey := selfSigned(t, now.Add(-2*time.Hour), time.Hour, "a.example.com")
	for _, tc := range []struct {
		name string
		c    TLSCertificate
		want string
	}{
		{"good", TLSCertificate{Hosts: []string{"a.example.com"}, CertPEM: good, KeyPEM: goodKey}, ""},
		{"garbage", TLSCertificate{Hosts: []string{"a.example.com"}, CertPEM: []byte("nope"), KeyPEM: goodKey}, "do not load"},
		{"wrong key", TLSCertificate{Hosts: []string{"a.example.com"}, CertPEM: good, KeyPEM: otherKey}, "do not load"},
		{"expired", TLSCertificate{Hosts: []string{"a.example.com"}, CertPEM: expired, KeyPEM: expiredKey}, "expired"},
		{"other host", TLSCertificate{Hosts: []string{"b.example.com"}, CertPEM: good, KeyPEM: goodKey}, "does not cover b.example.com"},
		{"empty", TLSCertificate{Hosts: []string{"a.example.com"}}, "empty"},
	} {
		err := CheckCertificate(tc.c, now)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: CheckCertificate = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A Route's virtual hosts split by listener: external hosts on the plain and TLS listeners,
// cluster-local ones on the local listener only, a redirected host answering 301 on plain
// HTTP with the https port, challenge paths first on plain HTTP.
func TestTranslateRouteVirtualHostsByListener(t *testing.T) {
	r := Route{Namespace: "default", Name: "hello", VirtualHosts: []VirtualHost{
		{Name: "default/hello", Domains: []string{"hello.default.example.com"}, Visibility: VisibilityExternal, RedirectHTTP: true,
			Challenges: []Challenge{{Path: "/.well-known/acme-challenge/tok", Cluster: "acme/solver"}},
			Clusters:   []WeightedCluster{{Name: "default/hello-00001", Weight: 100}}},
		{Name: "default/hello/local", Domains: []string{"hello.default.svc.cluster.local", "hello.default"}, Visibility: VisibilityClusterLocal,
			Clusters: []WeightedCluster{{Name: "default/hello-00001", Weight: 100}}},
	}}
	ls := Listeners{HTTPS: true, HTTPSRedirectPort: 8443, Local: true}
	got, err := TranslateRouteVirtualHosts(r, false, ls)
	if err != nil {
		t.Fatal(err)
	}
	names := func(vhs []*routev3.VirtualHost) string {
		var n []string
		for _, v := range vhs {
			n = append(n, v.GetName())
		}
		return strings.Join(n, ",")
	}
	if names(got[RouteConfigName]) != "default/hello" || names(got[HTTPSRouteConfigName]) != "default/hello" || names(got[LocalRouteConfigName]) != "default/hello/local" {
		t.Fatalf("by config: http %q https %q local %q", names(got[RouteConfigName]), names(got[HTTPSRouteConfigName]), names(got[LocalRouteConfigName]))
	}
	plain := got[RouteConfigName][0].GetRoutes()
	if len(plain) != 2 || plain[0].GetMatch().GetPath() != "/.well-known/acme-challenge/tok" || plain[0].GetRoute().GetCluster() != "acme/solver" {
		t.Fatalf("plain routes = %v, want the challenge first", plain)
	}
	rd := plain[1].GetRedirect()
	if !rd.GetHttpsRedirect() || rd.GetPortRedirect() != 8443 || rd.GetResponseCode() != routev3.RedirectAction_MOVED_PERMANENTLY {
		t.Errorf("redirect = %v, want https to 8443 with 301", rd)
	}
	if tls := got[HTTPSRouteConfigName][0].GetRoutes(); len(tls) != 1 || tls[0].GetRoute().GetCluster() != "default/hello-00001" {
		t.Errorf("TLS listener routes = %v, want the revision", tls)
	}
	// Port 443 is left out of the Location.
	ls.HTTPSRedirectPort = 443
	got, _ = TranslateRouteVirtualHosts(r, false, ls)
	if p := got[RouteConfigName][0].GetRoutes()[1].GetRedirect().GetPortRedirect(); p != 0 {
		t.Errorf("redirect port with 443 = %d, want none", p)
	}
	// Without a local listener, cluster-local hosts are served on the plain listener.
	got, _ = TranslateRouteVirtualHosts(r, false, Listeners{})
	if names(got[RouteConfigName]) != "default/hello,default/hello/local" || got[LocalRouteConfigName] != nil || got[HTTPSRouteConfigName] != nil {
		t.Errorf("no optional listeners: http %q", names(got[RouteConfigName]))
	}
	for _, vhs := range got {
		for _, v := range vhs {
			if err := v.ValidateAll(); err != nil {
				t.Error(err)
			}
		}
	}
}

// The server: the TLS listener appears with the first certificate and goes with the last;
// a certificate that does not load or takes another's host is refused; routes reach the
// three RouteConfigurations and are ACK-tracked per configuration.
func TestServerCertificatesAndListeners(t *testing.T) {
	srv, err := NewServer(nil, Options{ListenerAddress: "127.0.0.1", ListenerPort: 8080,
		HTTPSListenerAddress: "127.0.0.1", HTTPSListenerPort: 8443, LocalListenerAddress: "127.0.0.1", LocalListenerPort: 8081})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	listeners := func() []string {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		var n []string
		for name, l := range srv.listenerRes {
			if err := l.ValidateAll(); err != nil {
				t.Error(err)
			}
			n = append(n, name)
		}
		return n
	}
	if got := strings.Join(sortedStrings(listeners()), ","); got != "skiff-http,skiff-local" {
		t.Fatalf("listeners without certificates = %s", got)
	}
	cert, key := selfSigned(t, time.Now().Add(-time.Minute), time.Hour, "hello.example.com")
	if err := srv.SetCertificate(TLSCertificate{Name: "default/hello", Hosts: []string{"hello.example.com"}, CertPEM: cert, KeyPEM: key}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sortedStrings(listeners()), ","); got != "skiff-http,skiff-https,skiff-local" {
		t.Fatalf("listeners with a certificate = %s", got)
	}
	err = srv.SetCertificate(TLSCertificate{Name: "default/bad", Hosts: []string{"bad.example.com"}, CertPEM: cert, KeyPEM: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "do not load") {
		t.Errorf("bad certificate: %v", err)
	}
	err = srv.SetCertificate(TLSCertificate{Name: "other/hello", Hosts: []string{"hello.example.com"}, CertPEM: cert, KeyPEM: key})
	if err == nil || !strings.Contains(err.Error(), "already served by certificate default/hello") {
		t.Errorf("second certificate for a host: %v", err)
	}
	if got := srv.Certificates(); len(got) != 1 {
		t.Errorf("certificates = %v, want only default/hello", got)
	}
	srv.DeleteCertificate("default/hello")
	if got := strings.Join(sortedStrings(listeners()), ","); got != "skiff-http,skiff-local" {
		t.Errorf("listeners after the last certificate went = %s", got)
	}
	if err := srv.SetRoute(Route{Namespace: "default", Name: "hello", VirtualHosts: []VirtualHost{
		{Name: "default/hello", Domains: []string{"hello.example.com"}, Visibility: VisibilityExternal, Clusters: []WeightedCluster{{Name: "c", Weight: 100}}},
		{Name: "default/hello/local", Domains: []string{"hello.default.svc.cluster.local"}, Visibility: VisibilityClusterLocal, Clusters: []WeightedCluster{{Name: "c", Weight: 100}}},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.flushRoutes(); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for name, want := range map[string]int{RouteConfigName: 1, HTTPSRouteConfigName: 1, LocalRouteConfigName: 1} {
		if got := len(srv.routeConfigs[name].GetVirtualHosts()); got != want {
			t.Errorf("%s has %d virtual hosts, want %d", name, got, want)
		}
	}
	if v := srv.routeVersions["default/hello"]; len(v) != 3 {
		t.Errorf("route versions = %v, want one per RouteConfiguration", v)
	}
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}

// A Route is acknowledged once a proxy has ACKed every RouteConfiguration carrying it whose
// listener the proxy has: the TLS one only once a certificate brought its listener.
func TestRouteAckedPerRouteConfiguration(t *testing.T) {
	h := newHarnessWith(t, Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080,
		HTTPSListenerAddress: "127.0.0.1", HTTPSListenerPort: 18443, LocalListenerAddress: "127.0.0.1", LocalListenerPort: 18081})
	c := h.sotw("envoy-1")
	c.subscribe(resourcev3.ClusterType)
	c.ack(c.recv(resourcev3.ClusterType))
	c.subscribe(resourcev3.EndpointType, helloV1, helloV2, echoV1)
	c.ack(c.recv(resourcev3.EndpointType))
	c.subscribe(resourcev3.ListenerType)
	l := c.recv(resourcev3.ListenerType)
	if len(l.GetResources()) != 2 {
		t.Fatalf("listeners without a certificate: %d, want skiff-http and skiff-local", len(l.GetResources()))
	}
	c.ack(l)
	c.subscribe(resourcev3.RouteType, RouteConfigName, LocalRouteConfigName)
	rds := c.recv(resourcev3.RouteType)
	if len(rds.GetResources()) != 2 {
		t.Fatalf("RDS sent %d route configurations, want 2", len(rds.GetResources()))
	}
	if h.srv.RouteAcked("default", "hello") {
		t.Fatal("route acknowledged before the RDS ACK")
	}
	c.ack(rds)
	eventuallyTrue(t, func() bool { return h.srv.RouteAcked("default", "hello") }, "route acked without the TLS listener")

	// A certificate brings the TLS listener; its RouteConfiguration must now be ACKed too.
	cert, key := selfSigned(t, time.Now().Add(-time.Minute), time.Hour, "hello.default.example.com")
	if err := h.srv.SetCertificate(TLSCertificate{Name: "default/route-1", Hosts: []string{"hello.default.example.com"}, CertPEM: cert, KeyPEM: key}); err != nil {
		t.Fatal(err)
	}
	l = c.recv(resourcev3.ListenerType)
	if len(l.GetResources()) != 3 {
		t.Fatalf("listeners with a certificate: %d, want 3", len(l.GetResources()))
	}
	c.ack(l)
	if h.srv.RouteAcked("default", "hello") {
		t.Error("route acknowledged before the TLS listener's RouteConfiguration was ACKed")
	}
	c.subscribe(resourcev3.RouteType, RouteConfigName, LocalRouteConfigName, HTTPSRouteConfigName)
	c.ack(c.recv(resourcev3.RouteType))
	eventuallyTrue(t, func() bool { return h.srv.RouteAcked("default", "hello") }, "route acked with the TLS listener")
	// A proxy that asks for secrets must also have ACKed the route's certificate.
	c.subscribe(resourcev3.SecretType, "default/route-1")
	sds := c.recv(resourcev3.SecretType)
	if len(sds.GetResources()) != 1 {
		t.Fatalf("SDS sent %d secrets, want 1", len(sds.GetResources()))
	}
	eventuallyTrue(t, func() bool { return !h.srv.RouteAcked("default", "hello") }, "route not acked while its certificate is not")
	c.ack(sds)
	eventuallyTrue(t, func() bool { return h.srv.RouteAcked("default", "hello") }, "route acked with its certificate")
	// A renewal does not make the served route unready.
	cert2, key2 := selfSigned(t, time.Now().Add(-time.Minute), time.Hour, "hello.default.example.com")
	if err := h.srv.SetCertificate(TLSCertificate{Name: "default/route-1", Hosts: []string{"hello.default.example.com"}, CertPEM: cert2, KeyPEM: key2}); err != nil {
		t.Fatal(err)
	}
	if !h.srv.RouteAcked("default", "hello") {
		t.Error("a certificate renewal made the route unacknowledged")
	}
	c.ack(c.recv(resourcev3.SecretType))
}

func eventuallyTrue(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
