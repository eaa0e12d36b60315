package v1

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// object is what these tests admit.
type object interface {
	SetDefaults(context.Context)
	Validate(context.Context) *fielderr.Error
}

// verdict decodes doc strictly into obj, defaults and validates it as a create (or an
// update of old), and returns Knative's error-level diagnostics as "message: paths".
func verdict(t *testing.T, doc string, obj object, old object) []string {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatal(err)
	}
	ctx := admission.WithinCreate(context.Background())
	if old != nil {
		ctx = admission.WithinUpdate(context.Background(), old)
	}
	obj.SetDefaults(ctx)
	return messages(obj.Validate(ctx))
}

func messages(err *fielderr.Error) []string {
	var out []string
	for _, e := range err.Filter(fielderr.ErrorLevel).Flatten() {
		out = append(out, e.Message+": "+strings.Join(e.Paths, ", "))
	}
	return out
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Cases from Knative's channel_validation_test.go TestChannelValidation, with its messages,
// and channel_defaults_test.go TestChannelSetDefaults.
func TestChannelValidation(t *testing.T) {
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid minimal spec", "  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: Channel}\n", nil},
		{"channel template with no kind", "  channelTemplate: {apiVersion: messaging.knative.dev/v1}\n", []string{"missing field(s): spec.channelTemplate.kind"}},
		{"channel template with no apiVersion", "  channelTemplate: {kind: InMemoryChannel}\n", []string{"missing field(s): spec.channelTemplate.apiVersion"}},
		{"invalid subscribers array, not allowed", "  subscribers:\n    - subscriberUri: http://subscriberendpoint\n      replyUri: http://resultendpoint\n",
			[]string{"must not set the field(s): spec.subscribable.subscribers"}},
		{"invalid Delivery", "  delivery: {backoffDelay: invalid}\n", []string{"invalid value: invalid: spec.delivery.backoffDelay"}},
		{"valid Delivery", "  delivery: {backoffDelay: PT2S}\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: ch, namespace: ns}\nspec:\n" + tc.spec
			expect(t, verdict(t, doc, &Channel{}, nil), tc.want...)
		})
	}
	// "empty": Knative refuses a Channel without a template when no default is configured;
	// Skiff always has the default, so an empty spec gets the InMemoryChannel template.
	var c Channel
	c.Name = "ch"
	c.SetDefaults(context.Background())
	if c.Spec.ChannelTemplate == nil || c.Spec.ChannelTemplate.Kind != KindInMemoryChannel || c.Spec.ChannelTemplate.APIVersion != GroupVersion ||
		c.Annotations[SubscribableDuckVersionAnnotation] != "v1" {
		t.Errorf("defaults: template %+v annotations %v", c.Spec.ChannelTemplate, c.Annotations)
	}
	// "nil channelTemplate and disallowed at index 1".
	c.Spec.ChannelTemplate = nil
	c.Spec.Subscribers = []SubscriberSpec{{SubscriberURI: "http://a"}}
	expect(t, messages(c.Validate(context.Background())), "missing field(s): spec.channelTemplate", "must not set the field(s): spec.subscribable.subscribers")
	// "template already specified" keeps it; "deadLetterSink.ref.namespace gets defaulted".
	var d Channel
	_ = yaml.Unmarshal([]byte("metadata: {name: imc, namespace: custom}\nspec:\n  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: OtherChannel}\n"), &d)
	d.SetDefaults(context.Background())
	if d.Spec.ChannelTemplate.Kind != "OtherChannel" {
		t.Errorf("defaults: template %+v", d.Spec.ChannelTemplate)
	}
	var e Channel
	_ = yaml.Unmarshal([]byte("metadata: {name: imc, namespace: custom}\nspec:\n  delivery:\n    deadLetterSink:\n      ref: {kind: Service, name: foo}\n"), &e)
	e.SetDefaults(context.Background())
	if e.Spec.Delivery.DeadLetterSink.Ref.Namespace != "custom" {
		t.Errorf("defaults: dead letter sink %+v", e.Spec.Delivery.DeadLetterSink.Ref)
	}
}

// Cases from Knative's in_memory_channel_validation_test.go TestInMemoryChannelValidation.
func TestInMemoryChannelValidation(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"empty", "spec: {}\n", nil},
		{"valid subscribers array", "spec:\n  subscribers:\n    - subscriberUri: http://subscriberendpoint\n      replyUri: http://resultendpoint\n", nil},
		{"empty subscriber at index 1", "spec:\n  subscribers:\n    - subscriberUri: http://subscriberendpoint\n      replyUri: http://replyendpoint\n    - {}\n",
			[]string{"missing field(s): spec.subscribable.subscriber[1].replyURI, spec.subscribable.subscriber[1].subscriberURI"}},
		{"2 empty subscribers", "spec:\n  subscribers: [{}, {}]\n", []string{
			"missing field(s): spec.subscribable.subscriber[0].replyURI, spec.subscribable.subscriber[0].subscriberURI, " +
				"spec.subscribable.subscriber[1].replyURI, spec.subscribable.subscriber[1].subscriberURI"}},
		// Knative's flatten splits the key at its dots, as here.
		{"invalid scope annotation", "metadata:\n  name: imc\n  annotations: {eventing.knative.dev/scope: notvalid}\nspec: {}\n",
			[]string{"invalid value: notvalid: metadata.annotations.[eventing.knative.dev/scope]"}},
		{"valid scope annotation", "metadata:\n  name: imc\n  annotations: {eventing.knative.dev/scope: cluster}\nspec: {}\n", nil},
		// Skiff's: the dispatcher runs the delivery.
		{"invalid delivery", "spec:\n  delivery: {retry: -1}\n", []string{"invalid value: -1: spec.delivery.retry"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, verdict(t, "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\n"+tc.doc, &InMemoryChannel{}, nil), tc.want...)
		})
	}
	// TestInMemoryChannelSetDefaults: the duck version annotation.
	var c InMemoryChannel
	c.SetDefaults(context.Background())
	if c.Annotations[SubscribableDuckVersionAnnotation] != "v1" {
		t.Errorf("annotations %v", c.Annotations)
	}
}

