package reconciler

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
)

// TestMarkTrigger tests the status step of the Broker reconcile on its own: what a Trigger
// reports from its Broker's readiness, its resolved destinations and the apply. The cases
// follow knative/eventing pkg/reconciler/broker/trigger/trigger_test.go (TestReconcile: "Broker
// not ready yet", "Trigger has subscriber ref doesn't exist", "Trigger has a dls ref that
// doesn't exist", "Trigger has a valid dls ref and goes ready", "Subscription Create fails",
// "Subscription ready, trigger marked ready").
func TestMarkTrigger(t *testing.T) {
	now := time.Unix(1000, 0)
	ready := &duck.Condition{Type: duck.ConditionReady, Status: duck.True}
	notReady := &duck.Condition{Type: duck.ConditionReady, Status: duck.False, Reason: "ApplyFailed", Message: "boom"}
	type cond struct {
		status duck.ConditionStatus
		reason string
	}
	for _, tc := range []struct {
		name        string
		r           triggerResult
		brokerReady *duck.Condition
		applyErr    error
		wantSub     string
		wantDLS     string
		want        map[duck.ConditionType]cond
	}{
		{name: "subscription ready, trigger marked ready", r: triggerResult{subscriber: "http://s"}, brokerReady: ready,
			wantSub: "http://s", want: map[duck.ConditionType]cond{
				duck.ConditionReady:                     {duck.True, ""},
				eventingv1.TriggerConditionDeadLetter:   {duck.True, "DeadLetterSinkNotConfigured"},
				eventingv1.TriggerConditionSubscription: {duck.True, ""},
				eventingv1.TriggerConditionSubscriber:   {duck.True, ""},
				eventingv1.TriggerConditionBroker:       {duck.True, ""},
				triggerConditionDependency:              {duck.True, ""},
			}},
		{name: "valid dls goes ready", r: triggerResult{subscriber: "http://s", dls: "http://d"}, brokerReady: ready,
			wantSub: "http://s", wantDLS: "http://d", want: map[duck.ConditionType]cond{
				duck.ConditionReady:                   {duck.True, ""},
				eventingv1.TriggerConditionDeadLetter: {duck.True, ""},
			}},
		{name: "broker not ready yet", r: triggerResult{subscriber: "http://s"}, brokerReady: notReady,
			wantSub: "http://s", want: map[duck.ConditionType]cond{
				duck.ConditionReady:               {duck.False, "ApplyFailed"},
				eventingv1.TriggerConditionBroker: {duck.False, "ApplyFailed"},
			}},
		{name: "broker not reconciled yet", r: triggerResult{subscriber: "http://s"}, brokerReady: nil,
			wantSub: "http://s", want: map[duck.ConditionType]cond{
				duck.ConditionReady:               {duck.Unknown, "Initializing"},
				eventingv1.TriggerConditionBroker: {duck.Unknown, "Initializing"},
			}},
		{name: "subscriber ref doesn't exist", r: triggerResult{subscriber: "ignored", subErr: errors.New("Service default/x not found")}, brokerReady: ready,
			want: map[duck.ConditionType]cond{
				duck.ConditionReady:                     {duck.False, "Unresolved"},
				eventingv1.TriggerConditionSubscriber:   {duck.False, "Unresolved"},
				eventingv1.TriggerConditionSubscription: {duck.False, "NotSubscribed"},
			}},
		{name: "subscriber has no address yet", r: triggerResult{subErr: fmt.Errorf("Service default/x %w", errNotAddressable)}, brokerReady: ready,
			want: map[duck.ConditionType]cond{
				duck.ConditionReady:                     {duck.Unknown, "NotAddressable"},
				eventingv1.TriggerConditionSubscriber:   {duck.Unknown, "NotAddressable"},
				eventingv1.TriggerConditionSubscription: {duck.Unknown, "NotAddressable"},
			}},
		{name: "dls ref doesn't exist", r: triggerResult{subscriber: "http://s", dls: "ignored", dlsErr: errors.New("Service default/d not found")}, brokerReady: ready,
			wantSub: "http://s", want: map[duck.ConditionType]cond{
				duck.ConditionReady:                     {duck.False, "Unresolved"},
				eventingv1.TriggerConditionDeadLetter:   {duck.False, "Unresolved"},
				eventingv1.TriggerConditionSubscription: {duck.False, "NotSubscribed"},
			}},
		{name: "apply fails", r: triggerResult{subscriber: "http://s"}, brokerReady: ready, applyErr: errors.New("no route"),
			wantSub: "http://s", want: map[duck.ConditionType]cond{
				duck.ConditionReady:                     {duck.False, "ApplyFailed"},
				eventingv1.TriggerConditionSubscription: {duck.False, "ApplyFailed"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.tr = &eventingv1.Trigger{}
			tc.r.tr.Generation = 3
			markTrigger(tc.r, tc.brokerReady, tc.applyErr, now)
			st := tc.r.tr.Status
			if st.ObservedGeneration != 3 || st.SubscriberURI != tc.wantSub || st.DeadLetterSinkURI != tc.wantDLS {
				t.Errorf("observedGeneration %d subscriberUri %q deadLetterSinkUri %q, want 3 %q %q",
					st.ObservedGeneration, st.SubscriberURI, st.DeadLetterSinkURI, tc.wantSub, tc.wantDLS)
			}
			for typ, w := range tc.want {
				got := st.GetCondition(typ)
				if got == nil || got.Status != w.status || got.Reason != w.reason {
					t.Errorf("condition %s = %+v, want status %s reason %q", typ, got, w.status, w.reason)
				}
			}
		})
	}
}
