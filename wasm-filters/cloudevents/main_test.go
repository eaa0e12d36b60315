package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

const testConfig = `{
  "broker": "default/default",
  "triggers": [
    {"name": "t1", "filter": {"attributes": {"type": "com.example.order.created"}}},
    {"name": "t2", "filters": [{"prefix": {"source": "/users/"}}]},
    {"name": "t3", "filters": [{"cesql": "source LIKE '/orders/%' AND region = 'eu'"}]}
  ]
}`

// newHost starts a host emulator with the filter and the given plugin
// configuration. The SDK's emulator is process-global: tests must not run in
// parallel.
func newHost(t *testing.T, config string) proxytest.HostEmulator {
	t.Helper()
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{}).
		WithPluginConfiguration([]byte(config))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	return host
}

func startedHost(t *testing.T) proxytest.HostEmulator {
	t.Helper()
	host := newHost(t, testConfig)
	if st := host.StartPlugin(); st != types.OnPluginStartStatusOK {
		t.Fatalf("StartPlugin = %v; logs: %v", st, host.GetErrorLogs())
	}
	return host
}

func binaryHeaders(extra ...string) [][2]string {
	h := [][2]string{
		{":method", "POST"},
		{":path", "/default/default"},
		{":authority", "broker.example"},
		{"ce-specversion", "1.0"},
		{"ce-id", "1"},
		{"ce-source", "/orders/eu"},
		{"ce-type", "com.example.order.created"},
		{"content-type", "application/json"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h = append(h, [2]string{extra[i], extra[i+1]})
	}
	return h
}

func without(h [][2]string, name string) [][2]string {
	var out [][2]string
	for _, kv := range h {
		if kv[0] != name {
			out = append(out, kv)
		}
	}
	return out
}

// headerValues returns every value of the named request header.
func headerValues(h [][2]string, name string) []string {
	var vs []string
	for _, kv := range h {
		if strings.EqualFold(kv[0], name) {
			vs = append(vs, kv[1])
		}
	}
	return vs
}

func counter(t *testing.T, host proxytest.HostEmulator, name string) uint64 {
	t.Helper()
	v, err := host.GetCounterMetric(metricName("skiff_broker_"+name, "default/default"))
	if err != nil {
		t.Fatalf("metric %s: %v", name, err)
	}
	return v
}

func TestBinaryEventTagged(t *testing.T) {
	host := startedHost(t)
	id := host.InitializeHttpContext()
	action := host.CallOnRequestHeaders(id, binaryHeaders("ce-region", "eu"), false)
	if action != types.ActionContinue {
		t.Fatalf("action = %v, want continue", action)
	}
	if resp := host.GetSentLocalResponse(id); resp != nil {
		t.Fatalf("unexpected local response %d %s", resp.StatusCode, resp.Data)
	}
	got := headerValues(host.GetCurrentRequestHeaders(id), TriggersHeader)
	if len(got) != 1 || got[0] != "t1,t3" {
		t.Errorf("%s = %q, want [t1,t3]", TriggersHeader, got)
	}
	// The body is not needed in binary mode and passes untouched.
	if action := host.CallOnRequestBody(id, []byte(`{"a":1}`), true); action != types.ActionContinue {
		t.Errorf("body action = %v", action)
	}
	host.CompleteHttpContext(id)
	if a, m, r := counter(t, host, "events_accepted"), counter(t, host, "events_matched"), counter(t, host, "events_rejected"); a != 1 || m != 1 || r != 0 {
		t.Errorf("accepted, matched, rejected = %d, %d, %d; want 1, 1, 0", a, m, r)
	}
}

func TestNoMatchingTriggerGivesEmptyHeader(t *testing.T) {
	host := startedHost(t)
	id := host.InitializeHttpContext()
	h := append(without(binaryHeaders(), "ce-type"), [2]string{"ce-type", "com.example.other"})
	if action := host.CallOnRequestHeaders(id, h, true); action != types.ActionContinue {
		t.Fatalf("action = %v", action)
	}
	got := headerValues(host.GetCurrentRequestHeaders(id), TriggersHeader)
	if len(got) != 1 || got[0] != "" {
		t.Errorf("%s = %q, want one empty value", TriggersHeader, got)
	}
	if counter(t, host, "events_accepted") != 1 || counter(t, host, "events_matched") != 0 {
		t.Error("counters")
	}
}

func TestClientSuppliedTriggersHeaderRemoved(t *testing.T) {
	host := startedHost(t)
	id := host.InitializeHttpContext()
	h := binaryHeaders(TriggersHeader, "t2", "X-Skiff-Triggers", "t3")
	host.CallOnRequestHeaders(id, h, true)
	got := headerValues(host.GetCurrentRequestHeaders(id), TriggersHeader)
	if len(got) != 1 || got[0] != "t1" {
		t.Errorf("%s = %q, want [t1]", TriggersHeader, got)
	}
}

func TestStructuredEventTagged(t *testing.T) {
	host := startedHost(t)
	id := host.InitializeHttpContext()
	headers := [][2]string{
		{":method", "POST"},
		{":path", "/default/default"},
		{"content-type", "application/cloudevents+json; charset=utf-8"},
		{TriggersHeader, "t1,t2,t3"},
	}
	if action := host.CallOnRequestHeaders(id, headers, false); action != types.ActionPause {
		t.Fatalf("headers action = %v, want pause until the body is read", action)
	}
	body := `{"specversion":"1.0","id":"7","source":"/users/42","type":"com.example.user.created","data":{"name":"x"}}`
	// The body arrives in two pieces; the first is buffered.
	if action := host.CallOnRequestBody(id, []byte(body[:30]), false); action != types.ActionPause {
		t.Fatalf("first chunk action = %v, want pause (buffer)", action)
	}
	if action := host.CallOnRequestBody(id, []byte(body[30:]), true); action != types.ActionContinue {
		t.Fatalf("last chunk action = %v, want continue", action)
	}
	if resp := host.GetSentLocalResponse(id); resp != nil {
		t.Fatalf("unexpected local response %d %s", resp.StatusCode, resp.Data)
	}
	got := headerValues(host.GetCurrentRequestHeaders(id), TriggersHeader)
	if len(got) != 1 || got[0] != "t2" {
		t.Errorf("%s = %q, want [t2]", TriggersHeader, got)
	}
	if string(host.GetCurrentRequestBody(id)) != body {
		t.Errorf("body changed: %s", host.GetCurrentRequestBody(id))
	}
}

func TestInvalidEventsRejected(t *testing.T) {
	structured := [][2]string{{":method", "POST"}, {":path", "/default/default"}, {"content-type", "application/cloudevents+json"}}
	cases := []struct {
		name    string
		headers [][2]string
		body    string // structured body, "" for binary mode
		reason  string
		attr    string
		msg     string
	}{
		{"missing id", without(binaryHeaders(), "ce-id"), "", "missing_attribute", "id", `missing required attribute "id"`},
		{"missing source", without(binaryHeaders(), "ce-source"), "", "missing_attribute", "source", `missing required attribute "source"`},
		{"missing type", without(binaryHeaders(), "ce-type"), "", "missing_attribute", "type", `missing required attribute "type"`},
		{"missing specversion", without(binaryHeaders(), "ce-specversion"), "", "missing_attribute", "specversion", `missing required attribute "specversion"`},
		{"unknown specversion", append(without(binaryHeaders(), "ce-specversion"), [2]string{"ce-specversion", "0.9"}), "",
			"unsupported_specversion", "specversion", `specversion "0.9" is not supported: want 1.0 (or 0.3)`},
		// Issue 13 item 9: a bad header before the required ones was reported as
		// "missing required attribute specversion".
		{"bad name before specversion", append([][2]string{{":method", "POST"}, {"ce-bad_name", "x"}}, binaryHeaders()[1:]...), "",
			"invalid_attribute_name", "bad_name", `header "ce-bad_name": attribute name "bad_name" is invalid: it must consist of lower-case letters a-z and digits 0-9`},
		{"non-UTF-8 structured attribute", structured, "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"subject\":\"caf\xe9\"}",
			"invalid_attribute", "subject", `structured event: member "subject": not valid UTF-8 (JSON text must be UTF-8, RFC 8259 section 8.1)`},
		{"lone surrogate", structured, `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"\ud800x"}`,
			"invalid_attribute", "subject", `structured event: member "subject": \uD800 is a lone surrogate, not a character`},
		{"bad extension name", binaryHeaders("ce-my-ext", "x"), "", "invalid_attribute_name", "my-ext",
			`header "ce-my-ext": attribute name "my-ext" is invalid: it must consist of lower-case letters a-z and digits 0-9`},
		{"not a cloudevent", [][2]string{{":method", "POST"}, {":path", "/default/default"}, {"content-type", "text/plain"}}, "", "not_cloudevent", "",
			`request is not a CloudEvent: no ce-* headers (binary mode) and Content-Type "text/plain" is not application/cloudevents+json (structured mode)`},
		{"bad json", structured, `{"specversion": "1.0",`, "invalid_json", "", "structured event: invalid JSON: unexpected end of input"},
		{"structured missing type", structured, `{"specversion":"1.0","id":"1","source":"/s"}`, "missing_attribute", "type", `missing required attribute "type"`},
		// Rejected from the headers alone: body "" here means no wait for the body.
		{"batch", [][2]string{{":method", "POST"}, {":path", "/default/default"}, {"content-type", "application/cloudevents-batch+json"}}, "",
			"batch_not_supported", "", "batched content mode (application/cloudevents-batch+json) is not supported: send one event per request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := startedHost(t)
			id := host.InitializeHttpContext()
			action := host.CallOnRequestHeaders(id, c.headers, c.body == "")
			if c.body != "" {
				if action != types.ActionPause {
					t.Fatalf("headers action = %v, want pause", action)
				}
				action = host.CallOnRequestBody(id, []byte(c.body), true)
			}
			if action != types.ActionPause {
				t.Errorf("action = %v, want pause after a local response", action)
			}
			resp := host.GetSentLocalResponse(id)
			if resp == nil {
				t.Fatal("no local response")
			}
			if resp.StatusCode != 400 {
				t.Errorf("status = %d, want 400", resp.StatusCode)
			}
			var got errorBody
			if err := json.Unmarshal(resp.Data, &got); err != nil {
				t.Fatalf("body %q: %v", resp.Data, err)
			}
			if got.Error != c.msg || got.Reason != c.reason || got.Attribute != c.attr {
				t.Errorf("body = %+v\nwant error=%q reason=%q attribute=%q", got, c.msg, c.reason, c.attr)
			}
			if ct := headerValues(resp.Headers, "content-type"); len(ct) != 1 || ct[0] != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
			if counter(t, host, "events_rejected") != 1 || counter(t, host, "events_accepted") != 0 {
				t.Error("counters")
			}
		})
	}
}

