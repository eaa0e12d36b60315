// Command revision-metrics is a proxy-wasm HTTP filter that keeps, per
// revision, the two numbers Skiff's autoscaler needs from the proxy: the
// number of requests in flight (a gauge) and the number of requests received
// (a counter). The revision is the request's upstream cluster
// ("{namespace}/{revision}", property xds.cluster_name).
//
// A request counts from its request headers to the end of its stream
// (proxy_on_log), whatever happens in between: held by ext_proc during a cold
// start, proxied, answered locally. The filter must therefore run before
// ext_proc in the HTTP filter chain (the control plane puts it first).
//
// Metrics (proxy-wasm metric names; Envoy and Skiff's gateway show them in
// /stats with the "wasmcustom." prefix):
//
//	skiff_revision_requests_total.<namespace>/<revision>   counter
//	skiff_revision_in_flight.<namespace>/<revision>        gauge
//
// Requests matching no route or no cluster are not counted.
//
// Plugin configuration (optional JSON object; unknown fields are rejected,
// which makes the proxy refuse the plugin):
//
//	{"response_header": "x-skiff-revision"}
//
// response_header, when set, adds a response header carrying the revision's
// cluster name (for debugging; off by default).
//
// The filter is built to .wasm with `make wasm`; see wasm-filters/README.md.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// Metric name prefixes; the cluster name follows the dot.
const (
	RequestsMetric = "skiff_revision_requests_total"
	InFlightMetric = "skiff_revision_in_flight"
)

// The VM context is registered in init: a wasip1 c-shared module runs its
// package initialisers (_initialize), never main.
func init() {
	proxywasm.SetVMContext(&vmContext{})
}

func main() {}

type vmContext struct {
	types.DefaultVMContext
}

// NewPluginContext implements types.VMContext.
func (*vmContext) NewPluginContext(uint32) types.PluginContext {
	return &pluginContext{metrics: map[string]*revisionMetrics{}}
}

// Config is the plugin configuration.
type Config struct {
	// ResponseHeader, when not empty, is a response header set to the
	// request's cluster name.
	ResponseHeader string `json:"response_header,omitempty"`
}

// ParseConfig decodes a plugin configuration; empty means the defaults.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return c, fmt.Errorf("plugin configuration: %w", err)
	}
	if d.More() {
		return c, errors.New("plugin configuration: unexpected data after the JSON object")
	}
	if h := c.ResponseHeader; h != "" && (strings.ContainsAny(h, " :\r\n\t") || strings.ToLower(h) != h) {
		return c, fmt.Errorf("plugin configuration: response_header %q must be a lower-case header name", h)
	}
	return c, nil
}

type revisionMetrics struct {
	requests proxywasm.MetricCounter
	inFlight proxywasm.MetricGauge
}

type pluginContext struct {
	types.DefaultPluginContext
	cfg     Config
	metrics map[string]*revisionMetrics
}

// OnPluginStart implements types.PluginContext: it validates the plugin
// configuration; a bad one fails the plugin (the proxy rejects it).
func (p *pluginContext) OnPluginStart(int) types.OnPluginStartStatus {
	b, err := proxywasm.GetPluginConfiguration()
	if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
		proxywasm.LogCriticalf("revision-metrics: reading the plugin configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		proxywasm.LogCriticalf("revision-metrics: %v", err)
		return types.OnPluginStartStatusFailed
	}
	p.cfg = cfg
	return types.OnPluginStartStatusOK
}

// metricsFor returns (defining them on first use) the metrics of a cluster.
func (p *pluginContext) metricsFor(cluster string) *revisionMetrics {
	m, ok := p.metrics[cluster]
	if !ok {
		m = &revisionMetrics{
			requests: proxywasm.DefineCounterMetric(RequestsMetric + "." + cluster),
			inFlight: proxywasm.DefineGaugeMetric(InFlightMetric + "." + cluster),
		}
		p.metrics[cluster] = m
	}
	return m
}

// NewHttpContext implements types.PluginContext.
func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{plugin: p}
}

type httpContext struct {
	types.DefaultHttpContext
	plugin  *pluginContext
	cluster string
	counted *revisionMetrics
}

// OnHttpRequestHeaders implements types.HttpContext: the request starts
// counting.
func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	b, err := proxywasm.GetProperty([]string{"xds", "cluster_name"})
	if err != nil || len(b) == 0 {
		return types.ActionContinue
	}
	h.cluster = string(b)
	m := h.plugin.metricsFor(h.cluster)
	m.requests.Increment(1)
	m.inFlight.Add(1)
	h.counted = m
	return types.ActionContinue
}

// OnHttpResponseHeaders implements types.HttpContext.
func (h *httpContext) OnHttpResponseHeaders(int, bool) types.Action {
	if name := h.plugin.cfg.ResponseHeader; name != "" && h.cluster != "" {
		if err := proxywasm.ReplaceHttpResponseHeader(name, h.cluster); err != nil {
			proxywasm.LogWarnf("revision-metrics: setting %s: %v", name, err)
		}
	}
	return types.ActionContinue
}

// OnHttpStreamDone implements types.HttpContext (proxy_on_log): the request
// stops counting.
func (h *httpContext) OnHttpStreamDone() {
	if h.counted != nil {
		h.counted.inFlight.Add(-1)
		h.counted = nil
	}
}
