package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// rawConn is a downstream TCP connection to the gateway's listener.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (g *runningGateway) dialRaw(t *testing.T) *rawConn {
	t.Helper()
	a, ok := g.gw.ListenerAddr(listenerName)
	if !ok {
		t.Fatal("listener not bound")
	}
	c, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// roundTrip writes raw bytes and reads one response (within 10s).
func (rc *rawConn) roundTrip(raw string) (*http.Response, string) {
	rc.t.Helper()
	if err := rc.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		rc.t.Fatal(err)
	}
	if _, err := io.WriteString(rc.c, raw); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		rc.t.Fatalf("read response body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the gateway closed the connection (EOF on the next read).
func (rc *rawConn) closed() bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.br.ReadByte()
	return err == io.EOF
}

// Envoy's HTTP/1 codec limits, over raw TCP through the gateway (issue 13, item 8):
// request headers over max_request_headers_kb (60 KiB) or more than max_headers_count
// (100) get 431, a request with both Content-Length and Transfer-Encoding gets 400, a
// malformed chunk size gets 400 (it was 503), each with Envoy's local reply and the
// connection closed; requests within the limits, on the same kind of connection, pass.
func TestEnvoyCodecLimits(t *testing.T) {
	var reached atomic.Int32
	b1 := newBackend(t, "v1", false, func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		fmt.Fprint(w, "v1")
	})
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	x.set(t, baseConfig(t, b1, b2))
	g := startGateway(t, x, false)
	g.waitReady(t)

	const host = "Host: tag-hello.default.localhost\r\n" // 31 bytes of name and value
	big := func(n int) string { return "X-Big: " + strings.Repeat("b", n) + "\r\n" }
	headers := func(n int) string {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, "X-H%d: v\r\n", i)
		}
		return sb.String()
	}
	for _, tc := range []struct {
		name    string
		raw     string
		status  int
		body    string
		reaches bool
	}{
		// host 4+27, x-big 5+value: 60 KiB in all is accepted, one byte more is not.
		{"headers of 60 KiB", "GET / HTTP/1.1\r\n" + host + big(60*1024-36) + "\r\n", 200, "v1", true},
		{"headers over 60 KiB", "GET / HTTP/1.1\r\n" + host + big(60*1024-35) + "\r\n", 431, "Request Header Fields Too Large", false},
		{"headers of 120 KiB", "GET / HTTP/1.1\r\n" + host + big(120*1024) + "\r\n", 431, "", false},
		{"100 headers", "GET / HTTP/1.1\r\n" + host + headers(99) + "\r\n", 200, "v1", true},
		{"101 headers", "GET / HTTP/1.1\r\n" + host + headers(100) + "\r\n", 431, "Request Header Fields Too Large", false},
		{"content-length and transfer-encoding", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, "Bad Request", false},
		{"malformed chunk size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, "Bad Request", false},
		{"chunk data without CRLF", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", 400, "Bad Request", false},
		{"chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n", 200, "v1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reached.Load()
			rc := g.dialRaw(t)
			resp, body := rc.roundTrip(tc.raw)
			if resp.StatusCode != tc.status || tc.body != "" && body != tc.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status >= 400 {
				if tc.body != "" && (resp.Header.Get("Server") != "envoy" || resp.Header.Get("Content-Type") != "text/plain") {
					t.Errorf("local reply headers %v, want Envoy's", resp.Header)
				}
				if !resp.Close || !rc.closed() {
					t.Errorf("the connection stays open after a codec error")
				}
			}
			if got := reached.Load() > before; got != tc.reaches && tc.status != 400 {
				t.Errorf("backend reached: %v, want %v", got, tc.reaches)
			}
		})
	}

	// On a keep-alive connection the codec follows each body (by length or by chunks) to
	// the next request: a request head inside a body is not taken for one, and a bad
	// request after good ones is still refused.
	t.Run("keep-alive", func(t *testing.T) {
		smuggled := "GET / HTTP/1.1\r\n" + host + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
		rc := g.dialRaw(t)
		for i, raw := range []string{
			fmt.Sprintf("POST / HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s", host, len(smuggled), smuggled),
			fmt.Sprintf("POST / HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", host, len(smuggled), smuggled),
			"GET / HTTP/1.1\r\n" + host + "\r\n",
		} {
			if resp, body := rc.roundTrip(raw); resp.StatusCode != 200 || body != "v1" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		if resp, _ := rc.roundTrip(smuggled + "0\r\n\r\n"); resp.StatusCode != 400 {
			t.Fatalf("bad request after good ones: %d", resp.StatusCode)
		}
	})
	if got := g.stat(t, "http."+listenerName+".downstream_rq_4xx"); got < 6 {
		t.Errorf("downstream_rq_4xx = %d, want the codec errors counted", got)
	}
}

// The limits follow the HttpConnectionManager: max_request_headers_kb,
// common_http_protocol_options.max_headers_count and
// http_protocol_options.allow_chunked_length.
func TestEnvoyCodecLimitsConfigured(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	c.listeners = []types.Resource{httpListener(t, listenerName, func(h *hcmv3.HttpConnectionManager) {
		h.MaxRequestHeadersKb = wrapperspb.UInt32(2)
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(5)}
		h.HttpProtocolOptions = &corev3.Http1ProtocolOptions{AllowChunkedLength: true}
	})}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	const host = "Host: tag-hello.default.localhost\r\n"
	for _, tc := range []struct {
		raw    string
		status int
	}{
		{"GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("b", 2048) + "\r\n\r\n", 431},
		{"GET / HTTP/1.1\r\n" + host + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 431},
		{"GET / HTTP/1.1\r\n" + host + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 200},
		{"POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200},
	} {
		if resp, body := g.dialRaw(t).roundTrip(tc.raw); resp.StatusCode != tc.status {
			t.Errorf("%q: %d %q, want %d", tc.raw[:min(len(tc.raw), 80)], resp.StatusCode, body, tc.status)
		}
	}
}

// A malformed chunked body is a 400 also when a Wasm filter reads it: buffered by the
// filter (a structured CloudEvent) or streamed past it (binary mode).
func TestEnvoyCodecThroughWasmFilter(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	c.listeners = []types.Resource{httpListener(t, listenerName, withWasmFirst(wasmFilter(t, "skiff.cloudevents", "cloudevents", brokerFilterConfig)))}
	x.set(t, c)
	g := startGateway(t, x, false)
	// The first gateway of the package with this filter compiles it (a minute under -race on
	// a busy machine); later ones load it from the shared cache.
	eventually(t, 3*time.Minute, func() bool {
		_, ok := g.gw.ListenerAddr(listenerName)
		return ok && g.gw.Ready()
	}, "gateway ready with the cloudevents filter")
	const head = "POST /default/default HTTP/1.1\r\nHost: tag-hello.default.localhost\r\nTransfer-Encoding: chunked\r\n"
	for name, raw := range map[string]string{
		"structured": head + "Content-Type: application/cloudevents+json\r\n\r\n5\r\n{\"spe\r\nzz\r\n",
		"binary":     head + "Content-Type: application/json\r\nCe-Specversion: 1.0\r\nCe-Id: 1\r\nCe-Type: t\r\nCe-Source: /s\r\n\r\n2\r\n{}\r\nzz\r\n",
	} {
		rc := g.dialRaw(t)
		if resp, body := rc.roundTrip(raw); resp.StatusCode != 400 || body != "Bad Request" {
			t.Errorf("%s: %d %q, want 400 Bad Request", name, resp.StatusCode, body)
		}
	}
}

// The same header limits apply to HTTP/2 (h2c) requests: headers over 60 KiB get 431, more
// than 100 header fields reset the stream, as Envoy does.
func TestEnvoyCodecLimitsHTTP2(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	x.set(t, baseConfig(t, b1, b2))
	g := startGateway(t, x, false)
	g.waitReady(t)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	h2 := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	do := func(h http.Header) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, g.url(t, "/"), nil)
		req.Host = "tag-hello.default.localhost"
		maps.Copy(req.Header, h)
		resp, err := h2.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := do(http.Header{"X-Big": {strings.Repeat("b", 61*1024)}}); err != nil || resp.StatusCode != 431 || resp.Proto != "HTTP/2.0" {
		t.Errorf("h2c headers over 60 KiB: %v %v, want 431", resp, err)
	}
	many := http.Header{}
	for i := range 100 {
		many.Set(fmt.Sprintf("X-H%d", i), "v")
	}
	if resp, err := do(many); err == nil {
		t.Errorf("h2c with 101 header fields: %d, want the stream reset", resp.StatusCode)
	}
	if resp, err := do(http.Header{"X-Small": {"s"}}); err != nil || resp.StatusCode != 200 {
		t.Errorf("h2c within the limits: %v %v", resp, err)
	}
}
