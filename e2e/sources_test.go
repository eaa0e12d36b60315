package e2e

import (
	"fmt"
	"testing"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// A PingSource whose sink is a Broker emits dev.knative.sources.ping events on its schedule
// (Knative's cron syntax, seconds included); a Trigger delivers them with the source's
// data and extensions.
func TestPingSourceFeedsBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, nil)
	s.apply(fmt.Sprintf(brokerYAML, "default") + fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: pings
spec:
  broker: default
  filter:
    attributes:
      type: dev.knative.sources.ping
  subscriber:
    uri: %s
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata:
  name: every-second
spec:
  schedule: "* * * * * *"
  contentType: application/json
  data: '{"message": "Hello"}'
  ceOverrides:
    extensions:
      team: blue
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: default
`, rec.url("/pings")))
	url := s.brokerReady("default")
	var ps sourcesv1.PingSource
	s.waitReady("pingsource", "every-second", &ps)
	if ps.Status.SinkURI != url {
		t.Errorf("status.sinkUri = %q, want the broker's address %q", ps.Status.SinkURI, url)
	}
	eventually(t, 30*time.Second, "two ping events through the broker", func() bool { return len(rec.accepted("/pings")) >= 2 })
	for _, ev := range rec.events("/pings")[:2] {
		if ev.Source() != "/apis/v1/namespaces/default/pingsources/every-second" || string(ev.Data()) != `{"message": "Hello"}` ||
			ev.Extensions()["team"] != "blue" {
			t.Errorf("ping event %s", ev)
		}
	}
}

// A SinkBinding injects K_SINK (the resolved sink) and K_CE_OVERRIDES into its subject
// Service's containers, which rolls a new Revision, as Knative's webhook does to pod specs.
func TestSinkBindingInjectsSink(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	s.apply(serviceYAML("producer", "bound", ""))
	s.waitReady("ksvc", "producer", nil)
	s.apply(fmt.Sprintf(brokerYAML, "default") + `---
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata:
  name: bind-producer
spec:
  subject:
    apiVersion: serving.knative.dev/v1
    kind: Service
    name: producer
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: default
  ceOverrides:
    extensions:
      origin: producer
`)
	url := s.brokerReady("default")
	s.waitReady("sinkbinding", "bind-producer", nil)
	var svc servingv1.Service
	eventually(t, 30*time.Second, "producer-00002 with K_SINK", func() bool {
		s.waitReady("ksvc", "producer", &svc)
		return svc.Status.LatestReadyRevisionName == "producer-00002"
	})
	env := map[string]string{}
	for _, e := range svc.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["K_SINK"] != url || env["K_CE_OVERRIDES"] != `{"extensions":{"origin":"producer"}}` || env["TARGET"] != "bound" {
		t.Errorf("container env %v, want K_SINK=%s, K_CE_OVERRIDES and the user's TARGET kept", env, url)
	}
	if code, r, body := s.get("producer.default.localhost", "/"); code != 200 || r.Revision != "producer-00002" {
		t.Errorf("request after the binding: %d %s", code, body)
	}
}
