package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/eventing/broker"
)

// Reasons Knative gives on conditions that do not depend on anything Skiff runs.
const (
	// reasonOIDCDisabled is auth.UpdateStatusWithEventPolicies' reason for EventPoliciesReady.
	reasonOIDCDisabled = "OIDCDisabled"
	// reasonOIDCIdentityDisabled is auth.SetupOIDCServiceAccount's reason for OIDCIdentityCreated.
	reasonOIDCIdentityDisabled = "authentication-oidc feature disabled"
	// channelAckPoll is how soon a channel whose route the proxies have not accepted yet
	// is looked at again; the wait doubles up to channelAckPollMax.
	channelAckPoll    = 100 * time.Millisecond
	channelAckPollMax = 5 * time.Second
)

// appliedChannels remembers the configuration last applied per channel, so that a
// reconcile that changes nothing (a status change, an ACK poll) costs no JetStream call.
// The zero value is ready to use.
type appliedChannels struct {
	mu sync.Mutex
	m  map[store.Key]broker.ChannelConfig
	// polls is how long a channel waits before looking again whether the proxies
	// accepted its route: doubling, so that no proxy connected costs little.
	polls map[store.Key]time.Duration
}

// nextPoll returns the wait before the next look at an unrouted channel's ACKs.
func (a *appliedChannels) nextPoll(k store.Key) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.polls == nil {
		a.polls = map[store.Key]time.Duration{}
	}
	d := min(max(2*a.polls[k], channelAckPoll), channelAckPollMax)
	a.polls[k] = d
	return d
}

// routed forgets a channel's poll interval.
func (a *appliedChannels) routed(k store.Key) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.polls, k)
}

func (a *appliedChannels) same(k store.Key, cfg broker.ChannelConfig) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	old, ok := a.m[k]
	return ok && reflect.DeepEqual(old, cfg)
}

func (a *appliedChannels) set(k store.Key, cfg *broker.ChannelConfig) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[store.Key]broker.ChannelConfig{}
	}
	if cfg == nil {
		delete(a.m, k)
		return
	}
	a.m[k] = *cfg
}

// controllerRef makes the owner reference of a child created by obj.
func controllerRef(apiVersion, kind string, m *metav1.ObjectMeta) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: m.Name, UID: m.UID, Controller: &yes, BlockOwnerDeletion: &yes}
}

// isChannelKind reports whether a reference names a channel kind Skiff runs.
func isChannelKind(r eventingv1.KReference) bool {
	return (r.Kind == messagingv1.KindChannel || r.Kind == messagingv1.KindInMemoryChannel) &&
		(r.APIVersion == "" || r.APIVersion == messagingv1.GroupVersion)
}

