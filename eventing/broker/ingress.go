package broker

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// Errors of accept that are the sender's fault.
var (
	errTTLExpired = errors.New(TTLExtension + " is exhausted: the event is dropped to break a loop")
	errTooLarge   = errors.New("the event is too large to store")
)

// ingressError is an error answered to the sender with a status and a reason.
type ingressError struct {
	status    int
	reason    string
	attribute string
	err       error
}

func (e *ingressError) Error() string { return e.err.Error() }
func (e *ingressError) Unwrap() error { return e.err }

// ServeHTTP is the broker ingress: POST /{namespace}/{broker} with a CloudEvent
// in binary or structured content mode. Answers: 202 once the event is stored
// for every matching trigger (or matches none); 400 for a bad event, an
// exhausted knativebrokerttl or a path that is not /{namespace}/{broker}; 404
// for an unknown broker or the root path; 405 for a method other
// than POST (OPTIONS answers the CloudEvents webhook handshake, as Knative's
// ingress does); 413 for a body over MaxEventBytes; 503 when JetStream did not
// store it. Error bodies are JSON: {"error": message, "reason": reason} plus
// "attribute" when one attribute is at fault.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !acceptPost(w, r, "the broker URL") {
		return
	}
	namespace, name, ok := splitPath(r.URL.Path)
	if !ok {
		// As Knative's ingress: 404 for the root, 400 for any other path that
		// is not /{namespace}/{broker} (ingress_handler_test.go TestHandler,
		// "root request URI" and "malformed request URI").
		status, reason := http.StatusBadRequest, "malformed_path"
		if r.URL.Path == "/" || r.URL.Path == "" {
			status, reason = http.StatusNotFound, "not_found"
		}
		writeError(w, &ingressError{status: status, reason: reason,
			err: fmt.Errorf("no broker at %q: broker URLs are /{namespace}/{broker}", r.URL.Path)})
		return
	}
	b := s.broker(brokerKey{namespace: namespace, name: name})
	if b == nil {
		writeError(w, &ingressError{status: http.StatusNotFound, reason: "broker_not_found",
			err: fmt.Errorf("broker %s/%s does not exist", namespace, name)})
		return
	}
	ev, ok := s.readEvent(w, r)
	if !ok {
		return
	}
	var names []string
	useNames := false
	// The proxy's list is used only when the proxy's filter vouches for it
	// (the token) and it was computed from the trigger set this ingress has:
	// right after a trigger change the proxy may still run the previous
	// configuration, and then the filters are evaluated here.
	if s.fromFilter(r) && r.Header.Get(eventfilter.GenerationHeader) == b.generation {
		if values, present := r.Header[TriggersHeader]; present {
			useNames = true
			for _, v := range values {
				for n := range strings.SplitSeq(v, ",") {
					if n = strings.TrimSpace(n); n != "" {
						names = append(names, n)
					}
				}
			}
		}
	}
	ctx, endSpan := s.ingressSpan(r, namespace, name, ev)
	start, code := time.Now(), http.StatusAccepted
	defer func() {
		s.metrics.Ingress(ctx, namespace, name, ev.Attributes["type"], requestScheme(r), code, time.Since(start))
		endSpan(code)
	}()
	stored, err := s.accept(ctx, b, ev, useNames, names, passThroughHeaders(r.Header))
	if err != nil {
		var ie *ingressError
		if !errors.As(err, &ie) {
			ie = &ingressError{status: http.StatusServiceUnavailable, reason: "not_stored", err: err}
			w.Header().Set("Retry-After", "1")
			s.log.Warn("event not stored", "broker", namespace+"/"+name, "id", ev.Attributes["id"], "error", err)
		} else if ie.status == http.StatusBadRequest {
			s.stats.invalid.Add(1)
		}
		code = ie.status
		writeError(w, ie)
		return
	}
	s.log.Debug("event accepted", "broker", namespace+"/"+name, "id", ev.Attributes["id"], "type", ev.Attributes["type"], "triggers", stored)
	w.WriteHeader(http.StatusAccepted)
}

// requestScheme is the request's url.scheme.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// fromFilter reports whether the request carries the token of the proxy's
// cloudevents filter.
func (s *Server) fromFilter(r *http.Request) bool {
	if len(s.triggerToken) == 0 {
		return false
	}
	got := r.Header.Values(eventfilter.TokenHeader)
	return len(got) == 1 && subtle.ConstantTimeCompare([]byte(got[0]), s.triggerToken) == 1
}

