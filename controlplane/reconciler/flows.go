package reconciler

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	flowsv1 "github.com/skiff-dev/skiff/api/flows/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// messagingKinds are the channel and flow kinds reconcileMessaging handles.
var messagingKinds = []string{messagingv1.KindInMemoryChannel, messagingv1.KindChannel, messagingv1.KindSubscription,
	flowsv1.KindSequence, flowsv1.KindParallel, sourcesv1.KindContainerSource, sourcesv1.KindApiServerSource}

// reconcileMessaging reconciles the messaging and flows kinds; others are ignored.
func (c *Controller) reconcileMessaging(ctx context.Context, key store.Key) error {
	switch key.Kind {
	case messagingv1.KindInMemoryChannel:
		return c.reconcileInMemoryChannel(ctx, key)
	case messagingv1.KindChannel:
		return c.reconcileChannel(ctx, key)
	case messagingv1.KindSubscription:
		return c.reconcileSubscription(ctx, key)
	case flowsv1.KindSequence:
		return c.reconcileSequence(ctx, key)
	case flowsv1.KindParallel:
		return c.reconcileParallel(ctx, key)
	case sourcesv1.KindContainerSource:
		return c.reconcileContainerSource(ctx, key)
	case sourcesv1.KindApiServerSource:
		return c.reconcileApiServerSource(ctx, key)
	}
	return nil
}

// addressableKinds are the kinds a Destination may name: a change to one may change
// what the objects pointing at it resolve to.
var addressableKinds = []string{servingv1.KindService, servingv1.KindRoute, eventingv1.KindBroker,
	messagingv1.KindChannel, messagingv1.KindInMemoryChannel, flowsv1.KindSequence, flowsv1.KindParallel}

// onMessagingEvent enqueues the objects whose reconcile reads the changed object: a
// channel's subscriptions and owner, a flow's children's owner, and everything that may
// point at a changed destination. Namespaces bound the fan-out (there are no
// cross-namespace references).
func (c *Controller) onMessagingEvent(e store.Event) {
	ns := e.Key.Namespace
	switch e.Key.Kind {
	case messagingv1.KindInMemoryChannel:
		c.enqueueAll(messagingv1.KindChannel, ns)
		c.enqueueAll(messagingv1.KindSubscription, ns)
	case messagingv1.KindChannel:
		c.enqueueAll(messagingv1.KindSubscription, ns)
	}
	switch e.Key.Kind {
	case messagingv1.KindInMemoryChannel, messagingv1.KindSubscription:
		c.enqueueAll(flowsv1.KindSequence, ns)
		c.enqueueAll(flowsv1.KindParallel, ns)
	}
	if slices.Contains(addressableKinds, e.Key.Kind) {
		c.enqueueAll(messagingv1.KindSubscription, ns)
		c.enqueueAll(messagingv1.KindInMemoryChannel, ns)
		c.enqueueAll(sourcesv1.KindContainerSource, ns)
		c.enqueueAll(sourcesv1.KindApiServerSource, ns)
		switch e.Key.Kind {
		case servingv1.KindService, servingv1.KindRoute, eventingv1.KindBroker:
			// onEventingEvent enqueues the brokers, sources and bindings.
		default:
			c.enqueueAll(eventingv1.KindBroker, ns)
			c.enqueueAll(sourcesv1.KindPingSource, ns)
			c.enqueueAll(sourcesv1.KindSinkBinding, ns)
		}
	}
}

// Knative's names of a flow's children (sequence/resources, parallel/resources).
func sequenceChannelName(seq string, step int) string {
	return fmt.Sprintf("%s-kn-sequence-%d", seq, step)
}
func sequenceSubscriptionName(seq string, step int) string {
	return fmt.Sprintf("%s-kn-sequence-%d", seq, step)
}
func parallelChannelName(p string) string              { return p + "-kn-parallel" }
func parallelBranchChannelName(p string, i int) string { return fmt.Sprintf("%s-kn-parallel-%d", p, i) }
func parallelFilterSubscriptionName(p string, i int) string {
	return fmt.Sprintf("%s-kn-parallel-filter-%d", p, i)
}
func parallelSubscriptionName(p string, i int) string { return fmt.Sprintf("%s-kn-parallel-%d", p, i) }