// reconcileInMemoryChannel applies an InMemoryChannel and its spec.subscribers to the data
// plane (a JetStream stream and one durable consumer per subscriber), routes its address
// through the proxy and reports Knative's InMemoryChannel status: address, conditions and
// per-subscriber readiness, which the Subscriptions read. Subscribers whose Subscription
// is gone (or points elsewhere) are removed from the spec first, which Knative does with
// a finalizer on the Subscription.
func (c *Controller) reconcileInMemoryChannel(ctx context.Context, key store.Key) error {
	var imc messagingv1.InMemoryChannel
	if err := c.cfg.Store.Get(ctx, key, &imc); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		c.applied.set(key, nil)
		c.applied.routed(key)
		if c.cfg.Eventing != nil {
			return c.cfg.Eventing.DeleteChannel(ctx, key.Namespace, key.Name)
		}
		return nil
	}
	if pruned, err := c.pruneSubscribers(ctx, &imc); err != nil || pruned {
		return err // the update enqueues the channel again
	}
	now := c.now()
	st := &imc.Status
	st.ObservedGeneration = imc.Generation
	conds := []duck.ConditionType{messagingv1.InMemoryChannelConditionServiceReady, messagingv1.InMemoryChannelConditionEndpointsReady,
		messagingv1.ChannelConditionAddressable, messagingv1.InMemoryChannelConditionChannelServiceReady,
		messagingv1.ChannelConditionDeadLetterSinkResolved, messagingv1.ChannelConditionEventPoliciesReady}
	st.SetCondition(duck.Condition{Type: messagingv1.ChannelConditionEventPoliciesReady, Status: duck.True, Reason: reasonOIDCDisabled,
		Message: `Feature "authentication-oidc" must be enabled to support Authorization`}, now)
	if c.cfg.Eventing == nil {
		st.MarkFalse(messagingv1.InMemoryChannelConditionServiceReady, "EventingDisabled", "this control plane runs no channel data plane", now)
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &imc)
	}

	cfg, subStatus, dlsOK := c.resolveChannel(ctx, &imc, now)

	var applyErr error
	if dlsOK && !c.applied.same(key, cfg) {
		if applyErr = c.cfg.Eventing.SetChannel(ctx, cfg); applyErr == nil {
			c.applied.set(key, &cfg)
		} else {
			c.applied.set(key, nil)
		}
	}
	routed := false
	if dlsOK && applyErr == nil {
		if routed = c.cfg.Eventing.ChannelRouted(imc.Namespace, imc.Name); routed {
			c.applied.routed(key)
		} else {
			c.queue.AddAfter(key, c.applied.nextPoll(key))
		}
	}
	markChannelApplied(st, imc.Namespace, imc.Name, subStatus, dlsOK, applyErr, routed, now)
	summarize(&st.Status, now, conds...)
	if err := c.cfg.Store.UpdateStatus(ctx, &imc); err != nil {
		return err
	}
	if applyErr != nil {
		return fmt.Errorf("apply channel %s: %w", key, applyErr)
	}
	return nil
}

// resolveChannel resolves a channel's dead letter sink (reported on its status; dlsOK false
// when it does not resolve) and each subscriber, and returns the data-plane config with the
// subscribers that resolved and every subscriber's status. Each subscriber's own problem
// keeps that subscriber out, not the channel down.
func (c *Controller) resolveChannel(ctx context.Context, imc *messagingv1.InMemoryChannel, now time.Time) (cfg broker.ChannelConfig, subStatus []messagingv1.SubscriberStatus, dlsOK bool) {
	st := &imc.Status
	cfg = broker.ChannelConfig{Namespace: imc.Namespace, Name: imc.Name}
	st.DeadLetterSinkURI = ""
	dlsOK = true
	if d, dls, err := c.resolveDelivery(ctx, imc.Namespace, imc.Spec.Delivery); err != nil {
		dlsOK = false
		markUnresolved(&st.Status, messagingv1.ChannelConditionDeadLetterSinkResolved, "Unable to get the DeadLetterSink's URI", "spec.delivery.deadLetterSink", err, now)
	} else {
		cfg.Delivery, st.DeadLetterSinkURI = d, dls
		markDeadLetter(&st.Status, messagingv1.ChannelConditionDeadLetterSinkResolved, dls, now)
	}

	subStatus = make([]messagingv1.SubscriberStatus, 0, len(imc.Spec.Subscribers))
	for i, s := range imc.Spec.Subscribers {
		ss := messagingv1.SubscriberStatus{UID: s.UID, ObservedGeneration: s.Generation, Ready: duck.True}
		sc, err := c.subscriberConfig(ctx, imc.Namespace, s)
		if err != nil {
			ss.Ready, ss.Message = duck.False, fmt.Sprintf("spec.subscribers[%d]: %v", i, err)
		} else {
			cfg.Subscribers = append(cfg.Subscribers, sc)
		}
		subStatus = append(subStatus, ss)
	}
	return cfg, subStatus, dlsOK
}