// splitPath splits /{namespace}/{broker} (a trailing slash is allowed).
func splitPath(p string) (namespace, name string, ok bool) {
	p = strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/")
	namespace, name, ok = strings.Cut(p, "/")
	if !ok || namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return namespace, name, true
}

func writeError(w http.ResponseWriter, e *ingressError) {
	body := map[string]string{"error": e.err.Error(), "reason": e.reason}
	if e.attribute != "" {
		body["attribute"] = e.attribute
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(body)
}

// accept applies the TTL rules to an event, finds the triggers it goes to
// (the given names when useNames, else by evaluating the filters) and stores
// it once per trigger with the headers to forward to its deliveries, returning
// when JetStream acknowledged every copy. It returns the number of triggers
// the event was stored for. Errors that are the event's fault are
// *ingressError. It adds the broker's extensions (TTL, arrival time, tracing)
// to ev's attribute map: the caller gives it an event of its own.
func (s *Server) accept(ctx context.Context, b *brokerState, ev eventfilter.Event, useNames bool, names []string, forward http.Header) (int, error) {
	n := ttl(ev)
	if n <= 0 {
		s.stats.ttlExpired.Add(1)
		return 0, &ingressError{status: http.StatusBadRequest, reason: "ttl_exhausted", attribute: TTLExtension, err: errTTLExpired}
	}

	var targets []*triggerState
	if useNames {
		for _, name := range names {
			if t := b.byName[name]; t != nil && !containsTrigger(targets, t) {
				targets = append(targets, t)
			}
		}
	} else {
		fev := ev.ForFilters()
		for _, t := range b.triggers {
			if t.filter.Match(fev) {
				targets = append(targets, t)
			}
		}
	}
	s.stats.accepted.Add(1)
	if len(targets) == 0 {
		return 0, nil
	}

	now := time.Now()
	stored := ev // the caller's to give: its attributes are changed here, not copied
	s.traceEvent(ctx, &stored)
	stored.Attributes[TTLExtension] = strconv.Itoa(n)
	stored.Attributes[ArrivalTimeExtension] = now.UTC().Format(time.RFC3339Nano)
	base, data := storedForm(stored)
	if max, size := s.nc.MaxPayload()-1024, storedSize(base, data); size > max {
		return 0, &ingressError{status: http.StatusRequestEntityTooLarge, reason: "too_large",
			err: fmt.Errorf("%w: %d bytes once encoded, JetStream takes %d", errTooLarge, size, max)}
	}
	acceptedAt := strconv.FormatInt(now.UnixNano(), 10)
	brokerName := b.namespace + "/" + b.name
	if b.fanOutFor(len(targets)) {
		names := make([]string, len(targets))
		for i, t := range targets {
			names[i] = t.name
		}
		msg := &nats.Msg{Subject: b.fanOut, Data: data, Header: base}
		msg.Header[HeaderBroker] = []string{brokerName}
		msg.Header[HeaderTriggers] = []string{strings.Join(names, ",")}
		msg.Header[HeaderAcceptedAt] = []string{acceptedAt}
		for name, vs := range forward {
			msg.Header[HeaderForwardPrefix+name] = vs
		}
		if err := s.publish(ctx, []*nats.Msg{msg}); err != nil {
			return 0, fmt.Errorf("storing event %q of broker %s: %w", ev.Attributes["id"], brokerName, err)
		}
		// Stored counts what is owed: one delivery per trigger.
		s.stats.stored.Add(uint64(len(targets)))
		return len(targets), nil
	}
	msgs := make([]*nats.Msg, len(targets))
	for i, t := range targets {
		h := base // the last (with one trigger, the only) message takes the stored form's map
		if i < len(targets)-1 {
			h = storedHeader(base, forward)
		}
		msgs[i] = &nats.Msg{Subject: t.subject, Data: data, Header: h}
		msgs[i].Header[HeaderBroker] = []string{brokerName}
		msgs[i].Header[HeaderTrigger] = []string{t.name}
		msgs[i].Header[HeaderAcceptedAt] = []string{acceptedAt}
		for name, vs := range forward {
			msgs[i].Header[HeaderForwardPrefix+name] = vs
		}
		s.traceHeaders(ctx, msgs[i].Header)
	}
	if err := s.publish(ctx, msgs); err != nil {
		return 0, fmt.Errorf("storing event %q of broker %s: %w", ev.Attributes["id"], brokerName, err)
	}
	s.stats.stored.Add(uint64(len(msgs)))
	return len(msgs), nil
}

// storedHeader is a new header map for one stored message: the event's stored-form
// headers, with room for the Skiff-* headers and the forwarded ones.
func storedHeader(base nats.Header, forward http.Header) nats.Header {
	h := make(nats.Header, len(base)+4+len(forward))
	for k, vs := range base {
		h[k] = vs
	}
	return h
}

// fanOutFor reports whether an event for n of the broker's triggers is stored once, as a
// fan-out message, rather than once per trigger: on an interest stream, when it is for at
// least two triggers and at least half of them. Every trigger's consumer reads a fan-out
// message (those it is not for settle it at once), so for a few triggers of many, copies
// cost less.
func (b *brokerState) fanOutFor(n int) bool {
	return b.interest && n >= 2 && 2*n >= len(b.triggers)
}

func containsTrigger(ts []*triggerState, t *triggerState) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// publish stores messages and waits for JetStream to acknowledge every one.
func (s *Server) publish(ctx context.Context, msgs []*nats.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, s.publishTimeout)
	defer cancel()
	if len(msgs) == 1 {
		if _, err := s.js.PublishMsg(ctx, msgs[0]); err != nil {
			return fmt.Errorf("publishing to %s: %w", msgs[0].Subject, err)
		}
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publishing to %s: %w", m.Subject, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publishing to %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for JetStream to acknowledge %s: %w", f.Msg().Subject, ctx.Err())
		}
	}
	return nil
}

