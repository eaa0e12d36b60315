// Package apiserver is Knative's ApiServerSource adapter for Skiff: it watches the
// resources an ApiServerSource lists and sends a CloudEvent to its sink for every object
// added, updated or deleted, with Knative's event types, attributes and payloads
// (pkg/adapter/apiserver). The watches come from a Backend: the Kubernetes API server
// through client-go reflectors with the source's ServiceAccount's permissions
// (KubeBackend), or, in `skiff up`, Skiff's own store; either feeds the same
// cache.Store delegate, which makes and sends the events.
package apiserver

import (
	"fmt"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Knative's ApiServerSource event types (pkg/apis/sources/constants.go).
const (
	AddEventType       = "dev.knative.apiserver.resource.add"
	UpdateEventType    = "dev.knative.apiserver.resource.update"
	DeleteEventType    = "dev.knative.apiserver.resource.delete"
	AddRefEventType    = "dev.knative.apiserver.ref.add"
	UpdateRefEventType = "dev.knative.apiserver.ref.update"
	DeleteRefEventType = "dev.knative.apiserver.ref.delete"
)

// Change is what happened to an object.
type Change int

// The three changes a watch reports.
const (
	Added Change = iota
	Updated
	Deleted
)

// eventTypes is the event type of each change, in Resource and in Reference mode.
var eventTypes = [3][2]string{
	Added:   {AddEventType, AddRefEventType},
	Updated: {UpdateEventType, UpdateRefEventType},
	Deleted: {DeleteEventType, DeleteRefEventType},
}

// MakeEvent is Knative's event for a change to obj (events.MakeAddEvent and its kin):
// source is the API server's URL; the subject is the object's self link; the extensions
// kind, apiversion, name and namespace copy the object's, so Triggers can filter on them;
// the data is the object (Resource mode) or a reference to it (ref, Reference mode).
func MakeEvent(change Change, source string, obj *unstructured.Unstructured, ref bool) (cloudevents.Event, error) {
	if obj == nil {
		return cloudevents.Event{}, fmt.Errorf("resource can not be nil")
	}
	objRef := corev1.ObjectReference{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Name: obj.GetName(), Namespace: obj.GetNamespace()}
	ev := cloudevents.NewEvent(cloudevents.VersionV1)
	i := 0
	var data any = obj
	if ref {
		i, data = 1, objRef
	}
	ev.SetType(eventTypes[change][i])
	ev.SetSource(source)
	ev.SetSubject(selfLink(objRef))
	ev.SetExtension("kind", objRef.Kind)
	ev.SetExtension("apiversion", objRef.APIVersion)
	ev.SetExtension("name", objRef.Name)
	ev.SetExtension("namespace", objRef.Namespace)
	if err := ev.SetData(cloudevents.ApplicationJSON, data); err != nil {
		return ev, fmt.Errorf("encoding the event's data: %w", err)
	}
	return ev, nil
}

// selfLink is the subject of an event, as Knative's createSelfLink makes it:
// /apis/{apiVersion}/namespaces/{ns}/{guessed plural}/{name}, with "/versionUnknown"
// after a group given without a version.
func selfLink(o corev1.ObjectReference) string {
	gvr, _ := meta.UnsafeGuessKindToResource(o.GroupVersionKind())
	version := o.APIVersion
	if strings.Contains(version, ".") && !strings.Contains(version, "/") {
		version += "/versionUnknown"
	}
	return fmt.Sprintf("/apis/%s/namespaces/%s/%s/%s", version, o.Namespace, gvr.Resource, o.Name)
}
