package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// A ContainerSource runs Knative's heartbeats sample (examples/heartbeats) with K_SINK
// set to its sink, an event-display Knative Service reached through the gateway (its
// cluster-local address, through the proxy's cluster-local listener), and K_CE_OVERRIDES;
// the beats reach the event-display with the override extensions. A source whose sink does
// not resolve reports it on SinkBindingReady and runs nothing.
func TestContainerSourceReachesEventDisplay(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t), withLocalListener)
	rec := newRecorder(t, nil)
	s.apply(fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: event-display
spec:
  template:
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/event-display
          env:
            - name: FORWARD_URL
              value: %s
---
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata:
  name: heartbeat
spec:
  template:
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/heartbeats
          args: ["--period=200ms", "--label=e2e"]
  ceOverrides:
    extensions:
      team: blue
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: event-display
---
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata:
  name: lost
spec:
  template:
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/heartbeats
  sink:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: nowhere
`, rec.url("/display")))
	var src sourcesv1.ContainerSource
	s.waitReady("containersource", "heartbeat", &src)
	if src.Status.SinkURI != "http://event-display.default.svc.cluster.local" {
		t.Errorf("status.sinkUri = %q", src.Status.SinkURI)
	}
	eventually(t, time.Minute, "3 heartbeats at the event-display", func() bool { return len(rec.accepted("/display")) >= 3 })
	for _, ev := range rec.events("/display")[:3] {
		if ev.Type() != "dev.knative.eventing.samples.heartbeat" || ev.Extensions()["team"] != "blue" || !strings.Contains(string(ev.Data()), `"label":"e2e"`) {
			t.Errorf("heartbeat %s", ev)
		}
	}
	eventually(t, 30*time.Second, "the unresolvable sink reported", func() bool {
		c := s.condition("containersource", "lost", sourcesv1.ContainerSourceConditionSinkBindingReady)
		return c != nil && c.Status == duck.False && strings.Contains(c.Message, "spec.sink") && strings.Contains(c.Message, "nowhere")
	})
	if c := s.condition("containersource", "lost", duck.ConditionReady); c == nil || c.Status != duck.False {
		t.Errorf("Ready of the source without a sink: %+v", c)
	}
}
