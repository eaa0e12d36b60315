// Package v1 holds Knative's eventing.knative.dev/v1 Broker and Trigger and the shared
// delivery and destination shapes, as Skiff accepts them: Knative's field names, defaults,
// validation and status.
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
)

// GroupVersion is the apiVersion of Broker and Trigger.
const GroupVersion = "eventing.knative.dev/v1"

// Kinds of this API group.
const (
	KindBroker  = "Broker"
	KindTrigger = "Trigger"
)

// Labels and annotations Knative uses on eventing resources.
const (
	// BrokerClassAnnotation names the broker implementation; Skiff answers for any class.
	BrokerClassAnnotation = "eventing.knative.dev/broker.class"
	// BrokerLabel marks a Trigger with its Broker's name.
	BrokerLabel = "eventing.knative.dev/broker"
)

// Condition types of brokers and triggers.
const (
	BrokerConditionIngress       duck.ConditionType = "IngressReady"
	BrokerConditionAddressable   duck.ConditionType = "Addressable"
	TriggerConditionBroker       duck.ConditionType = "BrokerReady"
	TriggerConditionSubscriber   duck.ConditionType = "SubscriberResolved"
	TriggerConditionSubscription duck.ConditionType = "SubscriptionReady"
	TriggerConditionDeadLetter   duck.ConditionType = "DeadLetterSinkResolved"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;eventing
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.address.url"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// +kubebuilder:printcolumn:name="Class",type=string,JSONPath=".metadata.annotations.eventing\\.knative\\.dev/broker\\.class",priority=1
// Broker receives CloudEvents at its address and passes each to the Triggers that match it.
type Broker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BrokerSpec   `json:"spec,omitempty"`
	Status            BrokerStatus `json:"status,omitempty"`
}

// BrokerSpec is a Broker's configuration reference and default delivery.
type BrokerSpec struct {
	// Config refers to the broker's implementation config (accepted, not used by Skiff).
	Config *KReference `json:"config,omitempty"`
	// Delivery is the default for Triggers that set none.
	Delivery *DeliverySpec `json:"delivery,omitempty"`
}

// BrokerStatus is what Knative reports for a Broker.
type BrokerStatus struct {
	duck.Status `json:",inline"`
	Address     duck.Addressable `json:"address,omitempty"`
	// DeliveryStatus carries the resolved dead letter sink.
	DeadLetterSinkURI string `json:"deadLetterSinkUri,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;eventing
// +kubebuilder:printcolumn:name="Broker",type=string,JSONPath=".spec.broker"
// +kubebuilder:printcolumn:name="Subscriber_URI",type=string,JSONPath=".status.subscriberUri"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// Trigger subscribes a destination to the events of one Broker that pass its filters.
type Trigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TriggerSpec   `json:"spec,omitempty"`
	Status            TriggerStatus `json:"status,omitempty"`
}

// TriggerSpec says which broker, which events and where they go.
type TriggerSpec struct {
	// Broker is the name of a Broker in the Trigger's namespace.
	Broker string `json:"broker"`
	// Filter is the legacy exact-match filter on attributes.
	Filter *TriggerFilter `json:"filter,omitempty"`
	// Filters are the new filter dialect; when set, Filter is ignored (as in Knative).
	Filters []SubscriptionsAPIFilter `json:"filters,omitempty"`
	// Subscriber is where matching events are delivered.
	Subscriber Destination `json:"subscriber"`
	// Delivery overrides the Broker's delivery.
	Delivery *DeliverySpec `json:"delivery,omitempty"`
}

// TriggerFilter is spec.filter: every listed attribute must equal its value.
type TriggerFilter struct {
	Attributes map[string]string `json:"attributes,omitempty"`
}

// SubscriptionsAPIFilter is one expression of spec.filters; exactly one field is set.
type SubscriptionsAPIFilter struct {
	All    []SubscriptionsAPIFilter `json:"all,omitempty"`
	Any    []SubscriptionsAPIFilter `json:"any,omitempty"`
	Not    *SubscriptionsAPIFilter  `json:"not,omitempty"`
	Exact  map[string]string        `json:"exact,omitempty"`
	Prefix map[string]string        `json:"prefix,omitempty"`
	Suffix map[string]string        `json:"suffix,omitempty"`
	CESQL  string                   `json:"cesql,omitempty"`
}

// TriggerStatus is what Knative reports for a Trigger.
type TriggerStatus struct {
	duck.Status       `json:",inline"`
	SubscriberURI     string `json:"subscriberUri,omitempty"`
	DeadLetterSinkURI string `json:"deadLetterSinkUri,omitempty"`
}

// Destination is an addressable reference or a URI (or a ref plus a relative URI).
type Destination struct {
	Ref *KReference `json:"ref,omitempty"`
	// URI is a pointer so that `uri: ""` (set, empty) is told from no uri, as Knative's
	// *apis.URL is: its validation refuses the first as a relative URI.
	URI      *string `json:"uri,omitempty"`
	CACerts  string  `json:"CACerts,omitempty"`
	Audience string  `json:"audience,omitempty"`
}

// URIString is the destination's uri, "" when unset.
func (d *Destination) URIString() string {
	if d == nil || d.URI == nil {
		return ""
	}
	return *d.URI
}

// URIOf is a Destination's uri field for u.
func URIOf(u string) *string { return &u }

// KReference points at an object by kind and name.
type KReference struct {
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	APIVersion string `json:"apiVersion,omitempty"`
	Group      string `json:"group,omitempty"`
}

// The content modes of DeliverySpec.Format, as Knative names them.
const (
	DeliveryFormatJSON   = "json"
	DeliveryFormatBinary = "binary"
)

// DeliverySpec is how hard to try delivering and where failures go.
type DeliverySpec struct {
	DeadLetterSink *Destination `json:"deadLetterSink,omitempty"`
	// Retry is the number of retries after the first attempt.
	Retry *int32 `json:"retry,omitempty"`
	// Timeout is each attempt's ISO-8601 duration, e.g. PT10S.
	Timeout *string `json:"timeout,omitempty"`
	// BackoffPolicy is "linear" or "exponential" (default).
	// +kubebuilder:validation:Enum=linear;exponential
	BackoffPolicy *string `json:"backoffPolicy,omitempty"`
	// BackoffDelay is the ISO-8601 base delay, e.g. PT0.2S.
	BackoffDelay *string `json:"backoffDelay,omitempty"`
	// RetryAfterMax caps a Retry-After the subscriber asks for (Knative's
	// delivery-retryafter feature: refused unless Eventing's config-features enables it).
	RetryAfterMax *string `json:"retryAfterMax,omitempty"`
	// Format is the content mode deliveries use: "json" (structured) or "binary";
	// unset, binary.
	Format *string `json:"format,omitempty"`
}