// Requests that are not event POSTs reach the ingress, which answers them as
// Knative's does (OPTIONS: the webhook handshake; others: 405), instead of the
// filter refusing them as "not a CloudEvent". A client's trigger list is still
// removed.
func TestNonPostPassesToIngress(t *testing.T) {
	for _, method := range []string{"OPTIONS", "GET", "HEAD", "DELETE", "PUT"} {
		t.Run(method, func(t *testing.T) {
			host := startedHost(t)
			id := host.InitializeHttpContext()
			h := [][2]string{{":method", method}, {":path", "/default/default"}, {TriggersHeader, "t1"},
				{"webhook-request-origin", "example.com"}}
			if action := host.CallOnRequestHeaders(id, h, true); action != types.ActionContinue {
				t.Fatalf("action = %v, want continue", action)
			}
			if resp := host.GetSentLocalResponse(id); resp != nil {
				t.Fatalf("the filter answered %d %s", resp.StatusCode, resp.Data)
			}
			if got := headerValues(host.GetCurrentRequestHeaders(id), TriggersHeader); len(got) != 0 {
				t.Errorf("client's %s kept: %q", TriggersHeader, got)
			}
			if counter(t, host, "events_rejected") != 0 || counter(t, host, "events_accepted") != 0 {
				t.Error("a non-event request was counted as an event")
			}
		})
	}
}

