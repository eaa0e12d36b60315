package v1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// check decodes doc strictly into obj, defaults and validates it with prepare, and expects
// an error at each path in want (none when want is empty).
func check(t *testing.T, doc string, obj any, prepare func() field.ErrorList, want ...string) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatal(err)
	}
	errs := prepare()
	if len(want) == 0 {
		if len(errs) > 0 {
			t.Fatalf("valid object refused: %v", errs.ToAggregate())
		}
		return
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors %v, want errors at %v", len(errs), errs.ToAggregate(), want)
	}
	for i, w := range want {
		if errs[i].Field != w {
			t.Errorf("error %d at %q (%v), want %q", i, errs[i].Field, errs[i], w)
		}
	}
}

// Cases from Knative's channel_validation_test.go TestChannelValidation, and
// channel_defaults_test.go TestChannelSetDefaults.
func TestChannelValidation(t *testing.T) {
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid minimal spec", "  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: Channel}\n", nil},
		{"channel template with no kind", "  channelTemplate: {apiVersion: messaging.knative.dev/v1}\n", []string{"spec.channelTemplate.kind"}},
		{"channel template with no apiVersion", "  channelTemplate: {kind: InMemoryChannel}\n", []string{"spec.channelTemplate.apiVersion"}},
		{"invalid subscribers array, not allowed", "  subscribers:\n    - subscriberUri: http://subscriberendpoint\n      replyUri: http://resultendpoint\n", []string{"spec.subscribers"}},
		{"invalid Delivery", "  delivery: {backoffDelay: invalid}\n", []string{"spec.delivery.backoffDelay"}},
		{"valid Delivery", "  delivery: {backoffDelay: PT2S}\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c Channel
			doc := "apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: ch}\nspec:\n" + tc.spec
			check(t, doc, &c, func() field.ErrorList { c.SetDefaults(); return c.Validate() }, tc.want...)
		})
	}
	// "empty": Knative refuses a Channel without a template when no default is configured;
	// Skiff always has the default, so an empty spec gets the InMemoryChannel template.
	var c Channel
	c.Name = "ch"
	c.SetDefaults()
	if c.Spec.ChannelTemplate == nil || c.Spec.ChannelTemplate.Kind != KindInMemoryChannel || c.Spec.ChannelTemplate.APIVersion != GroupVersion ||
		c.Annotations[SubscribableDuckVersionAnnotation] != "v1" {
		t.Errorf("defaults: template %+v annotations %v", c.Spec.ChannelTemplate, c.Annotations)
	}
	c.Spec.ChannelTemplate = nil
	if errs := c.Validate(); len(errs) != 1 || errs[0].Field != "spec.channelTemplate" {
		t.Errorf("nil template: %v", errs.ToAggregate())
	}
	// "template already specified" keeps it; "deadLetterSink.ref.namespace gets defaulted".
	var d Channel
	_ = yaml.Unmarshal([]byte("metadata: {name: imc, namespace: custom}\nspec:\n  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: OtherChannel}\n  delivery:\n    deadLetterSink:\n      ref: {kind: Service, name: foo}\n"), &d)
	d.SetDefaults()
	if d.Spec.ChannelTemplate.Kind != "OtherChannel" || d.Spec.Delivery.DeadLetterSink.Ref.Namespace != "custom" {
		t.Errorf("defaults: template %+v dls %+v", d.Spec.ChannelTemplate, d.Spec.Delivery.DeadLetterSink.Ref)
	}
}

// Cases from Knative's in_memory_channel_validation_test.go TestInMemoryChannelValidation.
func TestInMemoryChannelValidation(t *testing.T) {
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"empty", "  {}\n", nil},
		{"valid subscribers array", "  subscribers:\n    - subscriberUri: http://subscriberendpoint\n      replyUri: http://resultendpoint\n", nil},
		{"empty subscriber at index 1", "  subscribers:\n    - subscriberUri: http://subscriberendpoint\n      replyUri: http://replyendpoint\n    - {}\n", []string{"spec.subscribers[1]"}},
		{"2 empty subscribers", "  subscribers: [{}, {}]\n", []string{"spec.subscribers[0]", "spec.subscribers[1]"}},
		{"invalid delivery", "  delivery: {retry: -1}\n", []string{"spec.delivery.retry"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c InMemoryChannel
			doc := "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: imc}\nspec:\n" + tc.spec
			check(t, doc, &c, func() field.ErrorList { c.SetDefaults(); return c.Validate() }, tc.want...)
		})
	}
	// TestInMemoryChannelSetDefaults: the duck version annotation.
	var c InMemoryChannel
	c.SetDefaults()
	if c.Annotations[SubscribableDuckVersionAnnotation] != "v1" {
		t.Errorf("annotations %v", c.Annotations)
	}
}