// channelRef is a destination pointing at one of a flow's channels.
func channelRef(ns, name string) *eventingv1.Destination {
	return &eventingv1.Destination{Ref: &eventingv1.KReference{APIVersion: messagingv1.GroupVersion, Kind: messagingv1.KindInMemoryChannel, Name: name, Namespace: ns}}
}

// newFlowSubscription is a Subscription a flow owns, from channel to subscriber.
func newFlowSubscription(parent *metav1.ObjectMeta, owner metav1.OwnerReference, name, channel string,
	subscriber, reply *eventingv1.Destination, delivery *eventingv1.DeliverySpec) *messagingv1.Subscription {
	s := &messagingv1.Subscription{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: parent.Namespace, OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: messagingv1.SubscriptionSpec{
			Channel:    eventingv1.KReference{APIVersion: messagingv1.GroupVersion, Kind: messagingv1.KindInMemoryChannel, Name: channel},
			Subscriber: subscriber, Reply: reply, Delivery: delivery,
		},
	}
	s.SetDefaults(context.Background())
	return s
}

// ensureSubscription makes a flow's Subscription exist as wanted: created, updated when
// its spec changed, recreated when its (immutable) channel changed.
func (c *Controller) ensureSubscription(ctx context.Context, want *messagingv1.Subscription) (*messagingv1.Subscription, error) {
	var have messagingv1.Subscription
	err := c.cfg.Store.Get(ctx, store.KeyOf(want), &have)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := c.cfg.Store.Create(ctx, want); err != nil {
			return nil, fmt.Errorf("create Subscription %s: %w", want.Name, err)
		}
		return want, nil
	case err != nil:
		return nil, err
	}
	if !isOwnedBy(have.OwnerReferences, want.OwnerReferences) {
		return nil, &childError{fmt.Sprintf("there is an existing Subscription %q that we do not own", want.Name)}
	}
	if reflect.DeepEqual(have.Spec, want.Spec) {
		return &have, nil
	}
	if have.Spec.Channel != want.Spec.Channel {
		if err := c.cfg.Store.Delete(ctx, store.KeyOf(&have)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("delete Subscription %s to recreate it: %w", want.Name, err)
		}
		if err := c.cfg.Store.Create(ctx, want); err != nil {
			return nil, fmt.Errorf("recreate Subscription %s: %w", want.Name, err)
		}
		return want, nil
	}
	have.Spec = want.Spec
	if err := c.cfg.Store.Update(ctx, &have); err != nil {
		return nil, fmt.Errorf("update Subscription %s: %w", want.Name, err)
	}
	return &have, nil
}