func TestStructuredWithTrailersRejected(t *testing.T) {
	host := startedHost(t)
	id := host.InitializeHttpContext()
	host.CallOnRequestHeaders(id, [][2]string{{":method", "POST"}, {"content-type", "application/cloudevents+json"}}, false)
	host.CallOnRequestBody(id, []byte(`{}`), false)
	if action := host.CallOnRequestTrailers(id, [][2]string{{"x", "y"}}); action != types.ActionPause {
		t.Fatalf("action = %v", action)
	}
	if resp := host.GetSentLocalResponse(id); resp == nil || resp.StatusCode != 400 {
		t.Fatalf("response = %+v", resp)
	}
}

func TestBadPluginConfigFailsStart(t *testing.T) {
	cases := []struct{ name, config, log string }{
		{"empty", ``, "no plugin configuration"},
		{"not json", `{`, "bad plugin configuration: invalid JSON"},
		{"bad field", `{"broker":"default/default","triggers":[{"name":"t1","filters":[{"exact":{"type":"a"}},{"prefix":{"a":"b"},"suffix":{"a":"b"}}]}]}`,
			"bad plugin configuration: triggers[0].filters[1]: multiple dialects set (prefix, suffix): a filter expression has exactly one"},
		{"bad cesql", `{"broker":"default/default","triggers":[{"name":"t1","filters":[{"cesql":"type ="}]}]}`,
			`bad plugin configuration: triggers[0].filters[0].cesql: invalid CESQL expression "type ="`},
		{"no broker", `{"triggers":[]}`, `bad plugin configuration: broker: required`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := newHost(t, c.config)
			if st := host.StartPlugin(); st != types.OnPluginStartStatusFailed {
				t.Fatalf("StartPlugin = %v, want failed", st)
			}
			logs := host.GetErrorLogs()
			if len(logs) != 1 || !strings.Contains(logs[0], c.log) {
				t.Errorf("error logs = %q, want one containing %q", logs, c.log)
			}
		})
	}
}

