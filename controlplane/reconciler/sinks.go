package reconciler

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/skiff-dev/skiff/api/duck"

	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// resolveDestination turns a Knative Destination into the URL to deliver to: a Knative
// Service's (or Route's) status.address.url (its cluster-local address, as Knative's resolver
// takes it, so a cluster-local or TLS Service is reached alike), a Broker's, a channel's or a
// flow's status.address.url (resolveMessagingRef), or the URI as given; a ref with a
// relative URI resolves the URI against the ref's URL. The error says which ref is missing
// or not yet addressable.
func (c *Controller) resolveDestination(ctx context.Context, ns string, d eventingv1.Destination) (string, error) {
	if d.Ref == nil {
		if d.URIString() == "" {
			return "", errors.New("neither ref nor uri is set")
		}
		return d.URIString(), nil
	}
	ref := *d.Ref
	if ref.Namespace == "" {
		ref.Namespace = ns
	}
	var addr string
	switch {
	case ref.Kind == servingv1.KindService && (ref.APIVersion == "" || ref.APIVersion == servingv1.GroupVersion):
		var svc servingv1.Service
		if err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindService, Namespace: ref.Namespace, Name: ref.Name}, &svc); err != nil {
			return "", refError(&ref, err)
		}
		addr = addressOf(svc.Status.Address, svc.Status.URL)
	case ref.Kind == servingv1.KindRoute:
		var rt servingv1.Route
		if err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRoute, Namespace: ref.Namespace, Name: ref.Name}, &rt); err != nil {
			return "", refError(&ref, err)
		}
		addr = addressOf(rt.Status.Address, rt.Status.URL)
	case ref.Kind == eventingv1.KindBroker:
		var b eventingv1.Broker
		if err := c.cfg.Store.Get(ctx, store.Key{Kind: eventingv1.KindBroker, Namespace: ref.Namespace, Name: ref.Name}, &b); err != nil {
			return "", refError(&ref, err)
		}
		addr = b.Status.Address.URL
	default:
		a, handled, err := c.resolveMessagingRef(ctx, &ref)
		if err != nil {
			return "", err
		}
		if !handled {
			return "", fmt.Errorf("%s: kind %q (%s) is not addressable here: use a Knative Service, Route, Broker, Channel, InMemoryChannel, Sequence, Parallel or a uri", ref.String(), ref.Kind, ref.APIVersion)
		}
		addr = a
	}
	if addr == "" {
		return "", fmt.Errorf("%s %w", ref.String(), errNotAddressable)
	}
	if d.URIString() == "" {
		return addr, nil
	}
	base, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("%s: address %q: %w", ref.String(), addr, err)
	}
	rel, err := url.Parse(d.URIString())
	if err != nil {
		return "", fmt.Errorf("uri %q: %w", d.URIString(), err)
	}
	return base.ResolveReference(rel).String(), nil
}

// errNotAddressable is what resolveDestination wraps for a ref that exists but has no
// address yet (a Service still becoming Ready). The ref's status change enqueues the
// objects that point at it, so this is reported as in progress (Unknown), not as a failure.
var errNotAddressable = errors.New("has no address yet")

// markUnresolved reports on cond a destination (at field) that did not resolve: Unknown
// with reason NotAddressable while its ref is on its way, else False with reason.
func markUnresolved(st *duck.Status, cond duck.ConditionType, reason, field string, err error, now time.Time) {
	if errors.Is(err, errNotAddressable) {
		st.MarkUnknown(cond, "NotAddressable", field+": "+err.Error(), now)
		return
	}
	st.MarkFalse(cond, reason, field+": "+err.Error(), now)
}

// markDeadLetter reports a resolved dead letter sink (dls, "" for none) on cond: True, with
// Knative's reason DeadLetterSinkNotConfigured when there is none.
func markDeadLetter(st *duck.Status, cond duck.ConditionType, dls string, now time.Time) {
	if dls == "" {
		st.SetCondition(duck.Condition{Type: cond, Status: duck.True, Reason: "DeadLetterSinkNotConfigured", Message: "No dead letter sink is configured."}, now)
		return
	}
	st.MarkTrue(cond, now)
}

func refError(ref *eventingv1.KReference, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s not found", ref.String())
	}
	return fmt.Errorf("%s: %w", ref.String(), err)
}

// addressOf is an Addressable's status.address.url, or url when it has none yet.
func addressOf(a *duck.Addressable, url string) string {
	if a != nil && a.URL != "" {
		return a.URL
	}
	return url
}