// removeUnwanted deletes the channels and subscriptions controlled by owner uid in ns
// whose names are not wanted (a flow that lost steps or branches).
func (c *Controller) removeUnwanted(ctx context.Context, ns string, uid metav1.OwnerReference, wanted map[string]bool) error {
	var errs []error
	for _, kind := range []string{messagingv1.KindInMemoryChannel, messagingv1.KindSubscription} {
		objs, err := store.ListAs[metav1.PartialObjectMetadata](ctx, c.cfg.Store, kind, ns)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if wanted[kind+"/"+o.Name] || !isOwnedBy(o.OwnerReferences, []metav1.OwnerReference{uid}) {
				continue
			}
			if err := c.cfg.Store.Delete(ctx, store.Key{Kind: kind, Namespace: ns, Name: o.Name}); err != nil && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, fmt.Errorf("delete unwanted %s %s: %w", kind, o.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// readyOf returns an object's Ready condition, or Knative's "NoReady" placeholder.
func readyOf(st *duck.Status, what string, now metav1.Time) duck.Condition {
	if r := st.GetCondition(duck.ConditionReady); r != nil {
		return *r
	}
	return duck.Condition{Type: duck.ConditionReady, Status: duck.Unknown, Reason: "NoReady", Message: what + " does not have Ready condition", LastTransitionTime: now}
}

func objectRef(apiVersion, kind, ns, name string) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: apiVersion, Kind: kind, Name: name, Namespace: ns}
}

// reconcileSequence builds a Sequence as Knative does (sequence.go): one channel per step
// ({name}-kn-sequence-{i}) and one Subscription per step from that channel to the step,
// whose reply is the next step's channel (the last one's, spec.reply); the Sequence's
// address is the first channel's. Children are owned; their status is aggregated.
func (c *Controller) reconcileSequence(ctx context.Context, key store.Key) error {
	var seq flowsv1.Sequence
	if err := c.cfg.Store.Get(ctx, key, &seq); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil // children are owned: they go with it
		}
		return err
	}
	now := c.now()
	st := &seq.Status
	st.ObservedGeneration = seq.Generation
	conds := []duck.ConditionType{flowsv1.ConditionChannelsReady, flowsv1.ConditionSubscriptionsReady, flowsv1.ConditionAddressable, flowsv1.ConditionEventPoliciesReady}
	st.SetCondition(duck.Condition{Type: flowsv1.ConditionEventPoliciesReady, Status: duck.True, Reason: reasonOIDCDisabled,
		Message: `Feature "authentication-oidc" must be enabled to support Authorization`}, now)
	finish := func() error {
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &seq)
	}
	failed := func(reason string, err error) error {
		st.MarkFalse(flowsv1.ConditionChannelsReady, reason, err.Error(), now)
		st.MarkUnknown(flowsv1.ConditionSubscriptionsReady, reason, "", now)
		st.MarkUnknown(flowsv1.ConditionAddressable, reason, "", now)
		return finish()
	}
	// Objects written straight to a cluster's API have not met Skiff's validation.
	if errs := api.Errors(seq.Validate(ctx)); errs != nil {
		return failed("InvalidSpec", errs)
	}
	owner := controllerRef(flowsv1.GroupVersion, flowsv1.KindSequence, &seq.ObjectMeta)
	wanted := map[string]bool{}
	channels := make([]*messagingv1.InMemoryChannel, 0, len(seq.Spec.Steps))
	for i := range seq.Spec.Steps {
		name := sequenceChannelName(seq.Name, i)
		ch, err := c.ensureChannel(ctx, &seq.ObjectMeta, name, owner, seq.Spec.ChannelTemplate, nil, "spec.channelTemplate")
		if err != nil {
			var ce *childError
			if errors.As(err, &ce) {
				return failed("ChannelsNotReady", fmt.Errorf("failed to reconcile channel %s at step %d: %w", name, i, err))
			}
			return err
		}
		channels = append(channels, ch)
		wanted[messagingv1.KindInMemoryChannel+"/"+name] = true
	}
	markSequenceChannels(st, channels, now)

	subs := make([]*messagingv1.Subscription, 0, len(seq.Spec.Steps))
	for i := range seq.Spec.Steps {
		want := sequenceSubscription(&seq, owner, i)
		sub, err := c.ensureSubscription(ctx, want)
		if err != nil {
			var ce *childError
			if errors.As(err, &ce) {
				st.MarkFalse(flowsv1.ConditionSubscriptionsReady, "SubscriptionsNotReady", fmt.Sprintf("failed to reconcile subscription resource for step: %d : %v", i, err), now)
				return finish()
			}
			return err
		}
		subs = append(subs, sub)
		wanted[messagingv1.KindSubscription+"/"+want.Name] = true
	}
	markSequenceSubscriptions(st, subs, now)
	if err := c.removeUnwanted(ctx, seq.Namespace, owner, wanted); err != nil {
		return err
	}
	return finish()
}

// sequenceSubscription is the Subscription of a Sequence's step i: from the step's channel
// to the step, replying to the next step's channel (the last step to spec.reply).
func sequenceSubscription(seq *flowsv1.Sequence, owner metav1.OwnerReference, i int) *messagingv1.Subscription {
	step := seq.Spec.Steps[i]
	reply := seq.Spec.Reply
	if i < len(seq.Spec.Steps)-1 {
		reply = channelRef(seq.Namespace, sequenceChannelName(seq.Name, i+1))
	}
	dest := step.Destination
	return newFlowSubscription(&seq.ObjectMeta, owner, sequenceSubscriptionName(seq.Name, i), sequenceChannelName(seq.Name, i), &dest, reply, step.Delivery)
}