// markChannelApplied reports a channel's address, whether it was applied to the data plane
// (dlsOK false: not tried; applyErr) and routed by every proxy, and its subscribers' status.
func markChannelApplied(st *messagingv1.InMemoryChannelStatus, ns, name string, subStatus []messagingv1.SubscriberStatus, dlsOK bool, applyErr error, routed bool, now time.Time) {
	addr := broker.ChannelURL(ns, name)
	st.Address = &duck.Addressable{URL: addr}
	st.Addresses = []duck.Addressable{{URL: addr}}
	st.MarkTrue(messagingv1.ChannelConditionAddressable, now)
	switch {
	case !dlsOK:
		st.MarkUnknown(messagingv1.InMemoryChannelConditionServiceReady, "DeadLetterSinkNotResolved", "the channel is not applied until spec.delivery.deadLetterSink resolves", now)
		st.MarkUnknown(messagingv1.InMemoryChannelConditionEndpointsReady, "DeadLetterSinkNotResolved", "", now)
		st.MarkUnknown(messagingv1.InMemoryChannelConditionChannelServiceReady, "DeadLetterSinkNotResolved", "", now)
		for i := range subStatus {
			subStatus[i].Ready, subStatus[i].Message = duck.Unknown, "the channel's dead letter sink does not resolve"
		}
	case applyErr != nil:
		st.MarkFalse(messagingv1.InMemoryChannelConditionServiceReady, "DispatcherFailed", applyErr.Error(), now)
		st.MarkFalse(messagingv1.InMemoryChannelConditionEndpointsReady, "DispatcherFailed", applyErr.Error(), now)
		st.MarkUnknown(messagingv1.InMemoryChannelConditionChannelServiceReady, "DispatcherFailed", "", now)
		for i := range subStatus {
			subStatus[i].Ready, subStatus[i].Message = duck.False, applyErr.Error()
		}
	default:
		st.MarkTrue(messagingv1.InMemoryChannelConditionServiceReady, now)
		st.MarkTrue(messagingv1.InMemoryChannelConditionEndpointsReady, now)
		if routed {
			st.MarkTrue(messagingv1.InMemoryChannelConditionChannelServiceReady, now)
		} else {
			// Ready means an event sent to the address is stored: wait for the proxies.
			st.MarkUnknown(messagingv1.InMemoryChannelConditionChannelServiceReady, "ProxyNotReady",
				"waiting for the proxies to accept the route of "+addr, now)
		}
	}
	st.Subscribers = subStatus
}

// subscriberConfig turns one spec.subscribers entry into the data plane's, refusing
// URIs it cannot deliver to.
func (c *Controller) subscriberConfig(ctx context.Context, ns string, s messagingv1.SubscriberSpec) (broker.SubscriberConfig, error) {
	sc := broker.SubscriberConfig{Name: string(s.UID), Subscriber: s.SubscriberURI, Reply: s.ReplyURI}
	if sc.Name == "" && s.Name != nil {
		sc.Name = *s.Name
	}
	if sc.Name == "" {
		return sc, errors.New("uid: a subscriber needs a uid or a name")
	}
	if s.SubscriberURI == "" && s.ReplyURI == "" {
		return sc, errors.New("expected at least one of subscriberUri, replyUri, got none")
	}
	for field, u := range map[string]string{"subscriberUri": s.SubscriberURI, "replyUri": s.ReplyURI} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return sc, fmt.Errorf("%s: %q is not an absolute http(s) URL", field, u)
		}
	}
	d, _, err := c.resolveDelivery(ctx, ns, s.Delivery)
	if err != nil {
		return sc, fmt.Errorf("delivery.deadLetterSink: %w", err)
	}
	sc.Delivery = d
	return sc, nil
}

// pruneSubscribers removes the spec.subscribers entries whose Subscription no longer
// exists, was recreated (another UID) or points at another channel. It reports whether
// it changed the channel.
func (c *Controller) pruneSubscribers(ctx context.Context, imc *messagingv1.InMemoryChannel) (bool, error) {
	keep := imc.Spec.Subscribers[:0:0]
	for _, s := range imc.Spec.Subscribers {
		if s.Name == nil || *s.Name == "" {
			keep = append(keep, s) // not written by a Subscription reconciler
			continue
		}
		var sub messagingv1.Subscription
		err := c.cfg.Store.Get(ctx, store.Key{Kind: messagingv1.KindSubscription, Namespace: imc.Namespace, Name: *s.Name}, &sub)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return false, err
		}
		if sub.UID == s.UID && isChannelKind(sub.Spec.Channel) && sub.Spec.Channel.Name == imc.Name {
			keep = append(keep, s)
		}
	}
	if len(keep) == len(imc.Spec.Subscribers) {
		return false, nil
	}
	c.log.Info("removing subscribers whose Subscription is gone", "channel", imc.Namespace+"/"+imc.Name, "before", len(imc.Spec.Subscribers), "after", len(keep))
	imc.Spec.Subscribers = keep
	return true, c.cfg.Store.Update(ctx, imc)
}

