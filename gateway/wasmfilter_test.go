package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// TestMain owns the folder the Wasm tests build their modules into (with
// the same build chain as `make wasm`); the build itself runs on first use,
// so tests without Wasm filters do not pay for it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-gateway-wasm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wasmDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	wasmDir     string
	wasmOnce    sync.Once
	wasmModules map[string]string
	wasmErr     error
)

// wasmModule returns the path of a filter built from wasm-filters/<name>.
func wasmModule(t testing.TB, name string) string {
	t.Helper()
	wasmOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		wasmModules, wasmErr = wasmbuild.Build(ctx, wasmbuild.Options{
			Root: "..", OutDir: wasmDir, Filters: []string{"revision-metrics", "abitest", "cloudevents", "forwarded"},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	})
	if wasmErr != nil {
		t.Fatalf("building wasm filters: %v", wasmErr)
	}
	return wasmModules[name]
}

// wasmFilter is an envoy.filters.http.wasm HttpFilter running module.
func wasmFilter(t testing.TB, name, module, configuration string) *hcmv3.HttpFilter {
	pc := &wasmv3.PluginConfig{
		Name: name, RootId: name,
		Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
			VmId: name, Runtime: "envoy.wasm.runtime.v8",
			Code: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: wasmModule(t, module)},
			}}},
		}},
		FailurePolicy: wasmv3.FailurePolicy_FAIL_RELOAD,
	}
	if configuration != "" {
		pc.Configuration = mustAny(t, wrapperspb.String(configuration))
	}
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &wasmhttpv3.Wasm{Config: pc})}}
}

// withWasmFirst puts filters at the head of the HTTP filter chain.
func withWasmFirst(filters ...*hcmv3.HttpFilter) listenerOpt {
	return func(h *hcmv3.HttpConnectionManager) {
		h.HttpFilters = append(filters, h.HttpFilters...)
	}
}

const (
	revRequests = "wasmcustom.skiff_revision_requests_total." + helloV1
	revInFlight = "wasmcustom.skiff_revision_in_flight." + helloV1
)

