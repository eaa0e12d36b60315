package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"

	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

func TestBackoff(t *testing.T) {
	exp := policy{exponential: true, delay: 200 * time.Millisecond}
	lin := policy{delay: 200 * time.Millisecond}
	for n, want := range map[int]time.Duration{1: 200 * time.Millisecond, 2: 400 * time.Millisecond, 3: 800 * time.Millisecond, 10: 102400 * time.Millisecond} {
		if got := exp.backoff(n, RetryRulesSkiff); got != want {
			t.Errorf("exponential retry %d: %v, want %v", n, got, want)
		}
	}
	for n, want := range map[int]time.Duration{1: 200 * time.Millisecond, 2: 400 * time.Millisecond, 3: 600 * time.Millisecond} {
		if got := lin.backoff(n, RetryRulesSkiff); got != want {
			t.Errorf("linear retry %d: %v, want %v", n, got, want)
		}
	}
	if got := exp.backoff(5000, RetryRulesSkiff); got != MaxBackoff {
		t.Errorf("huge exponent: %v, want the cap", got)
	}
	if got := (policy{exponential: true}).backoff(3, RetryRulesSkiff); got != 0 {
		t.Errorf("no delay: %v", got)
	}
}

// Knative's series: pkg/kncloudevents/retries_test.go, TestRetryConfigFromDeliverySpec, whose
// Backoff(i) is go-retryablehttp's 0-based attempt number i, Skiff's retry n = i+1; the
// first retry (i = 0) waits nothing under linear and the delay under exponential.
func TestBackoffKnativeRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy policy
		want   []time.Duration // Backoff(1) .. Backoff(5)
	}{
		{"Successful Linear Backoff 2500ms, 5 retries", policy{delay: 2500 * time.Millisecond},
			[]time.Duration{2500 * time.Millisecond, 5 * time.Second, 7500 * time.Millisecond, 10 * time.Second, 12500 * time.Millisecond}},
		{"Successful Exponential Backoff 1500ms, 5 retries", policy{exponential: true, delay: 1500 * time.Millisecond},
			[]time.Duration{3 * time.Second, 6 * time.Second, 12 * time.Second, 24 * time.Second, 48 * time.Second}},
		{"Successful Exponential Backoff 500ms, 5 retries", policy{exponential: true, delay: 500 * time.Millisecond},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}},
	} {
		for i, want := range tc.want {
			if got := tc.policy.backoff(i+2, RetryRulesKnative); got != want {
				t.Errorf("%s: Backoff(%d) = %v, want %v", tc.name, i+1, got, want)
			}
		}
	}
	lin := policy{delay: 200 * time.Millisecond}
	if got := lin.backoff(1, RetryRulesKnative); got != 0 {
		t.Errorf("Knative's first linear retry waits %v, want 0", got)
	}
	if got := lin.backoff(1, RetryRulesSkiff); got != 200*time.Millisecond {
		t.Errorf("Skiff's first linear retry waits %v, want the delay", got)
	}
	exp := policy{exponential: true, delay: 200 * time.Millisecond}
	if got := exp.backoff(1, RetryRulesKnative); got != 200*time.Millisecond {
		t.Errorf("Knative's first exponential retry waits %v, want the delay", got)
	}
}

func TestRetryableStatuses(t *testing.T) {
	for code, want := range map[int]bool{0: true, 500: true, 502: true, 503: true, 504: true, 408: true, 429: true, 404: false, 409: false,
		400: false, 401: false, 403: false, 410: false, 413: false, 301: false} {
		if RetryRulesSkiff.retryable(code) != want {
			t.Errorf("retryable(%d) = %v", code, !want)
		}
	}
}

