package reconciler

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
)

// TestMarkSubscriptionChannelReady tests the status step of the Subscription reconcile:
// ChannelReady from what the channel reports of this generation of the Subscription, as
// knative/eventing pkg/reconciler/subscription/subscription.go checkChannelStatusForSubscription
// does (its reasons and messages).
func TestMarkSubscriptionChannelReady(t *testing.T) {
	now := time.Unix(1000, 0)
	sub := &messagingv1.Subscription{ObjectMeta: metav1.ObjectMeta{Name: "s", UID: "u1", Generation: 2}}
	for _, tc := range []struct {
		name        string
		subscribers []messagingv1.SubscriberStatus
		want        duck.ConditionStatus
		wantMessage string
	}{
		{name: "not in the channel's list", want: duck.Unknown,
			wantMessage: `Failed to get subscription status: subscription "s" not present in channel "c" subscriber's list`},
		{name: "an older generation is not this one", subscribers: []messagingv1.SubscriberStatus{{UID: "u1", ObservedGeneration: 1, Ready: duck.True}},
			want: duck.Unknown, wantMessage: `Failed to get subscription status: subscription "s" not present in channel "c" subscriber's list`},
		{name: "ready", subscribers: []messagingv1.SubscriberStatus{{UID: "u0", ObservedGeneration: 2}, {UID: "u1", ObservedGeneration: 2, Ready: duck.True}},
			want: duck.True},
		{name: "marked False", subscribers: []messagingv1.SubscriberStatus{{UID: "u1", ObservedGeneration: 2, Ready: duck.False, Message: "boom"}},
			want: duck.False, wantMessage: "Subscription marked by Channel as False: boom"},
		{name: "marked Unknown", subscribers: []messagingv1.SubscriberStatus{{UID: "u1", ObservedGeneration: 2, Ready: duck.Unknown, Message: "wait"}},
			want: duck.Unknown, wantMessage: "Subscription marked by Channel as Unknown: wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imc := &messagingv1.InMemoryChannel{ObjectMeta: metav1.ObjectMeta{Name: "c"}}
			imc.Status.Subscribers = tc.subscribers
			var st messagingv1.SubscriptionStatus
			markSubscriptionChannelReady(&st, sub, imc, now)
			got := st.GetCondition(messagingv1.SubscriptionConditionChannelReady)
			if got == nil || got.Status != tc.want || got.Message != tc.wantMessage {
				t.Fatalf("ChannelReady = %+v, want %s %q", got, tc.want, tc.wantMessage)
			}
		})
	}
}

// TestSetSubscriber tests the pure part of the Subscription's apply step: its entry in the
// channel's spec.subscribers, by UID (Knative's syncChannel).
func TestSetSubscriber(t *testing.T) {
	name := "s"
	e1 := messagingv1.SubscriberSpec{Name: &name, UID: "u1", Generation: 1, SubscriberURI: "http://a"}
	imc := &messagingv1.InMemoryChannel{}
	if !setSubscriber(imc, e1) || len(imc.Spec.Subscribers) != 1 {
		t.Fatalf("adding: subscribers %+v, want one, changed", imc.Spec.Subscribers)
	}
	if setSubscriber(imc, e1) {
		t.Fatal("the same entry again changed the channel")
	}
	e2 := e1
	e2.Generation, e2.SubscriberURI = 2, "http://b"
	if !setSubscriber(imc, e2) || len(imc.Spec.Subscribers) != 1 || imc.Spec.Subscribers[0].SubscriberURI != "http://b" {
		t.Fatalf("updating: subscribers %+v, want the one entry updated", imc.Spec.Subscribers)
	}
	other := messagingv1.SubscriberSpec{UID: "u2"}
	if !setSubscriber(imc, other) || len(imc.Spec.Subscribers) != 2 || imc.Spec.Subscribers[0].UID != "u1" {
		t.Fatalf("another: subscribers %+v, want u1 then u2", imc.Spec.Subscribers)
	}
}

// TestMarkChannelApplied tests the status step of the InMemoryChannel reconcile: its
// conditions and subscribers' readiness after the apply, as Knative's InMemoryChannel
// reconciler reports its dispatcher (ServiceReady, EndpointsReady, ChannelServiceReady).
func TestMarkChannelApplied(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name                    string
		dlsOK, routed           bool
		applyErr                error
		wantService, wantRouted duck.ConditionStatus
		wantSub                 duck.ConditionStatus
	}{
		{name: "applied and routed", dlsOK: true, routed: true, wantService: duck.True, wantRouted: duck.True, wantSub: duck.True},
		{name: "applied, waiting for the proxies", dlsOK: true, wantService: duck.True, wantRouted: duck.Unknown, wantSub: duck.True},
		{name: "dead letter sink unresolved", wantService: duck.Unknown, wantRouted: duck.Unknown, wantSub: duck.Unknown},
		{name: "apply failed", dlsOK: true, applyErr: errors.New("boom"), wantService: duck.False, wantRouted: duck.Unknown, wantSub: duck.False},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st messagingv1.InMemoryChannelStatus
			subs := []messagingv1.SubscriberStatus{{UID: "u1", Ready: duck.True}}
			markChannelApplied(&st, "ns", "c", subs, tc.dlsOK, tc.applyErr, tc.routed, now)
			if st.Address == nil || st.Address.URL == "" {
				t.Fatalf("no address: %+v", st.Address)
			}
			svc := st.GetCondition(messagingv1.InMemoryChannelConditionServiceReady)
			routed := st.GetCondition(messagingv1.InMemoryChannelConditionChannelServiceReady)
			if svc == nil || svc.Status != tc.wantService || routed == nil || routed.Status != tc.wantRouted {
				t.Fatalf("ServiceReady %+v ChannelServiceReady %+v, want %s %s", svc, routed, tc.wantService, tc.wantRouted)
			}
			if len(st.Subscribers) != 1 || st.Subscribers[0].Ready != tc.wantSub {
				t.Fatalf("subscribers %+v, want one %s", st.Subscribers, tc.wantSub)
			}
		})
	}
}
