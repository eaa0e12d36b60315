package h1

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// newTransport returns a Transport whose every connection goes to srv, recording the
// addresses asked for.
func newTransport(srv *httptest.Server) (*Transport, *[]string) {
	var mu sync.Mutex
	var addrs []string
	d := &net.Dialer{}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		addrs = append(addrs, addr)
		mu.Unlock()
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}
	fallback := &http.Transport{DialContext: dial}
	return New(fallback, dial), &addrs
}

func countConns(srv *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

// TestHostWithoutPort: a URL without a port is port 80, as http.Transport reads it (a
// Knative address such as http://broker-ingress.example.com/ns/b).
func TestHostWithoutPort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Host)
	}))
	defer srv.Close()
	tr, addrs := newTransport(srv)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post("http://subscriber.example.com/x", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "subscriber.example.com" || len(*addrs) != 1 || (*addrs)[0] != "subscriber.example.com:80" {
		t.Errorf("got host %q, dialled %v; want subscriber.example.com, dialled subscriber.example.com:80", b, *addrs)
	}
}

// TestKeepAlive: requests one after the other share one connection, whether their response
// has a body or not.
func TestKeepAlive(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.Copy(w, r.Body)
	}))
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	tr, _ := newTransport(srv)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for i, path := range []string{"/echo", "/empty", "/echo", "/empty"} {
		resp, err := c.Post(srv.URL+path, "text/plain", strings.NewReader("event"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := map[string]string{"/echo": "event", "/empty": ""}[path]; string(b) != want {
			t.Errorf("request %d: body %q, want %q", i, b, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for four requests, want 1", n)
	}
}

// TestProxiedGoesToFallback: a request the fallback's Proxy sends to an HTTP proxy goes
// there (http.Transport speaks to proxies), not straight to its host.
func TestProxiedGoesToFallback(t *testing.T) {
	var viaProxy atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		viaProxy.Store(r.URL.IsAbs())
		w.WriteHeader(http.StatusAccepted)
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	tr := New(&http.Transport{Proxy: http.ProxyURL(pu)}, (&net.Dialer{}).DialContext)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post("http://subscriber.example.com/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !viaProxy.Load() {
		t.Errorf("status %d, through the proxy %v; want 202 through the proxy", resp.StatusCode, viaProxy.Load())
	}
}

// TestNoHost: a URL without a host is refused, as http.Transport refuses it, not dialled.
func TestNoHost(t *testing.T) {
	tr := New(&http.Transport{}, func(context.Context, string, string) (net.Conn, error) {
		t.Error("dialled a URL without a host")
		return nil, io.EOF
	})
	req, _ := http.NewRequest(http.MethodGet, "http:///path", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Error("no error for a URL without a host")
	}
}

// TestClosedIdleConnection: a kept-alive connection the host closed while idle is not
// used for the next request.
func TestClosedIdleConnection(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	tr, _ := newTransport(srv)
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	post := func() {
		t.Helper()
		resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("event"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	post()
	srv.CloseClientConnections()
	post() // a POST is not sent again after a failure: the closed connection must be noticed
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}
