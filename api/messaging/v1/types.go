// Package v1 holds Knative's messaging.knative.dev/v1 Channel, InMemoryChannel and
// Subscription as Skiff accepts them: Knative's field names, defaults, validation and
// status. Skiff's channel is durable (NATS JetStream, like its broker) whatever its kind
// says; InMemoryChannel keeps its name for compatibility.
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
)

// GroupVersion is the apiVersion of the messaging kinds.
const GroupVersion = "messaging.knative.dev/v1"

// Kinds of this API group.
const (
	KindChannel         = "Channel"
	KindInMemoryChannel = "InMemoryChannel"
	KindSubscription    = "Subscription"
)

// SubscribableDuckVersionAnnotation declares which version of the Subscribable duck type a
// channel implements; Knative's webhook sets it to "v1" on every channel.
const SubscribableDuckVersionAnnotation = "messaging.knative.dev/subscribable"

// Condition types of channels (Knative's chCondSet and imcCondSet).
const (
	ChannelConditionBackingChannelReady    duck.ConditionType = "BackingChannelReady"
	ChannelConditionAddressable            duck.ConditionType = "Addressable"
	ChannelConditionDeadLetterSinkResolved duck.ConditionType = "DeadLetterSinkResolved"
	ChannelConditionEventPoliciesReady     duck.ConditionType = "EventPoliciesReady"

	InMemoryChannelConditionServiceReady        duck.ConditionType = "ServiceReady"
	InMemoryChannelConditionEndpointsReady      duck.ConditionType = "EndpointsReady"
	InMemoryChannelConditionChannelServiceReady duck.ConditionType = "ChannelServiceReady"
)

// Condition types of subscriptions (Knative's SubCondSet).
const (
	SubscriptionConditionReferencesResolved  duck.ConditionType = "ReferencesResolved"
	SubscriptionConditionAddedToChannel      duck.ConditionType = "AddedToChannel"
	SubscriptionConditionChannelReady        duck.ConditionType = "ChannelReady"
	SubscriptionConditionOIDCIdentityCreated duck.ConditionType = "OIDCIdentityCreated"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;messaging;channel,shortName=ch
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.address.url"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// Channel is Knative's generic channel: it creates a backing channel of
// spec.channelTemplate's kind (in Skiff, an InMemoryChannel) and reports its status.
type Channel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ChannelSpec   `json:"spec,omitempty"`
	Status            ChannelStatus `json:"status,omitempty"`
}

// ChannelSpec is the template of the backing channel, and what every channel has.
type ChannelSpec struct {
	// ChannelTemplate says which kind of channel backs this one; the webhook defaults it
	// to InMemoryChannel.
	ChannelTemplate *ChannelTemplateSpec `json:"channelTemplate,omitempty"`
	ChannelableSpec `json:",inline"`
}

// ChannelStatus is a channel's status plus the reference to its backing channel.
type ChannelStatus struct {
	ChannelableStatus `json:",inline"`
	// Channel is the backing channel.
	Channel *eventingv1.KReference `json:"channel,omitempty"`
}

