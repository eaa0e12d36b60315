package gateway_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"maps"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a PEM chain and key for hosts.
func (ca *testCA) issue(t *testing.T, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func tlsSecret(name string, certPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
	}}}
}

// tlsListener is httpListener's HTTP connection manager behind one TLS filter chain per
// secret, selected by SNI, as controlplane/xds translates the "skiff-https" listener.
func tlsListener(t *testing.T, routeName string, chains map[string][]string) *listenerv3.Listener {
	l := httpListener(t, routeName)
	hcm := l.FilterChains[0].Filters[0]
	l.FilterChains = nil
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{})}}}
	for secret, names := range chains {
		ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams: &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: secret, SdsConfig: &corev3.ConfigSource{
				ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			}}},
			AlpnProtocols: []string{"h2", "http/1.1"},
		}}
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			Name:             secret,
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names},
			TransportSocket:  &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ctx)}},
			Filters:          []*listenerv3.Filter{hcm},
		})
	}
	if err := l.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	return l
}

// httpsGet sends GET https://{host}{path} to addr with SNI host, trusting pool.
func httpsGet(t *testing.T, addr, host, path string, pool *x509.CertPool, tlsMax uint16) (*http.Response, string, error) {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: host, MaxVersion: tlsMax},
		ForceAttemptHTTP2: true,
		DialContext:       nil,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

// The gateway terminates TLS as Envoy does with Skiff's listener: the certificate of the
// filter chain the SNI selects (exact, then wildcard), from SDS over ADS; HTTP/2 or HTTP/1.1
// by ALPN; no TLS below 1.2; no certificate for an unknown name. A renewed secret is served
// to new connections without the listener changing.
func TestTLSListenerSNIAndSDS(t *testing.T) {
	x := startXDS(t)
	ca := newTestCA(t)
	b := newBackend(t, "hello", false, nil)
	helloCert, helloKey := ca.issue(t, "hello.example.com")
	wildCert, wildKey := ca.issue(t, "*.apps.example.com")
	const httpsName = "skiff-https"
	l := tlsListener(t, httpsName, map[string][]string{"default/hello": {"hello.example.com"}, "default/wild": {"*.apps.example.com"}})
	l.Name = listenerName // the harness reads the listener by this name
	cfg := config{
		listeners: []types.Resource{l},
		routes: []types.Resource{routeConfig(httpsName,
			vhost("hello", []string{"hello.example.com", "x.apps.example.com"}, routeTo("/", "hello")))},
		clusters:  []types.Resource{edsCluster("hello")},
		endpoints: []types.Resource{cla("hello", b.addr())},
		secrets:   []types.Resource{tlsSecret("default/hello", helloCert, helloKey), tlsSecret("default/wild", wildCert, wildKey)},
	}
	x.set(t, cfg)
	g := startGateway(t, x, false)
	g.waitReady(t)
	addr, _ := g.gw.ListenerAddr(listenerName)

	resp, body, err := httpsGet(t, addr.String(), "hello.example.com", "/", ca.pool, 0)
	if err != nil {
		t.Fatalf("GET https://hello.example.com: %v", err)
	}
	if resp.StatusCode != 200 || body != "hello" || resp.ProtoMajor != 2 {
		t.Errorf("hello.example.com: %d %q over %s; want 200 hello over HTTP/2 (ALPN h2)", resp.StatusCode, body, resp.Proto)
	}
	if got := b.lastRequest().Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("upstream X-Forwarded-Proto = %q, want https", got)
	}
	if resp, body, err := httpsGet(t, addr.String(), "x.apps.example.com", "/", ca.pool, 0); err != nil || resp.StatusCode != 200 || body != "hello" {
		t.Errorf("wildcard chain x.apps.example.com: %v %v %q", err, resp, body)
	}
	if _, _, err := httpsGet(t, addr.String(), "other.example.com", "/", ca.pool, 0); err == nil {
		t.Error("a server name no filter chain matches got a TLS connection")
	}
	// An HTTP/1.1-only client gets HTTP/1.1.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "hello.example.com", NextProtos: []string{"http/1.1"}}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr.String()+"/", nil)
	req.Host = "hello.example.com"
	if resp, err := (&http.Client{Transport: tr}).Do(req); err != nil || resp.ProtoMajor != 1 {
		t.Errorf("HTTP/1.1 client: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// TLS 1.1 is refused.
	conn, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: ca.pool, ServerName: "hello.example.com", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	// A renewed certificate (SDS only) is served to the next connection.
	renewed, renewedKey := ca.issue(t, "hello.example.com")
	cfg.secrets[0] = tlsSecret("default/hello", renewed, renewedKey)
	x.set(t, cfg)
	want, _ := pem.Decode(renewed)
	eventually(t, 10*time.Second, func() bool {
		c, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: ca.pool, ServerName: "hello.example.com"})
		if err != nil {
			return false
		}
		defer c.Close()
		return string(c.ConnectionState().PeerCertificates[0].Raw) == string(want.Bytes)
	}, "the renewed certificate served")
}

