package main

import (
	"strings"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

const cluster = "default/hello-00001"

func newHost(t *testing.T, config string, withCluster bool) proxytest.HostEmulator {
	t.Helper()
	opt := proxytest.NewEmulatorOption().WithVMContext(&vmContext{}).WithPluginConfiguration([]byte(config))
	if withCluster {
		opt = opt.WithProperty([]string{"xds", "cluster_name"}, []byte(cluster))
	}
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	if st := host.StartPlugin(); st != types.OnPluginStartStatusOK {
		t.Fatalf("plugin start = %v", st)
	}
	return host
}

func metrics(t *testing.T, host proxytest.HostEmulator) (requests, inFlight uint64) {
	t.Helper()
	requests, err := host.GetCounterMetric(RequestsMetric + "." + cluster)
	if err != nil {
		t.Fatal(err)
	}
	inFlight, err = host.GetGaugeMetric(InFlightMetric + "." + cluster)
	if err != nil {
		t.Fatal(err)
	}
	return requests, inFlight
}

func TestCountsFromRequestHeadersToStreamEnd(t *testing.T) {
	host := newHost(t, "", true)
	a := host.InitializeHttpContext()
	b := host.InitializeHttpContext()
	if act := host.CallOnRequestHeaders(a, [][2]string{{":path", "/"}}, true); act != types.ActionContinue {
		t.Fatalf("action = %v", act)
	}
	host.CallOnRequestHeaders(b, nil, true)
	if req, inf := metrics(t, host); req != 2 || inf != 2 {
		t.Errorf("after two request headers: requests %d in flight %d, want 2 2", req, inf)
	}
	host.CallOnResponseHeaders(a, [][2]string{{":status", "200"}}, false)
	host.CompleteHttpContext(a)
	if req, inf := metrics(t, host); req != 2 || inf != 1 {
		t.Errorf("after one stream end: requests %d in flight %d, want 2 1", req, inf)
	}
	// A request answered before any response (e.g. held then reset) still
	// stops counting at its stream end.
	host.CompleteHttpContext(b)
	if req, inf := metrics(t, host); req != 2 || inf != 0 {
		t.Errorf("after both: requests %d in flight %d, want 2 0", req, inf)
	}
	if h := host.GetCurrentResponseHeaders(a); hasHeader(h, "x-skiff-revision") {
		t.Errorf("response header set without configuration: %v", h)
	}
}

func TestNoClusterNotCounted(t *testing.T) {
	host := newHost(t, "", false)
	id := host.InitializeHttpContext()
	host.CallOnRequestHeaders(id, nil, true)
	host.CompleteHttpContext(id)
	if _, err := host.GetCounterMetric(RequestsMetric + "." + cluster); err == nil {
		t.Error("a request without a cluster was counted")
	}
}

func TestResponseHeader(t *testing.T) {
	host := newHost(t, `{"response_header":"x-skiff-revision"}`, true)
	id := host.InitializeHttpContext()
	host.CallOnRequestHeaders(id, nil, true)
	host.CallOnResponseHeaders(id, [][2]string{{":status", "200"}}, false)
	if h := host.GetCurrentResponseHeaders(id); !hasHeaderValue(h, "x-skiff-revision", cluster) {
		t.Errorf("response headers = %v", h)
	}
}

func TestBadConfiguration(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"respnse_header":"x"}`:          `unknown field "respnse_header"`,
		`{"response_header":"Bad Name"}`:  "must be a lower-case header name",
		`[1]`:                             "cannot unmarshal",
		`{"response_header":"x"} trailer`: "unexpected data",
	} {
		opt := proxytest.NewEmulatorOption().WithVMContext(&vmContext{}).WithPluginConfiguration([]byte(cfg))
		host, reset := proxytest.NewHostEmulator(opt)
		if st := host.StartPlugin(); st != types.OnPluginStartStatusFailed {
			t.Errorf("%s: plugin start = %v, want failed", cfg, st)
		}
		logs := strings.Join(host.GetCriticalLogs(), "\n")
		if !strings.Contains(logs, want) {
			t.Errorf("%s: critical logs %q lack %q", cfg, logs, want)
		}
		reset()
	}
}

func hasHeader(h [][2]string, name string) bool {
	for _, kv := range h {
		if kv[0] == name {
			return true
		}
	}
	return false
}

func hasHeaderValue(h [][2]string, name, value string) bool {
	for _, kv := range h {
		if kv[0] == name && kv[1] == value {
			return true
		}
	}
	return false
}
