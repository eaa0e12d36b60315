package reconciler

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1beta3 "github.com/skiff-dev/skiff/api/eventing/v1beta3"
	networkingv1alpha1 "github.com/skiff-dev/skiff/api/networking/v1alpha1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// TestEventTypeReference: which references Knative's eventtype reconciler (ReconcileKind,
// KReferenceResolver.Resolve) finds, over the kinds Skiff serves: any kind by apiVersion and
// kind, in the reference's namespace (defaulted to the EventType's), a cluster-scoped kind
// whatever the namespace, a group without a version; a missing object is False with
// ResourceDoesNotExist, an unserved kind Unknown with ReferenceGetFailed.
func TestEventTypeReference(t *testing.T) {
	e := newEnv(t)
	e.apply(`apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: theirs, namespace: team}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}`)
	cdc := &networkingv1alpha1.ClusterDomainClaim{ObjectMeta: metav1.ObjectMeta{Name: "example.org"}}
	cdc.APIVersion, cdc.Kind = "networking.internal.knative.dev/v1alpha1", networkingv1alpha1.KindClusterDomainClaim
	cdc.SetDefaults(context.Background())
	if err := e.st.Create(context.Background(), cdc); err != nil {
		t.Fatal(err)
	}
	const attrs = "\n  attributes: [{name: type}, {name: source}, {name: specversion}, {name: id}]"
	for _, c := range []struct {
		name, ref   string
		want        duck.ConditionStatus
		reason, msg string
	}{
		{"broker", "{apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}", duck.True, "", ""},
		{"missing-broker", "{apiVersion: eventing.knative.dev/v1, kind: Broker, name: nope}", duck.False,
			"ResourceDoesNotExist", "Resource in spec.reference does not exist"},
		{"other-namespace", "{apiVersion: eventing.knative.dev/v1, kind: Broker, name: theirs, namespace: team}", duck.True, "", ""},
		{"not-in-own-namespace", "{apiVersion: eventing.knative.dev/v1, kind: Broker, name: theirs}", duck.False, "ResourceDoesNotExist", ""},
		{"wrong-version", "{apiVersion: eventing.knative.dev/v2, kind: Broker, name: default}", duck.Unknown, "ReferenceGetFailed", ""},
		{"group-only", "{group: eventing.knative.dev, kind: Broker, name: default}", duck.True, "", ""},
		{"core-kind", "{apiVersion: v1, kind: ConfigMap, name: cm}", duck.True, "", ""},
		{"cluster-scoped", "{apiVersion: networking.internal.knative.dev/v1alpha1, kind: ClusterDomainClaim, name: example.org}", duck.True, "", ""},
		{"unserved-kind", "{apiVersion: example.com/v1, kind: Thing, name: t}", duck.Unknown, "ReferenceGetFailed",
			`Failed to get reference: no kind "Thing" in "example.com/v1" is served`},
		{"no-reference", "", duck.True, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := "apiVersion: eventing.knative.dev/v1beta3\nkind: EventType\nmetadata: {name: " + c.name + "}\nspec:" + attrs
			if c.ref != "" {
				doc += "\n  reference: " + c.ref
			}
			e.apply(doc)
			err := e.c.reconcile(context.Background(), store.Key{Kind: eventingv1beta3.KindEventType, Namespace: "default", Name: c.name})
			if (err != nil) != (c.want == duck.Unknown) {
				t.Errorf("reconcile: %v", err)
			}
			et := get[eventingv1beta3.EventType](e, eventingv1beta3.KindEventType, c.name)
			ready, ref := cond(&et.Status.Status, duck.ConditionReady), cond(&et.Status.Status, eventingv1beta3.EventTypeConditionReferenceExists)
			if ready.Status != c.want || ready.Reason != c.reason || ref.Status != c.want {
				t.Errorf("Ready %+v, ReferenceExists %+v; want %s %q", ready, ref, c.want, c.reason)
			}
			if c.msg != "" && ready.Message != c.msg {
				t.Errorf("message %q, want %q", ready.Message, c.msg)
			}
			if c.ref == "" && (ref.Reason != "ReferenceNotSet" || ref.Message != "spec.reference is not set") {
				t.Errorf("ReferenceExists %+v, want ReferenceNotSet", ref)
			}
		})
	}
}
