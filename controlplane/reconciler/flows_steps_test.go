package reconciler

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	flowsv1 "github.com/skiff-dev/skiff/api/flows/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
)

// describe is what a flow Subscription connects: channel -> subscriber (reply).
func describe(s *messagingv1.Subscription) string {
	d := func(x *eventingv1.Destination) string {
		switch {
		case x == nil:
			return "-"
		case x.Ref != nil:
			return x.Ref.Kind + "/" + x.Ref.Name
		}
		return x.URI
	}
	return s.Name + ": " + s.Spec.Channel.Name + " -> " + d(s.Spec.Subscriber) + " (" + d(s.Spec.Reply) + ")"
}

// TestParallelSubscriptions ports knative/eventing
// pkg/reconciler/parallel/resources/subscription_test.go (TestNewFilterSubscription "without
// filter" / "with filter") and adds the branch Subscription's reply (the branch's, else
// spec.reply), as parallel/resources/subscription.go NewSubscription does.
func TestParallelSubscriptions(t *testing.T) {
	par := &flowsv1.Parallel{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	par.Spec.Reply = &eventingv1.Destination{URI: "http://reply"}
	par.Spec.Branches = []flowsv1.ParallelBranch{
		{Subscriber: eventingv1.Destination{URI: "http://sub0"}},
		{Filter: &eventingv1.Destination{URI: "http://filter1"}, Subscriber: eventingv1.Destination{URI: "http://sub1"},
			Reply: &eventingv1.Destination{URI: "http://reply1"}},
	}
	owner := controllerRef(flowsv1.GroupVersion, flowsv1.KindParallel, &par.ObjectMeta)
	for i, want := range [][2]string{
		{"p-kn-parallel-filter-0: p-kn-parallel -> InMemoryChannel/p-kn-parallel-0 (-)",
			"p-kn-parallel-0: p-kn-parallel-0 -> http://sub0 (http://reply)"},
		{"p-kn-parallel-filter-1: p-kn-parallel -> http://filter1 (InMemoryChannel/p-kn-parallel-1)",
			"p-kn-parallel-1: p-kn-parallel-1 -> http://sub1 (http://reply1)"},
	} {
		f, s := parallelSubscriptions(par, owner, i)
		if got := [2]string{describe(f), describe(s)}; got != want {
			t.Errorf("branch %d:\n got %q\nwant %q", i, got, want)
		}
		if f.Namespace != "ns" || len(f.OwnerReferences) != 1 || f.OwnerReferences[0].Name != "p" {
			t.Errorf("branch %d filter: namespace %q owners %v, want ns, owned by p", i, f.Namespace, f.OwnerReferences)
		}
	}
}

// TestSequenceSubscription follows knative/eventing pkg/reconciler/sequence/resources
// (NewSubscription): step i's channel to the step, replying to the next step's channel, the
// last step to spec.reply.
func TestSequenceSubscription(t *testing.T) {
	seq := &flowsv1.Sequence{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}}
	seq.Spec.Reply = &eventingv1.Destination{URI: "http://reply"}
	seq.Spec.Steps = []flowsv1.SequenceStep{
		{Destination: eventingv1.Destination{URI: "http://step0"}},
		{Destination: eventingv1.Destination{URI: "http://step1"}},
	}
	owner := controllerRef(flowsv1.GroupVersion, flowsv1.KindSequence, &seq.ObjectMeta)
	for i, want := range []string{
		"s-kn-sequence-0: s-kn-sequence-0 -> http://step0 (InMemoryChannel/s-kn-sequence-1)",
		"s-kn-sequence-1: s-kn-sequence-1 -> http://step1 (http://reply)",
	} {
		if got := describe(sequenceSubscription(seq, owner, i)); got != want {
			t.Errorf("step %d:\n got %q\nwant %q", i, got, want)
		}
	}
}