// markSequenceChannels reports the step channels on a Sequence's status, as Knative's
// PropagateChannelStatuses does: the Sequence's address is the first channel's.
func markSequenceChannels(st *flowsv1.SequenceStatus, channels []*messagingv1.InMemoryChannel, now time.Time) {
	st.ChannelStatuses = make([]flowsv1.SequenceChannelStatus, len(channels))
	allReady := len(channels) > 0
	for i, ch := range channels {
		if i == 0 {
			if ch.Status.Address != nil && ch.Status.Address.URL != "" {
				st.Address = *ch.Status.Address
				st.MarkTrue(flowsv1.ConditionAddressable, now)
			} else {
				st.Address = duck.Addressable{}
				st.MarkUnknown(flowsv1.ConditionAddressable, "emptyAddress", "addressable is nil", now)
			}
		}
		st.ChannelStatuses[i] = flowsv1.SequenceChannelStatus{
			Channel:        objectRef(messagingv1.GroupVersion, messagingv1.KindInMemoryChannel, ch.Namespace, ch.Name),
			ReadyCondition: readyOf(&ch.Status.Status, "Channel", metav1.NewTime(now)),
		}
		allReady = allReady && st.ChannelStatuses[i].ReadyCondition.Status == duck.True
	}
	if allReady {
		st.MarkTrue(flowsv1.ConditionChannelsReady, now)
	} else {
		st.MarkUnknown(flowsv1.ConditionChannelsReady, "ChannelsNotReady", "Channels are not ready yet, or there are none", now)
	}

}

// markSequenceSubscriptions reports the step Subscriptions on a Sequence's status, as
// Knative's PropagateSubscriptionStatuses does.
func markSequenceSubscriptions(st *flowsv1.SequenceStatus, subs []*messagingv1.Subscription, now time.Time) {
	st.SubscriptionStatuses = make([]flowsv1.SequenceSubscriptionStatus, len(subs))
	allReady := len(subs) > 0
	for i, s := range subs {
		st.SubscriptionStatuses[i] = flowsv1.SequenceSubscriptionStatus{
			Subscription:   objectRef(messagingv1.GroupVersion, messagingv1.KindSubscription, s.Namespace, s.Name),
			ReadyCondition: readyOf(&s.Status.Status, "Subscription", metav1.NewTime(now)),
		}
		allReady = allReady && st.SubscriptionStatuses[i].ReadyCondition.Status == duck.True
	}
	if allReady {
		st.MarkTrue(flowsv1.ConditionSubscriptionsReady, now)
	} else {
		st.MarkUnknown(flowsv1.ConditionSubscriptionsReady, "SubscriptionsNotReady", subscriptionsNotReady(st.SubscriptionStatuses), now)
	}
}

// subscriptionsNotReady is Knative's message, with the first subscription that is not
// ready and why, so a step that cannot be resolved is named.
func subscriptionsNotReady(sts []flowsv1.SequenceSubscriptionStatus) string {
	msg := "Subscriptions are not ready yet, or there are none"
	for _, s := range sts {
		if r := s.ReadyCondition; r.Status != duck.True {
			return fmt.Sprintf("%s: %s %s: %s", msg, s.Subscription.Name, r.Reason, r.Message)
		}
	}
	return msg
}

