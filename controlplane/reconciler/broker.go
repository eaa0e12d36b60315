package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	eventingv1beta3 "github.com/skiff-dev/skiff/api/eventing/v1beta3"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/eventing/source"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// Eventing is the eventing data plane the reconcilers drive: the broker
// ingress and dispatcher (with the proxy's cloudevents filter configuration)
// and the PingSource adapter.
type Eventing interface {
	// SetBroker applies a broker with its triggers (destinations resolved).
	SetBroker(ctx context.Context, cfg broker.BrokerConfig) error
	// DeleteBroker removes a broker and its undelivered events.
	DeleteBroker(ctx context.Context, namespace, name string) error
	// SetPingSource schedules a PingSource.
	SetPingSource(namespace, name string, spec source.PingSpec) error
	// DeletePingSource stops a PingSource.
	DeletePingSource(namespace, name string)
	// SetChannel applies a channel with its subscribers (destinations resolved) and
	// routes its address through the proxy.
	SetChannel(ctx context.Context, cfg broker.ChannelConfig) error
	// DeleteChannel removes a channel, its route and its undelivered events.
	DeleteChannel(ctx context.Context, namespace, name string) error
	// ChannelRouted reports whether every proxy has accepted the channel's route.
	ChannelRouted(namespace, name string) bool
}

// Condition types Knative reports on Brokers and Triggers besides the API's.
const (
	brokerConditionFilter         duck.ConditionType = "FilterReady"
	brokerConditionTriggerChannel duck.ConditionType = "TriggerChannelReady"
	brokerConditionDeadLetter     duck.ConditionType = "DeadLetterSinkResolved"
	triggerConditionDependency    duck.ConditionType = "DependencyReady"
)

// eventingKinds are reconciled by reconcileEventing.
var eventingKinds = append([]string{eventingv1.KindBroker, eventingv1.KindTrigger, sourcesv1.KindPingSource, sourcesv1.KindSinkBinding,
	eventingv1beta3.KindEventType}, messagingKinds...)

// reconcileEventing reconciles the eventing kinds; other kinds are ignored.
func (c *Controller) reconcileEventing(ctx context.Context, key store.Key) error {
	switch key.Kind {
	case eventingv1.KindBroker:
		return c.reconcileBroker(ctx, key)
	case eventingv1.KindTrigger:
		return c.reconcileTrigger(ctx, key)
	case sourcesv1.KindPingSource:
		return c.reconcilePingSource(ctx, key)
	case sourcesv1.KindSinkBinding:
		return c.reconcileSinkBinding(ctx, key)
	case eventingv1beta3.KindEventType:
		return c.reconcileEventType(ctx, key)
	}
	return c.reconcileMessaging(ctx, key)
}

// onEventingEvent enqueues the eventing objects whose reconcile reads the
// changed object: a Trigger's brokers (all of the namespace, since a Trigger
// may have moved from one broker to another or been deleted), and the
// brokers, sources and bindings whose destinations may resolve to a changed
// Service, Route or Broker.
func (c *Controller) onEventingEvent(e store.Event) {
	c.onMessagingEvent(e)
	if e.Key.Kind != eventingv1beta3.KindEventType && (e.Type == store.Added || e.Type == store.Deleted) {
		// An EventType's spec.reference may name any kind in any namespace; only a creation
		// or deletion changes whether it exists.
		c.enqueueAll(eventingv1beta3.KindEventType, "")
	}
	if c.cfg.Eventing == nil {
		return
	}
	ns := e.Key.Namespace
	switch e.Key.Kind {
	case eventingv1.KindTrigger:
		c.enqueueAll(eventingv1.KindBroker, ns)
	case servingv1.KindService, servingv1.KindRoute, eventingv1.KindBroker:
		if e.Key.Kind != eventingv1.KindBroker {
			c.enqueueAll(eventingv1.KindBroker, ns)
		}
		c.enqueueAll(sourcesv1.KindPingSource, ns)
		c.enqueueAll(sourcesv1.KindSinkBinding, ns)
		if e.Key.Kind == eventingv1.KindBroker {
			// Triggers of other brokers may use this broker as a subscriber or
			// dead letter sink.
			c.enqueueAll(eventingv1.KindBroker, ns)
		}
	}
}

