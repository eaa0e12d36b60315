package v1beta3

import (
	"context"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
)

func attrs(names ...string) []EventAttributeDefinition {
	var out []EventAttributeDefinition
	for _, n := range names {
		out = append(out, EventAttributeDefinition{Name: n, Value: "v-" + n, Required: true})
	}
	return out
}

// From Knative's v1beta3 eventtype_validation_test.go, TestEventTypeValidation: an empty
// EventType misses all four required attributes, under spec.attributes.
func TestEventTypeValidation(t *testing.T) {
	got := (&EventType{}).Validate(context.Background())
	want := "missing field(s): spec.attributes.id, spec.attributes.source, spec.attributes.specversion, spec.attributes.type"
	if got == nil || got.Error() != want {
		t.Errorf("Validate() = %v, want %q", got, want)
	}
}

// From Knative's v1beta3 eventtype_validation_test.go, TestEventTypeSpecValidation.
func TestEventTypeSpecValidation(t *testing.T) {
	broker := &KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "test-broker"}
	cases := []struct {
		name string
		spec EventTypeSpec
		want string
	}{
		{"invalid/empty eventtype", EventTypeSpec{},
			"missing field(s): attributes.id, attributes.source, attributes.specversion, attributes.type"},
		{"partially invalid eventtype type", EventTypeSpec{Attributes: attrs("source", "specversion", "id")},
			"missing field(s): attributes.type"},
		{"valid eventtype", EventTypeSpec{Reference: broker, Attributes: attrs("type", "source", "specversion", "id")}, ""},
		{"valid eventtype with extensions and optional attributes", EventTypeSpec{Reference: broker,
			Attributes: append(attrs("type", "source", "specversion", "id"),
				EventAttributeDefinition{Name: "subject", Value: "foo.png"},
				EventAttributeDefinition{Name: "customattribute", Value: "value"})}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.spec.Validate(context.Background())
			if (got == nil) != (c.want == "") || (got != nil && got.Error() != c.want) {
				t.Errorf("Validate() = %v, want %q", got, c.want)
			}
		})
	}
}

// From Knative's v1beta3 eventtype_validation_test.go, TestEventTypeImmutableFields: Knative
// defines CheckImmutableFields but its webhook never calls it for EventType, so an update
// that changes the spec is accepted; Skiff does the same.
func TestEventTypeUpdateMayChangeSpec(t *testing.T) {
	et := &EventType{Spec: EventTypeSpec{Attributes: attrs("type", "source", "specversion", "id")}}
	et.Spec.Attributes[0].Value = "other-type"
	if err := et.Validate(context.Background()); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

// From Knative's v1beta3 eventtype_defaults_test.go, TestEventTypeDefaults: the spec is left
// as it is, but for the reference's namespace, which knative.dev/pkg's KReference defaults
// to the parent's.
func TestEventTypeDefaults(t *testing.T) {
	cases := map[string]struct{ in, want EventTypeSpec }{
		"nil spec": {},
		"default broker reference": {
			in:   EventTypeSpec{Reference: &KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default"}, Attributes: attrs("type", "source", "schema")},
			want: EventTypeSpec{Reference: &KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default", Namespace: "ns"}, Attributes: attrs("type", "source", "schema")},
		},
		"reference namespace kept": {
			in:   EventTypeSpec{Reference: &KReference{Kind: "Broker", Name: "b", Namespace: "other"}},
			want: EventTypeSpec{Reference: &KReference{Kind: "Broker", Name: "b", Namespace: "other"}},
		},
		"broker not set": {
			in:   EventTypeSpec{Attributes: []EventAttributeDefinition{{Value: "test-type", Required: true}}},
			want: EventTypeSpec{Attributes: []EventAttributeDefinition{{Value: "test-type", Required: true}}},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			et := &EventType{ObjectMeta: metav1.ObjectMeta{Name: "et", Namespace: "ns"}, Spec: c.in}
			et.SetDefaults(context.Background())
			if !reflect.DeepEqual(et.Spec, c.want) {
				t.Errorf("SetDefaults() spec = %+v, want %+v", et.Spec, c.want)
			}
			if et.APIVersion != GroupVersion || et.Kind != KindEventType {
				t.Errorf("apiVersion, kind = %q, %q", et.APIVersion, et.Kind)
			}
		})
	}
}

type typeStatus struct {
	Type   duck.ConditionType
	Status duck.ConditionStatus
}

func conditions(s *EventTypeStatus) []typeStatus {
	var out []typeStatus
	for _, c := range s.Conditions {
		out = append(out, typeStatus{c.Type, c.Status})
	}
	return out
}

// From Knative's v1beta3 eventtype_lifecycle_test.go, TestEventTypeInitializeConditions.
func TestEventTypeInitializeConditions(t *testing.T) {
	now := time.Now()
	empty := &EventTypeStatus{}
	empty.InitializeConditions(now)
	if got, want := conditions(empty), []typeStatus{{"Ready", duck.Unknown}, {"ReferenceExists", duck.Unknown}}; !reflect.DeepEqual(got, want) {
		t.Errorf("empty: %v, want %v", got, want)
	}
	oneFalse := &EventTypeStatus{}
	oneFalse.MarkFalse(EventTypeConditionReferenceExists, "", "", now)
	oneFalse.InitializeConditions(now)
	if got, want := conditions(oneFalse), []typeStatus{{"Ready", duck.Unknown}, {"ReferenceExists", duck.False}}; !reflect.DeepEqual(got, want) {
		t.Errorf("one false: %v, want %v", got, want)
	}
}

// From Knative's v1beta3 eventtype_lifecycle_test.go, TestEventTypeConditionStatus, with the
// reasons of eventtype_lifecycle.go's Mark functions.
func TestEventTypeConditionStatus(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name       string
		mark       func(*EventTypeStatus)
		want       duck.ConditionStatus
		wantReason string
	}{
		{"reference exists", func(s *EventTypeStatus) { s.MarkReferenceExists(now) }, duck.True, ""},
		{"reference does not exist", func(s *EventTypeStatus) { s.MarkReferenceDoesNotExist(now) }, duck.False, "ResourceDoesNotExist"},
		{"reference not set", func(s *EventTypeStatus) { s.MarkReferenceNotSet(now) }, duck.True, ""},
		{"reference unknown", func(s *EventTypeStatus) { s.MarkReferenceExistsUnknown("ReferenceGetFailed", "boom", now) }, duck.Unknown, "ReferenceGetFailed"},
		{"exists after missing", func(s *EventTypeStatus) { s.MarkReferenceDoesNotExist(now); s.MarkReferenceExists(now) }, duck.True, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &EventTypeStatus{}
			c.mark(s)
			ready := s.GetCondition(duck.ConditionReady)
			if ready == nil || ready.Status != c.want || ready.Reason != c.wantReason {
				t.Errorf("Ready = %+v, want %s (reason %q)", ready, c.want, c.wantReason)
			}
		})
	}
	s := &EventTypeStatus{}
	s.MarkReferenceNotSet(now)
	if c := s.GetCondition(EventTypeConditionReferenceExists); c.Reason != "ReferenceNotSet" || c.Message != "spec.reference is not set" {
		t.Errorf("ReferenceExists = %+v", c)
	}
}