// reconcileParallel builds a Parallel as Knative does (parallel.go): an ingress channel
// ({name}-kn-parallel), and per branch a channel ({name}-kn-parallel-{i}), a filter
// Subscription from the ingress channel to the branch's filter whose reply is the
// branch's channel (or straight to that channel without a filter), and a Subscription
// from the branch's channel to its subscriber, replying to the branch's reply or
// spec.reply. The Parallel's address is the ingress channel's.
func (c *Controller) reconcileParallel(ctx context.Context, key store.Key) error {
	var par flowsv1.Parallel
	if err := c.cfg.Store.Get(ctx, key, &par); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	now := c.now()
	st := &par.Status
	st.ObservedGeneration = par.Generation
	if st.BranchStatuses == nil {
		st.BranchStatuses = []flowsv1.ParallelBranchStatus{}
	}
	conds := []duck.ConditionType{flowsv1.ConditionChannelsReady, flowsv1.ConditionSubscriptionsReady, flowsv1.ConditionAddressable, flowsv1.ConditionEventPoliciesReady}
	st.SetCondition(duck.Condition{Type: flowsv1.ConditionEventPoliciesReady, Status: duck.True, Reason: reasonOIDCDisabled,
		Message: `Feature "authentication-oidc" must be enabled to support Authorization`}, now)
	finish := func() error {
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &par)
	}
	failed := func(reason string, err error) error {
		st.MarkFalse(flowsv1.ConditionChannelsReady, reason, err.Error(), now)
		st.MarkUnknown(flowsv1.ConditionSubscriptionsReady, reason, "", now)
		st.MarkUnknown(flowsv1.ConditionAddressable, reason, "", now)
		return finish()
	}
	if errs := api.Errors(par.Validate(ctx)); errs != nil {
		return failed("InvalidSpec", errs)
	}
	owner := controllerRef(flowsv1.GroupVersion, flowsv1.KindParallel, &par.ObjectMeta)
	wanted := map[string]bool{}
	var ingress *messagingv1.InMemoryChannel
	branches := make([]*messagingv1.InMemoryChannel, 0, len(par.Spec.Branches))
	for i := -1; i < len(par.Spec.Branches); i++ {
		name := parallelChannelName(par.Name)
		if i >= 0 {
			name = parallelBranchChannelName(par.Name, i)
		}
		ch, err := c.ensureChannel(ctx, &par.ObjectMeta, name, owner, par.Spec.ChannelTemplate, nil, "spec.channelTemplate")
		if err != nil {
			var ce *childError
			if errors.As(err, &ce) {
				return failed("ChannelsNotReady", fmt.Errorf("failed to reconcile channel %s at step %d: %w", name, i, err))
			}
			return err
		}
		wanted[messagingv1.KindInMemoryChannel+"/"+name] = true
		if i < 0 {
			ingress = ch
		} else {
			branches = append(branches, ch)
		}
	}
	markParallelChannels(st, ingress, branches, now)

	for i := range par.Spec.Branches {
		filterSub, sub := parallelSubscriptions(&par, owner, i)
		for j, want := range []*messagingv1.Subscription{filterSub, sub} {
			have, err := c.ensureSubscription(ctx, want)
			if err != nil {
				var ce *childError
				if errors.As(err, &ce) {
					st.MarkFalse(flowsv1.ConditionSubscriptionsReady, "SubscriptionsNotReady", fmt.Sprintf("failed to reconcile Subscription Objects for branch: %d : %v", i, err), now)
					return finish()
				}
				return err
			}
			wanted[messagingv1.KindSubscription+"/"+want.Name] = true
			s := flowsv1.ParallelSubscriptionStatus{
				Subscription:   objectRef(messagingv1.GroupVersion, messagingv1.KindSubscription, have.Namespace, have.Name),
				ReadyCondition: readyOf(&have.Status.Status, "Subscription", metav1.NewTime(now)),
			}
			if j == 0 {
				st.BranchStatuses[i].FilterSubscriptionStatus = s
			} else {
				st.BranchStatuses[i].SubscriptionStatus = s
			}
		}
	}
	markParallelSubscriptions(st, now)
	if err := c.removeUnwanted(ctx, par.Namespace, owner, wanted); err != nil {
		return err
	}
	return finish()
}

// parallelSubscriptions are the two Subscriptions of a Parallel's branch i: the filter
// Subscription from the ingress channel (Knative's NewFilterSubscription: the filter replies
// into the branch's channel; no filter passes everything straight to it), and the one from
// the branch's channel to its subscriber, replying to the branch's reply or spec.reply.
func parallelSubscriptions(par *flowsv1.Parallel, owner metav1.OwnerReference, i int) (filter, sub *messagingv1.Subscription) {
	b := par.Spec.Branches[i]
	branchChannel := channelRef(par.Namespace, parallelBranchChannelName(par.Name, i))
	if b.Filter == nil {
		filter = newFlowSubscription(&par.ObjectMeta, owner, parallelFilterSubscriptionName(par.Name, i), parallelChannelName(par.Name), branchChannel, nil, nil)
	} else {
		f := *b.Filter
		filter = newFlowSubscription(&par.ObjectMeta, owner, parallelFilterSubscriptionName(par.Name, i), parallelChannelName(par.Name), &f, branchChannel, nil)
	}
	reply := b.Reply
	if reply == nil {
		reply = par.Spec.Reply
	}
	subscriber := b.Subscriber
	sub = newFlowSubscription(&par.ObjectMeta, owner, parallelSubscriptionName(par.Name, i), parallelBranchChannelName(par.Name, i), &subscriber, reply, b.Delivery)
	return filter, sub
}

