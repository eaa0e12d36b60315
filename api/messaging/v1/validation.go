package v1

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/skiff-dev/skiff/api/admission"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// Knative Eventing's webhook rules for Channel, InMemoryChannel and Subscription
// (knative.dev/eventing pkg/apis/messaging/v1 *_defaults.go, *_validation.go), with
// Knative's paths and messages.

// ScopeAnnotation is Knative's eventing.knative.dev/scope annotation, which an
// InMemoryChannel may carry with "cluster" or "namespace" (Skiff runs every channel the same).
const ScopeAnnotation = "eventing.knative.dev/scope"

// DefaultChannelTemplate is the channel kind Knative's default-ch-webhook configuration
// names when a Channel, Sequence or Parallel gives none.
func DefaultChannelTemplate() *ChannelTemplateSpec {
	t := &ChannelTemplateSpec{}
	t.APIVersion, t.Kind = GroupVersion, KindInMemoryChannel
	return t
}

// SetDefaults fills in what Knative's webhook fills in on a Channel (channel_defaults.go):
// the subscribable duck version annotation, the default channel template and, with it, the
// dead letter sink's namespace.
func (c *Channel) SetDefaults(ctx context.Context) {
	c.APIVersion, c.Kind = GroupVersion, KindChannel
	setDuckAnnotation(&c.Annotations)
	ctx = admission.WithinParent(ctx, c.ObjectMeta)
	// As Knative's ChannelSpec.SetDefaults: a template given by the user ends the defaulting
	// there, before the delivery's.
	if c.Spec.ChannelTemplate != nil {
		return
	}
	c.Spec.ChannelTemplate = DefaultChannelTemplate()
	c.Spec.Delivery.SetDefaults(ctx)
}

// SetDefaults fills in what Knative's webhook fills in on an InMemoryChannel
// (in_memory_channel_defaults.go): the duck version annotation and the dead letter sink's
// namespace.
func (c *InMemoryChannel) SetDefaults(ctx context.Context) {
	c.APIVersion, c.Kind = GroupVersion, KindInMemoryChannel
	setDuckAnnotation(&c.Annotations)
	c.Spec.Delivery.SetDefaults(admission.WithinParent(ctx, c.ObjectMeta))
}

// SetDefaults fills in the namespaces of the Subscription's references
// (subscription_defaults.go: destinations default to the parent's namespace).
func (s *Subscription) SetDefaults(ctx context.Context) {
	s.APIVersion, s.Kind = GroupVersion, KindSubscription
	ctx = admission.WithinParent(ctx, s.ObjectMeta)
	s.Spec.Subscriber.SetDefaults(ctx)
	s.Spec.Reply.SetDefaults(ctx)
	s.Spec.Delivery.SetDefaults(ctx)
}

func setDuckAnnotation(a *map[string]string) {
	if *a == nil {
		*a = map[string]string{}
	}
	if _, ok := (*a)[SubscribableDuckVersionAnnotation]; !ok {
		(*a)[SubscribableDuckVersionAnnotation] = "v1"
	}
}

// Validate checks a Channel (channel_validation.go): a channel template naming a kind, no
// subscribers (they are the backing channel's), a valid delivery; on update, an unchanged
// spec but for the subscribers.
func (c *Channel) Validate(ctx context.Context) *fielderr.Error {
	errs := c.Spec.validate(admission.WithinParent(ctx, c.ObjectMeta)).ViaField("spec")
	if old, ok := admission.Baseline(ctx).(*Channel); ok && admission.IsInUpdate(ctx) {
		a, b := old.Spec, c.Spec
		a.Subscribers, b.Subscribers = nil, nil
		if !equality.Semantic.DeepEqual(a, b) {
			errs = errs.Also(&fielderr.Error{Message: "Immutable fields changed (-old +new)", Paths: []string{"spec"}, Details: diff(a, b)})
		}
	}
	return errs
}

func (cs *ChannelSpec) validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if cs.ChannelTemplate == nil {
		// The Channel defaulter is expected to set this, not the users.
		errs = errs.Also(fielderr.Missing("channelTemplate"))
	} else {
		errs = errs.Also(ValidateChannelTemplate(cs.ChannelTemplate).ViaField("channelTemplate"))
	}
	if len(cs.Subscribers) > 0 {
		errs = errs.Also(fielderr.Disallowed("subscribers").ViaField("subscribable"))
	}
	return errs.Also(cs.Delivery.Validate(ctx).ViaField("delivery"))
}