// reconcileChannel makes a Channel's backing channel (an InMemoryChannel of the same name,
// owned by it, with the Channel's delivery) and reports its status, as Knative's channel
// reconciler does.
func (c *Controller) reconcileChannel(ctx context.Context, key store.Key) error {
	var ch messagingv1.Channel
	if err := c.cfg.Store.Get(ctx, key, &ch); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil // the backing channel is owned: it goes with it
		}
		return err
	}
	now := c.now()
	st := &ch.Status
	st.ObservedGeneration = ch.Generation
	conds := []duck.ConditionType{messagingv1.ChannelConditionBackingChannelReady, messagingv1.ChannelConditionAddressable,
		messagingv1.ChannelConditionDeadLetterSinkResolved, messagingv1.ChannelConditionEventPoliciesReady}
	st.SetCondition(duck.Condition{Type: messagingv1.ChannelConditionEventPoliciesReady, Status: duck.True, Reason: reasonOIDCDisabled,
		Message: `Feature "authentication-oidc" must be enabled to support Authorization`}, now)
	backing, err := c.ensureChannel(ctx, &ch.ObjectMeta, ch.Name, controllerRef(messagingv1.GroupVersion, messagingv1.KindChannel, &ch.ObjectMeta),
		ch.Spec.ChannelTemplate, ch.Spec.Delivery, "spec.channelTemplate")
	if err != nil {
		var ce *childError
		if !errors.As(err, &ce) {
			return err
		}
		st.Channel = nil
		st.MarkFalse(messagingv1.ChannelConditionBackingChannelReady, "ChannelFailure", err.Error(), now)
		st.MarkUnknown(messagingv1.ChannelConditionAddressable, "ChannelFailure", "", now)
		st.MarkUnknown(messagingv1.ChannelConditionDeadLetterSinkResolved, "ChannelFailure", "", now)
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &ch)
	}
	st.Channel = &eventingv1.KReference{Kind: messagingv1.KindInMemoryChannel, APIVersion: messagingv1.GroupVersion, Name: backing.Name, Namespace: backing.Namespace}
	bs := &backing.Status
	if ready := bs.GetCondition(duck.ConditionReady); ready == nil {
		st.MarkUnknown(messagingv1.ChannelConditionBackingChannelReady, "BackingChannelNotConfigured", "BackingChannel has not yet been reconciled.", now)
	} else {
		st.SetCondition(duck.Condition{Type: messagingv1.ChannelConditionBackingChannelReady, Status: ready.Status, Reason: ready.Reason, Message: ready.Message}, now)
	}
	st.Address, st.Addresses = bs.Address, bs.Addresses
	switch {
	case (bs.Address == nil || bs.Address.URL == "") && bs.GetCondition(duck.ConditionReady) == nil:
		// Knative says False until the backing channel's first reconcile gives it an
		// address; Skiff says Unknown, so that waiting for Ready (skiff wait, kubectl wait)
		// waits through it, as a Parallel's children on their way are Unknown.
		st.MarkUnknown(messagingv1.ChannelConditionAddressable, "EmptyHostname", "the backing channel has no address yet", now)
	case bs.Address == nil || bs.Address.URL == "":
		st.MarkFalse(messagingv1.ChannelConditionAddressable, "EmptyHostname", "hostname is the empty string", now)
	default:
		st.MarkTrue(messagingv1.ChannelConditionAddressable, now)
	}
	st.Subscribers = bs.Subscribers
	st.DeadLetterSinkURI = ""
	switch {
	case ch.Spec.Delivery == nil || ch.Spec.Delivery.DeadLetterSink == nil:
		markDeadLetter(&st.Status, messagingv1.ChannelConditionDeadLetterSinkResolved, "", now)
	case bs.DeadLetterSinkURI != "":
		st.DeadLetterSinkURI = bs.DeadLetterSinkURI
		st.MarkTrue(messagingv1.ChannelConditionDeadLetterSinkResolved, now)
	default:
		msg := fmt.Sprintf("Backing Channel %s didn't set status.deadLetterSinkURI", backing.Name)
		if dc := bs.GetCondition(messagingv1.ChannelConditionDeadLetterSinkResolved); dc != nil && dc.Message != "" {
			msg += ": " + dc.Message
		}
		st.MarkFalse(messagingv1.ChannelConditionDeadLetterSinkResolved, msg, "", now)
	}
	summarize(&st.Status, now, conds...)
	return c.cfg.Store.UpdateStatus(ctx, &ch)
}

