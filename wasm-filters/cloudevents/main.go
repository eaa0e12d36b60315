// Command cloudevents is the proxy-wasm filter in front of every Skiff broker.
//
// On each POST it reads a CloudEvent (binary mode from the ce-* headers;
// structured mode from the buffered body), answers 400 with a JSON body
// {"error": "...", "reason": "...", "attribute": "..."} when the event is not
// valid, and otherwise evaluates the broker's Trigger filters and sets the
// request header x-skiff-triggers to the comma-separated names of the
// triggers the event matched (possibly empty), after removing any value the
// client sent. The broker ingress stores the event once per listed trigger.
// Other methods are not events and pass to the ingress untouched (but for
// those two headers), which answers OPTIONS with the CloudEvents webhook
// handshake and the rest with 405, as Knative's ingress does.
//
// The plugin configuration lists every broker behind the broker ingress
// virtual host, whose paths are /{namespace}/{broker}; it is parsed by
// eventfilter.ParseFilterConfig (a single broker object is accepted too):
//
//	{"brokers": [
//	  {"broker": "default/default", "generation": "3f9a",
//	   "triggers": [{"name": "t1", "filter": {"attributes": {"type": "x"}}},
//	                {"name": "t2", "filters": [{"cesql": "source LIKE '/orders/%'"}]}]}]}
//
// The request path selects the broker. Along with x-skiff-triggers the filter
// sets x-skiff-broker-generation to the broker's generation, so the ingress
// can tell whether the list was computed from the trigger set it has, and
// x-skiff-proxy-token to the configuration's "token" (when it has one), the
// secret by which the ingress tells the filter's list from a client's. For a
// path naming no configured broker (e.g. one created since the proxy's last
// configuration) the event is still validated, but neither header is set:
// the ingress then evaluates the triggers itself (or answers 404).
//
// A bad configuration makes OnPluginStart fail, with an error log naming the
// field. The filter evaluates every dialect itself (exact, prefix, suffix,
// all, any, not and all of CESQL v1) with the same package the broker ingress
// uses, so the ingress can trust the header or re-evaluate and get the same
// answer.
//
// Counters, per broker:
//
//	skiff_broker_events_accepted.<namespace>/<broker>   valid events
//	skiff_broker_events_rejected.<namespace>/<broker>   events answered 400
//	skiff_broker_events_matched.<namespace>/<broker>    valid events matching at least one trigger
//
// The package is built to .wasm by the project's wasm build (make wasm); its
// logic is tested natively with the SDK's proxytest host emulator.
package main

