package proxyclient_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/client/proxyclient"
	"github.com/skiff-dev/skiff/extproc"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Issue 13, item 2: what counts as the proxy's failure rather than the destination's.
func TestProxyFailed(t *testing.T) {
	// A proxy that answers by path: 503 from its activator, 503 from the destination, a slow
	// destination, or a connection dropped without an answer.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/activation-timeout":
			w.Header().Set(extproc.FailureHeader, extproc.DetailActivationTimeout)
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/queue-full": // the activator's other answers are about load: the destination's
			w.Header().Set(extproc.FailureHeader, "skiff_queue_full")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/subscriber-503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow":
			time.Sleep(time.Second)
		case "/drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}))
	t.Cleanup(proxy.Close)
	refused := closedAddr(t)

	for _, tc := range []struct {
		name, proxyAddr, url string
		timeout              time.Duration
		want                 bool
	}{
		{"proxy refuses connections", refused, "http://sub.default.example.com/", 0, true},
		{"cluster-local host, proxy refuses", refused, "http://sub.default.svc.cluster.local/", 0, true},
		{"proxy drops the connection", proxy.Listener.Addr().String(), "http://sub.default.example.com/drop", 0, true},
		{"activation timeout", proxy.Listener.Addr().String(), "http://sub.default.example.com/activation-timeout", 0, true},
		{"activator queue full", proxy.Listener.Addr().String(), "http://sub.default.example.com/queue-full", 0, false},
		{"the subscriber's 503", proxy.Listener.Addr().String(), "http://sub.default.example.com/subscriber-503", 0, false},
		{"the attempt's own timeout", proxy.Listener.Addr().String(), "http://sub.default.example.com/slow", 100 * time.Millisecond, false},
		{"not through the proxy", refused, "http://" + refused + "/", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := proxyclient.Config{Domain: "example.com", ProxyAddress: func() string { return tc.proxyAddr }}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := proxyclient.New(cfg).Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			if got := cfg.ProxyFailed(req, resp, err); got != tc.want {
				t.Errorf("ProxyFailed = %v, want %v (response %v, error %v)", got, tc.want, resp, err)
			}
		})
	}
}
