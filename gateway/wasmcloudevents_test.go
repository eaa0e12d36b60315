package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// brokerFilterConfig is a broker's configuration for the cloudevents filter:
// one trigger on an exact type, one on a CESQL expression.
const brokerFilterConfig = `{"broker": "default/default", "triggers": [
  {"name": "orders", "filter": {"attributes": {"type": "order.created"}}},
  {"name": "eu", "filters": [{"cesql": "source LIKE '/eu/%' AND type <> 'ping'"}]}
]}`

// TestWasmCloudEventsFilter runs the cloudevents filter in the gateway: valid
// events reach the upstream tagged with the triggers they match (a value the
// client sent is replaced), malformed ones get 400 with a reason and never
// reach the upstream, and the filter's counters show in /stats.
func TestWasmCloudEventsFilter(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	c.listeners = []types.Resource{httpListener(t, listenerName, withWasmFirst(wasmFilter(t, "skiff.cloudevents", "cloudevents", brokerFilterConfig)))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	post := func(hdr map[string]string, body string) result {
		t.Helper()
		rq, err := http.NewRequest(http.MethodPost, g.url(t, "/default/default"), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		rq.Host = "tag-hello.default.localhost"
		for k, v := range hdr {
			rq.Header.Set(k, v)
		}
		resp, err := g.client.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{status: resp.StatusCode, body: string(b), header: resp.Header}
	}
	binary := func(id, typ, source string) map[string]string {
		return map[string]string{
			"ce-specversion": "1.0", "ce-id": id, "ce-type": typ, "ce-source": source,
			"content-type": "application/json", "x-skiff-triggers": "forged",
		}
	}
	triggersSeen := func() string {
		t.Helper()
		return b1.lastRequest().Header.Get("X-Skiff-Triggers")
	}

	for _, tc := range []struct {
		name, id, typ, source, want string
	}{
		{"both triggers", "1", "order.created", "/eu/shop", "orders,eu"},
		{"exact only", "2", "order.created", "/us/shop", "orders"},
		{"cesql only", "3", "order.paid", "/eu/shop", "eu"},
		{"none", "4", "ping", "/eu/shop", ""},
	} {
		if r := post(binary(tc.id, tc.typ, tc.source), `{"n":1}`); r.status != 200 || r.body != "v1" {
			t.Fatalf("%s: %d %q", tc.name, r.status, r.body)
		}
		if got := triggersSeen(); got != tc.want {
			t.Errorf("%s: upstream saw x-skiff-triggers %q, want %q", tc.name, got, tc.want)
		}
	}

	// Structured mode: the filter buffers the body and reads the attributes from it.
	structured := `{"specversion":"1.0","id":"5","type":"order.created","source":"/eu/x","data":{"n":2}}`
	if r := post(map[string]string{"content-type": "application/cloudevents+json"}, structured); r.status != 200 {
		t.Fatalf("structured: %d %q", r.status, r.body)
	}
	if got := triggersSeen(); got != "orders,eu" {
		t.Errorf("structured: x-skiff-triggers %q, want %q", got, "orders,eu")
	}

	// Malformed events: 400 with a reason naming the attribute; the upstream never sees them.
	before := b1.lastRequest()
	missingID := binary("", "order.created", "/eu/shop")
	delete(missingID, "ce-id")
	for _, tc := range []struct {
		name  string
		hdr   map[string]string
		body  string
		field string
	}{
		{"missing id", missingID, `{}`, "id"},
		{"bad specversion", map[string]string{"ce-specversion": "0.1", "ce-id": "x", "ce-type": "t", "ce-source": "/s"}, ``, "specversion"},
		{"bad JSON in structured mode", map[string]string{"content-type": "application/cloudevents+json"}, `{"specversion":"1.0",`, ""},
	} {
		r := post(tc.hdr, tc.body)
		if r.status != 400 {
			t.Errorf("%s: status %d, want 400 (%q)", tc.name, r.status, r.body)
			continue
		}
		var e struct{ Error, Reason, Attribute string }
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Reason == "" || e.Error == "" {
			t.Errorf("%s: body %q is not a JSON error with a reason", tc.name, r.body)
		}
		if tc.field != "" && e.Attribute != tc.field && !strings.Contains(e.Error, tc.field) {
			t.Errorf("%s: error %q does not name %q", tc.name, r.body, tc.field)
		}
	}
	if b1.lastRequest() != before {
		t.Errorf("a malformed event reached the upstream")
	}
	for name, want := range map[string]int64{
		"wasmcustom.skiff_broker_events_accepted.default/default": 5,
		"wasmcustom.skiff_broker_events_rejected.default/default": 3,
		"wasmcustom.skiff_broker_events_matched.default/default":  4,
	} {
		if got := g.stat(t, name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}
