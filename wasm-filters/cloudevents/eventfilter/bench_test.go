package eventfilter

import (
	"fmt"
	"testing"
)

// benchConfig is a broker with 10 triggers: legacy attributes, exact, prefix,
// suffix, nested all/any/not and CESQL.
func benchConfig(b *testing.B) *BrokerConfig {
	cfg := &BrokerConfig{Broker: "default/default"}
	add := func(f Filter) {
		t := TriggerConfig{Name: fmt.Sprintf("t%d", len(cfg.Triggers)), Filters: f.Filters}
		if f.Attributes != nil {
			t.Filter = &AttributesFilter{Attributes: f.Attributes}
		}
		cfg.Triggers = append(cfg.Triggers, t)
	}
	add(Filter{Attributes: map[string]string{"type": "com.example.order.created"}})
	add(Filter{Attributes: map[string]string{"type": "com.example.order.deleted", "source": "/orders/eu"}})
	add(Filter{Filters: []Expression{{Exact: map[string]string{"type": "com.example.order.created"}}}})
	add(Filter{Filters: []Expression{{Prefix: map[string]string{"source": "/orders/"}}}})
	add(Filter{Filters: []Expression{{Prefix: map[string]string{"type": "com.example.user."}}}})
	add(Filter{Filters: []Expression{{Suffix: map[string]string{"type": ".created"}}, {Exact: map[string]string{"region": "eu"}}}})
	add(Filter{Filters: []Expression{{CESQL: "source LIKE '/orders/%' AND type IN ('com.example.order.created', 'com.example.order.updated')"}}})
	add(Filter{Filters: []Expression{{CESQL: "INT(priority) > 3 OR EXISTS urgent"}}})
	add(Filter{Filters: []Expression{{CESQL: "LOWER(region) = 'eu' AND NOT (subject = 'test')"}}})
	add(Filter{Filters: []Expression{{Any: []Expression{
		{Exact: map[string]string{"type": "com.example.order.cancelled"}},
		{Not: &Expression{Prefix: map[string]string{"source": "/internal/"}}},
	}}}})
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkMatch evaluates the 10 triggers of benchConfig against one event.
func BenchmarkMatch(b *testing.B) {
	cfg := benchConfig(b)
	ev := testEvent("region", "EU", "priority", "5", "subject", "order-42")
	dst := make([]string, 0, len(cfg.Triggers))
	dst = cfg.AppendMatching(dst, ev)
	if len(dst) != 7 {
		b.Fatalf("matched %v", dst)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst = cfg.AppendMatching(dst[:0], ev)
	}
}

// benchParseHTTP times ParseHTTP of one request, checked to parse first.
func benchParseHTTP(b *testing.B, h HeaderPairs, body []byte) {
	b.Helper()
	if _, err := ParseHTTP(h, body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ParseHTTP(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseHTTPBinary parses a binary-mode event with a few extensions,
// as the proxy-wasm filter receives it.
func BenchmarkParseHTTPBinary(b *testing.B) {
	h := benchBinaryHeaders()
	body := []byte(`{"hello":"world"}`)
	benchParseHTTP(b, h, body)
}

// benchBinaryHeaders is a binary-mode event's request headers.
func benchBinaryHeaders() HeaderPairs {
	return HeaderPairs{
		{":method", "POST"},
		{":path", "/default/default"},
		{":authority", "broker-ingress.skiff.local"},
		{"content-type", "application/json"},
		{"content-length", "17"},
		{"user-agent", "Go-http-client/1.1"},
		{"ce-specversion", "1.0"},
		{"ce-id", "5c1b2b3e-8f8a-4a55-9d7c-1f1f2f3f4f5f"},
		{"ce-source", "/orders/eu"},
		{"ce-type", "com.example.order.created"},
		{"ce-time", "2024-05-01T12:00:00.123Z"},
		{"ce-subject", "order%2042"},
		{"ce-region", "eu"},
		{"ce-traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
}

// BenchmarkParserHTTPBinary is BenchmarkParseHTTPBinary through one Parser,
// as the proxy-wasm filter reads events: the attribute list and map are
// reused. Run under wazero to see what the filter pays (wasm-filters/README.md,
// "What Go costs compiled to wasm").
func BenchmarkParserHTTPBinary(b *testing.B) {
	h := benchBinaryHeaders()
	body := []byte(`{"hello":"world"}`)
	var p Parser
	if _, err := p.ParseHTTP(&h, body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.ParseHTTP(&h, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseHTTPStructured parses the same event in structured mode.
func BenchmarkParseHTTPStructured(b *testing.B) {
	h := HeaderPairs{{"content-type", "application/cloudevents+json"}}
	body := []byte(`{"specversion":"1.0","id":"5c1b2b3e-8f8a-4a55-9d7c-1f1f2f3f4f5f","source":"/orders/eu",` +
		`"type":"com.example.order.created","time":"2024-05-01T12:00:00.123Z","subject":"order 42","region":"eu",` +
		`"datacontenttype":"application/json","data":{"hello":"world"}}`)
	benchParseHTTP(b, h, body)
}