const multiBrokerConfig = `{"brokers": [
  {"broker": "default/default", "generation": "g1", "triggers": [
    {"name": "t1", "filter": {"attributes": {"type": "com.example.order.created"}}}]},
  {"broker": "team/orders", "generation": "g7", "triggers": [
    {"name": "all", "filters": []},
    {"name": "none", "filters": [{"exact": {"type": "nope"}}]}]}
]}`

// The path picks the broker; its generation goes along with the trigger list,
// and a client's own values of both headers never survive.
func TestMultiBrokerConfigSelectsByPath(t *testing.T) {
	host := newHost(t, multiBrokerConfig)
	if st := host.StartPlugin(); st != types.OnPluginStartStatusOK {
		t.Fatalf("StartPlugin = %v; logs: %v", st, host.GetErrorLogs())
	}
	cases := []struct{ path, triggers, generation string }{
		{"/default/default", "t1", "g1"},
		{"/team/orders", "all", "g7"},
		{"/team/orders/", "all", "g7"},
	}
	for _, c := range cases {
		id := host.InitializeHttpContext()
		h := append(without(binaryHeaders(), ":path"), [2]string{":path", c.path},
			[2]string{"x-skiff-triggers", "forged"}, [2]string{"x-skiff-broker-generation", "forged"})
		if action := host.CallOnRequestHeaders(id, h, true); action != types.ActionContinue {
			t.Fatalf("%s: action = %v", c.path, action)
		}
		got := host.GetCurrentRequestHeaders(id)
		if v := headerValues(got, TriggersHeader); len(v) != 1 || v[0] != c.triggers {
			t.Errorf("%s: x-skiff-triggers = %q, want %q", c.path, v, c.triggers)
		}
		if v := headerValues(got, "x-skiff-broker-generation"); len(v) != 1 || v[0] != c.generation {
			t.Errorf("%s: x-skiff-broker-generation = %q, want %q", c.path, v, c.generation)
		}
	}

	// A broker the filter does not know yet: validated, but left for the
	// ingress to evaluate (no trigger list, no generation).
	id := host.InitializeHttpContext()
	h := append(without(binaryHeaders(), ":path"), [2]string{":path", "/default/new"}, [2]string{"x-skiff-triggers", "forged"})
	if action := host.CallOnRequestHeaders(id, h, true); action != types.ActionContinue {
		t.Fatalf("unknown broker: action = %v", action)
	}
	got := host.GetCurrentRequestHeaders(id)
	if v := headerValues(got, TriggersHeader); len(v) != 0 {
		t.Errorf("unknown broker: x-skiff-triggers = %q, want none", v)
	}
	if v := headerValues(got, "x-skiff-broker-generation"); len(v) != 0 {
		t.Errorf("unknown broker: x-skiff-broker-generation = %q, want none", v)
	}
	id = host.InitializeHttpContext()
	host.CallOnRequestHeaders(id, append(without(binaryHeaders(), ":path"), [2]string{":path", "/default/new"}, [2]string{"ce-id", ""}), true)
	if resp := host.GetSentLocalResponse(id); resp == nil || resp.StatusCode != 400 {
		t.Errorf("an invalid event for an unknown broker was not answered 400: %+v", resp)
	}
}

