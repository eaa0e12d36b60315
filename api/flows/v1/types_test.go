package v1

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/fielderr"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
)

// messages are the error-level diagnostics as "message: paths" (details, on their own line
// in Error(), left out), as Knative's tests compare them.
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

const step = "    - ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: step}\n"

// Cases from Knative's sequence_validation_test.go (TestSequenceValidation,
// TestSequenceSpecValidation, TestSequenceStepValidation), with its messages (an invalid
// step printed as JSON, not with Go's %v), and sequence_defaults_test.go.
func TestSequenceValidation(t *testing.T) {
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid", "  steps:\n" + step, nil},
		{"no steps", "  steps: []\n", []string{"missing field(s): spec.steps"}},
		{"invalid steps", "  steps:\n    - {}\n", []string{"invalid value: {}: spec.steps[0]"}},
		{"no channelTemplate apiVersion", "  steps:\n" + step + "  channelTemplate: {kind: InMemoryChannel}\n", []string{"missing field(s): spec.channelTemplate.apiVersion"}},
		{"no channelTemplate kind", "  steps:\n" + step + "  channelTemplate: {apiVersion: messaging.knative.dev/v1}\n", []string{"missing field(s): spec.channelTemplate.kind"}},
		{"invalid channelTemplate & invalid reply", "  steps:\n" + step + "  channelTemplate: {kind: InMemoryChannel}\n  reply:\n    ref: {kind: Service, name: r}\n",
			[]string{"missing field(s): spec.channelTemplate.apiVersion, spec.reply.ref.apiVersion"}},
		{"invalid reply", "  steps:\n" + step + "  reply:\n    ref: {kind: Service, name: r}\n", []string{"missing field(s): spec.reply.ref.apiVersion"}},
		{"invalid destination", "  steps:\n    - ref: {kind: Service, name: s}\n",
			[]string{`invalid value: {"ref":{"kind":"Service","namespace":"ns","name":"s"}}: spec.steps[0]`}},
		{"invalid delivery", "  steps:\n    - uri: http://step.example\n      delivery: {backoffDelay: invalid delay}\n",
			[]string{`invalid value: {"uri":"http://step.example","delivery":{"backoffDelay":"invalid delay"}}: spec.steps[0]`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s Sequence
			if err := yaml.UnmarshalStrict([]byte("metadata: {name: seq, namespace: ns}\nspec:\n"+tc.spec), &s); err != nil {
				t.Fatal(err)
			}
			ctx := admission.WithinCreate(context.Background())
			s.SetDefaults(ctx)
			expect(t, messages(s.Validate(ctx)), tc.want...)
		})
	}
	// The reason of an invalid step is its details: "invalid destination & invalid delivery".
	var s Sequence
	_ = yaml.Unmarshal([]byte("metadata: {name: seq, namespace: ns}\nspec:\n  steps:\n    - ref: {kind: Service, name: s}\n      delivery: {backoffDelay: invalid delay}\n"), &s)
	err := s.Validate(context.Background())
	if got := err.Error(); !strings.Contains(got, "spec.steps[0]\ninvalid value: invalid delay: delivery.backoffDelay\nmissing field(s): ref.apiVersion") {
		t.Errorf("details: %q", got)
	}
	// TestSequenceSetDefaults: the default channel template and ref namespaces.
	s = Sequence{}
	_ = yaml.Unmarshal([]byte("metadata: {name: seq, namespace: ns}\nspec:\n  steps:\n"+step+"  reply:\n    ref: {kind: Service, name: r}\n"), &s)
	s.SetDefaults(context.Background())
	if *s.Spec.ChannelTemplate != *messagingv1.DefaultChannelTemplate() || s.Spec.Steps[0].Ref.Namespace != "ns" || s.Spec.Reply.Ref.Namespace != "ns" {
		t.Errorf("defaults: %+v %+v %+v", s.Spec.ChannelTemplate, s.Spec.Steps[0].Ref, s.Spec.Reply.Ref)
	}
	// "no channelTemplate & invalid reply".
	s.Spec.ChannelTemplate = nil
	expect(t, messages(s.Validate(context.Background())), "missing field(s): spec.channelTemplate, spec.reply.ref.apiVersion")
}

