package reconciler

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
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
		return x.URIString()
	}
	return s.Name + ": " + s.Spec.Channel.Name + " -> " + d(s.Spec.Subscriber) + " (" + d(s.Spec.Reply) + ")"
}

// TestParallelSubscriptions ports knative/eventing
// pkg/reconciler/parallel/resources/subscription_test.go (TestNewFilterSubscription "without
// filter" / "with filter") and adds the branch Subscription's reply (the branch's, else
// spec.reply), as parallel/resources/subscription.go NewSubscription does.
func TestParallelSubscriptions(t *testing.T) {
	par := &flowsv1.Parallel{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	par.Spec.Reply = &eventingv1.Destination{URI: eventingv1.URIOf("http://reply")}
	par.Spec.Branches = []flowsv1.ParallelBranch{
		{Subscriber: eventingv1.Destination{URI: eventingv1.URIOf("http://sub0")}},
		{Filter: &eventingv1.Destination{URI: eventingv1.URIOf("http://filter1")}, Subscriber: eventingv1.Destination{URI: eventingv1.URIOf("http://sub1")},
			Reply: &eventingv1.Destination{URI: eventingv1.URIOf("http://reply1")}},
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
	seq.Spec.Reply = &eventingv1.Destination{URI: eventingv1.URIOf("http://reply")}
	seq.Spec.Steps = []flowsv1.SequenceStep{
		{Destination: eventingv1.Destination{URI: eventingv1.URIOf("http://step0")}},
		{Destination: eventingv1.Destination{URI: eventingv1.URIOf("http://step1")}},
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

// TestMarkParallelSubscriptions tests the status step for a Parallel's Subscriptions:
// SubscriptionsReady names the first that failed, else the first not ready yet (Knative's
// PropagateSubscriptionStatuses, which Skiff reports Unknown while children are on their way).
func TestMarkParallelSubscriptions(t *testing.T) {
	now := time.Unix(1000, 0)
	sub := func(name string, status duck.ConditionStatus, reason string) flowsv1.ParallelSubscriptionStatus {
		return flowsv1.ParallelSubscriptionStatus{Subscription: objectRef(messagingv1.GroupVersion, messagingv1.KindSubscription, "ns", name),
			ReadyCondition: duck.Condition{Type: duck.ConditionReady, Status: status, Reason: reason, Message: "m"}}
	}
	for _, tc := range []struct {
		name     string
		branches []flowsv1.ParallelBranchStatus
		want     duck.ConditionStatus
		wantMsg  string
	}{
		{name: "no branches", want: duck.Unknown, wantMsg: "Subscriptions are not ready yet, or there are none"},
		{name: "all ready", branches: []flowsv1.ParallelBranchStatus{{FilterSubscriptionStatus: sub("f0", duck.True, ""), SubscriptionStatus: sub("s0", duck.True, "")}},
			want: duck.True},
		{name: "first not ready", branches: []flowsv1.ParallelBranchStatus{
			{FilterSubscriptionStatus: sub("f0", duck.True, ""), SubscriptionStatus: sub("s0", duck.Unknown, "Wait")},
			{FilterSubscriptionStatus: sub("f1", duck.Unknown, "Later"), SubscriptionStatus: sub("s1", duck.True, "")}},
			want: duck.Unknown, wantMsg: "Subscriptions are not ready yet, or there are none: s0 Wait: m"},
		{name: "a failed one wins over one on its way", branches: []flowsv1.ParallelBranchStatus{
			{FilterSubscriptionStatus: sub("f0", duck.Unknown, "Wait"), SubscriptionStatus: sub("s0", duck.True, "")},
			{FilterSubscriptionStatus: sub("f1", duck.True, ""), SubscriptionStatus: sub("s1", duck.False, "Broken")}},
			want: duck.False, wantMsg: "Subscriptions are not ready yet, or there are none: s1 Broken: m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := flowsv1.ParallelStatus{BranchStatuses: tc.branches}
			markParallelSubscriptions(&st, now)
			got := st.GetCondition(flowsv1.ConditionSubscriptionsReady)
			if got == nil || got.Status != tc.want || got.Message != tc.wantMsg {
				t.Fatalf("SubscriptionsReady = %+v, want %s %q", got, tc.want, tc.wantMsg)
			}
		})
	}
}
