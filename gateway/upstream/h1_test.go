package upstream_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
	"github.com/skiff-dev/skiff/internal/testwait"
)

// h1Server is an httptest server that counts the connections it accepted and the
// connections it saw closed.
type h1Server struct {
	*httptest.Server
	opened, closed atomic.Int32
}

func newH1Server(t *testing.T, h http.HandlerFunc) *h1Server {
	t.Helper()
	s := &h1Server{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// clusterFor builds a cleartext HTTP/1.1 cluster whose one host is the listener at a.
func clusterFor(t *testing.T, a string) *upstream.Cluster {
	t.Helper()
	_, port, _ := net.SplitHostPort(a)
	p, _ := strconv.Atoi(port)
	cl, _ := apply(t, staticCluster("h1", clusterv3.Cluster_ROUND_ROBIN, ep{port: uint32(p)}))
	return cl
}

// send makes one request through the cluster's HTTP/1.1 transport and reads the whole
// response body.
func send(t *testing.T, cl *upstream.Cluster, method, url string, body io.Reader) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Transport(1).RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp, "", err
	}
	return resp, string(b), nil
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
		return
	case "/close":
		w.Header().Set("Connection", "close")
	}
	fmt.Fprintf(w, "%s %s %d %s", r.Method, r.URL.Path, len(b), r.Header.Get("X-Test"))
}

func TestH1KeepsOneConnectionForSequentialRequests(t *testing.T) {
	s := newH1Server(t, echo)
	cl := clusterFor(t, s.Listener.Addr().String())
	cases := []struct {
		method, path, body, want string
		code                     int
	}{
		{"GET", "/a", "", "GET /a 0 ", 200},
		{"POST", "/b", "hello", "POST /b 5 ", 200},
		{"HEAD", "/c", "", "", 200},
		{"GET", "/nocontent", "", "", 204},
		{"PUT", "/d", strings.Repeat("x", 30<<10), "PUT /d 30720 ", 200},
	}
	for round := 0; round < 3; round++ {
		for _, c := range cases {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			resp, got, err := send(t, cl, c.method, s.URL+c.path, body)
			if err != nil {
				t.Fatalf("%s %s: %v", c.method, c.path, err)
			}
			if resp.StatusCode != c.code || got != c.want {
				t.Fatalf("%s %s = %d %q, want %d %q", c.method, c.path, resp.StatusCode, got, c.code, c.want)
			}
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("upstream accepted %d connections for 15 sequential requests, want 1", n)
	}
}

// Bodies of unknown length or larger than the synchronous path takes go through
// http.Transport and arrive whole.
func TestH1LargeAndStreamedBodies(t *testing.T) {
	s := newH1Server(t, echo)
	cl := clusterFor(t, s.Listener.Addr().String())
	big := strings.Repeat("y", 1<<20)
	_, got, err := send(t, cl, "POST", s.URL+"/big", strings.NewReader(big))
	if err != nil || got != "POST /big 1048576 " {
		t.Fatalf("1 MiB body: %q, %v", got, err)
	}
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 10; i++ {
			pw.Write([]byte("0123456789"))
		}
		pw.Close()
	}()
	_, got, err = send(t, cl, "POST", s.URL+"/chunked", pr)
	if err != nil || got != "POST /chunked 100 " {
		t.Fatalf("chunked body: %q, %v", got, err)
	}
}