// enqueueAll enqueues every object of kind in namespace.
func (c *Controller) enqueueAll(kind, namespace string) {
	objs, err := store.ListAs[metaOnly](context.Background(), c.cfg.Store, kind, namespace)
	if err != nil {
		c.log.Warn("listing for an eventing dependency", "kind", kind, "namespace", namespace, "err", err)
		return
	}
	for _, o := range objs {
		c.queue.Add(store.Key{Kind: kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name})
	}
}

// reconcileTrigger reports a Trigger whose Broker does not exist; the
// Broker's reconcile applies and reports every Trigger that names it.
func (c *Controller) reconcileTrigger(ctx context.Context, key store.Key) error {
	var tr eventingv1.Trigger
	if err := c.cfg.Store.Get(ctx, key, &tr); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	bkey := store.Key{Kind: eventingv1.KindBroker, Namespace: tr.Namespace, Name: tr.Spec.Broker}
	var b eventingv1.Broker
	err := c.cfg.Store.Get(ctx, bkey, &b)
	switch {
	case err == nil:
		c.queue.Add(bkey)
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	now := c.now()
	st := &tr.Status
	st.ObservedGeneration = tr.Generation
	st.MarkFalse(eventingv1.TriggerConditionBroker, "BrokerDoesNotExist", fmt.Sprintf("Broker %q does not exist", tr.Spec.Broker), now)
	st.MarkUnknown(eventingv1.TriggerConditionSubscription, "BrokerDoesNotExist", "", now)
	summarize(&st.Status, now, eventingv1.TriggerConditionBroker, eventingv1.TriggerConditionSubscription)
	return c.cfg.Store.UpdateStatus(ctx, &tr)
}

// reconcileBroker applies a Broker and its Triggers to the data plane and
// reports the status of all of them, with Knative's conditions: resolve the
// destinations, apply what resolved, then report the Broker and each Trigger.
func (c *Controller) reconcileBroker(ctx context.Context, key store.Key) error {
	var b eventingv1.Broker
	if err := c.cfg.Store.Get(ctx, key, &b); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			if c.cfg.Eventing != nil {
				return c.cfg.Eventing.DeleteBroker(ctx, key.Namespace, key.Name)
			}
			return nil
		}
		return err
	}
	now := c.now()
	st := &b.Status
	st.ObservedGeneration = b.Generation
	triggers, err := store.ListAs[eventingv1.Trigger](ctx, c.cfg.Store, eventingv1.KindTrigger, b.Namespace)
	if err != nil {
		return err
	}
	triggers = slices.DeleteFunc(triggers, func(t *eventingv1.Trigger) bool { return t.Spec.Broker != b.Name })
	slices.SortFunc(triggers, func(x, y *eventingv1.Trigger) int { return strings.Compare(x.Name, y.Name) })

	if c.cfg.Eventing == nil {
		st.MarkFalse(eventingv1.BrokerConditionIngress, "EventingDisabled", "this control plane runs no broker ingress", now)
		summarize(&st.Status, now, eventingv1.BrokerConditionIngress)
		return c.cfg.Store.UpdateStatus(ctx, &b)
	}

	cfg, results := c.resolveBroker(ctx, &b, triggers, now)
	applyErr := c.cfg.Eventing.SetBroker(ctx, cfg)
	markBrokerApplied(st, broker.URL(c.cfg.Domain, b.Namespace, b.Name), applyErr, now)
	if err := c.cfg.Store.UpdateStatus(ctx, &b); err != nil {
		return err
	}

	var errs []error
	for _, r := range results {
		markTrigger(r, st.GetCondition(duck.ConditionReady), applyErr, now)
		if err := c.cfg.Store.UpdateStatus(ctx, r.tr); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("trigger %s/%s status: %w", r.tr.Namespace, r.tr.Name, err))
		}
	}
	if applyErr != nil {
		errs = append(errs, fmt.Errorf("apply broker %s: %w", key, applyErr))
	}
	return errors.Join(errs...)
}

