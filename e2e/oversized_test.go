package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Oversized events posted in parallel through the gateway each get 413 promptly: the
// cloudevents wasm filter (binary mode: the body streams past it to the ingress, which
// answers 413 before reading it all) must not be called for a stream that was already
// answered, and no client is left hanging. The same VM keeps serving: a good event
// afterwards is accepted and delivered. (Issue 13, item 4: the host used to call
// proxy_on_request_body for a deleted context, the Go SDK panicked, and the VM's other
// streams got 503 or hung.)
func TestParallelOversizedEventsGet413(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, nil)
	s.apply(fmt.Sprintf(brokerYAML, "default") + fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: all
spec:
  broker: default
  subscriber:
    uri: %s
`, rec.url("/all")))
	url := s.brokerReady("default")
	s.waitReady("trigger", "all", nil)
	snd := newSender(s.http)

	const size = 5 << 20
	body := strings.Repeat("x", size)
	for round := range 5 {
		var wg sync.WaitGroup
		codes := make([]string, 6)
		for i := range codes {
			wg.Go(func() {
				h := http.Header{
					"Content-Type": {"application/octet-stream"}, "Ce-Specversion": {"1.0"},
					"Ce-Id": {fmt.Sprintf("big-%d-%d", round, i)}, "Ce-Type": {"t"}, "Ce-Source": {"/s"},
				}
				if i%2 == 1 { // structured: the filter buffers the body, and stops at its limit
					h = http.Header{"Content-Type": {"application/cloudevents+json"}}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
				if err != nil {
					codes[i] = err.Error()
					return
				}
				req.Header = h
				resp, err := snd.client.Do(req)
				if err != nil {
					codes[i] = err.Error()
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = fmt.Sprint(resp.StatusCode)
			})
		}
		wg.Wait()
		for i, c := range codes {
			if c != "413" {
				t.Errorf("round %d: oversized event %d: %s, want 413", round, i, c)
			}
		}
	}
	// The filter still validates and tags events: a good one is delivered, a bad one refused.
	if code, body, err := snd.send(url, newEvent("good", "t", "/s", ""), false); err != nil || code != http.StatusAccepted {
		t.Fatalf("good event after the oversized ones: %d %s %v", code, body, err)
	}
	if code, body, err := snd.post(url, http.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}}, `{}`); err != nil || code != http.StatusBadRequest || !strings.Contains(body, `"attribute":"id"`) {
		t.Errorf("event without id after the oversized ones: %d %s %v, want the filter's 400", code, body, err)
	}
	eventually(t, 30*time.Second, "the good event delivered", func() bool { return rec.accepted("/all")["good"] == 1 })
	if got := rec.accepted("/all"); len(got) != 1 {
		t.Errorf("delivered %v, want only the good event", got)
	}
}
