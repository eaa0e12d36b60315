package v1

import (
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
)

// DefaultChannelTemplate is the channel kind Knative's default-ch-webhook configuration
// names when a Channel, Sequence or Parallel gives none.
func DefaultChannelTemplate() *ChannelTemplateSpec {
	t := &ChannelTemplateSpec{}
	t.APIVersion, t.Kind = GroupVersion, KindInMemoryChannel
	return t
}

// SetDefaults fills in what Knative's webhook fills in on a Channel (channel_defaults.go):
// the subscribable duck version annotation and the default channel template.
func (c *Channel) SetDefaults() {
	c.APIVersion, c.Kind = GroupVersion, KindChannel
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	setDuckAnnotation(&c.Annotations)
	if c.Spec.ChannelTemplate == nil {
		c.Spec.ChannelTemplate = DefaultChannelTemplate()
	}
	DefaultDelivery(c.Spec.Delivery, c.Namespace)
}

// SetDefaults fills in what Knative's webhook fills in on an InMemoryChannel
// (in_memory_channel_defaults.go).
func (c *InMemoryChannel) SetDefaults() {
	c.APIVersion, c.Kind = GroupVersion, KindInMemoryChannel
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	setDuckAnnotation(&c.Annotations)
	DefaultDelivery(c.Spec.Delivery, c.Namespace)
}

// SetDefaults fills in the namespaces of the Subscription's references
// (subscription_defaults.go: destinations default to the parent's namespace).
func (s *Subscription) SetDefaults() {
	s.APIVersion, s.Kind = GroupVersion, KindSubscription
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	DefaultDestination(s.Spec.Subscriber, s.Namespace)
	DefaultDestination(s.Spec.Reply, s.Namespace)
	DefaultDelivery(s.Spec.Delivery, s.Namespace)
}

func setDuckAnnotation(a *map[string]string) {
	if *a == nil {
		*a = map[string]string{}
	}
	if _, ok := (*a)[SubscribableDuckVersionAnnotation]; !ok {
		(*a)[SubscribableDuckVersionAnnotation] = "v1"
	}
}

// DefaultDestination sets an unset ref namespace to ns, as Knative's Destination.SetDefaults
// does within a parent.
func DefaultDestination(d *eventingv1.Destination, ns string) {
	if d != nil && d.Ref != nil && d.Ref.Namespace == "" {
		d.Ref.Namespace = ns
	}
}

// DefaultDelivery defaults the dead letter sink's namespace (DeliverySpec.SetDefaults).
func DefaultDelivery(d *eventingv1.DeliverySpec, ns string) {
	if d != nil {
		DefaultDestination(d.DeadLetterSink, ns)
	}
}

// Validate checks a defaulted Channel (channel_validation.go); errors name the field.
func (c *Channel) Validate() field.ErrorList {
	errs := ValidateObjectMeta(c.Name, c.Namespace)
	spec := field.NewPath("spec")
	if c.Spec.ChannelTemplate == nil {
		errs = append(errs, field.Required(spec.Child("channelTemplate"), ""))
	} else {
		errs = append(errs, ValidateChannelTemplate(c.Spec.ChannelTemplate, spec.Child("channelTemplate"))...)
	}
	if len(c.Spec.Subscribers) > 0 {
		errs = append(errs, field.Forbidden(spec.Child("subscribers"),
			"a Channel's subscribers are its backing channel's; create Subscriptions instead"))
	}
	return append(errs, c.Spec.Delivery.Validate(spec.Child("delivery"))...)
}

// ValidateChannelTemplate checks a channel template names a kind (IsValidChannelTemplate).
func ValidateChannelTemplate(t *ChannelTemplateSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Kind == "" {
		errs = append(errs, field.Required(p.Child("kind"), ""))
	}
	if t.APIVersion == "" {
		errs = append(errs, field.Required(p.Child("apiVersion"), ""))
	}
	return errs
}

