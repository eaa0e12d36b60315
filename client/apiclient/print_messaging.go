package apiclient

import (
	"encoding/json"
	"strconv"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	eventingv1beta3 "github.com/skiff-dev/skiff/api/eventing/v1beta3"
	flowsv1 "github.com/skiff-dev/skiff/api/flows/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// printMessaging writes the table of a channel, subscription, flow or the sources added
// with them, with the columns `kn` shows; printed is false for other kinds.
func printMessaging(row func(...string), k *api.Kind, objs []json.RawMessage) (printed bool, err error) {
	decode := func(raw json.RawMessage, v any) bool {
		if err == nil {
			err = json.Unmarshal(raw, v)
		}
		return err == nil
	}
	switch k.Kind {
	case eventingv1beta3.KindEventType:
		// The printer columns of Knative's eventtype.yaml CRD.
		row("NAMESPACE", "NAME", "TYPE", "SOURCE", "REFERENCE NAME", "REFERENCE KIND", "DESCRIPTION", "READY", "REASON")
		for _, raw := range objs {
			var o eventingv1beta3.EventType
			if !decode(raw, &o) {
				return true, err
			}
			attr := func(name string) string {
				for _, a := range o.Spec.Attributes {
					if a.Name == name {
						return a.Value
					}
				}
				return ""
			}
			var refName, refKind string
			if r := o.Spec.Reference; r != nil {
				refName, refKind = r.Name, r.Kind
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, attr("type"), attr("source"), refName, refKind, o.Spec.Description, ready, reason)
		}
	case messagingv1.KindChannel:
		row("NAMESPACE", "NAME", "TYPE", "URL", "READY", "REASON")
		for _, raw := range objs {
			var o messagingv1.Channel
			if !decode(raw, &o) {
				return true, err
			}
			typ := ""
			if o.Spec.ChannelTemplate != nil {
				typ = o.Spec.ChannelTemplate.Kind
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, typ, addressURL(o.Status.Address), ready, reason)
		}
	case messagingv1.KindInMemoryChannel:
		row("NAMESPACE", "NAME", "URL", "SUBSCRIBERS", "READY", "REASON")
		for _, raw := range objs {
			var o messagingv1.InMemoryChannel
			if !decode(raw, &o) {
				return true, err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, addressURL(o.Status.Address), strconv.Itoa(len(o.Spec.Subscribers)), ready, reason)
		}
	case messagingv1.KindSubscription:
		row("NAMESPACE", "NAME", "CHANNEL", "SUBSCRIBER", "REPLY", "DEAD LETTER SINK", "READY", "REASON")
		for _, raw := range objs {
			var o messagingv1.Subscription
			if !decode(raw, &o) {
				return true, err
			}
			ready, reason := readiness(&o.Status.Status)
			ps := o.Status.PhysicalSubscription
			row(o.Namespace, o.Name, o.Spec.Channel.Kind+":"+o.Spec.Channel.Name, ps.SubscriberURI, ps.ReplyURI, ps.DeadLetterSinkURI, ready, reason)
		}
	case flowsv1.KindSequence:
		row("NAMESPACE", "NAME", "URL", "STEPS", "READY", "REASON")
		for _, raw := range objs {
			var o flowsv1.Sequence
			if !decode(raw, &o) {
				return true, err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.Address.URL, strconv.Itoa(len(o.Spec.Steps)), ready, reason)
		}
	case flowsv1.KindParallel:
		row("NAMESPACE", "NAME", "URL", "BRANCHES", "READY", "REASON")
		for _, raw := range objs {
			var o flowsv1.Parallel
			if !decode(raw, &o) {
				return true, err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, addressURL(o.Status.Address), strconv.Itoa(len(o.Spec.Branches)), ready, reason)
		}
	case sourcesv1.KindApiServerSource:
		row("NAMESPACE", "NAME", "RESOURCES", "SINK", "READY", "REASON")
		for _, raw := range objs {
			var o sourcesv1.ApiServerSource
			if !decode(raw, &o) {
				return true, err
			}
			res := ""
			for i, r := range o.Spec.Resources {
				if i > 0 {
					res += ","
				}
				res += r.Kind + ":" + r.APIVersion
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, res, o.Status.SinkURI, ready, reason)
		}
	case sourcesv1.KindContainerSource:
		row("NAMESPACE", "NAME", "SINK", "READY", "REASON")
		for _, raw := range objs {
			var o sourcesv1.ContainerSource
			if !decode(raw, &o) {
				return true, err
			}
			ready, reason := readiness(&o.Status.Status)
			row(o.Namespace, o.Name, o.Status.SinkURI, ready, reason)
		}
	default:
		return false, nil
	}
	return true, err
}

func addressURL(a *duck.Addressable) string {
	if a == nil {
		return ""
	}
	return a.URL
}