// childError is a child the parent cannot have: a kind Skiff does not run, or a name
// taken by an object it does not own. It is reported in status, not retried.
type childError struct{ msg string }

func (e *childError) Error() string { return e.msg }

// ensureChannel makes the InMemoryChannel name exist, owned by parent (owner), with the
// template's spec and delivery (the channel's subscribers are left to the Subscriptions),
// and returns it. The template must name InMemoryChannel (or Channel, which Skiff backs
// with an InMemoryChannel too); field names the template in errors.
func (c *Controller) ensureChannel(ctx context.Context, parent *metav1.ObjectMeta, name string, owner metav1.OwnerReference,
	tmpl *messagingv1.ChannelTemplateSpec, delivery *eventingv1.DeliverySpec, field string) (*messagingv1.InMemoryChannel, error) {
	if tmpl == nil {
		tmpl = messagingv1.DefaultChannelTemplate()
	}
	if !isChannelKind(eventingv1.KReference{Kind: tmpl.Kind, APIVersion: tmpl.APIVersion}) || (owner.Kind == messagingv1.KindChannel && tmpl.Kind == messagingv1.KindChannel) {
		return nil, &childError{fmt.Sprintf("%s: kind %s (%s) is not a channel Skiff runs: use %s (%s), Skiff's durable JetStream channel",
			field, tmpl.Kind, tmpl.APIVersion, messagingv1.KindInMemoryChannel, messagingv1.GroupVersion)}
	}
	want := messagingv1.InMemoryChannel{}
	if tmpl.Spec != nil && len(tmpl.Spec.Raw) > 0 {
		if err := json.Unmarshal(tmpl.Spec.Raw, &want.Spec); err != nil {
			return nil, &childError{fmt.Sprintf("%s.spec: not an InMemoryChannel spec: %v", field, err)}
		}
	}
	want.Spec.Subscribers = nil
	if delivery != nil {
		want.Spec.Delivery = delivery
	}
	want.ObjectMeta = metav1.ObjectMeta{Name: name, Namespace: parent.Namespace, OwnerReferences: []metav1.OwnerReference{owner}}
	want.SetDefaults(ctx)

	var have messagingv1.InMemoryChannel
	err := c.cfg.Store.Get(ctx, store.Key{Kind: messagingv1.KindInMemoryChannel, Namespace: parent.Namespace, Name: name}, &have)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := c.cfg.Store.Create(ctx, &want); err != nil {
			return nil, fmt.Errorf("create InMemoryChannel %s/%s: %w", parent.Namespace, name, err)
		}
		return &want, nil
	case err != nil:
		return nil, err
	}
	if !isOwnedBy(have.OwnerReferences, want.OwnerReferences) {
		return nil, &childError{fmt.Sprintf("there is an existing InMemoryChannel %q that we do not own", name)}
	}
	if !reflect.DeepEqual(have.Spec.Delivery, want.Spec.Delivery) {
		have.Spec.Delivery = want.Spec.Delivery
		if err := c.cfg.Store.Update(ctx, &have); err != nil {
			return nil, fmt.Errorf("update InMemoryChannel %s/%s: %w", parent.Namespace, name, err)
		}
	}
	return &have, nil
}

