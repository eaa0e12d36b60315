package apiserver

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
)

// admitMessaging applies Knative's update rules for channels and subscriptions: a
// Subscription's spec.channel and a Channel's spec.channelTemplate are immutable, and a
// channel's spec.subscribers belong to the Subscription reconciler (Knative's webhook
// refuses changes to them by anyone else): an update keeps the stored ones, so applying a
// channel's manifest again does not unsubscribe anyone.
func admitMessaging(obj, existing api.Object) field.ErrorList {
	switch o := obj.(type) {
	case *messagingv1.Subscription:
		if old, ok := existing.(*messagingv1.Subscription); ok {
			return messagingv1.CheckSubscriptionUpdate(old, o)
		}
	case *messagingv1.Channel:
		if old, ok := existing.(*messagingv1.Channel); ok {
			return messagingv1.CheckChannelUpdate(old, o)
		}
	case *messagingv1.InMemoryChannel:
		if old, ok := existing.(*messagingv1.InMemoryChannel); ok {
			o.Spec.Subscribers = old.Spec.Subscribers
		}
	}
	return nil
}
