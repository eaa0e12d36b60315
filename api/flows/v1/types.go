// Package v1 holds Knative's flows.knative.dev/v1 Sequence and Parallel as Skiff accepts
// them: Knative's field names, defaults, validation and status. Both are built from
// channels and subscriptions (api/messaging/v1), as Knative builds them.
package v1

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	"github.com/skiff-dev/skiff/api/fielderr"
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
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
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
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
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
// channel template and the namespaces of the steps' and the reply's references (no delivery
// defaults, as in Knative).
func (s *Sequence) SetDefaults(ctx context.Context) {
	s.APIVersion, s.Kind = GroupVersion, KindSequence
	if s.Spec.ChannelTemplate == nil {
		s.Spec.ChannelTemplate = messagingv1.DefaultChannelTemplate()
	}
	ctx = admission.WithinParent(ctx, s.ObjectMeta)
	for i := range s.Spec.Steps {
		s.Spec.Steps[i].Destination.SetDefaults(ctx)
	}
	s.Spec.Reply.SetDefaults(ctx)
}

// SetDefaults fills in what Knative's webhook fills in (parallel_defaults.go): the default
// channel template and the namespaces of references.
func (p *Parallel) SetDefaults(ctx context.Context) {
	p.APIVersion, p.Kind = GroupVersion, KindParallel
	if p.Spec.ChannelTemplate == nil {
		p.Spec.ChannelTemplate = messagingv1.DefaultChannelTemplate()
	}
	ctx = admission.WithinParent(ctx, p.ObjectMeta)
	for i := range p.Spec.Branches {
		b := &p.Spec.Branches[i]
		b.Filter.SetDefaults(ctx)
		b.Subscriber.SetDefaults(ctx)
		b.Reply.SetDefaults(ctx)
	}
	p.Spec.Reply.SetDefaults(ctx)
}

// Validate checks a Sequence (sequence_validation.go): at least one step, each a valid
// destination and delivery, a channel template with a kind, a valid reply.
func (s *Sequence) Validate(ctx context.Context) *fielderr.Error {
	return s.Spec.validate(ctx).ViaField("spec")
}

func (ss *SequenceSpec) validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if len(ss.Steps) == 0 {
		errs = errs.Also(fielderr.Missing("steps"))
	}
	for i := range ss.Steps {
		st := &ss.Steps[i]
		if e := st.Destination.Validate(ctx).Also(st.Delivery.Validate(ctx).ViaField("delivery")); e != nil {
			errs = errs.Also(invalidElement(st, "steps", i, e))
		}
	}
	if ss.ChannelTemplate == nil {
		errs = errs.Also(fielderr.Missing("channelTemplate"))
	} else {
		errs = errs.Also(messagingv1.ValidateChannelTemplate(ss.ChannelTemplate).ViaField("channelTemplate"))
	}
	return errs.Also(ss.Reply.Validate(ctx).ViaField("reply"))
}

// Validate checks a Parallel (parallel_validation.go): at least one branch, each with a
// valid filter, subscriber and reply, a channel template with a kind, a valid reply.
func (p *Parallel) Validate(ctx context.Context) *fielderr.Error {
	return p.Spec.validate(ctx).ViaField("spec")
}

func (ps *ParallelSpec) validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if len(ps.Branches) == 0 {
		errs = errs.Also(fielderr.Missing("branches"))
	}
	for i := range ps.Branches {
		b := &ps.Branches[i]
		if e := b.Filter.Validate(ctx); e != nil {
			errs = errs.Also(invalidElement(b, "branches.filter", i, e.ViaField("filter")))
		}
		if e := b.Subscriber.Validate(ctx); e != nil {
			errs = errs.Also(invalidElement(b, "branches.subscriber", i, e.ViaField("subscriber")))
		}
		if e := b.Reply.Validate(ctx); e != nil {
			errs = errs.Also(invalidElement(b, "branches.reply", i, e.ViaField("reply")))
		}
		// Knative does not check a branch's delivery here (the Subscription made from it
		// is refused later); Skiff refuses it with the Parallel.
		if e := b.Delivery.Validate(ctx); e != nil {
			errs = errs.Also(invalidElement(b, "branches.delivery", i, e.ViaField("delivery")))
		}
	}
	if ps.ChannelTemplate == nil {
		return errs.Also(fielderr.Missing("channelTemplate"))
	}
	if ps.ChannelTemplate.APIVersion == "" {
		errs = errs.Also(fielderr.Missing("channelTemplate.apiVersion"))
	}
	if ps.ChannelTemplate.Kind == "" {
		errs = errs.Also(fielderr.Missing("channelTemplate.kind"))
	}
	return errs.Also(ps.Reply.Validate(ctx).ViaField("reply"))
}

// invalidElement is Knative's ErrInvalidArrayValue(element, field, i) for a step or branch
// that is not valid. Knative prints the element with Go's %v (pointers as addresses) and no
// reason; Skiff prints it as JSON, with the reason (what is wrong inside it) as the details.
func invalidElement(element any, field string, i int, why *fielderr.Error) *fielderr.Error {
	b, _ := json.Marshal(element)
	return fielderr.Invalid(string(b), fmt.Sprintf("%s[%d]", field, i), why.Error())
}