func TestDuplicateBrokerRejected(t *testing.T) {
	host := newHost(t, `{"brokers":[{"broker":"a/b","triggers":[]},{"broker":"a/b","triggers":[]}]}`)
	if st := host.StartPlugin(); st != types.OnPluginStartStatusFailed {
		t.Fatalf("StartPlugin = %v, want failed", st)
	}
	if logs := host.GetErrorLogs(); len(logs) != 1 || !strings.Contains(logs[0], `brokers[1].broker: duplicate broker "a/b"`) {
		t.Errorf("error logs = %q", logs)
	}
}

// Issue 13, item 3: the filter passes the configuration's token with the trigger list, and
// never a client's: only a request tagged by the filter carries the secret the ingress checks.
func TestTokenSetAndClientTokenRemoved(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"with a token", `{"brokers": [` + testConfig + `], "token": "s3cret"}`, []string{"s3cret"}},
		{"without a token", `{"brokers": [` + testConfig + `]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := newHost(t, tc.config)
			if st := host.StartPlugin(); st != types.OnPluginStartStatusOK {
				t.Fatalf("StartPlugin = %v; logs: %v", st, host.GetErrorLogs())
			}
			id := host.InitializeHttpContext()
			h := binaryHeaders("x-skiff-proxy-token", "forged", "X-Skiff-Proxy-Token", "forged2")
			if action := host.CallOnRequestHeaders(id, h, true); action != types.ActionContinue {
				t.Fatalf("action = %v", action)
			}
			got := headerValues(host.GetCurrentRequestHeaders(id), "x-skiff-proxy-token")
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("x-skiff-proxy-token = %q, want %q", got, tc.want)
			}
		})
	}
	// A path naming no configured broker is not tagged: no token either.
	host := newHost(t, `{"brokers": [`+testConfig+`], "token": "s3cret"}`)
	host.StartPlugin()
	id := host.InitializeHttpContext()
	h := append(without(binaryHeaders("x-skiff-proxy-token", "forged"), ":path"), [2]string{":path", "/default/other"})
	host.CallOnRequestHeaders(id, h, true)
	if got := headerValues(host.GetCurrentRequestHeaders(id), "x-skiff-proxy-token"); len(got) != 0 {
		t.Errorf("x-skiff-proxy-token = %q on an unknown broker's request, want none", got)
	}
}
