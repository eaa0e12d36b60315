package broker

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestRetryWaitWithRetryAfter ports kncloudevents' retries_test.go
// TestGenerateBackoffFnWithRetryAfter: with retryAfterMax set, a 429 or 503's Retry-After
// (seconds or an HTTP date) is waited for, capped at retryAfterMax, when longer than the
// backoff; without it (Knative's nil), or for other statuses or an unreadable header, the
// backoff alone.
func TestRetryWaitWithRetryAfter(t *testing.T) {
	const (
		backoff    = 2 * time.Second  // the policy's own wait (linear, n = 1)
		retryAfter = 30 * time.Second // what the response asks for
		small      = 10 * time.Second // a retryAfterMax below it
		large      = 90 * time.Second // one above it
	)
	now := time.Now()
	header := func(format string) http.Header {
		h := http.Header{}
		switch format {
		case "seconds":
			h.Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
		case "date":
			h.Set("Retry-After", now.Add(retryAfter).Format(time.RFC850)) // RFC 850 drops the millis
		case "invalid":
			h.Set("Retry-After", "FOO")
		}
		return h
	}
	for _, c := range []struct {
		name   string
		max    time.Duration // 0: Knative's nil
		code   int
		format string
		want   time.Duration
	}{
		{"nil max 429 without Retry-After", 0, 429, "", backoff},
		{"nil max 429 with Retry-After seconds", 0, 429, "seconds", backoff},
		{"nil max 429 with Retry-After date", 0, 429, "date", backoff},
		{"nil max 429 with invalid Retry-After", 0, 429, "invalid", backoff},
		{"nil max 503 with Retry-After seconds", 0, 503, "seconds", backoff},
		{"nil max 500 without Retry-After", 0, 500, "", backoff},
		{"large max 429 with Retry-After seconds", large, 429, "seconds", retryAfter},
		{"large max 429 with Retry-After date", large, 429, "date", retryAfter},
		{"large max 429 with invalid Retry-After", large, 429, "invalid", backoff},
		{"large max 503 with Retry-After seconds", large, 503, "seconds", retryAfter},
		{"large max 500 without Retry-After", large, 500, "", backoff},
		{"small max 429 with Retry-After seconds", small, 429, "seconds", small},
		{"small max 429 with Retry-After date", small, 429, "date", small},
		{"small max 429 with invalid Retry-After", small, 429, "invalid", backoff},
		{"small max 503 with Retry-After seconds", small, 503, "seconds", small},
		{"small max 500 without Retry-After", small, 500, "", backoff},
		// Skiff's own: a 500 with a Retry-After is not asked to wait (only 429 and 503 are).
		{"large max 500 with Retry-After seconds", large, 500, "seconds", backoff},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := policy{retry: 1, delay: backoff, retryAfterMax: c.max}
			got := p.retryWait(1, RetryRulesSkiff, retryAfterOf(c.code, header(c.format), now))
			// An HTTP date has whole seconds: up to one less than asked.
			if got > c.want || got <= c.want-time.Second || (c.format != "date" && got != c.want) {
				t.Errorf("wait %v, want %v", got, c.want)
			}
		})
	}
}

// TestDeliveryFormatAndRetryAfter: through the broker, a Trigger with delivery.format json
// gets the event in structured content mode (and one with binary, or none, in binary mode,
// as Knative's dispatcher sends them: kncloudevents event_dispatcher_test.go
// TestEventFormats, BinaryFormat and JsonFormat), and a Trigger with retryAfterMax has its
// retry after a 429 wait what Retry-After asked, capped at retryAfterMax.
func TestDeliveryFormatAndRetryAfter(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	nakDelays := e.recordNakDelays()
	type request struct {
		contentType, ceID string
		body              []byte
	}
	var mu sync.Mutex
	got := map[string][]request{}
	subscriber := func(name, retryAfter string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			got[name] = append(got[name], request{r.Header.Get("Content-Type"), r.Header.Get("Ce-Id"), body})
			n := len(got[name])
			mu.Unlock()
			if retryAfter != "" && n == 1 {
				w.Header().Set("Retry-After", retryAfter)
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	delivery := func(format, retryAfterMax string) *DeliverySpec {
		return &DeliverySpec{Retry: ptr[int32](1), BackoffPolicy: BackoffLinear, BackoffDelay: "PT0.1S", Format: format, RetryAfterMax: retryAfterMax}
	}
	err := e.srv.SetBroker(t.Context(), BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{
		{Name: "json", Subscriber: subscriber("json", ""), Delivery: delivery("json", "")},
		{Name: "binary", Subscriber: subscriber("binary", ""), Delivery: delivery("binary", "")},
		{Name: "default", Subscriber: subscriber("default", "")},
		{Name: "honoured", Subscriber: subscriber("honoured", "1"), Delivery: delivery("", "PT10S")},
		{Name: "capped", Subscriber: subscriber("capped", "30"), Delivery: delivery("", "PT2S")},
		{Name: "ignored", Subscriber: subscriber("ignored", "30"), Delivery: delivery("", "")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, e.url("ns", "b"), newEvent("f1", "format", map[string]string{"seq": "7"}), false, nil)
	waitFor(t, 20*time.Second, "every trigger's delivery, the retried ones on their second attempt", func() bool {
		return e.srv.Stats().Delivered == 6
	})

	mu.Lock()
	defer mu.Unlock()
	j := got["json"][0]
	var envelope map[string]any
	if j.contentType != "application/cloudevents+json" || j.ceID != "" || json.Unmarshal(j.body, &envelope) != nil {
		t.Fatalf("format json: Content-Type %q, Ce-Id %q, body %s; want one structured CloudEvent", j.contentType, j.ceID, j.body)
	}
	data, _ := envelope["data"].(map[string]any)
	if envelope["id"] != "f1" || envelope["specversion"] != "1.0" || envelope["type"] != "format" || data["seq"] != "7" || envelope[ArrivalTimeExtension] == nil {
		t.Errorf("format json: envelope %v; want the event's id, specversion, type, data and %s", envelope, ArrivalTimeExtension)
	}
	if _, ok := envelope[TTLExtension]; ok {
		t.Errorf("format json: the subscriber sees %s", TTLExtension)
	}
	for _, name := range []string{"binary", "default"} {
		if r := got[name][0]; r.ceID != "f1" || r.contentType == "application/cloudevents+json" {
			t.Errorf("format %s: Ce-Id %q, Content-Type %q; want binary content mode", name, r.ceID, r.contentType)
		}
	}

	asked := nakDelays()
	slices.Sort(asked)
	// ignored: the backoff (100ms); honoured: Retry-After's 1s; capped: retryAfterMax's 2s.
	if want := []time.Duration{100 * time.Millisecond, time.Second, 2 * time.Second}; !slices.Equal(asked, want) {
		t.Errorf("waits asked of JetStream %v, want %v", asked, want)
	}
}
