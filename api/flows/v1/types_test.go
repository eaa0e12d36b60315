package v1

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
)

func errorFields(errs field.ErrorList) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Field
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const step = "    - ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: step}\n"

// Cases from Knative's sequence_validation_test.go (TestSequenceValidation,
// TestSequenceSpecValidation, TestSequenceStepValidation) and sequence_defaults_test.go.
func TestSequenceValidation(t *testing.T) {
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid", "  steps:\n" + step, nil},
		{"no steps", "  steps: []\n", []string{"spec.steps"}},
		{"invalid steps", "  steps:\n    - {}\n", []string{"spec.steps[0]"}},
		{"no channelTemplate apiVersion", "  steps:\n" + step + "  channelTemplate: {kind: InMemoryChannel}\n", []string{"spec.channelTemplate.apiVersion"}},
		{"no channelTemplate kind", "  steps:\n" + step + "  channelTemplate: {apiVersion: messaging.knative.dev/v1}\n", []string{"spec.channelTemplate.kind"}},
		{"invalid channelTemplate & invalid reply", "  steps:\n" + step + "  channelTemplate: {kind: InMemoryChannel}\n  reply:\n    ref: {kind: Service}\n",
			[]string{"spec.channelTemplate.apiVersion", "spec.reply.ref.name"}},
		{"invalid reply", "  steps:\n" + step + "  reply:\n    ref: {kind: Service}\n", []string{"spec.reply.ref.name"}},
		{"invalid delivery", "  steps:\n    - uri: http://step.example\n      delivery: {backoffDelay: invalid delay}\n", []string{"spec.steps[0].delivery.backoffDelay"}},
		{"invalid destination & invalid delivery", "  steps:\n    - ref: {kind: Service}\n      delivery: {backoffDelay: invalid delay}\n",
			[]string{"spec.steps[0].ref.name", "spec.steps[0].delivery.backoffDelay"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s Sequence
			if err := yaml.UnmarshalStrict([]byte("metadata: {name: seq}\nspec:\n"+tc.spec), &s); err != nil {
				t.Fatal(err)
			}
			s.SetDefaults()
			if got := errorFields(s.Validate()); !equal(got, tc.want) {
				t.Errorf("errors at %v (%v), want %v", got, s.Validate().ToAggregate(), tc.want)
			}
		})
	}
	// TestSequenceSetDefaults: the default channel template and ref namespaces.
	var s Sequence
	_ = yaml.Unmarshal([]byte("metadata: {name: seq, namespace: ns}\nspec:\n  steps:\n"+step+"  reply:\n    ref: {kind: Service, name: r}\n"), &s)
	s.SetDefaults()
	if *s.Spec.ChannelTemplate != *messagingv1.DefaultChannelTemplate() || s.Spec.Steps[0].Ref.Namespace != "ns" || s.Spec.Reply.Ref.Namespace != "ns" {
		t.Errorf("defaults: %+v %+v %+v", s.Spec.ChannelTemplate, s.Spec.Steps[0].Ref, s.Spec.Reply.Ref)
	}
	s.Spec.ChannelTemplate = nil
	if got := errorFields(s.Validate()); !equal(got, []string{"spec.channelTemplate"}) {
		t.Errorf("no channelTemplate: %v", got)
	}
}

// Cases from Knative's parallel_validation_test.go (TestParallelValidation,
// TestParallelSpecValidation) and parallel_defaults_test.go.
func TestParallelValidation(t *testing.T) {
	const branch = "    - subscriber: {uri: http://sub.example}\n"
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid", "  branches:\n" + branch, nil},
		{"valid with filter and reply", "  branches:\n    - filter: {uri: http://f.example}\n      subscriber: {uri: http://sub.example}\n      reply: {uri: http://r.example}\n", nil},
		{"without branches", "  branches: []\n", []string{"spec.branches"}},
		{"branches with invalid filter", "  branches:\n    - filter: {}\n      subscriber: {uri: http://sub.example}\n", []string{"spec.branches[0].filter"}},
		{"branches with invalid subscriber", "  branches:\n    - subscriber: {}\n", []string{"spec.branches[0].subscriber"}},
		{"branches with invalid reply", "  branches:\n    - subscriber: {uri: http://sub.example}\n      reply: {}\n", []string{"spec.branches[0].reply"}},
		{"channelTemplate without apiVersion", "  branches:\n" + branch + "  channelTemplate: {kind: InMemoryChannel}\n", []string{"spec.channelTemplate.apiVersion"}},
		{"channelTemplate without kind", "  branches:\n" + branch + "  channelTemplate: {apiVersion: messaging.knative.dev/v1}\n", []string{"spec.channelTemplate.kind"}},
		{"invalid reply", "  branches:\n" + branch + "  reply:\n    ref: {kind: Service}\n", []string{"spec.reply.ref.name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Parallel
			if err := yaml.UnmarshalStrict([]byte("metadata: {name: par}\nspec:\n"+tc.spec), &p); err != nil {
				t.Fatal(err)
			}
			p.SetDefaults()
			if got := errorFields(p.Validate()); !equal(got, tc.want) {
				t.Errorf("errors at %v (%v), want %v", got, p.Validate().ToAggregate(), tc.want)
			}
		})
	}
	var p Parallel
	_ = yaml.Unmarshal([]byte("metadata: {name: par, namespace: ns}\nspec:\n  branches:\n    - filter:\n        ref: {kind: Service, name: f}\n      subscriber:\n        ref: {kind: Service, name: s}\n"), &p)
	p.SetDefaults()
	if *p.Spec.ChannelTemplate != *messagingv1.DefaultChannelTemplate() || p.Spec.Branches[0].Filter.Ref.Namespace != "ns" || p.Spec.Branches[0].Subscriber.Ref.Namespace != "ns" {
		t.Errorf("defaults: %+v", p.Spec)
	}
	p.Spec.ChannelTemplate = nil
	if got := errorFields(p.Validate()); !equal(got, []string{"spec.channelTemplate"}) {
		t.Errorf("without channelTemplate: %v", got)
	}
}
