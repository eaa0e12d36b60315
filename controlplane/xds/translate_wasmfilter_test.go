package xds

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fixtureWasmFilters are the revision-metrics filter and a fail-open one.
func fixtureWasmFilters() []WasmFilter {
	return []WasmFilter{
		{
			Name:          RevisionMetricsFilterName,
			Path:          "/etc/skiff/wasm/revision-metrics.wasm",
			SHA256:        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			Configuration: `{"response_header":"x-skiff-revision"}`,
		},
		{Name: "skiff.other", Path: "other.wasm", FailOpen: true},
	}
}

func TestTranslateWasmFilters(t *testing.T) {
	l, err := TranslateListener(DefaultListenerAddress, DefaultListenerPort, true, fixtureWasmFilters()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ValidateAll(); err != nil {
		t.Fatalf("listener: %v", err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range hcm.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	if got := strings.Join(names, ","); got != "skiff.revision-metrics,skiff.other,envoy.filters.http.ext_proc,envoy.filters.http.router" {
		t.Fatalf("http filters = %s, want the wasm filters first, then ext_proc and the router", got)
	}
	var w wasmhttpv3.Wasm
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&w); err != nil {
		t.Fatal(err)
	}
	if err := w.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	pc := w.GetConfig()
	var conf wrapperspb.StringValue
	if err := pc.GetConfiguration().UnmarshalTo(&conf); err != nil {
		t.Fatal(err)
	}
	switch {
	case pc.GetName() != RevisionMetricsFilterName || pc.GetRootId() != RevisionMetricsFilterName:
		t.Errorf("name/root_id = %q/%q", pc.GetName(), pc.GetRootId())
	case pc.GetVmConfig().GetVmId() != "skiff.revision-metrics@9f86d081884c":
		t.Errorf("vm_id = %q", pc.GetVmConfig().GetVmId())
	case pc.GetVmConfig().GetRuntime() != WasmRuntime:
		t.Errorf("runtime = %q", pc.GetVmConfig().GetRuntime())
	case pc.GetVmConfig().GetCode().GetLocal().GetFilename() != "/etc/skiff/wasm/revision-metrics.wasm":
		t.Errorf("code = %v", pc.GetVmConfig().GetCode())
	case conf.GetValue() != `{"response_header":"x-skiff-revision"}`:
		t.Errorf("configuration = %q", conf.GetValue())
	case pc.GetFailurePolicy() != wasmv3.FailurePolicy_FAIL_RELOAD:
		t.Errorf("failure_policy = %v", pc.GetFailurePolicy())
	}
	checkGolden(t, "listener_wasm.golden.json", []*listenerv3.Listener{l})
}

func TestTranslateWasmFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    []WasmFilter
		want string
	}{
		{"no name", []WasmFilter{{Path: "a.wasm"}}, "wasmFilters[0]: name is required"},
		{"no path", []WasmFilter{{Name: "a"}}, `wasm filter "a": path (or remoteURL) is required`},
		{"remote without sha", []WasmFilter{{Name: "a", RemoteURL: "http://cp:8090/wasm/a.wasm"}}, `wasm filter "a": sha256 is required with remoteURL`},
		{"bad sha", []WasmFilter{{Name: "a", Path: "a.wasm", SHA256: "xyz"}}, "not a hex SHA-256"},
		{"duplicate", []WasmFilter{{Name: "a", Path: "a.wasm"}, {Name: "a", Path: "b.wasm"}}, `wasmFilters[1]: name "a" is already used`},
		{"router name", []WasmFilter{{Name: "envoy.filters.http.router", Path: "a.wasm"}}, "already used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TranslateListener(DefaultListenerAddress, DefaultListenerPort, true, tc.w...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