// TestWasmRevisionMetricsCountHeldRequests runs revision-metrics before
// ext_proc: a request held by the processor (a cold start) already counts
// as in flight, and stops counting when its stream ends.
func TestWasmRevisionMetricsCountHeldRequests(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	proc := startProcServer(t, func(ctx context.Context, _ *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		held <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return continueWith(nil, nil, nil), nil
	})
	x, c := extProcSetup(t, proc, extProcConfig(false, 300*time.Second), routeTo("/", helloV1))
	c.listeners = []types.Resource{httpListener(t, listenerName, withExtProc(t, extProcConfig(false, 300*time.Second)),
		withWasmFirst(wasmFilter(t, "skiff.revision-metrics", "revision-metrics", `{"response_header":"x-skiff-revision"}`)))}
	c.clusters = append(c.clusters, edsCluster(helloV1))
	c.endpoints = []types.Resource{cla(helloV1, b1.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	done := make(chan result, 1)
	go func() { done <- g.do(t, "x", "/") }()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("processor never saw the request")
	}
	stats := g.admin(t, "/stats")
	for _, want := range []string{revInFlight + ": 1\n", revRequests + ": 1\n"} {
		if !strings.Contains(stats, want) {
			t.Errorf("/stats while the request is held lacks %q:\n%s", want, grepLines(stats, "wasmcustom"))
		}
	}
	close(release)
	r := <-done
	if r.status != 200 || r.body != "v1" || r.header.Get("X-Skiff-Revision") != helloV1 {
		t.Fatalf("released request = %d %q %v", r.status, r.body, r.header)
	}
	eventually(t, 5*time.Second, func() bool { return g.stat(t, revInFlight) == 0 }, "in-flight back to 0")
	g.do(t, "x", "/")
	if got := g.stat(t, revRequests); got != 2 {
		t.Errorf("%s = %d, want 2", revRequests, got)
	}
	if prom := g.admin(t, "/stats/prometheus"); !strings.Contains(prom, "skiff_revision_requests_total") {
		t.Errorf("prometheus output lacks the wasm metric:\n%s", grepLines(prom, "skiff"))
	}
}

// newRequest is a GET of url for host with one extra header.
func newRequest(url, host, header, value string) (*http.Request, error) {
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	r.Host = host
	r.Header.Set(header, value)
	return r, nil
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestWasmHeaderMutationAndLocalReply runs the ABI test filter: it adds a
// request header the backend sees, response headers from properties, and
// answers some requests itself.
func TestWasmHeaderMutationAndLocalReply(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	c.listeners = []types.Resource{httpListener(t, listenerName, withWasmFirst(wasmFilter(t, "skiff.abitest", "abitest", "")))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	r := g.do(t, "tag-hello.default.localhost", "/")
	if r.status != 200 || r.body != "v1" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if got := b1.lastRequest().Header.Get("X-Abitest-Plugin"); got != "skiff.abitest" {
		t.Errorf("request header added by the filter = %q", got)
	}
	if got := r.header.Get("X-Abitest-Cluster"); got != helloV1 {
		t.Errorf("xds.cluster_name = %q", got)
	}
	if got := r.header.Get("X-Abitest-Revision"); got != helloV1 {
		t.Errorf("route metadata skiff.revision = %q", got)
	}

	req := func(hdr, val string) result {
		t.Helper()
		rq, _ := newRequest(g.url(t, "/"), "tag-hello.default.localhost", hdr, val)
		resp, err := g.client.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{status: resp.StatusCode, body: string(b), header: resp.Header}
	}
	if r := req("X-Abitest-Reply", "418"); r.status != 418 || r.body != "abitest local reply" || r.header.Get("X-Abitest-Local") != "yes" {
		t.Errorf("local reply = %d %q %v", r.status, r.body, r.header)
	}
	if got := g.stat(t, "http."+listenerName+".downstream_rq_4xx"); got != 1 {
		t.Errorf("downstream_rq_4xx = %d", got)
	}
	// A trap answers 503 (FAIL_RELOAD) and the next request gets a new VM.
	if r := req("X-Abitest-Panic", "request"); r.status != 503 {
		t.Errorf("trap = %d, want 503", r.status)
	}
	if r := g.do(t, "tag-hello.default.localhost", "/"); r.status != 200 || r.header.Get("X-Abitest-Cluster") != helloV1 {
		t.Errorf("after the trap: %d %v", r.status, r.header)
	}
}

// TestWasmBadPluginConfigurationNACKed: a plugin whose proxy_on_configure
// refuses its configuration makes the gateway NACK the listener with an
// error naming the plugin and the field; the previous listener stays.
func TestWasmBadPluginConfigurationNACKed(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	c.listeners = []types.Resource{httpListener(t, listenerName, withWasmFirst(wasmFilter(t, "skiff.revision-metrics", "revision-metrics", "")))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	c.listeners = []types.Resource{httpListener(t, listenerName, withWasmFirst(wasmFilter(t, "skiff.revision-metrics", "revision-metrics", `{"respnse_header":"x-rev"}`)))}
	x.set(t, c)
	eventually(t, 10*time.Second, func() bool { return len(x.nackList()) > 0 }, "listener NACK")
	nack := x.nackList()[0]
	for _, want := range []string{`wasm plugin "skiff.revision-metrics"`, `unknown field "respnse_header"`, "proxy_on_configure returned false"} {
		if !strings.Contains(nack, want) {
			t.Errorf("NACK %q lacks %q", nack, want)
		}
	}
	if r := g.do(t, "tag-hello.default.localhost", "/"); r.status != 200 || r.header.Get("X-Rev") != "" {
		t.Errorf("after the NACK: %d %v", r.status, r.header)
	}
	if got := g.stat(t, revRequests); got != 1 {
		t.Errorf("the previous plugin stopped counting: %s = %d", revRequests, got)
	}
}

// TestControlPlaneWasmGoldenAccepted loads the control plane's golden
// listener with Wasm filters (module paths pointed at freshly built ones).
func TestControlPlaneWasmGoldenAccepted(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "controlplane", "xds", "testdata", "listener_wasm.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var l listenerv3.Listener
	if err := protojson.Unmarshal(raw[0], &l); err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	var kept []*hcmv3.HttpFilter
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == extProcFilterName {
			continue // needs the ext_proc cluster; covered by TestControlPlaneGoldenAccepted
		}
		var w wasmhttpv3.Wasm
		if f.GetTypedConfig().UnmarshalTo(&w) == nil {
			module := "abitest"
			if f.GetName() == "skiff.revision-metrics" {
				module = "revision-metrics"
			}
			w.GetConfig().GetVmConfig().GetCode().GetLocal().Specifier = &corev3.DataSource_Filename{Filename: wasmModule(t, module)}
			f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &w)}
		}
		kept = append(kept, f)
	}
	hcm.HttpFilters = kept
	l.GetFilterChains()[0].GetFilters()[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &hcm)}

	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	l.Name = listenerName
	c.listeners = []types.Resource{&l}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	if n := x.nackList(); len(n) > 0 {
		t.Fatalf("NACKed: %v", n)
	}
	if r := g.do(t, "tag-hello.default.localhost", "/"); r.status != 200 || r.header.Get("X-Skiff-Revision") != helloV1 {
		t.Errorf("got %d %v", r.status, r.header)
	}
}
