// Command abitest is a proxy-wasm filter that exercises the host ABI, for
// the tests of Skiff's gateway Wasm host (gateway/filter/wasm) and of the
// build chain. It is not meant for production. Per request, request headers
// select what it does:
//
//	x-abitest-reply: <status>     answer with a local reply (body "abitest local reply")
//	x-abitest-panic: request|response   trap in that callback
//	x-abitest-pause: 1            pause the request; the next tick resumes it
//	x-abitest-shared: <key>       CAS-increment shared data <key>, echo the count
//	x-abitest-body: buffer|stream stop the headers and buffer the body to its
//	                              end (buffer), or see it chunk by chunk
//	                              (stream); a body containing "reject" is
//	                              answered 400, otherwise the request gets
//	                              x-abitest-body-len (buffer mode)
//
// and always: request header x-abitest-plugin = property plugin_name;
// response headers x-abitest-cluster / -route / -revision = xds.cluster_name,
// xds.route_name, xds.route_metadata.filter_metadata.skiff.revision;
// counter abitest_requests_total and gauge abitest_active.
//
// Plugin configuration: optional JSON {"tick_ms": N} (default 10); any
// other field makes the plugin fail to start, with a critical log naming it.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

func init() { proxywasm.SetVMContext(&vm{}) }

func main() {}

type vm struct{ types.DefaultVMContext }

func (*vm) NewPluginContext(uint32) types.PluginContext {
	return &plugin{paused: map[uint32]bool{}}
}

type config struct {
	TickMS uint32 `json:"tick_ms"`
}

type plugin struct {
	types.DefaultPluginContext
	requests proxywasm.MetricCounter
	active   proxywasm.MetricGauge
	paused   map[uint32]bool
}

func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	cfg := config{TickMS: 10}
	b, err := proxywasm.GetPluginConfiguration()
	if err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
		proxywasm.LogCriticalf("abitest: reading configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	if len(bytes.TrimSpace(b)) > 0 {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(&cfg); err != nil {
			proxywasm.LogCriticalf("abitest: plugin configuration: %v", err)
			return types.OnPluginStartStatusFailed
		}
	}
	p.requests = proxywasm.DefineCounterMetric("abitest_requests_total")
	p.active = proxywasm.DefineGaugeMetric("abitest_active")
	if err := proxywasm.SetTickPeriodMilliSeconds(cfg.TickMS); err != nil {
		proxywasm.LogCriticalf("abitest: set tick: %v", err)
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

// OnTick resumes every paused request.
func (p *plugin) OnTick() {
	for id := range p.paused {
		delete(p.paused, id)
		if err := proxywasm.SetEffectiveContext(id); err != nil {
			proxywasm.LogErrorf("abitest: set effective context %d: %v", id, err)
			continue
		}
		if err := proxywasm.ResumeHttpRequest(); err != nil {
			proxywasm.LogErrorf("abitest: resume %d: %v", id, err)
		}
	}
}

func (p *plugin) NewHttpContext(id uint32) types.HttpContext {
	return &httpCtx{p: p, id: id}
}

type httpCtx struct {
	types.DefaultHttpContext
	p             *plugin
	id            uint32
	panicResponse bool
	shared        string
	count         int
	body          string
	seen          int
}

func prop(path ...string) string {
	b, err := proxywasm.GetProperty(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func (h *httpCtx) OnHttpRequestHeaders(int, bool) types.Action {
	h.p.requests.Increment(1)
	h.p.active.Add(1)
	if err := proxywasm.AddHttpRequestHeader("x-abitest-plugin", prop("plugin_name")); err != nil {
		proxywasm.LogErrorf("abitest: add request header: %v", err)
	}
	if v, err := proxywasm.GetHttpRequestHeader("x-abitest-panic"); err == nil {
		if v == "request" {
			panic("abitest: panic in request headers")
		}
		h.panicResponse = v == "response"
	}
	if v, err := proxywasm.GetHttpRequestHeader("x-abitest-shared"); err == nil {
		h.shared = v
		h.count = casIncrement(v)
	}
	if v, err := proxywasm.GetHttpRequestHeader("x-abitest-reply"); err == nil {
		code, _ := strconv.Atoi(v)
		if err := proxywasm.SendHttpResponse(uint32(code), [][2]string{{"x-abitest-local", "yes"}}, []byte("abitest local reply"), -1); err != nil {
			proxywasm.LogErrorf("abitest: send local reply: %v", err)
		}
		return types.ActionPause
	}
	if v, err := proxywasm.GetHttpRequestHeader("x-abitest-body"); err == nil {
		h.body = v
		if v == "buffer" {
			return types.ActionPause
		}
	}
	if _, err := proxywasm.GetHttpRequestHeader("x-abitest-pause"); err == nil {
		h.p.paused[h.id] = true
		return types.ActionPause
	}
	return types.ActionContinue
}

func (h *httpCtx) OnHttpRequestBody(size int, eos bool) types.Action {
	switch h.body {
	case "buffer":
		if !eos {
			return types.ActionPause
		}
	case "stream":
	default:
		return types.ActionContinue
	}
	b, err := proxywasm.GetHttpRequestBody(0, size)
	if err != nil && size > 0 {
		proxywasm.LogErrorf("abitest: get body: %v", err)
	}
	h.seen += len(b)
	if bytes.Contains(b, []byte("reject")) {
		_ = proxywasm.SendHttpResponse(400, nil, []byte("rejected"), -1)
		return types.ActionPause
	}
	if h.body == "buffer" {
		_ = proxywasm.ReplaceHttpRequestHeader("x-abitest-body-len", fmt.Sprint(len(b)))
	}
	return types.ActionContinue
}

// casIncrement increments the counter stored in shared data key, retrying
// on CAS mismatch, and returns the new value.
func casIncrement(key string) int {
	for i := 0; i < 100; i++ {
		b, cas, err := proxywasm.GetSharedData(key)
		n := uint64(0)
		if err == nil && len(b) == 8 {
			n = binary.LittleEndian.Uint64(b)
		}
		n++
		var out [8]byte
		binary.LittleEndian.PutUint64(out[:], n)
		err = proxywasm.SetSharedData(key, out[:], cas)
		if err == nil {
			return int(n)
		}
		if !errors.Is(err, types.ErrorStatusCasMismatch) {
			proxywasm.LogErrorf("abitest: set shared data: %v", err)
			return -1
		}
	}
	return -1
}

func (h *httpCtx) OnHttpResponseHeaders(int, bool) types.Action {
	if h.panicResponse {
		panic("abitest: panic in response headers")
	}
	for name, v := range map[string]string{
		"x-abitest-cluster":  prop("xds", "cluster_name"),
		"x-abitest-route":    prop("xds", "route_name"),
		"x-abitest-revision": prop("xds", "route_metadata", "filter_metadata", "skiff", "revision"),
		"x-abitest-status":   prop(":status"),
	} {
		if err := proxywasm.AddHttpResponseHeader(name, v); err != nil {
			proxywasm.LogErrorf("abitest: add response header: %v", err)
		}
	}
	if st, err := proxywasm.GetHttpResponseHeader(":status"); err == nil {
		_ = proxywasm.ReplaceHttpResponseHeader("x-abitest-status", st)
	}
	if h.shared != "" {
		_ = proxywasm.AddHttpResponseHeader("x-abitest-shared-count", fmt.Sprint(h.count))
	}
	return types.ActionContinue
}

func (h *httpCtx) OnHttpStreamDone() {
	h.p.active.Add(-1)
	delete(h.p.paused, h.id)
}
