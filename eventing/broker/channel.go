package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// ChannelConfig is one channel (Knative's InMemoryChannel, durable here) as the data
// plane needs it: its subscribers with every destination resolved to a URL by the
// control plane (the spec.subscribers a Subscription reconciler writes).
type ChannelConfig struct {
	// Namespace is the channel's namespace (a DNS-1123 label).
	Namespace string
	// Name is the channel's name (a DNS-1123 subdomain).
	Name string
	// Delivery is the default delivery of subscribers whose Delivery is nil
	// (spec.delivery of the channel).
	Delivery *DeliverySpec
	// Subscribers each get every event the channel accepts; names must be unique.
	Subscribers []SubscriberConfig
}

// SubscriberConfig is one subscriber of a channel (one spec.subscribers entry).
type SubscriberConfig struct {
	// Name identifies the subscriber in its channel and names its durable
	// consumer (the Subscription's UID, a DNS-1123 subdomain); a subscriber
	// keeps its undelivered events as long as its name stays.
	Name string
	// Subscriber is the absolute http(s) URL events are delivered to, or "" to
	// send every event straight to Reply.
	Subscriber string
	// Reply is where the subscriber's reply events are sent, or "" to drop them,
	// as Knative's channel dispatcher does.
	Reply string
	// Delivery overrides the channel's Delivery as a whole when not nil.
	Delivery *DeliverySpec
}

// ChannelHostSuffix ends the host of every channel address: Knative's
// InMemoryChannel is http://{name}-kn-channel.{namespace}.svc.cluster.local.
const ChannelHostSuffix = "-kn-channel"

// ChannelHost is the host of a channel's address.
func ChannelHost(namespace, name string) string {
	return name + ChannelHostSuffix + "." + namespace + ".svc.cluster.local"
}

// ChannelURL is a channel's address (status.address.url).
func ChannelURL(namespace, name string) string { return "http://" + ChannelHost(namespace, name) }

// ParseChannelHost is the inverse of ChannelHost (a port is ignored).
func ParseChannelHost(host string) (namespace, name string, ok bool) {
	if h, _, found := strings.Cut(host, ":"); found {
		host = h
	}
	rest, ok := strings.CutSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), ".svc.cluster.local")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", "", false
	}
	name, ok = strings.CutSuffix(rest[:i], ChannelHostSuffix)
	if !ok || name == "" || rest[i+1:] == "" {
		return "", "", false
	}
	return rest[i+1:], name, true
}

// channelStreamName is a channel's stream: "skiffch_" cannot begin a broker's
// stream name, whose prefix is "skiff_".
func channelStreamName(namespace, name string) string {
	return "skiffch_" + namespace + "_" + token(name)
}

// ChannelStreamName returns the JetStream stream holding the events of a channel.
func ChannelStreamName(namespace, name string) string { return channelStreamName(namespace, name) }

