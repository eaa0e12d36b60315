package proxyclient

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A process using Forward as its HTTP_PROXY reaches Knative hosts through Skiff's proxy
// (with their Host) and other hosts directly, for plain requests and CONNECT tunnels.
func TestForward(t *testing.T) {
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "gateway %s %s %s", r.Host, r.URL.Path, body)
	}))
	defer gateway.Close()
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "direct %s", r.URL.Path)
	}))
	defer direct.Close()
	// The proxy's cluster-local listener, the only one serving cluster-local names such as
	// a channel's address.
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "local %s %s %s", r.Host, r.URL.Path, body)
	}))
	defer local.Close()
	gw := strings.TrimPrefix(gateway.URL, "http://")
	lo := strings.TrimPrefix(local.URL, "http://")
	fwd := httptest.NewServer(Forward(Config{Domain: "localhost", ProxyAddress: func() string { return gw }, LocalProxyAddress: func() string { return lo }}))
	defer fwd.Close()
	proxyURL, _ := url.Parse(fwd.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}

	for target, want := range map[string]string{
		"http://event-display.default.localhost/events":       "gateway event-display.default.localhost /events hi",
		"http://orders-kn-channel.default.svc.cluster.local/": "local orders-kn-channel.default.svc.cluster.local / hi",
		direct.URL + "/elsewhere":                             "direct /elsewhere",
	} {
		resp, err := client.Post(target, "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatalf("POST %s: %v", target, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("POST %s through the proxy: %q, want %q", target, b, want)
		}
	}

	// CONNECT to a routed host reaches the gateway.
	conn, err := net.Dial("tcp", strings.TrimPrefix(fwd.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT hello.default.localhost:80 HTTP/1.1\r\nHost: hello.default.localhost:80\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	fmt.Fprintf(conn, "GET /tunnel HTTP/1.1\r\nHost: hello.default.localhost\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "gateway hello.default.localhost /tunnel " {
		t.Errorf("through the tunnel: %q", b)
	}

	// CONNECT to a cluster-local name reaches the local listener.
	conn2, err := net.Dial("tcp", strings.TrimPrefix(fwd.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	fmt.Fprintf(conn2, "CONNECT orders-kn-channel.default.svc.cluster.local:80 HTTP/1.1\r\nHost: orders-kn-channel.default.svc.cluster.local:80\r\n\r\n")
	br2 := bufio.NewReader(conn2)
	if resp, err := http.ReadResponse(br2, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT to a cluster-local name: %v %v", resp, err)
	}
	fmt.Fprintf(conn2, "GET /tunnel HTTP/1.1\r\nHost: orders-kn-channel.default.svc.cluster.local\r\n\r\n")
	resp, err = http.ReadResponse(br2, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if string(b) != "local orders-kn-channel.default.svc.cluster.local /tunnel " {
		t.Errorf("through the tunnel to a cluster-local name: %q", b)
	}

	// A request that is not in absolute form is refused.
	r, err := http.Get(fwd.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form request: %d", r.StatusCode)
	}
}
