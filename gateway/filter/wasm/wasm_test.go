package wasm

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/stats"
)

const testCluster = "default/hello-00001"

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("WASM_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// wasmConfig returns a Wasm filter configuration running module from its file.
func wasmConfig(t testing.TB, module, name, configuration string, policy wasmv3.FailurePolicy) *anypb.Any {
	t.Helper()
	pc := &wasmv3.PluginConfig{
		Name:   name,
		RootId: name,
		Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
			VmId:    name,
			Runtime: "envoy.wasm.runtime.v8",
			Code: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: modules[module]},
			}}},
		}},
		FailurePolicy: policy,
	}
	if configuration != "" {
		c, err := anypb.New(wrapperspb.String(configuration))
		if err != nil {
			t.Fatal(err)
		}
		pc.Configuration = c
	}
	a, err := anypb.New(&wasmhttpv3.Wasm{Config: pc})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type harness struct {
	t      testing.TB
	f      *Factory
	st     *stats.Store
	h      http.Handler
	mu     sync.Mutex
	seen   *http.Request
	during func(r *http.Request)
}

// newHarness builds the filter around a backend that answers 200 "ok".
func newHarness(t testing.TB, cfg *anypb.Any, instances int) *harness {
	t.Helper()
	h := &harness{t: t, st: stats.NewStore()}
	h.f = NewFactory(Options{Logger: testLogger(), Instances: instances, CompilationCache: compileCache})
	t.Cleanup(h.f.Close)
	flt, err := h.f.New(filter.BuildContext{Stats: h.st, Logger: testLogger(), StatPrefix: "test"}, "skiff.test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = r.Clone(r.Context())
		during := h.during
		h.mu.Unlock()
		if during != nil {
			during(r)
		}
		w.Header().Set("X-Backend", "yes")
		_, _ = io.WriteString(w, "ok")
	})
	h.h = flt.Wrap(backend)
	return h
}

// do sends a request routed to testCluster through the filter.
func (h *harness) do(hdr map[string]string) *httptest.ResponseRecorder {
	return h.doBody(hdr, nil)
}

// doBody is do with a request body (nil: none).
func (h *harness) doBody(hdr map[string]string, body io.Reader) *httptest.ResponseRecorder {
	method := http.MethodGet
	if body != nil {
		method = http.MethodPost
	}
	r := httptest.NewRequest(method, "http://hello.default.example.com/path?q=1", body)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	md, _ := structpb.NewStruct(map[string]any{"revision": "hello-00001"})
	st := &filter.State{}
	st.SetRoute(&filter.RouteInfo{VirtualHost: "default/hello", Route: "hello-route", Cluster: testCluster,
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"skiff": md}}})
	r = r.WithContext(filter.WithState(r.Context(), st))
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return w
}

func (h *harness) stat(name string) int64 {
	v, _ := h.st.Value(name)
	return v
}

func TestRevisionMetrics(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "revision-metrics", "skiff.revision-metrics", "", wasmv3.FailurePolicy_FAIL_RELOAD), 2)
	inFlight := "wasmcustom.skiff_revision_in_flight." + testCluster
	total := "wasmcustom.skiff_revision_requests_total." + testCluster
	var during []int64
	h.during = func(*http.Request) { during = append(during, h.stat(inFlight)) }
	for i := 0; i < 3; i++ {
		if w := h.do(nil); w.Code != 200 || w.Body.String() != "ok" {
			t.Fatalf("request %d: %d %q", i, w.Code, w.Body.String())
		}
	}
	if len(during) != 3 || during[0] != 1 || during[1] != 1 || during[2] != 1 {
		t.Errorf("in-flight while the backend runs = %v, want 1 each time", during)
	}
	if got := h.stat(inFlight); got != 0 {
		t.Errorf("%s = %d after the requests, want 0", inFlight, got)
	}
	if got := h.stat(total); got != 3 {
		t.Errorf("%s = %d, want 3", total, got)
	}
}

