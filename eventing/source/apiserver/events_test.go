package apiserver

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func pod() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "unit", "namespace": "test"},
	}}
}

// Cases from Knative's adapter/apiserver/events/events_test.go (TestMakeAddEvent,
// TestMakeUpdateEvent, TestMakeDeleteEvent and their Ref variants): type, source,
// subject (the self link), the kind/apiversion/name/namespace extensions and the data.
func TestMakeEvent(t *testing.T) {
	const source = "unit-test"
	for _, tc := range []struct {
		name     string
		change   Change
		ref      bool
		wantType string
		wantData string
	}{
		{"add", Added, false, "dev.knative.apiserver.resource.add", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"unit","namespace":"test"}}`},
		{"update", Updated, false, "dev.knative.apiserver.resource.update", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"unit","namespace":"test"}}`},
		{"delete", Deleted, false, "dev.knative.apiserver.resource.delete", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"unit","namespace":"test"}}`},
		{"add ref", Added, true, "dev.knative.apiserver.ref.add", `{"kind":"Pod","namespace":"test","name":"unit","apiVersion":"v1"}`},
		{"update ref", Updated, true, "dev.knative.apiserver.ref.update", `{"kind":"Pod","namespace":"test","name":"unit","apiVersion":"v1"}`},
		{"delete ref", Deleted, true, "dev.knative.apiserver.ref.delete", `{"kind":"Pod","namespace":"test","name":"unit","apiVersion":"v1"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := MakeEvent(tc.change, source, pod(), tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type() != tc.wantType || ev.Source() != source || ev.Subject() != "/apis/v1/namespaces/test/pods/unit" ||
				ev.DataContentType() != "application/json" || string(ev.Data()) != tc.wantData {
				t.Errorf("event %s data %s", ev, ev.Data())
			}
			ext := ev.Extensions()
			if ext["kind"] != "Pod" || ext["apiversion"] != "v1" || ext["name"] != "unit" || ext["namespace"] != "test" {
				t.Errorf("extensions %v", ext)
			}
		})
	}
	if _, err := MakeEvent(Added, source, nil, false); err == nil || err.Error() != "resource can not be nil" {
		t.Errorf("nil resource: %v", err)
	}
	// createSelfLink: a group without a version.
	u := pod()
	u.SetAPIVersion("serving.knative.dev")
	u.SetKind("Service")
	ev, _ := MakeEvent(Added, source, u, true)
	if ev.Subject() != "/apis/serving.knative.dev/versionUnknown/namespaces/test/services/unit" {
		t.Errorf("subject %s", ev.Subject())
	}
}