// ChannelTemplateSpec is the kind (apiVersion, kind) and spec of a channel to create.
type ChannelTemplateSpec struct {
	metav1.TypeMeta `json:",inline"`
	// Spec is the created channel's spec, merged with the creator's delivery.
	// +kubebuilder:pruning:PreserveUnknownFields
	Spec *runtime.RawExtension `json:"spec,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;messaging;channel,shortName=imc
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.address.url"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// InMemoryChannel is Knative's default channel kind. In Skiff its events are stored in
// NATS JetStream and survive restarts; the name is kept for compatibility.
type InMemoryChannel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              InMemoryChannelSpec   `json:"spec,omitempty"`
	Status            InMemoryChannelStatus `json:"status,omitempty"`
}

// InMemoryChannelSpec is the Channelable duck type's spec.
type InMemoryChannelSpec struct {
	ChannelableSpec `json:",inline"`
}

// InMemoryChannelStatus is the Channelable duck type's status.
type InMemoryChannelStatus struct {
	ChannelableStatus `json:",inline"`
}

// ChannelableSpec is Knative's Channelable duck spec: the subscribers (written by the
// Subscription reconciler, never by users) and the default delivery.
type ChannelableSpec struct {
	SubscribableSpec `json:",inline"`
	// Delivery is the default of subscriptions that set none.
	Delivery *eventingv1.DeliverySpec `json:"delivery,omitempty"`
}

// SubscribableSpec lists a channel's subscribers.
type SubscribableSpec struct {
	Subscribers []SubscriberSpec `json:"subscribers,omitempty"`
}

// SubscriberSpec is one Subscription as its channel sees it, with URIs resolved.
type SubscriberSpec struct {
	// Name is the Subscription's name.
	Name *string `json:"name,omitempty"`
	// UID is the Subscription's UID, the key of this entry.
	UID types.UID `json:"uid,omitempty"`
	// Generation is the Subscription's generation this entry was made from.
	Generation         int64   `json:"generation,omitempty"`
	SubscriberURI      string  `json:"subscriberUri,omitempty"`
	SubscriberCACerts  *string `json:"subscriberCACerts,omitempty"`
	SubscriberAudience *string `json:"subscriberAudience,omitempty"`
	ReplyURI           string  `json:"replyUri,omitempty"`
	ReplyCACerts       *string `json:"replyCACerts,omitempty"`
	ReplyAudience      *string `json:"replyAudience,omitempty"`
	// Delivery is the subscription's delivery, dead letter sink resolved to a URI.
	Delivery *eventingv1.DeliverySpec `json:"delivery,omitempty"`
}

// ChannelableStatus is Knative's Channelable duck status.
type ChannelableStatus struct {
	duck.Status `json:",inline"`
	// Address is where events are sent to the channel.
	Address *duck.Addressable `json:"address,omitempty"`
	// Addresses lists the channel's addresses (Skiff has one, plain HTTP).
	Addresses []duck.Addressable `json:"addresses,omitempty"`
	// Subscribers says, per subscriber UID, whether the data plane delivers to it.
	Subscribers []SubscriberStatus `json:"subscribers,omitempty"`
	// DeadLetterSinkURI is the resolved spec.delivery.deadLetterSink.
	DeadLetterSinkURI string `json:"deadLetterSinkUri,omitempty"`
}

// SubscriberStatus is the data plane's view of one subscriber.
type SubscriberStatus struct {
	UID                types.UID            `json:"uid,omitempty"`
	ObservedGeneration int64                `json:"observedGeneration,omitempty"`
	Ready              duck.ConditionStatus `json:"ready,omitempty"`
	Message            string               `json:"message,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;messaging,shortName=sub
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// Subscription delivers every event of one channel to a subscriber, and the
// subscriber's replies to reply.
type Subscription struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              SubscriptionSpec   `json:"spec"`
	Status            SubscriptionStatus `json:"status,omitempty"`
}

// SubscriptionSpec names the channel, the subscriber, where replies go and how hard to try.
type SubscriptionSpec struct {
	// Channel is the channel the events come from (immutable in Knative).
	Channel eventingv1.KReference `json:"channel"`
	// Subscriber receives every event of the channel.
	Subscriber *eventingv1.Destination `json:"subscriber,omitempty"`
	// Reply receives the subscriber's reply events.
	Reply *eventingv1.Destination `json:"reply,omitempty"`
	// Delivery overrides the channel's delivery.
	Delivery *eventingv1.DeliverySpec `json:"delivery,omitempty"`
}

// SubscriptionStatus is what Knative reports for a Subscription.
type SubscriptionStatus struct {
	duck.Status `json:",inline"`
	// PhysicalSubscription is the resolved subscriber, reply and dead letter sink.
	PhysicalSubscription PhysicalSubscription `json:"physicalSubscription,omitempty"`
}

// PhysicalSubscription is a Subscription with every destination resolved to a URI.
type PhysicalSubscription struct {
	SubscriberURI      string  `json:"subscriberUri,omitempty"`
	SubscriberCACerts  *string `json:"subscriberCACerts,omitempty"`
	SubscriberAudience *string `json:"subscriberAudience,omitempty"`
	ReplyURI           string  `json:"replyUri,omitempty"`
	ReplyCACerts       *string `json:"replyCACerts,omitempty"`
	ReplyAudience      *string `json:"replyAudience,omitempty"`
	DeadLetterSinkURI  string  `json:"deadLetterSinkUri,omitempty"`
}