// markParallelChannels reports the ingress and branch channels on a Parallel's status, as
// Knative's PropagateChannelStatuses does: the Parallel's address is the ingress channel's.
func markParallelChannels(st *flowsv1.ParallelStatus, ingress *messagingv1.InMemoryChannel, branches []*messagingv1.InMemoryChannel, now time.Time) {
	// Knative reads a channel as ready once it has an address.
	addressed := func(ch *messagingv1.InMemoryChannel) duck.Condition {
		if ch.Status.Address != nil && ch.Status.Address.URL != "" {
			return duck.Condition{Type: duck.ConditionReady, Status: duck.True}
		}
		return duck.Condition{Type: duck.ConditionReady, Status: duck.False, Reason: "NotAddressable", Message: "Channel is not addressable"}
	}
	if len(st.BranchStatuses) != len(branches) {
		st.BranchStatuses = make([]flowsv1.ParallelBranchStatus, len(branches))
	}
	st.IngressChannelStatus = flowsv1.ParallelChannelStatus{
		Channel:        objectRef(messagingv1.GroupVersion, messagingv1.KindInMemoryChannel, ingress.Namespace, ingress.Name),
		ReadyCondition: addressed(ingress),
	}
	// Knative marks a Parallel's not-ready children False; Skiff says Unknown while they
	// are on their way (False only for a child that failed), so that `skiff wait` waits.
	allReady := st.IngressChannelStatus.ReadyCondition.Status == duck.True
	if allReady {
		st.Address = ingress.Status.Address
		st.MarkTrue(flowsv1.ConditionAddressable, now)
	} else {
		st.Address = nil
		st.MarkUnknown(flowsv1.ConditionAddressable, "emptyAddress", "addressable is nil", now)
	}
	for i, ch := range branches {
		st.BranchStatuses[i].FilterChannelStatus = flowsv1.ParallelChannelStatus{
			Channel:        objectRef(messagingv1.GroupVersion, messagingv1.KindInMemoryChannel, ch.Namespace, ch.Name),
			ReadyCondition: addressed(ch),
		}
		allReady = allReady && st.BranchStatuses[i].FilterChannelStatus.ReadyCondition.Status == duck.True
	}
	if allReady {
		st.MarkTrue(flowsv1.ConditionChannelsReady, now)
	} else {
		st.MarkUnknown(flowsv1.ConditionChannelsReady, "ChannelsNotReady", "Channels are not ready yet, or there are none", now)
	}

}

// markParallelSubscriptions reports SubscriptionsReady from the branches' Subscription
// statuses, naming the first that failed, else the first not ready yet.
func markParallelSubscriptions(st *flowsv1.ParallelStatus, now time.Time) {
	allReady := len(st.BranchStatuses) > 0
	firstFailed, firstNotReady := "", ""
	for _, b := range st.BranchStatuses {
		for _, s := range []flowsv1.ParallelSubscriptionStatus{b.FilterSubscriptionStatus, b.SubscriptionStatus} {
			if r := s.ReadyCondition; r.Status != duck.True {
				allReady = false
				why := fmt.Sprintf(": %s %s: %s", s.Subscription.Name, r.Reason, r.Message)
				if r.Status == duck.False && firstFailed == "" {
					firstFailed = why
				}
				if firstNotReady == "" {
					firstNotReady = why
				}
			}
		}
	}
	switch {
	case allReady:
		st.MarkTrue(flowsv1.ConditionSubscriptionsReady, now)
	case firstFailed != "":
		st.MarkFalse(flowsv1.ConditionSubscriptionsReady, "SubscriptionsNotReady", "Subscriptions are not ready yet, or there are none"+firstFailed, now)
	default:
		st.MarkUnknown(flowsv1.ConditionSubscriptionsReady, "SubscriptionsNotReady", "Subscriptions are not ready yet, or there are none"+firstNotReady, now)
	}
}

// resolveFlowRef resolves a destination ref to a Sequence or Parallel to its address;
// handled is false for other kinds.
func (c *Controller) resolveFlowRef(ctx context.Context, ref *eventingv1.KReference) (addr string, handled bool, err error) {
	key := store.Key{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}
	switch ref.Kind {
	case flowsv1.KindSequence:
		var o flowsv1.Sequence
		if err := c.cfg.Store.Get(ctx, key, &o); err != nil {
			return "", true, refError(ref, err)
		}
		return o.Status.Address.URL, true, nil
	case flowsv1.KindParallel:
		var o flowsv1.Parallel
		if err := c.cfg.Store.Get(ctx, key, &o); err != nil {
			return "", true, refError(ref, err)
		}
		if o.Status.Address != nil {
			addr = o.Status.Address.URL
		}
		return addr, true, nil
	}
	return "", false, nil
}