// triggerResult is what resolving one Trigger's destinations found.
type triggerResult struct {
	tr         *eventingv1.Trigger
	subscriber string
	dls        string
	subErr     error
	dlsErr     error
}

// resolveBroker resolves the Broker's dead letter sink (reported on b's status) and each
// Trigger's destinations, and returns the data-plane config with the Triggers whose
// destinations resolved. Each Trigger's own problems keep that Trigger out, not the Broker
// down.
func (c *Controller) resolveBroker(ctx context.Context, b *eventingv1.Broker, triggers []*eventingv1.Trigger, now time.Time) (broker.BrokerConfig, []triggerResult) {
	st := &b.Status
	cfg := broker.BrokerConfig{Namespace: b.Namespace, Name: b.Name}
	st.DeadLetterSinkURI = ""
	if d, dls, err := c.resolveDelivery(ctx, b.Namespace, b.Spec.Delivery); err != nil {
		markUnresolved(&st.Status, brokerConditionDeadLetter, "Unresolved", "spec.delivery.deadLetterSink", err, now)
	} else {
		cfg.Delivery = d
		st.DeadLetterSinkURI = dls
		markDeadLetter(&st.Status, brokerConditionDeadLetter, dls, now)
	}

	results := make([]triggerResult, 0, len(triggers))
	for _, tr := range triggers {
		r := triggerResult{tr: tr}
		r.subscriber, r.subErr = c.resolveDestination(ctx, tr.Namespace, tr.Spec.Subscriber)
		delivery := cfg.Delivery
		if tr.Spec.Delivery != nil {
			delivery, r.dls, r.dlsErr = c.resolveDelivery(ctx, tr.Namespace, tr.Spec.Delivery)
		} else {
			r.dls = st.DeadLetterSinkURI
		}
		if r.subErr == nil && r.dlsErr == nil {
			cfg.Triggers = append(cfg.Triggers, broker.TriggerConfig{
				Name: tr.Name, Filter: triggerFilter(tr.Spec), Subscriber: r.subscriber, Delivery: delivery,
			})
		}
		results = append(results, r)
	}
	return cfg, results
}

// markBrokerApplied reports on a Broker's status its address and whether applying it to the
// data plane (applyErr) worked, and summarizes Ready.
func markBrokerApplied(st *eventingv1.BrokerStatus, url string, applyErr error, now time.Time) {
	st.Address.URL = url
	st.MarkTrue(eventingv1.BrokerConditionAddressable, now)
	if applyErr != nil {
		st.MarkFalse(eventingv1.BrokerConditionIngress, "ApplyFailed", applyErr.Error(), now)
		st.MarkFalse(brokerConditionTriggerChannel, "ApplyFailed", applyErr.Error(), now)
		st.MarkUnknown(brokerConditionFilter, "ApplyFailed", "", now)
	} else {
		st.MarkTrue(eventingv1.BrokerConditionIngress, now)
		st.MarkTrue(brokerConditionTriggerChannel, now)
		st.MarkTrue(brokerConditionFilter, now)
	}
	summarize(&st.Status, now, eventingv1.BrokerConditionAddressable, eventingv1.BrokerConditionIngress,
		brokerConditionTriggerChannel, brokerConditionFilter, brokerConditionDeadLetter)
}