func compileChannel(c ChannelConfig) (*brokerState, error) {
	if err := checkObjectName(c.Namespace, c.Name); err != nil {
		return nil, err
	}
	var errs []error
	if _, err := compilePolicy(c.Delivery, "delivery"); err != nil {
		errs = append(errs, err)
	}
	b := &brokerState{
		namespace:     c.Namespace,
		name:          c.Name,
		channel:       true,
		stream:        channelStreamName(c.Namespace, c.Name),
		subjectPrefix: "skiffch." + c.Namespace + "." + token(c.Name),
		// A channel stores a copy per subscriber today; its consumers still take the
		// fan-out subject, inside the stream's subjects, as a broker's do.
		fanOut: "skiffch." + c.Namespace + "." + token(c.Name) + "." + fanOutToken,
		byName: make(map[string]*triggerState, len(c.Subscribers)),
	}
	matchAll, _ := eventfilter.Compile(eventfilter.Filter{})
	for i, sc := range c.Subscribers {
		path := fmt.Sprintf("subscribers[%d]", i)
		if msgs := validation.IsDNS1123Subdomain(sc.Name); len(msgs) > 0 {
			errs = append(errs, &FieldError{path + ".name", fmt.Sprintf("%q: %s", sc.Name, strings.Join(msgs, "; "))})
			continue
		}
		if _, dup := b.byName[sc.Name]; dup {
			errs = append(errs, &FieldError{path + ".name", fmt.Sprintf("%q is used by another subscriber", sc.Name)})
			continue
		}
		if sc.Subscriber == "" && sc.Reply == "" {
			errs = append(errs, &FieldError{path, "a subscriber URL or a reply URL is required"})
			continue
		}
		bad := false
		for field, u := range map[string]string{"subscriber": sc.Subscriber, "reply": sc.Reply} {
			if u == "" {
				continue
			}
			if err := checkURL(u); err != nil {
				errs = append(errs, &FieldError{path + "." + field, err.Error()})
				bad = true
			}
		}
		d, dpath := sc.Delivery, path+".delivery"
		if d == nil {
			d, dpath = c.Delivery, "delivery"
		}
		p, err := compilePolicy(d, dpath)
		if err != nil {
			errs = append(errs, err)
			bad = true
		}
		if bad {
			continue
		}
		t := &triggerState{
			name:       sc.Name,
			subject:    b.subjectPrefix + "." + token(sc.Name),
			consumer:   token(sc.Name),
			filter:     matchAll,
			subscriber: sc.Subscriber,
			reply:      sc.Reply,
			policy:     p,
		}
		b.byName[t.name] = t
		b.triggers = append(b.triggers, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

// SetChannel validates and applies a channel's configuration, as SetBroker does a
// broker's: one stream per channel, one durable consumer per subscriber (events of
// removed subscribers are deleted), and a dispatch loop per new subscriber. Errors in
// the configuration are *FieldError with paths such as "subscribers[0].reply".
func (s *Server) SetChannel(ctx context.Context, cfg ChannelConfig) error {
	b, err := compileChannel(cfg)
	if err != nil {
		return fmt.Errorf("invalid configuration of channel %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	return s.apply(ctx, b)
}

// DeleteChannel stops accepting and dispatching events for a channel and deletes its
// stream with every event not yet delivered. Deleting a channel that does not exist is
// not an error.
func (s *Server) DeleteChannel(ctx context.Context, namespace, name string) error {
	return s.remove(ctx, brokerKey{namespace: namespace, name: name, channel: true}, channelStreamName(namespace, name))
}

// ServeChannel is a channel's ingress: the request's Host is the channel's address
// (ChannelHost), any path. Answers as the broker ingress does (202 once the event is
// stored for every subscriber; 400 for a bad event; 404 for an unknown channel; 405 for
// a method other than POST, OPTIONS answering the webhook handshake; 413 for a body over
// MaxEventBytes; 503 when JetStream did not store it), with the same JSON error bodies.
func (s *Server) ServeChannel(w http.ResponseWriter, r *http.Request) {
	if !acceptPost(w, r, "the channel's address") {
		return
	}
	namespace, name, ok := ParseChannelHost(r.Host)
	var b *brokerState
	if ok {
		b = s.broker(brokerKey{namespace: namespace, name: name, channel: true})
	}
	if b == nil {
		writeError(w, &ingressError{status: http.StatusNotFound, reason: "channel_not_found",
			err: fmt.Errorf("no channel at host %q", r.Host)})
		return
	}
	ev, ok := s.readEvent(w, r)
	if !ok {
		return
	}
	if err := s.acceptChannel(r.Context(), b, ev, passThroughHeaders(r.Header)); err != nil {
		var ie *ingressError
		if !errors.As(err, &ie) {
			ie = &ingressError{status: http.StatusServiceUnavailable, reason: "not_stored", err: err}
			w.Header().Set("Retry-After", "1")
			s.log.Warn("event not stored", "channel", b.key().String(), "id", ev.Attributes["id"], "error", err)
		}
		writeError(w, ie)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// acceptChannel stores an event once per subscriber of a channel, as it came (a channel
// adds no extension), returning once JetStream acknowledged every copy.
func (s *Server) acceptChannel(ctx context.Context, b *brokerState, ev eventfilter.Event, forward http.Header) error {
	s.stats.accepted.Add(1)
	if len(b.triggers) == 0 {
		return nil // as Knative's channel: accepted, nobody to deliver to
	}
	base, data := storedForm(ev)
	if max, size := s.nc.MaxPayload()-1024, storedSize(base, data); size > max {
		return &ingressError{status: http.StatusRequestEntityTooLarge, reason: "too_large",
			err: fmt.Errorf("%w: %d bytes once encoded, JetStream takes %d", errTooLarge, size, max)}
	}
	acceptedAt := strconv.FormatInt(time.Now().UnixNano(), 10)
	msgs := make([]*nats.Msg, len(b.triggers))
	for i, t := range b.triggers {
		msgs[i] = &nats.Msg{Subject: t.subject, Data: data, Header: storedHeader(base, forward)}
		msgs[i].Header[HeaderBroker] = []string{b.key().String()}
		msgs[i].Header[HeaderTrigger] = []string{t.name}
		msgs[i].Header[HeaderAcceptedAt] = []string{acceptedAt}
		for name, vs := range forward {
			msgs[i].Header[HeaderForwardPrefix+name] = vs
		}
	}
	if err := s.publish(ctx, msgs); err != nil {
		return fmt.Errorf("storing event %q of %s: %w", ev.Attributes["id"], b.key(), err)
	}
	s.stats.stored.Add(uint64(len(msgs)))
	return nil
}

// sendChannel makes one attempt to deliver an event to a channel subscriber and, when
// the subscriber replies and the subscription has a reply, to send the reply there, as
// Knative's dispatcher does (a reply without a reply destination is dropped). The attempt
// fails when either request fails; dest is the destination that failed (or the
// subscriber), for knativeerrordest. A subscriber left empty sends the event straight to
// the reply. Each request is sent past failures of Skiff's own proxy (sendPast), as a
// broker's deliveries are, with the subscriber's configuration read again before every
// send; cur is that configuration as last read. A subscriber removed meanwhile, or whose
// subscriber URL came or went, ends the attempt with res.proxy set: the event is handed
// back and delivered again under the new configuration.
func (s *Server) sendChannel(ctx context.Context, log *eventLog, tk triggerKey, t *triggerState, ev eventfilter.Event, header http.Header) (res result, dest string, cur *triggerState) {
	cur = t
	direct := t.subscriber == ""
	// target returns the URL pick chooses from the subscriber's configuration now.
	target := func(pick func(*triggerState) string) func() (string, time.Duration, bool) {
		return func() (string, time.Duration, bool) {
			_, now := s.lookup(tk)
			if now == nil || (now.subscriber == "") != direct || pick(now) == "" {
				return "", 0, false
			}
			cur = now
			return pick(now), now.policy.timeout, true
		}
	}
	subscriber := func(t *triggerState) string { return t.subscriber }
	reply := func(t *triggerState) string { return t.reply }
	if direct {
		res = s.sendPast(ctx, log, target(reply), ev, false, header)
		return res, cur.reply, cur
	}
	res = s.sendPast(ctx, log, target(subscriber), ev, true, header)
	var ee *eventfilter.EventError
	if res.code == http.StatusBadGateway && errors.As(res.err, &ee) && ee.Reason == eventfilter.ReasonNotCloudEvent {
		// A 2xx response that is no CloudEvent is no reply, as Knative's channel
		// dispatcher reads it (kncloudevents: "Response is a non event, discard it").
		res = result{code: http.StatusOK}
	}
	if !res.ok() || res.reply == nil {
		return res, cur.subscriber, cur
	}
	if cur.reply == "" {
		log.Debug("reply dropped: the subscription has no reply", "subscriber", cur.subscriber)
		return res, cur.subscriber, cur
	}
	h := http.Header{}
	for name, vs := range res.replyHeader {
		h[name] = vs
	}
	if ns := header.Get(NamespaceHeader); ns != "" {
		h.Set(NamespaceHeader, ns)
	}
	// The reply's sends stop at a configuration whose reply was removed meanwhile: the
	// whole attempt is then made again.
	rres := s.sendPast(ctx, log, target(reply), *res.reply, false, h)
	if !rres.ok() {
		return rres, cur.reply, cur
	}
	s.stats.replies.Add(1)
	return res, cur.subscriber, cur
}
