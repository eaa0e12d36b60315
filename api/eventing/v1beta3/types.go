// Package v1beta3 holds Knative's eventing.knative.dev/v1beta3 EventType, the event
// registry's entry for one kind of CloudEvent, as Skiff accepts it: Knative's field names,
// defaults, validation and conditions (knative.dev/eventing pkg/apis/eventing/v1beta3).
package v1beta3

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
)

// GroupVersion is the apiVersion of EventType.
const GroupVersion = "eventing.knative.dev/v1beta3"

// KindEventType is the EventType kind.
const KindEventType = "EventType"

// EventTypeConditionReferenceExists says whether spec.reference names an object that
// exists; Ready follows it (Knative's eventTypeCondSet).
const EventTypeConditionReferenceExists duck.ConditionType = "ReferenceExists"

// Reasons Knative's eventtype reconciler gives on ReferenceExists (eventtype_lifecycle.go).
const (
	ReasonReferenceNotSet       = "ReferenceNotSet"
	ReasonResourceDoesNotExist  = "ResourceDoesNotExist"
	ReasonReferenceGetFailed    = "ReferenceGetFailed"
	MessageReferenceNotSet      = "spec.reference is not set"
	MessageResourceDoesNotExist = "Resource in spec.reference does not exist"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;eventing
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=".spec.attributes[?(@.name=='type')].value"
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=".spec.attributes[?(@.name=='source')].value"
// +kubebuilder:printcolumn:name="Reference Name",type=string,JSONPath=".spec.reference.name"
// +kubebuilder:printcolumn:name="Reference Kind",type=string,JSONPath=".spec.reference.kind"
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=".spec.description"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// EventType registers one kind of event (its CloudEvent attributes) and where it can be
// consumed from (a Broker, Channel or other object in spec.reference).
type EventType struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              EventTypeSpec   `json:"spec,omitempty"`
	Status            EventTypeStatus `json:"status,omitempty"`
}

// EventTypeSpec is the event's attributes, where it is available, and a description.
type EventTypeSpec struct {
	// Reference is the object events of this type can be consumed from, e.g. a Broker.
	Reference *KReference `json:"reference,omitempty"`
	// Description is for humans.
	Description string `json:"description,omitempty"`
	// Attributes are the CloudEvent attributes of the event: type, source, specversion and
	// id must be listed; extensions may be.
	// +optional
	Attributes []EventAttributeDefinition `json:"attributes"`
}

// EventAttributeDefinition is one CloudEvent attribute of an EventType.
type EventAttributeDefinition struct {
	// Name is the attribute's name, e.g. "type".
	Name string `json:"name"`
	// Required says every event of the type carries the attribute.
	// +optional
	Required bool `json:"required"`
	// Value is the attribute's value or template, e.g. "dev.knative.example".
	Value string `json:"value,omitempty"`
}

// KReference is knative.dev/pkg's duck KReference as an EventType's spec.reference takes
// it: kind and name, or an address.
type KReference struct {
	// +optional
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	// +optional
	Name       string  `json:"name"`
	APIVersion string  `json:"apiVersion,omitempty"`
	Group      string  `json:"group,omitempty"`
	Address    *string `json:"address,omitempty"`
}

// IsEmpty says no field of the reference is set: Knative's reconciler treats it as no
// reference (isEmptyReference).
func (r *KReference) IsEmpty() bool {
	return r == nil || (r.Kind == "" && r.Group == "" && r.Name == "" && r.APIVersion == "" && r.Namespace == "" &&
		(r.Address == nil || *r.Address == ""))
}

// EventTypeStatus is what Knative reports for an EventType: Ready and ReferenceExists.
type EventTypeStatus struct {
	duck.Status `json:",inline"`
}