import (
	"encoding/json"
	"strings"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// TriggersHeader is the request header that carries the matching triggers.
const TriggersHeader = "x-skiff-triggers"

// init registers the VM context: a c-shared wasm reactor runs package
// initialisers, never main.
func init() {
	proxywasm.SetVMContext(&vmContext{})
}

func main() {}

type vmContext struct {
	types.DefaultVMContext
}

// NewPluginContext implements types.VMContext.
func (*vmContext) NewPluginContext(uint32) types.PluginContext {
	return &pluginContext{}
}

// pluginContext holds the compiled configuration and each broker's counters.
type pluginContext struct {
	types.DefaultPluginContext
	cfg      *eventfilter.FilterConfig
	counters map[*eventfilter.BrokerConfig]*brokerCounters
	// unknown counts events for paths naming no configured broker.
	unknown *brokerCounters
	// parser reads every event: the VM runs one callback at a time, and
	// handle keeps nothing of an event once it returns.
	parser eventfilter.Parser
}

// brokerCounters are one broker's metrics.
type brokerCounters struct {
	accepted proxywasm.MetricCounter
	rejected proxywasm.MetricCounter
	matched  proxywasm.MetricCounter
}

func defineCounters(broker string) *brokerCounters {
	return &brokerCounters{
		accepted: proxywasm.DefineCounterMetric(metricName(AcceptedMetric, broker)),
		rejected: proxywasm.DefineCounterMetric(metricName(RejectedMetric, broker)),
		matched:  proxywasm.DefineCounterMetric(metricName(MatchedMetric, broker)),
	}
}

// Counter names. The full metric name is "<counter>.<namespace>/<broker>",
// the convention of the revision-metrics filter (Envoy and Skiff's gateway
// show wasm-defined metrics with a "wasmcustom." prefix).
const (
	AcceptedMetric = "skiff_broker_events_accepted"
	RejectedMetric = "skiff_broker_events_rejected"
	MatchedMetric  = "skiff_broker_events_matched"
)

// metricName returns the name of a counter for a broker ("namespace/name").
func metricName(counter, broker string) string {
	return counter + "." + broker
}

// OnPluginStart implements types.PluginContext.
func (p *pluginContext) OnPluginStart(int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogErrorf("cloudevents filter: reading the plugin configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	if len(data) == 0 {
		proxywasm.LogError("cloudevents filter: no plugin configuration: want {\"brokers\": [...]}")
		return types.OnPluginStartStatusFailed
	}
	cfg, err := eventfilter.ParseFilterConfig(data)
	if err != nil {
		proxywasm.LogErrorf("cloudevents filter: bad plugin configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	p.cfg = cfg
	p.counters = make(map[*eventfilter.BrokerConfig]*brokerCounters, len(cfg.Brokers))
	for i := range cfg.Brokers {
		p.counters[&cfg.Brokers[i]] = defineCounters(cfg.Brokers[i].Broker)
	}
	p.unknown = defineCounters("unknown")
	proxywasm.LogInfof("cloudevents filter: %d brokers", len(cfg.Brokers))
	return types.OnPluginStartStatusOK
}

// NewHttpContext implements types.PluginContext.
func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{plugin: p}
}

// httpContext handles one request.
type httpContext struct {
	types.DefaultHttpContext
	plugin  *pluginContext
	headers eventfilter.HeaderPairs
	// broker is the configured broker the path names, or nil.
	broker   *eventfilter.BrokerConfig
	counters *brokerCounters
	// structured is set when the event is in the body, which is buffered until
	// its end.
	structured bool
	done       bool
}

// OnHttpRequestHeaders implements types.HttpContext.
func (c *httpContext) OnHttpRequestHeaders(_ int, endOfStream bool) types.Action {
	headers, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		proxywasm.LogErrorf("cloudevents filter: reading request headers: %v", err)
		c.sendError(500, "internal", "", "cannot read the request headers")
		return types.ActionPause
	}
	c.headers = headers
	contentType, method := "", ""
	clientTags, clientGens, clientTokens := 0, 0, 0
	for _, kv := range headers {
		switch {
		case kv[0] == ":method":
			method = kv[1]
		case headerIs(kv[0], TriggersHeader):
			clientTags++
		case headerIs(kv[0], eventfilter.GenerationHeader):
			clientGens++
		case headerIs(kv[0], eventfilter.TokenHeader):
			clientTokens++
		case kv[0] == ":path":
			c.broker = c.plugin.cfg.Lookup(kv[1])
		case contentType == "" && headerIs(kv[0], "content-type"):
			contentType = kv[1]
		}
	}
	c.counters = c.plugin.counters[c.broker]
	if c.counters == nil {
		c.counters = c.plugin.unknown
	}
	// Never trust a client-supplied trigger list. Envoy removes every
	// occurrence at once; removing once per occurrence also suits hosts that
	// remove one at a time.
	for _, h := range [...]struct {
		name string
		n    int
	}{{TriggersHeader, clientTags}, {eventfilter.GenerationHeader, clientGens}, {eventfilter.TokenHeader, clientTokens}} {
		for range h.n {
			if err := proxywasm.RemoveHttpRequestHeader(h.name); err != nil {
				proxywasm.LogErrorf("cloudevents filter: removing %s: %v", h.name, err)
				c.sendError(500, "internal", "", "cannot remove the client's "+h.name)
				return types.ActionPause
			}
		}
	}
	if method != "POST" {
		// Not an event: the CloudEvents webhook handshake (OPTIONS, webhook
		// spec section 4.2) or a method the ingress refuses with 405, as
		// Knative's ingress does. It answers them.
		c.done = true
		return types.ActionContinue
	}
	if eventfilter.ContentMode(contentType) == eventfilter.ModeStructured && !endOfStream {
		// The event is in the body: hold the headers (so that the trigger header
		// can still be set) and buffer the body until its end.
		c.structured = true
		return types.ActionPause
	}
	// Binary mode (and batched or body-less requests, which ParseHTTP rejects
	// or reads from the headers alone): the body is not needed.
	return c.handle(nil)
}

// headerIs reports whether a header name is want, in any case. Comparing the
// lengths first spares most names a call to strings.EqualFold, which every
// header of every request would otherwise make four times (calls are dear in
// compiled wasm).
func headerIs(name, want string) bool {
	return len(name) == len(want) && strings.EqualFold(name, want)
}

// OnHttpRequestBody implements types.HttpContext.
func (c *httpContext) OnHttpRequestBody(bodySize int, endOfStream bool) types.Action {
	if !c.structured || c.done {
		return types.ActionContinue
	}
	if !endOfStream {
		return types.ActionPause // buffer
	}
	var body []byte
	if bodySize > 0 {
		var err error
		if body, err = proxywasm.GetHttpRequestBody(0, bodySize); err != nil {
			proxywasm.LogErrorf("cloudevents filter: reading the request body: %v", err)
			c.sendError(500, "internal", "", "cannot read the request body")
			return types.ActionPause
		}
	}
	return c.handle(body)
}

// OnHttpRequestTrailers implements types.HttpContext. A structured event whose
// body ends with trailers is not read: it is rejected rather than let through
// untagged.
func (c *httpContext) OnHttpRequestTrailers(int) types.Action {
	if !c.structured || c.done {
		return types.ActionContinue
	}
	c.counters.rejected.Increment(1)
	c.sendError(400, string(eventfilter.ReasonUnsupportedFormat), "",
		"structured events with HTTP request trailers are not supported")
	return types.ActionPause
}

// handle parses and filters the event and either tags the request or answers
// 400.
func (c *httpContext) handle(body []byte) types.Action {
	c.done = true
	m := c.counters
	ev, err := c.plugin.parser.ParseHTTP(&c.headers, body) // a pointer: no allocation
	if err != nil {
		m.rejected.Increment(1)
		reason, attr := "invalid_event", ""
		if ee, ok := err.(*eventfilter.EventError); ok {
			reason, attr = string(ee.Reason), ee.Attribute
		}
		c.sendError(400, reason, attr, err.Error())
		return types.ActionPause
	}
	m.accepted.Increment(1)
	if c.broker == nil {
		return types.ActionContinue // the ingress evaluates the triggers it has
	}
	var buf [16]string
	names := c.broker.AppendMatching(buf[:0], ev)
	if len(names) > 0 {
		m.matched.Increment(1)
	}
	// Replace (set) rather than add: no host may merge it with a client value.
	if err := proxywasm.ReplaceHttpRequestHeader(TriggersHeader, strings.Join(names, ",")); err != nil {
		proxywasm.LogErrorf("cloudevents filter: setting %s: %v", TriggersHeader, err)
		c.sendError(500, "internal", "", "cannot tag the request")
		return types.ActionPause
	}
	if err := proxywasm.ReplaceHttpRequestHeader(eventfilter.GenerationHeader, c.broker.Generation); err != nil {
		proxywasm.LogErrorf("cloudevents filter: setting %s: %v", eventfilter.GenerationHeader, err)
		c.sendError(500, "internal", "", "cannot tag the request")
		return types.ActionPause
	}
	if tok := c.plugin.cfg.Token; tok != "" {
		if err := proxywasm.ReplaceHttpRequestHeader(eventfilter.TokenHeader, tok); err != nil {
			proxywasm.LogErrorf("cloudevents filter: setting %s: %v", eventfilter.TokenHeader, err)
			c.sendError(500, "internal", "", "cannot tag the request")
			return types.ActionPause
		}
	}
	return types.ActionContinue
}

// errorBody is the JSON body of a rejection.
type errorBody struct {
	Error     string `json:"error"`
	Reason    string `json:"reason"`
	Attribute string `json:"attribute,omitempty"`
}

func (c *httpContext) sendError(status uint32, reason, attr, msg string) {
	c.done = true
	body, _ := json.Marshal(errorBody{Error: msg, Reason: reason, Attribute: attr})
	headers := [][2]string{{"content-type", "application/json"}}
	if err := proxywasm.SendHttpResponse(status, headers, body, -1); err != nil {
		proxywasm.LogErrorf("cloudevents filter: sending the %d response: %v", status, err)
	}
}