// readEvent reads the request's event, within the size limit, and answers the request with
// the error (413, 400 naming the attribute) when there is none to accept.
func (s *Server) readEvent(w http.ResponseWriter, r *http.Request) (eventfilter.Event, bool) {
	body, err := readBody(http.MaxBytesReader(w, r.Body, int64(s.maxEventBytes)), r.ContentLength, s.maxEventBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, &ingressError{status: http.StatusRequestEntityTooLarge, reason: "too_large",
				err: fmt.Errorf("the request body is larger than %d bytes", s.maxEventBytes)})
			return eventfilter.Event{}, false
		}
		writeError(w, &ingressError{status: http.StatusBadRequest, reason: "read_error",
			err: fmt.Errorf("reading the request body: %w", err)})
		return eventfilter.Event{}, false
	}
	ev, err := eventfilter.ParseHTTP(eventfilter.HeaderMap(r.Header), body)
	if err != nil {
		s.stats.invalid.Add(1)
		ie := &ingressError{status: http.StatusBadRequest, reason: "invalid_event", err: err}
		var ee *eventfilter.EventError
		if errors.As(err, &ee) {
			ie.reason, ie.attribute = string(ee.Reason), ee.Attribute
		}
		writeError(w, ie)
		return eventfilter.Event{}, false
	}
	return ev, true
}

// acceptPost reports whether r is a POST, as Knative's ingresses take events. OPTIONS gets the
// CloudEvents webhook handshake; any other method 405 naming where to POST (to, e.g. "the
// broker URL"). Both are answered here, and acceptPost reports false.
func acceptPost(w http.ResponseWriter, r *http.Request, to string) bool {
	switch r.Method {
	case http.MethodPost:
		return true
	case http.MethodOptions:
		w.Header().Set("Allow", "POST, OPTIONS")
		w.Header().Set("WebHook-Allowed-Origin", "*")
		w.Header().Set("WebHook-Allowed-Rate", "*")
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		writeError(w, &ingressError{status: http.StatusMethodNotAllowed, reason: "method_not_allowed",
			err: fmt.Errorf("method %s is not allowed: POST the event to %s", r.Method, to)})
	}
	return false
}

// readBody reads r to its end. With the length known (size, up to limit) it reads into one
// buffer of that size, where io.ReadAll would grow one from 512 bytes, copying as it goes.
func readBody(r io.Reader, size int64, limit int) ([]byte, error) {
	if size < 0 || size > int64(limit) {
		return io.ReadAll(r)
	}
	// One byte more than announced, so that the read that finds the end needs no growth.
	buf := make([]byte, 0, size+1)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			// More than announced: the reader (or its limit) decides.
			rest, err := io.ReadAll(r)
			return append(buf, rest...), err
		}
	}
}