// reconcileSubscription resolves a Subscription's channel, subscriber, reply and dead
// letter sink, writes them into the channel's spec.subscribers (the physical
// subscription) and reports whether the channel delivers to it, as Knative's
// subscription reconciler does. A channel that does not exist (yet) is reported on
// ReferencesResolved; its creation enqueues the Subscription again.
func (c *Controller) reconcileSubscription(ctx context.Context, key store.Key) error {
	var sub messagingv1.Subscription
	if err := c.cfg.Store.Get(ctx, key, &sub); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// Its channel prunes it from spec.subscribers.
			c.enqueueAll(messagingv1.KindInMemoryChannel, key.Namespace)
			return nil
		}
		return err
	}
	now := c.now()
	st := &sub.Status
	st.ObservedGeneration = sub.Generation
	conds := []duck.ConditionType{messagingv1.SubscriptionConditionReferencesResolved, messagingv1.SubscriptionConditionAddedToChannel,
		messagingv1.SubscriptionConditionChannelReady, messagingv1.SubscriptionConditionOIDCIdentityCreated}
	st.SetCondition(duck.Condition{Type: messagingv1.SubscriptionConditionOIDCIdentityCreated, Status: duck.True, Reason: reasonOIDCIdentityDisabled}, now)
	finish := func() error {
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &sub)
	}

	imc, err := c.subscriptionChannel(ctx, &sub)
	if err != nil {
		var ce *childError
		if !errors.As(err, &ce) {
			return err
		}
		st.MarkUnknown(messagingv1.SubscriptionConditionReferencesResolved, "ChannelReferenceFailed", "Failed to get spec.channel or backing channel: "+err.Error(), now)
		st.MarkUnknown(messagingv1.SubscriptionConditionAddedToChannel, "ChannelReferenceFailed", "", now)
		st.MarkUnknown(messagingv1.SubscriptionConditionChannelReady, "ChannelReferenceFailed", "", now)
		return finish()
	}

	// Resolve every destination (subscription.go resolveSubscriptionURIs).
	if reason, field, err := c.resolveSubscriptionURIs(ctx, &sub, imc); err != nil {
		markUnresolved(&st.Status, messagingv1.SubscriptionConditionReferencesResolved, reason, "Failed to resolve "+field, err, now)
		st.MarkUnknown(messagingv1.SubscriptionConditionAddedToChannel, reason, "", now)
		st.MarkUnknown(messagingv1.SubscriptionConditionChannelReady, reason, "", now)
		return finish()
	}
	st.MarkTrue(messagingv1.SubscriptionConditionReferencesResolved, now)

	// Sync into the channel (subscription.go syncChannel).
	ps := &st.PhysicalSubscription
	entry := messagingv1.SubscriberSpec{
		Name: &sub.Name, UID: sub.UID, Generation: sub.Generation,
		SubscriberURI: ps.SubscriberURI, ReplyURI: ps.ReplyURI, Delivery: subscriberDelivery(&sub, imc),
	}
	if setSubscriber(imc, entry) {
		if err := c.cfg.Store.Update(ctx, imc); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return err // another subscription wrote first: read again
			}
			st.MarkFalse(messagingv1.SubscriptionConditionAddedToChannel, "PhysicalChannelSyncFailed", "Failed to sync physical Channel: "+err.Error(), now)
			st.MarkUnknown(messagingv1.SubscriptionConditionChannelReady, "PhysicalChannelSyncFailed", "", now)
			if serr := finish(); serr != nil {
				return serr
			}
			return err
		}
	}
	st.MarkTrue(messagingv1.SubscriptionConditionAddedToChannel, now)

	markSubscriptionChannelReady(st, &sub, imc, now)
	return finish()
}