// A secret that does not hold a usable certificate is NACKed, and the previous secrets stay.
func TestTLSSecretNACK(t *testing.T) {
	x := startXDS(t)
	ca := newTestCA(t)
	b := newBackend(t, "hello", false, nil)
	c, k := ca.issue(t, "hello.example.com")
	l := tlsListener(t, "r", map[string][]string{"s": {"hello.example.com"}})
	l.Name = listenerName
	cfg := config{
		listeners: []types.Resource{l},
		routes:    []types.Resource{routeConfig("r", vhost("hello", []string{"hello.example.com"}, routeTo("/", "hello")))},
		clusters:  []types.Resource{edsCluster("hello")},
		endpoints: []types.Resource{cla("hello", b.addr())},
		secrets:   []types.Resource{tlsSecret("s", c, k)},
	}
	x.set(t, cfg)
	g := startGateway(t, x, false)
	g.waitReady(t)
	cfg.secrets = []types.Resource{tlsSecret("s", c, []byte("not a key"))}
	x.set(t, cfg)
	eventually(t, 10*time.Second, func() bool {
		for _, n := range x.nackList() {
			if strings.Contains(n, "Secret") && strings.Contains(n, `secret "s"`) {
				return true
			}
		}
		return false
	}, "SDS NACK naming the secret")
	addr, _ := g.gw.ListenerAddr(listenerName)
	if resp, body, err := httpsGet(t, addr.String(), "hello.example.com", "/", ca.pool, 0); err != nil || resp.StatusCode != 200 || body != "hello" {
		t.Errorf("after the NACK: %v %v %q; want the previous certificate still served", err, resp, body)
	}
}

// A redirect route (http-protocol Redirected) answers 301 with the https Location and port.
func TestHTTPSRedirectRoute(t *testing.T) {
	x := startXDS(t)
	rd := &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
			PortRedirect:           8443, ResponseCode: routev3.RedirectAction_MOVED_PERMANENTLY,
		}},
	}
	x.set(t, config{
		listeners: []types.Resource{httpListener(t, "r")},
		routes:    []types.Resource{routeConfig("r", vhost("hello", []string{"hello.example.com"}, rd))},
	})
	g := startGateway(t, x, false)
	g.waitReady(t)
	g.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := g.do(t, "hello.example.com", "/a?b=c")
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "https://hello.example.com:8443/a?b=c" {
		t.Errorf("redirect: %d Location %q; want 301 https://hello.example.com:8443/a?b=c", r.status, r.header.Get("Location"))
	}
}

// Envoy's codec limits (issue 13, item 8) apply on the TLS listener as on the plain one
// (issue 14 added it): over HTTP/1.1 the codec reads the decrypted stream (431 for headers
// over 60 KiB, 400 for Content-Length with Transfer-Encoding, the connection closed), over
// HTTP/2 (ALPN h2) the header limits hold; the upstream still sees an https request.
func TestEnvoyCodecLimitsOverTLS(t *testing.T) {
	x := startXDS(t)
	ca := newTestCA(t)
	b := newBackend(t, "hello", false, nil)
	c, k := ca.issue(t, "hello.example.com")
	l := tlsListener(t, "r", map[string][]string{"s": {"hello.example.com"}})
	l.Name = listenerName
	x.set(t, config{
		listeners: []types.Resource{l},
		routes:    []types.Resource{routeConfig("r", vhost("hello", []string{"hello.example.com"}, routeTo("/", "hello")))},
		clusters:  []types.Resource{edsCluster("hello")},
		endpoints: []types.Resource{cla("hello", b.addr())},
		secrets:   []types.Resource{tlsSecret("s", c, k)},
	})
	g := startGateway(t, x, false)
	g.waitReady(t)
	addr, _ := g.gw.ListenerAddr(listenerName)

	dialTLS := func(t *testing.T) *rawConn {
		t.Helper()
		conn, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: ca.pool, ServerName: "hello.example.com", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return &rawConn{t: t, c: conn, br: bufio.NewReader(conn)}
	}
	const host = "Host: hello.example.com\r\n"
	for _, tc := range []struct {
		name   string
		raw    string
		status int
	}{
		{"within the limits", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("b", 1024) + "\r\n\r\n", 200},
		{"headers over 60 KiB", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("b", 61*1024) + "\r\n\r\n", 431},
		{"content-length and transfer-encoding", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
	} {
		t.Run("http1 "+tc.name, func(t *testing.T) {
			rc := dialTLS(t)
			resp, body := rc.roundTrip(tc.raw)
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == 200 {
				if got := b.lastRequest().Header.Get("X-Forwarded-Proto"); got != "https" {
					t.Errorf("upstream X-Forwarded-Proto = %q, want https", got)
				}
			} else if !resp.Close || !rc.closed() {
				t.Error("the connection stays open after a codec error")
			}
		})
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "hello.example.com"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	h2 := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	do := func(h http.Header) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr.String()+"/", nil)
		req.Host = "hello.example.com"
		maps.Copy(req.Header, h)
		resp, err := h2.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := do(http.Header{"X-Big": {strings.Repeat("b", 61*1024)}}); err != nil || resp.StatusCode != 431 || resp.ProtoMajor != 2 {
		t.Errorf("h2 headers over 60 KiB: %v %v, want 431 over HTTP/2", resp, err)
	}
	if resp, err := do(http.Header{"X-Small": {"s"}}); err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("h2 within the limits: %v %v, want 200 over HTTP/2", resp, err)
	}
}