// Cases from Knative's subscription_validation_test.go TestSubscriptionValidation,
// TestSubscriptionSpecValidation and TestValidChannel, with their messages, and
// subscription_defaults_test.go TestSubscriptionDefaults.
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
		{"empty Channel", "  channel: {}\n" + subscriber, []string{"missing field(s): spec.channel"}},
		// Knative stops at an empty channel.
		{"empty", "  channel: {}\n", []string{"missing field(s): spec.channel"}},
		{"missing name in Channel", "  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel}\n" + subscriber, []string{"missing field(s): spec.channel.name"}},
		{"missing apiVersion in Channel", "  channel: {kind: InMemoryChannel, name: ch}\n" + subscriber, []string{"missing field(s): spec.channel.apiVersion"}},
		{"non-empty Channel namespace", "  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch, namespace: secretnamespace}\n" + subscriber,
			[]string{"must not set the field(s): spec.channel.namespace"}},
		{"missing Subscriber and Reply", channel, []string{"missing field(s): spec.subscriber"}},
		{"empty Subscriber and Reply", channel + "  subscriber: {}\n  reply: {}\n", []string{"missing field(s): spec.subscriber"}},
		{"empty Reply", channel + subscriber + "  reply: {}\n", nil},
		{"missing Subscriber", channel + "  reply: {uri: http://reply.example}\n", []string{"missing field(s): spec.subscriber"}},
		{"missing name in channel, and missing subscriber", "  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel}\n",
			[]string{"missing field(s): spec.channel.name", "missing field(s): spec.subscriber"}},
		{"missing name in Subscriber.Ref", channel + "  subscriber:\n    ref: {apiVersion: serving.knative.dev/v1, kind: Service}\n", []string{"missing field(s): spec.subscriber.ref.name"}},
		{"missing name in Reply.Ref", channel + subscriber + "  reply:\n    ref: {apiVersion: serving.knative.dev/v1, kind: Service}\n", []string{"missing field(s): spec.reply.ref.name"}},
		{"invalid Delivery", channel + subscriber + "  delivery: {backoffDelay: invalid}\n", []string{"invalid value: invalid: spec.delivery.backoffDelay"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {name: sub, namespace: ns}\nspec:\n" + tc.spec
			expect(t, verdict(t, doc, &Subscription{}, nil), tc.want...)
		})
	}
	var s Subscription
	_ = yaml.Unmarshal([]byte("metadata: {name: s, namespace: ns}\nspec:\n"+channel+subscriber+
		"  reply:\n    ref: {kind: Broker, name: b}\n  delivery:\n    deadLetterSink:\n      ref: {kind: Service, name: dls}\n"), &s)
	s.SetDefaults(context.Background())
	if s.Spec.Subscriber.Ref.Namespace != "ns" || s.Spec.Reply.Ref.Namespace != "ns" || s.Spec.Delivery.DeadLetterSink.Ref.Namespace != "ns" {
		t.Errorf("ref namespaces not defaulted: %+v %+v %+v", s.Spec.Subscriber.Ref, s.Spec.Reply.Ref, s.Spec.Delivery.DeadLetterSink.Ref)
	}
}

// Knative's subscription_validation_test.go TestSubscriptionImmutable and
// channel_validation_test.go TestChannelImmutableFields, as updates.
func TestImmutableFields(t *testing.T) {
	const sub = "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {name: s, namespace: ns}\nspec:\n"
	var old Subscription
	_ = yaml.Unmarshal([]byte(sub+"  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: a}\n  subscriber: {uri: http://x}\n"), &old)
	// "valid subscriber change", "valid reply change", "valid delivery change".
	expect(t, verdict(t, sub+"  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: a}\n  subscriber: {uri: http://y}\n  reply: {uri: http://r}\n  delivery: {retry: 3}\n", &Subscription{}, &old))
	// "Channel changed".
	expect(t, verdict(t, sub+"  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: b}\n  subscriber: {uri: http://x}\n", &Subscription{}, &old),
		"Immutable fields changed (-old +new): spec")

	const ch = "apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: c, namespace: ns}\nspec:\n"
	var oc Channel
	_ = yaml.Unmarshal([]byte(ch+"  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel}\n"), &oc)
	oc.SetDefaults(context.Background())
	// "good (no change)", and the defaulted template is no change either.
	expect(t, verdict(t, ch+"  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel}\n", &Channel{}, &oc))
	expect(t, verdict(t, ch+"  {}\n", &Channel{}, &oc))
	// "bad (channelTemplate change)".
	expect(t, verdict(t, ch+"  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: OtherChannel}\n", &Channel{}, &oc),
		"Immutable fields changed (-old +new): spec")
}