// Cases from Knative's parallel_validation_test.go (TestParallelValidation,
// TestParallelSpecValidation), with its messages, and parallel_defaults_test.go.
func TestParallelValidation(t *testing.T) {
	const branch = "    - subscriber: {uri: http://sub.example}\n"
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid", "  branches:\n" + branch, nil},
		{"valid with filter and reply", "  branches:\n    - filter: {uri: http://f.example}\n      subscriber: {uri: http://sub.example}\n      reply: {uri: http://r.example}\n", nil},
		{"without branches", "  branches: []\n", []string{"missing field(s): spec.branches"}},
		{"branches with invalid filter", "  branches:\n    - filter: {}\n      subscriber: {uri: http://sub.example}\n",
			[]string{`invalid value: {"filter":{},"subscriber":{"uri":"http://sub.example"}}: spec.branches.filter[0]`}},
		{"branches with invalid subscriber", "  branches:\n    - subscriber: {}\n", []string{`invalid value: {"subscriber":{}}: spec.branches.subscriber[0]`}},
		{"branches with invalid reply", "  branches:\n    - subscriber: {uri: http://sub.example}\n      reply: {}\n",
			[]string{`invalid value: {"subscriber":{"uri":"http://sub.example"},"reply":{}}: spec.branches.reply[0]`}},
		{"channelTemplate without apiVersion", "  branches:\n" + branch + "  channelTemplate: {kind: InMemoryChannel}\n", []string{"missing field(s): spec.channelTemplate.apiVersion"}},
		{"channelTemplate without kind", "  branches:\n" + branch + "  channelTemplate: {apiVersion: messaging.knative.dev/v1}\n", []string{"missing field(s): spec.channelTemplate.kind"}},
		{"invalid reply", "  branches:\n" + branch + "  reply:\n    ref: {kind: Service, name: r}\n", []string{"missing field(s): spec.reply.ref.apiVersion"}},
		// Skiff's: a branch's delivery is refused with the Parallel.
		{"branch with invalid delivery", "  branches:\n    - subscriber: {uri: http://sub.example}\n      delivery: {retry: -1}\n",
			[]string{`invalid value: {"subscriber":{"uri":"http://sub.example"},"delivery":{"retry":-1}}: spec.branches.delivery[0]`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Parallel
			if err := yaml.UnmarshalStrict([]byte("metadata: {name: par, namespace: ns}\nspec:\n"+tc.spec), &p); err != nil {
				t.Fatal(err)
			}
			ctx := admission.WithinCreate(context.Background())
			p.SetDefaults(ctx)
			expect(t, messages(p.Validate(ctx)), tc.want...)
		})
	}
	var p Parallel
	_ = yaml.Unmarshal([]byte("metadata: {name: par, namespace: ns}\nspec:\n  branches:\n    - filter:\n        ref: {kind: Service, name: f}\n      subscriber:\n        ref: {kind: Service, name: s}\n"), &p)
	p.SetDefaults(context.Background())
	if *p.Spec.ChannelTemplate != *messagingv1.DefaultChannelTemplate() || p.Spec.Branches[0].Filter.Ref.Namespace != "ns" || p.Spec.Branches[0].Subscriber.Ref.Namespace != "ns" {
		t.Errorf("defaults: %+v", p.Spec)
	}
	// "without channelTemplate": Knative stops there (the reply is not checked). Each invalid
	// branch field is its own diagnostic, its details saying why (Knative's have none and
	// are merged into one).
	p.Spec.ChannelTemplate = nil
	p.Spec.Reply = &p.Spec.Branches[0].Subscriber
	p.Spec.Reply.Ref.APIVersion = ""
	expect(t, messages(p.Validate(context.Background())),
		`invalid value: {"filter":{"ref":{"kind":"Service","namespace":"ns","name":"f"}},"subscriber":{"ref":{"kind":"Service","namespace":"ns","name":"s"}}}: spec.branches.filter[0]`,
		`invalid value: {"filter":{"ref":{"kind":"Service","namespace":"ns","name":"f"}},"subscriber":{"ref":{"kind":"Service","namespace":"ns","name":"s"}}}: spec.branches.subscriber[0]`,
		"missing field(s): spec.channelTemplate")
}