// ValidateChannelTemplate checks a channel template names a kind (IsValidChannelTemplate).
func ValidateChannelTemplate(t *ChannelTemplateSpec) *fielderr.Error {
	var errs *fielderr.Error
	if t.Kind == "" {
		errs = errs.Also(fielderr.Missing("kind"))
	}
	if t.APIVersion == "" {
		errs = errs.Also(fielderr.Missing("apiVersion"))
	}
	return errs
}

// Validate checks an InMemoryChannel (in_memory_channel_validation.go): every subscriber has
// a subscriberUri or a replyUri, and the scope annotation is "cluster" or "namespace".
// Knative also refuses, on update, a change of spec.subscribers by anyone but its
// eventing-controller's ServiceAccount; Skiff does not check who writes them (its local API
// keeps the stored subscribers when a manifest is applied again, see apiserver).
func (c *InMemoryChannel) Validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	for i, s := range c.Spec.Subscribers {
		if s.ReplyURI == "" && s.SubscriberURI == "" {
			fe := fielderr.Missing("replyURI", "subscriberURI")
			fe.Details = "expected at least one of, got none"
			errs = errs.Also(fe.ViaField(fmt.Sprintf("subscriber[%d]", i)).ViaField("subscribable"))
		}
	}
	errs = errs.ViaField("spec")
	if scope, ok := c.Annotations[ScopeAnnotation]; ok && scope != "namespace" && scope != "cluster" {
		errs = errs.Also(fielderr.Invalid(scope, fielderr.Current, "expected either 'cluster' or 'namespace'").
			ViaFieldKey("annotations", ScopeAnnotation).ViaField("metadata"))
	}
	// Knative does not check an InMemoryChannel's delivery; Skiff does (as a Channel's), since
	// its dispatcher runs it and cannot run a bad one.
	return errs.Also(c.Spec.Delivery.Validate(ctx).ViaField("spec", "delivery"))
}

// Validate checks a Subscription (subscription_validation.go): a channel reference with
// name, kind and apiVersion and no namespace, a subscriber, and valid reply and delivery; on
// update, an unchanged channel.
func (s *Subscription) Validate(ctx context.Context) *fielderr.Error {
	errs := s.Spec.validate(ctx).ViaField("spec")
	if old, ok := admission.Baseline(ctx).(*Subscription); ok && admission.IsInUpdate(ctx) {
		// Only the subscriber, reply and delivery may change.
		if !equality.Semantic.DeepEqual(old.Spec.Channel, s.Spec.Channel) {
			a, b := SubscriptionSpec{Channel: old.Spec.Channel}, SubscriptionSpec{Channel: s.Spec.Channel}
			errs = errs.Also(&fielderr.Error{Message: "Immutable fields changed (-old +new)", Paths: []string{"spec"}, Details: diff(a, b)})
		}
	}
	return errs
}

func (ss *SubscriptionSpec) validate(ctx context.Context) *fielderr.Error {
	if equality.Semantic.DeepEqual(ss.Channel, eventingv1.KReference{}) {
		fe := fielderr.Missing("channel")
		fe.Details = "the Subscription must reference a channel"
		return fe
	}
	errs := ValidateChannelRef(ctx, ss.Channel).ViaField("channel")
	if DestinationIsEmpty(ss.Subscriber) {
		fe := fielderr.Missing("subscriber")
		fe.Details = "the Subscription must reference a subscriber"
		errs = errs.Also(fe)
	} else {
		errs = errs.Also(ss.Subscriber.Validate(ctx).ViaField("subscriber"))
	}
	if !DestinationIsEmpty(ss.Reply) {
		errs = errs.Also(ss.Reply.Validate(ctx).ViaField("reply"))
	}
	return errs.Also(ss.Delivery.Validate(ctx).ViaField("delivery"))
}

// ValidateChannelRef checks a reference to a channel (isValidChannel): name, kind and
// apiVersion set, and no namespace (Knative's cross-namespace event links are off by default,
// and Skiff has no such setting).
func ValidateChannelRef(ctx context.Context, r eventingv1.KReference) *fielderr.Error {
	errs := r.Validate(ctx, false)
	if r.Namespace != "" {
		fe := fielderr.Disallowed("namespace")
		fe.Details = "only name, apiVersion and kind are supported fields when feature.CrossNamespaceEventLinks is disabled"
		errs = errs.Also(fe)
	}
	return errs
}

// DestinationIsEmpty reports whether d is nil or has nothing set.
func DestinationIsEmpty(d *eventingv1.Destination) bool {
	return d == nil || equality.Semantic.DeepEqual(*d, eventingv1.Destination{})
}

// diff is the details of an "Immutable fields changed" error (Knative prints a go-cmp
// diff there; Skiff the two values).
func diff(a, b any) string {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return fmt.Sprintf("-: %s\n+: %s\n", x, y)
}