func TestH1ConnectionCloseIsNotReused(t *testing.T) {
	s := newH1Server(t, echo)
	cl := clusterFor(t, s.Listener.Addr().String())
	for i := 0; i < 3; i++ {
		if _, got, err := send(t, cl, "GET", s.URL+"/close", nil); err != nil || got != "GET /close 0 " {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	if n := s.opened.Load(); n != 3 {
		t.Fatalf("upstream accepted %d connections for 3 responses with Connection: close, want 3", n)
	}
}

// A kept-alive connection the host closed while it sat idle (Node closes them after
// 5 s) is not used for the next request, which would otherwise fail.
func TestH1IdleConnectionClosedByHostIsNotUsed(t *testing.T) {
	s := newH1Server(t, echo)
	cl := clusterFor(t, s.Listener.Addr().String())
	if _, _, err := send(t, cl, "GET", s.URL+"/first", nil); err != nil {
		t.Fatal(err)
	}
	s.Config.SetKeepAlivesEnabled(false) // closes the idle connection
	testwait.For(t, 5*time.Second, "the host to close the idle connection", func() bool { return s.closed.Load() == 1 })
	s.Config.SetKeepAlivesEnabled(true)
	resp, got, err := send(t, cl, "POST", s.URL+"/second", strings.NewReader("not idempotent"))
	if err != nil || resp.StatusCode != 200 || got != "POST /second 14 " {
		t.Fatalf("POST after the idle connection closed: %v %q", err, got)
	}
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("upstream accepted %d connections, want 2", n)
	}
}

// rawHost serves HTTP/1.1 by hand: the n-th request on each connection is answered by
// answer(conn index, request index), which returns false to close the connection instead.
type rawHost struct {
	ln       net.Listener
	mu       sync.Mutex
	requests []string // "conn/method path body"
}

func newRawHost(t *testing.T, answer func(c, n int) bool) *rawHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &rawHost{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for c := 0; ; c++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				br := bufio.NewReader(conn)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b, _ := io.ReadAll(req.Body)
					h.mu.Lock()
					h.requests = append(h.requests, fmt.Sprintf("%d/%s %s %s", c, req.Method, req.URL.Path, b))
					h.mu.Unlock()
					if !answer(c, n) {
						return
					}
					fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	return h
}

func (h *rawHost) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

// The race the idle check cannot see: the host closes a kept-alive connection just as
// the next request arrives on it. An idempotent request without a body is sent again on
// a new connection; anything else fails rather than reach the host twice
// (http.Transport's rule).
func TestH1RequestOnConnectionClosedUnderIt(t *testing.T) {
	for _, tc := range []struct {
		method, body string
		wantErr      bool
		wantSeen     []string
	}{
		{"GET", "", false, []string{"0/GET /1 ", "0/GET /2 ", "1/GET /2 "}},
		{"POST", "once", true, []string{"0/GET /1 ", "0/POST /2 once"}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			// The first connection answers its first request and drops the second.
			h := newRawHost(t, func(c, n int) bool { return c > 0 || n == 0 })
			cl := clusterFor(t, h.ln.Addr().String())
			url := "http://" + h.ln.Addr().String()
			if _, got, err := send(t, cl, "GET", url+"/1", nil); err != nil || got != "ok" {
				t.Fatalf("first request: %q, %v", got, err)
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			_, got, err := send(t, cl, tc.method, url+"/2", body)
			if tc.wantErr != (err != nil) || (err == nil && got != "ok") {
				t.Fatalf("second request: %q, %v (want error: %v)", got, err, tc.wantErr)
			}
			if seen := h.seen(); fmt.Sprint(seen) != fmt.Sprint(tc.wantSeen) {
				t.Fatalf("host saw %q, want %q", seen, tc.wantSeen)
			}
		})
	}
}

// A response body closed before its end costs the connection: it is closed, not kept
// with the rest of the body unread in it.
func TestH1BodyClosedEarlyClosesTheConnection(t *testing.T) {
	release := make(chan struct{})
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Write([]byte("part"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		echo(w, r)
	})
	defer close(release)
	cl := clusterFor(t, s.Listener.Addr().String())
	req, _ := http.NewRequest("GET", s.URL+"/stream", nil)
	resp, err := cl.Transport(1).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "part" {
		t.Fatalf("read %q, %v", buf, err)
	}
	resp.Body.Close()
	testwait.For(t, 5*time.Second, "the upstream connection to close", func() bool { return s.closed.Load() == 1 })
	if _, got, err := send(t, cl, "GET", s.URL+"/next", nil); err != nil || got != "GET /next 0 " {
		t.Fatalf("next request: %q, %v", got, err)
	}
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("upstream accepted %d connections, want 2", n)
	}
}

// A request whose context ends while it waits for the response (route timeout, client
// gone) returns at once with the context's error, and its connection is closed.
func TestH1ContextEndsWhileWaiting(t *testing.T) {
	arrived := make(chan struct{}, 1)
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	cl := clusterFor(t, s.Listener.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/slow", nil)
	_, err := cl.Transport(1).RoundTrip(req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RoundTrip = %v, want context.Canceled", err)
	}
	testwait.For(t, 5*time.Second, "the upstream connection to close", func() bool { return s.closed.Load() == 1 })
}

// Informational responses reach the caller's Got1xxResponse (ReverseProxy forwards them
// downstream) before the final response.
func TestH1InformationalResponses(t *testing.T) {
	s := newH1Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	})
	cl := clusterFor(t, s.Listener.Addr().String())
	var got1xx []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got1xx = append(got1xx, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", s.URL, nil)
	resp, err := cl.Transport(1).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(b, []byte("final")) {
		t.Fatalf("final response %d %q", resp.StatusCode, b)
	}
	if fmt.Sprint(got1xx) != "[103 </style.css>; rel=preload]" {
		t.Fatalf("informational responses %q", got1xx)
	}
}

// A host removed from the cluster (its pod scaled away) takes its kept-alive connections
// with it; the hosts that stay keep theirs.
func TestH1RemovedHostLosesItsIdleConnections(t *testing.T) {
	a, b := newH1Server(t, echo), newH1Server(t, echo)
	s := stats.NewStore()
	m := upstream.NewManager(s, upstream.StaticSecrets{})
	t.Cleanup(m.Close)
	c := &clusterv3.Cluster{
		Name:                 "eds",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
	}
	if err := m.ApplyClusters(map[string]*clusterv3.Cluster{"eds": c}); err != nil {
		t.Fatal(err)
	}
	assign := func(servers ...*h1Server) {
		var eps []ep
		for _, s := range servers {
			_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
			p, _ := strconv.Atoi(port)
			eps = append(eps, ep{port: uint32(p)})
		}
		cla := staticCluster("eds", clusterv3.Cluster_ROUND_ROBIN, eps...).LoadAssignment
		if err := m.ApplyEndpoints(map[string]*endpointv3.ClusterLoadAssignment{"eds": cla}); err != nil {
			t.Fatal(err)
		}
	}
	assign(a, b)
	cl := m.Get("eds")
	for _, s := range []*h1Server{a, b} {
		if _, got, err := send(t, cl, "GET", s.URL+"/warm", nil); err != nil || got != "GET /warm 0 " {
			t.Fatalf("warm-up: %q, %v", got, err)
		}
	}
	assign(b)
	testwait.For(t, 5*time.Second, "the removed host's connection to close", func() bool { return a.closed.Load() == 1 })
	if _, _, err := send(t, cl, "GET", b.URL+"/again", nil); err != nil {
		t.Fatal(err)
	}
	if n, closed := b.opened.Load(), b.closed.Load(); n != 1 || closed != 0 {
		t.Fatalf("the host that stayed opened %d connections and saw %d closed, want 1 and 0", n, closed)
	}
}