// Validate checks a defaulted InMemoryChannel (in_memory_channel_validation.go): every
// subscriber has a subscriberUri or a replyUri.
func (c *InMemoryChannel) Validate() field.ErrorList {
	errs := ValidateObjectMeta(c.Name, c.Namespace)
	spec := field.NewPath("spec")
	for i, s := range c.Spec.Subscribers {
		if s.SubscriberURI == "" && s.ReplyURI == "" {
			errs = append(errs, field.Required(spec.Child("subscribers").Index(i), "expected at least one of subscriberUri, replyUri, got none"))
		}
	}
	return append(errs, c.Spec.Delivery.Validate(spec.Child("delivery"))...)
}

// Validate checks a defaulted Subscription (subscription_validation.go): a channel
// reference with name, kind and apiVersion in the Subscription's namespace, a subscriber,
// and valid reply and delivery.
func (s *Subscription) Validate() field.ErrorList {
	errs := ValidateObjectMeta(s.Name, s.Namespace)
	spec := field.NewPath("spec")
	if reflect.ValueOf(s.Spec.Channel).IsZero() {
		return append(errs, field.Required(spec.Child("channel"), "the Subscription must reference a channel"))
	}
	errs = append(errs, ValidateChannelRef(s.Spec.Channel, spec.Child("channel"))...)
	if DestinationIsEmpty(s.Spec.Subscriber) {
		errs = append(errs, field.Required(spec.Child("subscriber"), "the Subscription must reference a subscriber"))
	} else {
		errs = append(errs, s.Spec.Subscriber.Validate(spec.Child("subscriber"))...)
	}
	if !DestinationIsEmpty(s.Spec.Reply) {
		errs = append(errs, s.Spec.Reply.Validate(spec.Child("reply"))...)
	}
	return append(errs, s.Spec.Delivery.Validate(spec.Child("delivery"))...)
}

// ValidateChannelRef checks a reference to a channel (isValidChannel): name, kind and
// apiVersion set, and no namespace (cross-namespace event links are off, as by default in
// Knative).
func ValidateChannelRef(r eventingv1.KReference, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	if r.Kind == "" {
		errs = append(errs, field.Required(p.Child("kind"), ""))
	}
	if r.APIVersion == "" {
		errs = append(errs, field.Required(p.Child("apiVersion"), ""))
	}
	if r.Namespace != "" {
		errs = append(errs, field.Forbidden(p.Child("namespace"),
			"only name, apiVersion and kind are supported fields when cross-namespace event links are disabled"))
	}
	return errs
}

// DestinationIsEmpty reports whether d is nil or has nothing set.
func DestinationIsEmpty(d *eventingv1.Destination) bool {
	return d == nil || reflect.ValueOf(*d).IsZero()
}

// ValidateObjectMeta checks a name (DNS-1123 subdomain) and namespace (DNS-1123 label).
func ValidateObjectMeta(name, namespace string) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	if name == "" {
		return append(errs, field.Required(p.Child("name"), "a name is required"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p.Child("name"), name, msg))
	}
	for _, msg := range validation.IsDNS1123Label(namespace) {
		errs = append(errs, field.Invalid(p.Child("namespace"), namespace, msg))
	}
	return errs
}

// CheckSubscriptionUpdate refuses a change of spec.channel (CheckImmutableFields: only the
// subscriber, reply and delivery may change).
func CheckSubscriptionUpdate(old, next *Subscription) field.ErrorList {
	if old == nil || old.Spec.Channel == next.Spec.Channel {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec", "channel"),
		fmt.Sprintf("is immutable (was %s %s): delete the Subscription and create it again", old.Spec.Channel.Kind, old.Spec.Channel.Name))}
}

// CheckChannelUpdate refuses a change of spec.channelTemplate (Channel.CheckImmutableFields).
func CheckChannelUpdate(old, next *Channel) field.ErrorList {
	if old == nil || reflect.DeepEqual(old.Spec.ChannelTemplate, next.Spec.ChannelTemplate) {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec", "channelTemplate"), "is immutable: delete the Channel and create it again")}
}