// markTrigger reports on a Trigger's status its Broker's readiness (brokerReady), what
// resolving its destinations found (r) and whether applying the Broker worked (applyErr).
func markTrigger(r triggerResult, brokerReady *duck.Condition, applyErr error, now time.Time) {
	tst := &r.tr.Status
	tst.ObservedGeneration = r.tr.Generation
	mirror(&tst.Status, eventingv1.TriggerConditionBroker, brokerReady, now)
	tst.MarkTrue(triggerConditionDependency, now)
	tst.SubscriberURI = r.subscriber
	if r.subErr != nil {
		tst.SubscriberURI = ""
		markUnresolved(&tst.Status, eventingv1.TriggerConditionSubscriber, "Unresolved", "spec.subscriber", r.subErr, now)
	} else {
		tst.MarkTrue(eventingv1.TriggerConditionSubscriber, now)
	}
	tst.DeadLetterSinkURI = r.dls
	if r.dlsErr != nil {
		tst.DeadLetterSinkURI = ""
		markUnresolved(&tst.Status, eventingv1.TriggerConditionDeadLetter, "Unresolved", "spec.delivery.deadLetterSink", r.dlsErr, now)
	} else {
		markDeadLetter(&tst.Status, eventingv1.TriggerConditionDeadLetter, r.dls, now)
	}
	switch {
	case r.subErr != nil || r.dlsErr != nil:
		msg := "the trigger is not applied until its destinations resolve"
		if errors.Is(r.subErr, errNotAddressable) || errors.Is(r.dlsErr, errNotAddressable) {
			tst.MarkUnknown(eventingv1.TriggerConditionSubscription, "NotAddressable", msg, now)
		} else {
			tst.MarkFalse(eventingv1.TriggerConditionSubscription, "NotSubscribed", msg, now)
		}
	case applyErr != nil:
		tst.MarkFalse(eventingv1.TriggerConditionSubscription, "ApplyFailed", applyErr.Error(), now)
	default:
		tst.MarkTrue(eventingv1.TriggerConditionSubscription, now)
	}
	summarize(&tst.Status, now, eventingv1.TriggerConditionBroker, triggerConditionDependency, eventingv1.TriggerConditionSubscriber,
		eventingv1.TriggerConditionDeadLetter, eventingv1.TriggerConditionSubscription)
}

// resolveDelivery resolves a DeliverySpec's dead letter sink and copies the
// rest; it returns the resolved URL ("" for none).
func (c *Controller) resolveDelivery(ctx context.Context, ns string, d *eventingv1.DeliverySpec) (*broker.DeliverySpec, string, error) {
	if d == nil {
		return nil, "", nil
	}
	out := &broker.DeliverySpec{Retry: d.Retry}
	if d.BackoffPolicy != nil {
		out.BackoffPolicy = *d.BackoffPolicy
	}
	if d.BackoffDelay != nil {
		out.BackoffDelay = *d.BackoffDelay
	}
	if d.Timeout != nil {
		out.Timeout = *d.Timeout
	}
	if d.RetryAfterMax != nil {
		out.RetryAfterMax = *d.RetryAfterMax
	}
	if d.Format != nil {
		out.Format = *d.Format
	}
	if d.DeadLetterSink != nil {
		u, err := c.resolveDestination(ctx, ns, *d.DeadLetterSink)
		if err != nil {
			return nil, "", err
		}
		out.DeadLetterSink = u
	}
	return out, out.DeadLetterSink, nil
}

// triggerFilter converts a Trigger's spec.filter and spec.filters.
func triggerFilter(spec eventingv1.TriggerSpec) eventfilter.Filter {
	var f eventfilter.Filter
	if spec.Filter != nil && len(spec.Filter.Attributes) > 0 {
		f.Attributes = spec.Filter.Attributes
	}
	for _, x := range spec.Filters {
		f.Filters = append(f.Filters, expression(x))
	}
	return f
}

func expression(x eventingv1.SubscriptionsAPIFilter) eventfilter.Expression {
	e := eventfilter.Expression{Exact: x.Exact, Prefix: x.Prefix, Suffix: x.Suffix, CESQL: x.CESQL}
	for _, a := range x.All {
		e.All = append(e.All, expression(a))
	}
	for _, a := range x.Any {
		e.Any = append(e.Any, expression(a))
	}
	if x.Not != nil {
		n := expression(*x.Not)
		e.Not = &n
	}
	return e
}
