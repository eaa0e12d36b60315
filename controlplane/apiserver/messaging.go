package apiserver

import (
	"github.com/skiff-dev/skiff/api"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
)

// keepSubscribers gives an InMemoryChannel written through the API the spec.subscribers it
// has stored: they belong to the Subscription reconciler (Knative's webhook refuses changes
// to them by anyone but its controller), and Skiff's API replaces the object (PUT) where
// `kubectl apply` merges into the stored one, so applying a channel's manifest again would
// otherwise unsubscribe everyone. A patch of the channel keeps them too.
func keepSubscribers(obj, old api.Object) {
	o, ok := obj.(*messagingv1.InMemoryChannel)
	if !ok {
		return
	}
	if prev, ok := old.(*messagingv1.InMemoryChannel); ok {
		o.Spec.Subscribers = prev.Spec.Subscribers
	}
}
