// Package v1 holds Knative's flows.knative.dev/v1 Sequence and Parallel as Skiff accepts
// them: Knative's field names, defaults, validation and status. Both are built from
// channels and subscriptions (api/messaging/v1), as Knative builds them.
package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
)

// GroupVersion is the apiVersion of the flows.
const GroupVersion = "flows.knative.dev/v1"

// Kinds of this API group.
const (
	KindSequence = "Sequence"
	KindParallel = "Parallel"
)

// Condition types of Sequence and Parallel (Knative's sCondSet and pCondSet).
const (
	ConditionChannelsReady      duck.ConditionType = "ChannelsReady"
	ConditionSubscriptionsReady duck.ConditionType = "SubscriptionsReady"
	ConditionAddressable        duck.ConditionType = "Addressable"
	ConditionEventPoliciesReady duck.ConditionType = "EventPoliciesReady"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;flows
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.address.url"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// Sequence sends each event through its steps in order: each step's reply is the next
// step's input, and the last step's reply goes to spec.reply.
type Sequence struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SequenceSpec   `json:"spec,omitempty"`
	Status            SequenceStatus `json:"status,omitempty"`
}

// SequenceSpec is the steps, the channel kind between them and the final reply.
type SequenceSpec struct {
	// Steps are the destinations events go through, in order.
	Steps []SequenceStep `json:"steps"`
	// ChannelTemplate is the kind of the channels created in front of each step.
	ChannelTemplate *messagingv1.ChannelTemplateSpec `json:"channelTemplate,omitempty"`
	// Reply receives the last step's replies.
	Reply *eventingv1.Destination `json:"reply,omitempty"`
}

// SequenceStep is one step: a destination and how hard to try delivering to it.
type SequenceStep struct {
	eventingv1.Destination `json:",inline"`
	Delivery               *eventingv1.DeliverySpec `json:"delivery,omitempty"`
}

// SequenceStatus aggregates the status of the Sequence's channels and subscriptions.
type SequenceStatus struct {
	duck.Status `json:",inline"`
	// SubscriptionStatuses is the Ready condition of each step's Subscription.
	SubscriptionStatuses []SequenceSubscriptionStatus `json:"subscriptionStatuses,omitempty"`
	// ChannelStatuses is the Ready condition of each step's channel.
	ChannelStatuses []SequenceChannelStatus `json:"channelStatuses,omitempty"`
	// Address is the first step's channel's address: where events enter the Sequence.
	Address duck.Addressable `json:"address,omitempty"`
}

// SequenceChannelStatus is one channel and its Ready condition.
type SequenceChannelStatus struct {
	Channel        corev1.ObjectReference `json:"channel"`
	ReadyCondition duck.Condition         `json:"ready"`
}

