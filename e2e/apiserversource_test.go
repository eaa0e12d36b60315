package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// In `skiff up` an ApiServerSource watches Skiff's own resources through its store: a
// Knative Service created and deleted gives Knative's dev.knative.apiserver.ref.add and
// .ref.delete events (Reference mode), and, from a second source in Resource mode, the
// object itself; an update in between is dev.knative.apiserver.resource.update.
func TestApiServerSourceLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, nil)
	s.apply(fmt.Sprintf(`apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata:
  name: refs
spec:
  resources:
    - apiVersion: serving.knative.dev/v1
      kind: Service
  sink: {uri: %s}
---
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata:
  name: objects
spec:
  mode: Resource
  resources:
    - apiVersion: serving.knative.dev/v1
      kind: Service
      selector:
        matchLabels: {watched: "yes"}
  ceOverrides:
    extensions: {team: blue}
  sink: {uri: %s}
`, rec.url("/refs"), rec.url("/objects")))
	var src sourcesv1.ApiServerSource
	s.waitReady("apiserversource", "refs", &src)
	s.waitReady("apiserversource", "objects", nil)
	if src.Status.SinkURI != rec.url("/refs") || len(src.Status.Namespaces) != 1 || src.Status.Namespaces[0] != "default" {
		t.Errorf("status %+v", src.Status)
	}
	s.apply(serviceYAML("watched", "x", "") + "---\n" + serviceYAML("ignored", "x", ""))
	// The label makes one of them selected by the Resource-mode source.
	s.apply(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: watched
  labels: {watched: "yes"}
spec:
  template:
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/echo
`)
	eventually(t, 30*time.Second, "ref.add events for both Services", func() bool {
		n := 0
		for _, ev := range rec.events("/refs") {
			if ev.Type() == "dev.knative.apiserver.ref.add" {
				n++
			}
		}
		return n == 2
	})
	if err := s.api.Delete(context.Background(), api.LookupKind("ksvc"), "default", "watched"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the ref.delete event", func() bool {
		for _, ev := range rec.events("/refs") {
			if ev.Type() == "dev.knative.apiserver.ref.delete" && ev.Extensions()["name"] == "watched" {
				var ref struct{ Kind, Namespace, Name, APIVersion string }
				return json.Unmarshal(ev.Data(), &ref) == nil && ref.Kind == "Service" && ref.Name == "watched" &&
					ref.APIVersion == "serving.knative.dev/v1" && ev.Subject() == "/apis/serving.knative.dev/v1/namespaces/default/services/watched"
			}
		}
		return false
	})
	eventually(t, 30*time.Second, "the Resource-mode delete event with the object", func() bool {
		for _, ev := range rec.events("/objects") {
			if ev.Type() == "dev.knative.apiserver.resource.delete" {
				var obj struct {
					Metadata struct{ Name string } `json:"metadata"`
					Spec     map[string]any        `json:"spec"`
				}
				return json.Unmarshal(ev.Data(), &obj) == nil && obj.Metadata.Name == "watched" && obj.Spec["template"] != nil &&
					ev.Extensions()["team"] == "blue"
			}
		}
		return false
	})
	for _, ev := range rec.events("/objects") {
		if ev.Extensions()["name"] != "watched" {
			t.Errorf("the Resource-mode source, selecting watched=yes, sent %s about %v", ev.Type(), ev.Extensions()["name"])
		}
		if ev.Source() != "http://"+s.cp.APIAddr().String() {
			t.Errorf("event source %q, want the API's URL", ev.Source())
		}
	}
}