func TestRevisionMetricsConcurrent(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "revision-metrics", "skiff.revision-metrics", "", wasmv3.FailurePolicy_FAIL_RELOAD), 3)
	release := make(chan struct{})
	var arrived sync.WaitGroup
	h.during = func(*http.Request) { arrived.Done(); <-release }
	const n = 20
	arrived.Add(n)
	var done sync.WaitGroup
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() { defer done.Done(); h.do(nil) }()
	}
	arrived.Wait()
	if got := h.stat("wasmcustom.skiff_revision_in_flight." + testCluster); got != n {
		t.Errorf("in flight = %d, want %d", got, n)
	}
	close(release)
	done.Wait()
	if got := h.stat("wasmcustom.skiff_revision_in_flight." + testCluster); got != 0 {
		t.Errorf("in flight after = %d, want 0", got)
	}
	if got := h.stat("wasmcustom.skiff_revision_requests_total." + testCluster); got != n {
		t.Errorf("requests = %d, want %d", got, n)
	}
}

func TestRevisionMetricsResponseHeaderAndBadConfig(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "revision-metrics", "rm", `{"response_header":"x-skiff-revision"}`, wasmv3.FailurePolicy_FAIL_RELOAD), 1)
	if w := h.do(nil); w.Header().Get("X-Skiff-Revision") != testCluster {
		t.Errorf("response header = %q", w.Header().Get("X-Skiff-Revision"))
	}
	f := NewFactory(Options{Logger: testLogger(), Instances: 1, CompilationCache: compileCache})
	defer f.Close()
	_, err := f.New(filter.BuildContext{}, "skiff.revision-metrics", wasmConfig(t, "revision-metrics", "skiff.revision-metrics", `{"respnse_header":"x"}`, 0))
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{`"skiff.revision-metrics"`, "proxy_on_configure returned false", `unknown field "respnse_header"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestABIHeadersPropertiesMetrics(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "abitest", "abi", "", 0), 1)
	w := h.do(nil)
	if w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("got %d %q", w.Code, w.Body.String())
	}
	if got := h.seen.Header.Get("X-Abitest-Plugin"); got != "abi" {
		t.Errorf("request header from plugin_name = %q", got)
	}
	for k, want := range map[string]string{
		"X-Abitest-Cluster": testCluster, "X-Abitest-Route": "hello-route", "X-Abitest-Revision": "hello-00001",
		"X-Abitest-Status": "200", "X-Backend": "yes",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("response %s = %q, want %q", k, got, want)
		}
	}
	if got := h.stat("wasmcustom.abitest_requests_total"); got != 1 {
		t.Errorf("counter = %d", got)
	}
	if got := h.stat("wasmcustom.abitest_active"); got != 0 {
		t.Errorf("gauge = %d", got)
	}
}

func TestABILocalReply(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "abitest", "abi", "", 0), 1)
	w := h.do(map[string]string{"x-abitest-reply": "429"})
	if w.Code != 429 || w.Body.String() != "abitest local reply" || w.Header().Get("X-Abitest-Local") != "yes" {
		t.Errorf("got %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	if h.seen != nil {
		t.Error("the backend was called")
	}
}

func TestABIPauseResumedByTick(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "abitest", "abi", `{"tick_ms": 5}`, 0), 1)
	start := time.Now()
	w := h.do(map[string]string{"x-abitest-pause": "1"})
	if w.Code != 200 || w.Body.String() != "ok" {
		t.Errorf("got %d %q", w.Code, w.Body.String())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("paused request took %v", d)
	}
}

func TestABISharedDataCAS(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "abitest", "abi", "", 0), 4)
	var wg sync.WaitGroup
	const n = 40
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.do(map[string]string{"x-abitest-shared": "k"}) }()
	}
	wg.Wait()
	w := h.do(map[string]string{"x-abitest-shared": "k"})
	if got := w.Header().Get("X-Abitest-Shared-Count"); got != "41" {
		t.Errorf("shared counter = %q, want 41 (CAS increments from 4 instances)", got)
	}
}

func TestABIRequestBody(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "abitest", "abi", "", 0), 1)
	var got []byte
	h.during = func(r *http.Request) { got, _ = io.ReadAll(r.Body) }
	big := strings.Repeat("x", 3*bodyChunk+17)
	for _, mode := range []string{"buffer", "stream"} {
		got = nil
		w := h.doBody(map[string]string{"x-abitest-body": mode}, strings.NewReader(big))
		if w.Code != 200 || string(got) != big {
			t.Errorf("%s: %d, backend got %d bytes, want %d", mode, w.Code, len(got), len(big))
		}
		if mode == "buffer" && h.seen.Header.Get("X-Abitest-Body-Len") != "196625" {
			t.Errorf("buffer: body length header = %q", h.seen.Header.Get("X-Abitest-Body-Len"))
		}
		h.seen = nil
		w = h.doBody(map[string]string{"x-abitest-body": mode}, strings.NewReader("please reject this"))
		if w.Code != 400 || w.Body.String() != "rejected" {
			t.Errorf("%s reject: %d %q", mode, w.Code, w.Body.String())
		}
		if mode == "buffer" && h.seen != nil {
			t.Errorf("buffer reject reached the backend")
		}
	}
	// Not touched by the plugin: the body streams through unchanged.
	got = nil
	if w := h.doBody(nil, strings.NewReader(big)); w.Code != 200 || string(got) != big {
		t.Errorf("plain body: %d %d bytes", w.Code, len(got))
	}
	// Too large to buffer.
	w := h.doBody(map[string]string{"x-abitest-body": "buffer"}, strings.NewReader(strings.Repeat("y", MaxBufferedBody+1)))
	if w.Code != 413 {
		t.Errorf("oversized buffered body: %d", w.Code)
	}
}

func TestTrapFailurePolicies(t *testing.T) {
	for _, tc := range []struct {
		policy   wasmv3.FailurePolicy
		trapCode int
		after    int
	}{
		{wasmv3.FailurePolicy_FAIL_RELOAD, 503, 200},
		{wasmv3.FailurePolicy_FAIL_CLOSED, 503, 503},
		{wasmv3.FailurePolicy_FAIL_OPEN, 200, 200},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			h := newHarness(t, wasmConfig(t, "abitest", "abi", "", tc.policy), 1)
			if w := h.do(map[string]string{"x-abitest-panic": "request"}); w.Code != tc.trapCode {
				t.Errorf("trapping request: %d, want %d", w.Code, tc.trapCode)
			}
			w := h.do(nil)
			if w.Code != tc.after {
				t.Errorf("next request: %d, want %d", w.Code, tc.after)
			}
			if tc.policy == wasmv3.FailurePolicy_FAIL_RELOAD && w.Header().Get("X-Abitest-Cluster") != testCluster {
				t.Error("the reloaded instance did not run the plugin")
			}
			// A trap in the response headers.
			if tc.policy == wasmv3.FailurePolicy_FAIL_RELOAD {
				if w := h.do(map[string]string{"x-abitest-panic": "response"}); w.Code != 503 || w.Body.String() != "" {
					t.Errorf("response trap: %d %q, want an empty 503", w.Code, w.Body.String())
				}
				if w := h.do(nil); w.Code != 200 {
					t.Errorf("after the response trap: %d", w.Code)
				}
			}
		})
	}
}

func TestBadModuleAndConfig(t *testing.T) {
	f := NewFactory(Options{Logger: testLogger(), Instances: 1, CompilationCache: compileCache})
	defer f.Close()
	_, err := f.New(filter.BuildContext{}, "x", wasmConfig(t, "abitest", "abi", `{"tick_ms": 5, "nope": 1}`, 0))
	if err == nil || !strings.Contains(err.Error(), `unknown field "nope"`) || !strings.Contains(err.Error(), `wasm plugin "abi"`) {
		t.Errorf("bad configuration: %v", err)
	}
	pc := &wasmv3.PluginConfig{Name: "junk", Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
		Code: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("not wasm")}}}},
	}}}
	a, _ := anypb.New(&wasmhttpv3.Wasm{Config: pc})
	if _, err := f.New(filter.BuildContext{}, "x", a); err == nil || !strings.Contains(err.Error(), `wasm plugin "junk"`) {
		t.Errorf("junk module: %v", err)
	}
	pc.GetVmConfig().Runtime = "envoy.wasm.runtime.null"
	a, _ = anypb.New(&wasmhttpv3.Wasm{Config: pc})
	if _, err := f.New(filter.BuildContext{}, "x", a); err == nil || !strings.Contains(err.Error(), "config.vm_config.runtime") {
		t.Errorf("null runtime: %v", err)
	}
}

func TestRemoteCode(t *testing.T) {
	code, err := os.ReadFile(modules["revision-metrics"])
	if err != nil {
		t.Fatal(err)
	}
	var fetches int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetches++
		mu.Unlock()
		_, _ = w.Write(code)
	}))
	defer srv.Close()
	remote := func(sha string) *anypb.Any {
		pc := &wasmv3.PluginConfig{Name: "remote", Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
			Code: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Remote{Remote: &corev3.RemoteDataSource{
				HttpUri: &corev3.HttpUri{Uri: srv.URL + "/rm.wasm", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "wasm"}, Timeout: durationpb.New(5 * time.Second)},
				Sha256:  sha,
			}}},
		}}}
		a, _ := anypb.New(&wasmhttpv3.Wasm{Config: pc})
		return a
	}
	f := NewFactory(Options{Logger: testLogger(), Instances: 1, CompilationCache: compileCache})
	defer f.Close()
	if _, err := f.New(filter.BuildContext{}, "x", remote(strings.Repeat("0", 64))); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("wrong sha256 accepted: %v", err)
	}
	sum := newCodeBytes(code).sha256
	for i := 0; i < 2; i++ {
		if _, err := f.New(filter.BuildContext{}, "x", remote(sum)); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches != 2 { // once for the wrong digest, once for the right one
		t.Errorf("fetched %d times, want 2", fetches)
	}
}

// An upstream client may go on reading the request body after the response
// came back and the stream ended (Go's transport writes the body on its own
// goroutine): the plugin must not be called for the deleted context. The Go
// SDK panics on an unknown context id ("invalid context on
// proxy_on_request_body"), which used to fail the VM: with FAIL_CLOSED every
// later request got 503. (Issue 13, item 4.)
func TestBodyReadAfterStreamEnds(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "abitest", "abi", "", wasmv3.FailurePolicy_FAIL_CLOSED), 1)
	var body io.Reader
	h.during = func(r *http.Request) {
		buf := make([]byte, 10)
		_, _ = io.ReadFull(r.Body, buf) // the upstream answers after a first chunk
		body = r.Body
	}
	big := strings.Repeat("x", 4*bodyChunk)
	if w := h.doBody(map[string]string{"x-abitest-body": "stream"}, strings.NewReader(big)); w.Code != 200 {
		t.Fatalf("streamed request: %d %q", w.Code, w.Body.String())
	}
	h.during = nil
	if n, err := io.Copy(io.Discard, body); err == nil || n != 0 {
		t.Errorf("reading the body after the stream ended: %d bytes, %v; want an error and no data", n, err)
	}
	w := h.do(nil)
	if w.Code != 200 || w.Header().Get("X-Abitest-Cluster") != testCluster {
		t.Errorf("next request: %d %v, want 200 from a running plugin", w.Code, w.Header())
	}
}

// A request the plugin holds is not left hanging when its VM fails because of
// another request: it fails by the policy (503 with FAIL_RELOAD, as Envoy
// fails the streams of a failed VM), promptly, and new requests get a new VM.
func TestTrapFailsHeldRequests(t *testing.T) {
	h := newHarness(t, wasmConfig(t, "abitest", "abi", `{"tick_ms": 600000}`, wasmv3.FailurePolicy_FAIL_RELOAD), 1)
	held := make(chan int, 1)
	go func() { held <- h.do(map[string]string{"x-abitest-pause": "1"}).Code }()
	eventually(t, "the request to be held", func() bool { return h.stat("wasmcustom.abitest_active") == 1 })
	if w := h.do(map[string]string{"x-abitest-panic": "request"}); w.Code != 503 {
		t.Errorf("trapping request: %d, want 503", w.Code)
	}
	select {
	case code := <-held:
		if code != 503 {
			t.Errorf("held request: %d, want 503", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held request still hangs 10s after its VM failed")
	}
	if w := h.do(nil); w.Code != 200 || w.Header().Get("X-Abitest-Cluster") != testCluster {
		t.Errorf("request after the trap: %d, want 200 from a reloaded VM", w.Code)
	}
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