// SequenceSubscriptionStatus is one subscription and its Ready condition.
type SequenceSubscriptionStatus struct {
	Subscription   corev1.ObjectReference `json:"subscription"`
	ReadyCondition duck.Condition         `json:"ready"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;flows
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.address.url"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// Parallel sends each event to every branch; a branch's filter decides whether its
// subscriber gets it.
type Parallel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ParallelSpec   `json:"spec,omitempty"`
	Status            ParallelStatus `json:"status,omitempty"`
}

// ParallelSpec is the branches, the channel kind and the default reply.
type ParallelSpec struct {
	// Branches each get every event.
	Branches []ParallelBranch `json:"branches"`
	// ChannelTemplate is the kind of the ingress channel and of each branch's channel.
	ChannelTemplate *messagingv1.ChannelTemplateSpec `json:"channelTemplate"`
	// Reply receives the replies of branches that set none.
	Reply *eventingv1.Destination `json:"reply,omitempty"`
}

// ParallelBranch is an optional filter, a subscriber, an optional reply and delivery.
type ParallelBranch struct {
	// Filter receives every event first; only the events it replies with go on to the
	// subscriber. No filter passes every event.
	Filter *eventingv1.Destination `json:"filter,omitempty"`
	// Subscriber receives the events the filter passed.
	Subscriber eventingv1.Destination `json:"subscriber"`
	// Reply receives the subscriber's replies; default spec.reply.
	Reply *eventingv1.Destination `json:"reply,omitempty"`
	// Delivery is the subscriber's delivery.
	Delivery *eventingv1.DeliverySpec `json:"delivery,omitempty"`
}

// ParallelStatus aggregates the status of the Parallel's channels and subscriptions.
type ParallelStatus struct {
	duck.Status `json:",inline"`
	// IngressChannelStatus is the channel events enter by.
	IngressChannelStatus ParallelChannelStatus `json:"ingressChannelStatus"`
	// BranchStatuses is, per branch, its filter subscription, channel and subscription.
	BranchStatuses []ParallelBranchStatus `json:"branchStatuses"`
	// Address is the ingress channel's address.
	Address *duck.Addressable `json:"address,omitempty"`
}

// ParallelBranchStatus is the status of one branch's children.
type ParallelBranchStatus struct {
	FilterSubscriptionStatus ParallelSubscriptionStatus `json:"filterSubscriptionStatus"`
	FilterChannelStatus      ParallelChannelStatus      `json:"filterChannelStatus"`
	SubscriptionStatus       ParallelSubscriptionStatus `json:"subscriberSubscriptionStatus"`
}

// ParallelChannelStatus is one channel and its Ready condition.
type ParallelChannelStatus struct {
	Channel        corev1.ObjectReference `json:"channel"`
	ReadyCondition duck.Condition         `json:"ready"`
}

// ParallelSubscriptionStatus is one subscription and its Ready condition.
type ParallelSubscriptionStatus struct {
	Subscription   corev1.ObjectReference `json:"subscription"`
	ReadyCondition duck.Condition         `json:"ready"`
}

// SetDefaults fills in what Knative's webhook fills in (sequence_defaults.go): the default
// channel template and the namespaces of references.
func (s *Sequence) SetDefaults() {
	s.APIVersion, s.Kind = GroupVersion, KindSequence
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if s.Spec.ChannelTemplate == nil {
		s.Spec.ChannelTemplate = messagingv1.DefaultChannelTemplate()
	}
	for i := range s.Spec.Steps {
		messagingv1.DefaultDestination(&s.Spec.Steps[i].Destination, s.Namespace)
		messagingv1.DefaultDelivery(s.Spec.Steps[i].Delivery, s.Namespace)
	}
	messagingv1.DefaultDestination(s.Spec.Reply, s.Namespace)
}

// SetDefaults fills in what Knative's webhook fills in (parallel_defaults.go).
func (p *Parallel) SetDefaults() {
	p.APIVersion, p.Kind = GroupVersion, KindParallel
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	if p.Spec.ChannelTemplate == nil {
		p.Spec.ChannelTemplate = messagingv1.DefaultChannelTemplate()
	}
	for i := range p.Spec.Branches {
		b := &p.Spec.Branches[i]
		messagingv1.DefaultDestination(b.Filter, p.Namespace)
		messagingv1.DefaultDestination(&b.Subscriber, p.Namespace)
		messagingv1.DefaultDestination(b.Reply, p.Namespace)
		messagingv1.DefaultDelivery(b.Delivery, p.Namespace)
	}
	messagingv1.DefaultDestination(p.Spec.Reply, p.Namespace)
}

// Validate checks a defaulted Sequence (sequence_validation.go): at least one step, each
// a valid destination and delivery, a channel template with a kind, a valid reply.
func (s *Sequence) Validate() field.ErrorList {
	errs := messagingv1.ValidateObjectMeta(s.Name, s.Namespace)
	spec := field.NewPath("spec")
	if len(s.Spec.Steps) == 0 {
		errs = append(errs, field.Required(spec.Child("steps"), "a Sequence needs at least one step"))
	}
	for i := range s.Spec.Steps {
		st := &s.Spec.Steps[i]
		p := spec.Child("steps").Index(i)
		errs = append(errs, st.Destination.Validate(p)...)
		errs = append(errs, st.Delivery.Validate(p.Child("delivery"))...)
	}
	errs = append(errs, validateTemplate(s.Spec.ChannelTemplate, spec.Child("channelTemplate"))...)
	if s.Spec.Reply != nil {
		errs = append(errs, s.Spec.Reply.Validate(spec.Child("reply"))...)
	}
	return errs
}

// Validate checks a defaulted Parallel (parallel_validation.go): at least one branch, each
// with a valid filter, subscriber and reply, a channel template with a kind, a valid reply.
func (p *Parallel) Validate() field.ErrorList {
	errs := messagingv1.ValidateObjectMeta(p.Name, p.Namespace)
	spec := field.NewPath("spec")
	if len(p.Spec.Branches) == 0 {
		errs = append(errs, field.Required(spec.Child("branches"), "a Parallel needs at least one branch"))
	}
	for i := range p.Spec.Branches {
		b := &p.Spec.Branches[i]
		bp := spec.Child("branches").Index(i)
		if b.Filter != nil {
			errs = append(errs, b.Filter.Validate(bp.Child("filter"))...)
		}
		errs = append(errs, b.Subscriber.Validate(bp.Child("subscriber"))...)
		if b.Reply != nil {
			errs = append(errs, b.Reply.Validate(bp.Child("reply"))...)
		}
		errs = append(errs, b.Delivery.Validate(bp.Child("delivery"))...)
	}
	errs = append(errs, validateTemplate(p.Spec.ChannelTemplate, spec.Child("channelTemplate"))...)
	if p.Spec.Reply != nil {
		errs = append(errs, p.Spec.Reply.Validate(spec.Child("reply"))...)
	}
	return errs
}

func validateTemplate(t *messagingv1.ChannelTemplateSpec, p *field.Path) field.ErrorList {
	if t == nil {
		return field.ErrorList{field.Required(p, "")}
	}
	return messagingv1.ValidateChannelTemplate(t, p)
}