// Knative's set: pkg/kncloudevents/retries_test.go, TestSelectiveRetry (5XX, 404, 408,
// 409, 429 and failed requests retried, other statuses not), plus 599 and 415.
func TestRetryRulesKnativeStatuses(t *testing.T) {
	for code, want := range map[int]bool{0: true, 500: true, 501: true, 502: true, 503: true, 504: true, 599: true, 404: true, 408: true, 409: true, 429: true,
		100: false, 102: false, 200: false, 201: false, 202: false, 300: false, 301: false, 400: false, 401: false, 403: false, 410: false, 413: false, 415: false} {
		if RetryRulesKnative.retryable(code) != want {
			t.Errorf("knative: retryable(%d) = %v", code, !want)
		}
	}
	for in, want := range map[string]RetryRules{"": RetryRulesSkiff, "skiff": RetryRulesSkiff, "knative": RetryRulesKnative} {
		if got, err := ParseRetryRules(in); err != nil || got != want {
			t.Errorf("ParseRetryRules(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseRetryRules("Knative"); err == nil || !strings.Contains(err.Error(), `"Knative" is not a set of retry rules`) {
		t.Errorf("ParseRetryRules(Knative) = %v", err)
	}
}

func TestCompilePolicy(t *testing.T) {
	p, err := compilePolicy(&DeliverySpec{Retry: ptr[int32](4), BackoffPolicy: "linear", BackoffDelay: "PT0.2S", Timeout: "PT1M30S", DeadLetterSink: "https://dls.example/x"}, "delivery")
	if err != nil {
		t.Fatal(err)
	}
	want := policy{retry: 4, delay: 200 * time.Millisecond, timeout: 90 * time.Second, deadLetter: "https://dls.example/x"}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	if p, _ := compilePolicy(nil, "delivery"); p.retry != 0 || !p.exponential {
		t.Errorf("nil delivery: %+v", p)
	}
	_, err = compilePolicy(&DeliverySpec{BackoffDelay: "0.2"}, "triggers[2].delivery")
	if err == nil || !strings.HasPrefix(err.Error(), "triggers[2].delivery.backoffDelay: ") {
		t.Errorf("bad delay: %v", err)
	}
}

// The stored form gives back the same event, whatever its data.
func TestStoredRoundTrip(t *testing.T) {
	base := map[string]string{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "ext": "a \"b\" %c é", TTLExtension: "12"}
	cases := []struct {
		name, ct string
		data     []byte
	}{
		{"json", "application/json", []byte(`{"a": [1, 2.50, "x"]}`)},
		{"json with spaces around", "application/json", []byte(" {\"a\":1}\n")},
		{"cloudevents-ish json", "application/vnd.foo+json; charset=utf-8", []byte(`[true,null]`)},
		{"text", "text/plain", []byte("hello\nworld")},
		{"binary", "application/octet-stream", []byte{0, 1, 2, 0xff, 0xfe}},
		{"no content type, json", "", []byte(`42`)},
		{"no content type, bytes", "", []byte("not json")},
		{"invalid json", "application/json", []byte(`{"a":`)},
		{"no data", "application/json", nil},
		{"null", "application/json", []byte(`null`)},
		{"latin-1 in json", "application/json", []byte("\"caf\xe9\"")},
		{"lone surrogate in json", "example/json", []byte(`"\ud800"`)},
		{"0.3 text", "text/plain", []byte("hi")},
		{"0.3 json", "application/json", []byte(`{"a":1}`)},
		{"0.3 binary", "", []byte{0xff}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			attrs := maps.Clone(base)
			if strings.HasPrefix(c.name, "0.3") {
				attrs["specversion"] = "0.3"
			}
			if c.ct != "" {
				attrs["datacontenttype"] = c.ct
			}
			in := eventfilter.Event{Attributes: attrs, Data: c.data}
			check := func(form string, h nats.Header, enc []byte) {
				t.Helper()
				out, err := decodeStored(h, enc)
				if err != nil {
					t.Fatalf("%s: decoding %s: %v", form, enc, err)
				}
				if !bytes.Equal(out.Data, in.Data) {
					t.Errorf("%s: data %q, want %q (stored %s)", form, out.Data, in.Data, enc)
				}
				for k, v := range in.Attributes {
					if out.Attributes[k] != v {
						t.Errorf("%s: attribute %s = %q, want %q", form, k, out.Attributes[k], v)
					}
				}
				if len(out.Attributes) != len(in.Attributes) {
					t.Errorf("%s: attributes %v, want %v", form, out.Attributes, in.Attributes)
				}
			}
			// The JSON format: what earlier versions stored, and dead-letter copies.
			enc := encodeStructured(in)
			check("json", nats.Header{"Content-Type": {structuredContentType}}, enc)
			if !bytes.Contains(enc, []byte(`"knativebrokerttl":12`)) {
				t.Errorf("TTL is not an Integer in %s", enc)
			}
			// What the ingress stores now: 1.0 events in binary form.
			h, data := storedForm(in)
			if got, want := h.Get(HeaderStored) == storedBinary, attrs["specversion"] == "1.0"; got != want {
				t.Errorf("stored in binary form: %v, want %v (headers %v)", got, want, h)
			}
			check("stored", h, data)
		})
	}
}

// Events the binary form cannot carry as they are stay in the JSON format: a
// datacontenttype that reads as structured mode. (A value that would not fit a header
// line, with a control character, is no valid attribute and never reaches the store.)
func TestStoredFormFallsBackToJSON(t *testing.T) {
	for _, ct := range []string{"application/cloudevents+json", "application/cloudevents-batch+json"} {
		in := eventfilter.Event{Attributes: map[string]string{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "datacontenttype": ct}, Data: []byte(`{"a":1}`)}
		h, data := storedForm(in)
		if h.Get(HeaderStored) != "" || h.Get("Content-Type") != structuredContentType {
			t.Errorf("datacontenttype %q: headers %v, want the JSON format", ct, h)
		}
		out, err := decodeStored(h, data)
		if err != nil || out.Attributes["datacontenttype"] != ct || !bytes.Equal(out.Data, in.Data) {
			t.Errorf("datacontenttype %q: read back %+v, %v", ct, out, err)
		}
	}
}

// A delivery request reads back as the same event, without the skipped
// attribute, both with Skiff's reader (which decodes as the HTTP binding says)
// and as the CloudEvents SDK reads it (which does not percent-decode: it sees
// the encoded value, as Knative's components would pass it on).
func TestBinaryRoundTrip(t *testing.T) {
	in := eventfilter.Event{Attributes: map[string]string{
		"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "datacontenttype": "text/plain",
		"time": "2026-12-02T10:00:00.5Z", "subject": "sub",
		"ext": "100% \"quoted\" ünïcode", "pct": "%41", TTLExtension: "5",
	}, Data: []byte("body")}
	req := httptest.NewRequest(http.MethodPost, "http://sub.example/", nil)
	writeBinary(req, in, TTLExtension)
	if req.Header.Get("Ce-Knativebrokerttl") != "" {
		t.Error("skipped attribute written")
	}
	if got := req.Header.Get("Ce-Pct"); got != "%2541" {
		t.Errorf("Ce-Pct: %q, want %%2541 (percent-encoded, HTTP binding 3.1.3.2)", got)
	}
	if got := req.Header.Get("Ce-Ext"); got != "100%25%20%22quoted%22%20%C3%BCn%C3%AFcode" {
		t.Errorf("Ce-Ext: %q", got)
	}
	if req.ContentLength != 4 {
		t.Errorf("Content-Length %d", req.ContentLength)
	}
	body, _ := io.ReadAll(req.Body)
	out, err := eventfilter.ParseHTTP(eventfilter.HeaderMap(req.Header), body)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(in.Attributes)
	delete(want, TTLExtension)
	if !maps.Equal(out.Attributes, want) || string(out.Data) != "body" {
		t.Errorf("read back %v %q, want %v %q", out.Attributes, out.Data, want, in.Data)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	sdk, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	if sdk.ID() != "1" || sdk.Extensions()["pct"] != "%2541" || string(sdk.Data()) != "body" || sdk.DataContentType() != "text/plain" {
		t.Errorf("the SDK read %s", sdk)
	}
}

// Knative's TTLDefaulter (pkg/broker/ttl_test.go, TestTTLDefaulter), with
// Skiff's default TTL: absent or not a number gives the default, a present
// one is decremented to no less than 0 (which the ingress drops). Values are
// read as the SDK reads an Integer (types.ParseInteger truncates a fraction).
func TestTTLDefaulter(t *testing.T) {
	for v, want := range map[string]int{
		"-":   DefaultTTL, // happy empty
		"10":  9,          // existing ttl of 10
		"1":   0,          // existing ttl of 1
		"XYZ": DefaultTTL, // existing invalid ttl of 'XYZ'
		"0":   0,          // existing ttl of 0
		"abc": DefaultTTL, "": DefaultTTL, "NaN": DefaultTTL, "3000000000": DefaultTTL,
		"-5": 0, "4.7": 3, " 7 ": 6, "1e2": 99,
	} {
		attrs := map[string]string{"specversion": "1.0"}
		if v != "-" {
			attrs[TTLExtension] = v
		}
		if got := ttl(eventfilter.Event{Attributes: attrs}); got != want {
			t.Errorf("ttl %q: %d, want %d", v, got, want)
		}
	}
}

func TestErrorData(t *testing.T) {
	if got := errorData([]byte("boom")); got != base64.StdEncoding.EncodeToString([]byte("boom")) {
		t.Errorf("short body: %q", got)
	}
	long := bytes.Repeat([]byte("abcdefg"), 500)
	got := errorData(long)
	if want := base64.StdEncoding.EncodeToString(long)[:ErrorDataMaxLength]; got != want {
		t.Errorf("long body: %d chars, not the truncated base64", len(got))
	}
}

func TestNames(t *testing.T) {
	if got := StreamName("default", "my.broker"); got != "skiff_default_my_broker" {
		t.Errorf("stream %q", got)
	}
	if got := Subject("default", "my.broker", "t.1"); got != "skiff.default.my_broker.t_1" {
		t.Errorf("subject %q", got)
	}
	for path, ok := range map[string]bool{"/ns/b": true, "/ns/b/": true, "ns/b": true, "/ns": false, "/ns/b/c": false, "//b": false, "/": false} {
		if _, _, got := splitPath(path); got != ok {
			t.Errorf("splitPath(%q) ok = %v", path, got)
		}
	}
}

// Knative's pass-through set (pkg/utils/headers.go, PassThroughHeaders and its
// headers_test.go): X-Request-Id, Retry-After, Knative-*, X-B3-*, in any case.
func TestPassThroughHeaders(t *testing.T) {
	in := http.Header{
		"X-Request-Id": {"1"}, "Retry-After": {"5"}, "Knative-Foo": {"a", "b"}, "X-B3-Traceid": {"t"},
		"x-b3-spanid": {"s"}, "Ce-Id": {"x"}, "Content-Type": {"text/plain"}, "Traceparent": {"00-x"}, "X-Other": {"o"},
	}
	want := http.Header{"X-Request-Id": {"1"}, "Retry-After": {"5"}, "Knative-Foo": {"a", "b"}, "X-B3-Traceid": {"t"}, "X-B3-Spanid": {"s"}}
	got := passThroughHeaders(in)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if passThroughHeaders(http.Header{"X-Other": {"o"}}) != nil {
		t.Error("nothing to pass, but a header map")
	}
}

// TestReadBody: the body is read whole whatever the announced length says, and a limit
// below the body still ends the read with the limit's error.
func TestReadBody(t *testing.T) {
	body := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		name string
		size int64
	}{{"exact", 1000}, {"unknown", -1}, {"announced shorter", 10}, {"announced longer", 5000}, {"zero", 0}} {
		got, err := readBody(strings.NewReader(body), tc.size, 1<<20)
		if err != nil || string(got) != body {
			t.Errorf("%s: got %d bytes, %v; want the 1000 bytes", tc.name, len(got), err)
		}
	}
	rec := httptest.NewRecorder()
	_, err := readBody(http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(body)), 100), 1000, 1<<20)
	var tooLarge *http.MaxBytesError
	if !errors.As(err, &tooLarge) {
		t.Errorf("over the limit: got %v, want *http.MaxBytesError", err)
	}
}
