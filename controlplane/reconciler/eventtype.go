package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/skiff-dev/skiff/api"
	eventingv1beta3 "github.com/skiff-dev/skiff/api/eventing/v1beta3"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// reconcileEventType reports whether an EventType's spec.reference exists, as Knative's
// eventtype reconciler does (pkg/reconciler/eventtype): no reference is ReferenceExists True
// with reason ReferenceNotSet; a reference to an object that exists, True; to one that does
// not, False with ResourceDoesNotExist; one that cannot be looked up (a kind Skiff does not
// serve), Unknown with ReferenceGetFailed. Ready follows ReferenceExists. Knative's
// eventtype-auto-create (EventTypes made from observed events) is not done.
func (c *Controller) reconcileEventType(ctx context.Context, key store.Key) error {
	var et eventingv1beta3.EventType
	if err := c.cfg.Store.Get(ctx, key, &et); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	now := c.now()
	st := &et.Status
	st.ObservedGeneration = et.Generation
	var lookupErr error
	if ref := et.Spec.Reference; ref.IsEmpty() {
		st.MarkReferenceNotSet(now)
	} else {
		switch err := c.referenceExists(ctx, et.Namespace, ref); {
		case err == nil:
			st.MarkReferenceExists(now)
		case errors.Is(err, store.ErrNotFound):
			// The event that creates the object enqueues this EventType again (onEvent).
			st.MarkReferenceDoesNotExist(now)
		default:
			st.MarkReferenceExistsUnknown(eventingv1beta3.ReasonReferenceGetFailed, fmt.Sprintf("Failed to get reference: %v", err), now)
			lookupErr = err
		}
	}
	if err := c.cfg.Store.UpdateStatus(ctx, &et); err != nil {
		return err
	}
	return lookupErr
}

// referenceExists looks up the object ref names: nil when it exists, store.ErrNotFound
// when it does not, another error when it cannot be looked up.
func (c *Controller) referenceExists(ctx context.Context, namespace string, ref *eventingv1beta3.KReference) error {
	kind := api.LookupGVK(ref.APIVersion, ref.Kind)
	if kind == nil && ref.APIVersion == "" && ref.Group != "" {
		// A group without a version (kreference-group): any served version of the group.
		for _, k := range api.ServedKinds() {
			if k.Group == ref.Group && k.Kind == ref.Kind {
				kind = k
				break
			}
		}
	}
	if kind == nil {
		return fmt.Errorf("no kind %q in %q is served", ref.Kind, strings.TrimSpace(ref.APIVersion+" "+ref.Group))
	}
	if ref.Name == "" {
		return fmt.Errorf("spec.reference names no object")
	}
	if ref.Namespace != "" {
		namespace = ref.Namespace
	}
	if kind.ClusterScoped {
		namespace = ""
	}
	return c.cfg.Store.Get(ctx, store.Key{Kind: kind.Kind, Namespace: namespace, Name: ref.Name}, kind.New())
}