// resolveSubscriptionURIs resolves a Subscription's subscriber, reply and dead letter sink
// (its own, else its channel's) into status.physicalSubscription, as Knative's
// resolveSubscriptionURIs does; on failure, the reason and the field that failed.
func (c *Controller) resolveSubscriptionURIs(ctx context.Context, sub *messagingv1.Subscription, imc *messagingv1.InMemoryChannel) (reason, field string, err error) {
	ps := &sub.Status.PhysicalSubscription
	ps.SubscriberURI = ""
	if !messagingv1.DestinationIsEmpty(sub.Spec.Subscriber) {
		if ps.SubscriberURI, err = c.resolveDestination(ctx, sub.Namespace, *sub.Spec.Subscriber); err != nil {
			ps.SubscriberURI = ""
			return "SubscriberResolveFailed", "spec.subscriber", err
		}
	}
	ps.ReplyURI = ""
	if !messagingv1.DestinationIsEmpty(sub.Spec.Reply) {
		if ps.ReplyURI, err = c.resolveDestination(ctx, sub.Namespace, *sub.Spec.Reply); err != nil {
			ps.ReplyURI = ""
			return "ReplyResolveFailed", "spec.reply", err
		}
	}
	ps.DeadLetterSinkURI = ""
	switch {
	case sub.Spec.Delivery != nil && sub.Spec.Delivery.DeadLetterSink != nil:
		if ps.DeadLetterSinkURI, err = c.resolveDestination(ctx, sub.Namespace, *sub.Spec.Delivery.DeadLetterSink); err != nil {
			ps.DeadLetterSinkURI = ""
			return "DeadLetterSinkResolveFailed", "spec.delivery.deadLetterSink", err
		}
	case imc.Spec.Delivery != nil && imc.Spec.Delivery.DeadLetterSink != nil:
		if imc.Status.DeadLetterSinkURI == "" {
			err := fmt.Errorf("channel %s didn't set status.deadLetterSinkURI", imc.Name)
			if dc := imc.Status.GetCondition(messagingv1.ChannelConditionDeadLetterSinkResolved); dc == nil || dc.Status != duck.False {
				// The channel has not resolved it yet: its status change comes back here.
				err = fmt.Errorf("%w (%w)", err, errNotAddressable)
			}
			return "DeadLetterSinkResolveFailed", "the channel's spec.delivery.deadLetterSink", err
		}
		ps.DeadLetterSinkURI = imc.Status.DeadLetterSinkURI
	}
	return "", "", nil
}

// setSubscriber writes entry into the channel's spec.subscribers (by UID), and reports
// whether that changed it (Knative's syncChannel).
func setSubscriber(imc *messagingv1.InMemoryChannel, entry messagingv1.SubscriberSpec) bool {
	i := slices.IndexFunc(imc.Spec.Subscribers, func(s messagingv1.SubscriberSpec) bool { return s.UID == entry.UID })
	changed := true
	switch {
	case i < 0:
		imc.Spec.Subscribers = append(imc.Spec.Subscribers, entry)
	case reflect.DeepEqual(imc.Spec.Subscribers[i], entry):
		changed = false
	default:
		imc.Spec.Subscribers[i] = entry
	}
	return changed
}

// markSubscriptionChannelReady reports ChannelReady from whether the channel reports this
// generation of the Subscription delivered to (Knative's checkChannelStatusForSubscription).
func markSubscriptionChannelReady(st *messagingv1.SubscriptionStatus, sub *messagingv1.Subscription, imc *messagingv1.InMemoryChannel, now time.Time) {
	j := slices.IndexFunc(imc.Status.Subscribers, func(s messagingv1.SubscriberStatus) bool {
		return s.UID == sub.UID && s.ObservedGeneration == sub.Generation
	})
	switch {
	case j < 0:
		st.MarkUnknown(messagingv1.SubscriptionConditionChannelReady, "SubscriptionNotMarkedReadyByChannel",
			fmt.Sprintf("Failed to get subscription status: subscription %q not present in channel %q subscriber's list", sub.Name, imc.Name), now)
	case imc.Status.Subscribers[j].Ready == duck.True:
		st.MarkTrue(messagingv1.SubscriptionConditionChannelReady, now)
	case imc.Status.Subscribers[j].Ready == duck.False:
		st.MarkFalse(messagingv1.SubscriptionConditionChannelReady, "SubscriptionNotMarkedReadyByChannel",
			"Subscription marked by Channel as False: "+imc.Status.Subscribers[j].Message, now)
	default:
		st.MarkUnknown(messagingv1.SubscriptionConditionChannelReady, "SubscriptionNotMarkedReadyByChannel",
			"Subscription marked by Channel as Unknown: "+imc.Status.Subscribers[j].Message, now)
	}
}

