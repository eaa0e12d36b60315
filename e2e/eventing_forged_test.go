package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// Issue 13, item 3: the broker ingress followed x-skiff-triggers and x-skiff-broker-generation
// from any client that reached it directly (in Kubernetes mode it listens on the pod IP), so a
// forged list delivered an event to a Trigger whose filter does not match. Only the proxy's
// cloudevents filter, which carries the per-start token the control plane gave it over xDS,
// may assert a match now; anyone else gets the filters evaluated.
func TestForgedTriggerListIsNotFollowed(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, nil)
	s.apply(fmt.Sprintf(brokerYAML, "default") + fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: wanted
spec:
  broker: default
  filter:
    attributes:
      type: com.example.a
  subscriber:
    uri: %s
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: other
spec:
  broker: default
  filter:
    attributes:
      type: com.example.b
  subscriber:
    uri: %s
`, rec.url("/wanted"), rec.url("/other")))
	url := s.brokerReady("default")
	s.waitReady("trigger", "wanted", nil)
	s.waitReady("trigger", "other", nil)

	// The generation is no secret: it digests the Triggers' names and filters, which an
	// attacker can read or guess. (Triggers in name order, as the reconciler passes them.)
	gen := broker.BrokerConfig{Namespace: "default", Name: "default", Triggers: []broker.TriggerConfig{
		{Name: "other", Filter: eventfilter.Filter{Attributes: map[string]string{"type": "com.example.b"}}},
		{Name: "wanted", Filter: eventfilter.Filter{Attributes: map[string]string{"type": "com.example.a"}}},
	}}.FilterConfig().Generation
	forge := func(req *http.Request, token string) {
		req.Header.Set(broker.TriggersHeader, "other")
		req.Header.Set(eventfilter.GenerationHeader, gen)
		if token != "" {
			req.Header.Set(eventfilter.TokenHeader, token)
		}
	}
	// Through the gateway: the filter replaces the client's headers.
	gw := newSender(s.http)
	// Straight to the ingress, as a pod in the cluster could.
	direct := newSender(s.cp.BrokerIngressAddr().String())
	for i, c := range []struct {
		via   *sender
		token string
	}{{gw, "guess"}, {direct, ""}, {direct, "guess"}} {
		ev := newEvent(fmt.Sprintf("forged-%d", i), "com.example.a", "/attacker", "")
		req, err := http.NewRequest(http.MethodPost, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeEvent(req, ev); err != nil {
			t.Fatal(err)
		}
		forge(req, c.token)
		if code, body, err := c.via.raw(req); err != nil || code != http.StatusAccepted {
			t.Fatalf("event %s: %d %s %v", ev.ID(), code, body, err)
		}
	}
	// Each event matches one trigger, whichever decided: three stored, three delivered.
	eventually(t, 30*time.Second, "the three events stored and delivered", func() bool {
		st := s.cp.EventingStats()
		return st.Stored == 3 && st.Delivered == 3
	})
	if got := rec.accepted("/other"); len(got) != 0 {
		t.Errorf("the trigger whose filter does not match got %v: a forged list was followed", got)
	}
	if got := rec.accepted("/wanted"); len(got) != 3 {
		t.Errorf("the trigger whose filter matches got %v, want the three events", got)
	}
}

// writeEvent writes ev into req in binary content mode, with sdk-go.
func writeEvent(req *http.Request, ev event.Event) error {
	return cehttp.WriteRequest(context.Background(), binding.ToMessage(&ev), req)
}