// Cases from Knative's subscription_validation_test.go TestSubscriptionSpecValidation and
// TestValidChannel, and subscription_defaults_test.go TestSubscriptionDefaults.
func TestSubscriptionValidation(t *testing.T) {
	const channel = "  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch}\n"
	const subscriber = "  subscriber:\n    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: display}\n"
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid minimal spec", channel + subscriber, nil},
		{"valid with reply", channel + subscriber + "  reply: {uri: http://reply.example}\n", nil},
		{"valid with delivery", channel + subscriber + "  delivery: {backoffDelay: PT2S}\n", nil},
		{"empty Channel", "  channel: {}\n" + subscriber, []string{"spec.channel"}},
		{"missing name in Channel", "  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel}\n" + subscriber, []string{"spec.channel.name"}},
		{"missing apiVersion in Channel", "  channel: {kind: InMemoryChannel, name: ch}\n" + subscriber, []string{"spec.channel.apiVersion"}},
		{"extra field, namespace", "  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch, namespace: secretnamespace}\n" + subscriber, []string{"spec.channel.namespace"}},
		{"missing Subscriber and Reply", channel, []string{"spec.subscriber"}},
		{"empty Subscriber and Reply", channel + "  subscriber: {}\n  reply: {}\n", []string{"spec.subscriber"}},
		{"empty Reply", channel + subscriber + "  reply: {}\n", nil},
		{"missing Subscriber", channel + "  reply: {uri: http://reply.example}\n", []string{"spec.subscriber"}},
		{"missing name in channel, and missing subscriber", "  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel}\n", []string{"spec.channel.name", "spec.subscriber"}},
		{"missing name in Subscriber.Ref", channel + "  subscriber:\n    ref: {apiVersion: serving.knative.dev/v1, kind: Service}\n", []string{"spec.subscriber.ref.name"}},
		{"invalid Delivery", channel + subscriber + "  delivery: {backoffDelay: invalid}\n", []string{"spec.delivery.backoffDelay"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s Subscription
			doc := "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {name: sub}\nspec:\n" + tc.spec
			check(t, doc, &s, func() field.ErrorList { s.SetDefaults(); return s.Validate() }, tc.want...)
		})
	}
	var s Subscription
	_ = yaml.Unmarshal([]byte("metadata: {name: s, namespace: ns}\nspec:\n"+channel+subscriber+
		"  reply:\n    ref: {kind: Broker, name: b}\n  delivery:\n    deadLetterSink:\n      ref: {kind: Service, name: dls}\n"), &s)
	s.SetDefaults()
	if s.Spec.Subscriber.Ref.Namespace != "ns" || s.Spec.Reply.Ref.Namespace != "ns" || s.Spec.Delivery.DeadLetterSink.Ref.Namespace != "ns" {
		t.Errorf("ref namespaces not defaulted: %+v %+v %+v", s.Spec.Subscriber.Ref, s.Spec.Reply.Ref, s.Spec.Delivery.DeadLetterSink.Ref)
	}
}

// Knative's subscription_validation_test.go TestSubscriptionImmutable and
// channel_validation_test.go TestChannelImmutableFields.
func TestImmutableFields(t *testing.T) {
	var old Subscription
	_ = yaml.Unmarshal([]byte("spec:\n  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: a}\n  subscriber: {uri: http://x}\n"), &old)
	next := old
	next.Spec.Subscriber = nil
	next.Spec.Reply = old.Spec.Subscriber
	if errs := CheckSubscriptionUpdate(&old, &next); len(errs) > 0 {
		t.Errorf("subscriber/reply change refused: %v", errs)
	}
	next.Spec.Channel.Name = "b"
	if errs := CheckSubscriptionUpdate(&old, &next); len(errs) != 1 || !strings.Contains(errs[0].Error(), "spec.channel") {
		t.Errorf("channel change: %v", errs)
	}
	if errs := CheckSubscriptionUpdate(nil, &next); len(errs) > 0 {
		t.Errorf("new nil is ok: %v", errs)
	}
	var oc Channel
	oc.SetDefaults()
	nc := oc
	nc.Spec.ChannelTemplate = &ChannelTemplateSpec{}
	nc.Spec.ChannelTemplate.APIVersion, nc.Spec.ChannelTemplate.Kind = "messaging.knative.dev/v1", "OtherChannel"
	if errs := CheckChannelUpdate(&oc, &oc); len(errs) > 0 {
		t.Errorf("no change refused: %v", errs)
	}
	if errs := CheckChannelUpdate(&oc, &nc); len(errs) != 1 || errs[0].Field != "spec.channelTemplate" {
		t.Errorf("template change: %v", errs)
	}
}