// subscriptionChannel returns the InMemoryChannel a Subscription's spec.channel names,
// through a Channel's backing channel. A missing or unsupported channel is *childError.
func (c *Controller) subscriptionChannel(ctx context.Context, sub *messagingv1.Subscription) (*messagingv1.InMemoryChannel, error) {
	ref := sub.Spec.Channel
	if !isChannelKind(ref) {
		return nil, &childError{fmt.Sprintf("spec.channel: kind %s (%s) is not a channel Skiff runs: use %s or %s (%s)",
			ref.Kind, ref.APIVersion, messagingv1.KindChannel, messagingv1.KindInMemoryChannel, messagingv1.GroupVersion)}
	}
	name := ref.Name
	if ref.Kind == messagingv1.KindChannel {
		var ch messagingv1.Channel
		if err := c.cfg.Store.Get(ctx, store.Key{Kind: messagingv1.KindChannel, Namespace: sub.Namespace, Name: ref.Name}, &ch); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, &childError{fmt.Sprintf("spec.channel: Channel %s/%s not found", sub.Namespace, ref.Name)}
			}
			return nil, err
		}
		if ch.Status.Channel == nil || !ch.Status.IsReady() {
			return nil, &childError{fmt.Sprintf("spec.channel: Channel %s/%s is not ready", sub.Namespace, ref.Name)}
		}
		name = ch.Status.Channel.Name
	}
	var imc messagingv1.InMemoryChannel
	if err := c.cfg.Store.Get(ctx, store.Key{Kind: messagingv1.KindInMemoryChannel, Namespace: sub.Namespace, Name: name}, &imc); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, &childError{fmt.Sprintf("spec.channel: InMemoryChannel %s/%s not found", sub.Namespace, name)}
		}
		return nil, err
	}
	return &imc, nil
}

// subscriberDelivery is the delivery written into the channel for a subscription
// (subscription.go deliverySpec): the subscription's own, else the channel's, with the
// resolved dead letter sink as a URI.
func subscriberDelivery(sub *messagingv1.Subscription, imc *messagingv1.InMemoryChannel) *eventingv1.DeliverySpec {
	src := sub.Spec.Delivery
	if src == nil {
		src = imc.Spec.Delivery
	}
	var d *eventingv1.DeliverySpec
	if dls := sub.Status.PhysicalSubscription.DeadLetterSinkURI; dls != "" {
		d = &eventingv1.DeliverySpec{DeadLetterSink: &eventingv1.Destination{URI: eventingv1.URIOf(dls)}}
	}
	if src != nil && (src.BackoffDelay != nil || src.Retry != nil || src.BackoffPolicy != nil || src.Timeout != nil || src.RetryAfterMax != nil) {
		if d == nil {
			d = &eventingv1.DeliverySpec{}
		}
		d.BackoffPolicy, d.Retry, d.BackoffDelay, d.Timeout, d.RetryAfterMax = src.BackoffPolicy, src.Retry, src.BackoffDelay, src.Timeout, src.RetryAfterMax
	}
	return d
}

// resolveMessagingRef resolves a destination ref to a channel, Sequence or Parallel to
// its address; handled is false for other kinds.
func (c *Controller) resolveMessagingRef(ctx context.Context, ref *eventingv1.KReference) (addr string, handled bool, err error) {
	key := store.Key{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}
	switch ref.Kind {
	case messagingv1.KindChannel:
		var o messagingv1.Channel
		if err := c.cfg.Store.Get(ctx, key, &o); err != nil {
			return "", true, refError(ref, err)
		}
		if o.Status.Address != nil {
			addr = o.Status.Address.URL
		}
	case messagingv1.KindInMemoryChannel:
		var o messagingv1.InMemoryChannel
		if err := c.cfg.Store.Get(ctx, key, &o); err != nil {
			return "", true, refError(ref, err)
		}
		if o.Status.Address != nil {
			addr = o.Status.Address.URL
		}
	default:
		return c.resolveFlowRef(ctx, ref)
	}
	return addr, true, nil
}
