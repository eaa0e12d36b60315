package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// startLoop starts the dispatch loop of a trigger.
func (s *Server) startLoop(tk triggerKey, cons jetstream.Consumer) *loop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &loop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			s.consume(ctx, tk, cons)
			if ctx.Err() != nil {
				return
			}
			// The iterator failed (consumer gone, connection trouble): try
			// again shortly.
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	return l
}

// consume pulls a trigger's events and handles up to maxAckPending at once,
// until ctx ends (then the events it holds are handed back) or the iterator
// fails.
func (s *Server) consume(ctx context.Context, tk triggerKey, cons jetstream.Consumer) {
	it, err := cons.Messages(
		jetstream.PullMaxMessages(s.maxAckPending),
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		s.log.Warn("cannot pull events", "trigger", tk.String(), "error", err)
		return
	}
	defer it.Stop()
	stopDrain := context.AfterFunc(ctx, it.Drain)
	defer stopDrain()

	w := &workers{max: s.maxAckPending, work: make(chan jetstream.Msg), exited: make(chan struct{}, 1),
		handle: func(msg jetstream.Msg) { s.handle(ctx, tk, msg) }}
	defer w.close()
	for {
		msg, err := it.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				s.log.Warn("pulling events failed", "trigger", tk.String(), "error", err)
			}
			return
		}
		if ctx.Err() != nil {
			_ = msg.Nak() // stopping: hand it back for the next dispatcher
			continue
		}
		w.give(msg)
	}
}

// workerIdle is how long a trigger's delivery worker waits for another event before it
// ends.
const workerIdle = time.Second

// workers handle a trigger's events, up to max at once. A worker takes event after event
// while there are some, and ends after workerIdle without one. A goroutine per event would
// cost its start and, every time, the growth of its stack to what a delivery needs (a
// copy of the stack; ~5 µs per event in the profiles together).
type workers struct {
	max    int
	handle func(jetstream.Msg)
	work   chan jetstream.Msg // unbuffered: an event is given to a worker ready for it
	exited chan struct{}      // a worker ended (buffered 1: a wake-up, not a count)
	n      atomic.Int64       // workers running
	wg     sync.WaitGroup
}

// give hands msg to a free worker, starting one while fewer than max run, else waits for
// one to be free.
func (w *workers) give(msg jetstream.Msg) {
	for {
		select {
		case w.work <- msg:
			return
		default:
		}
		if w.n.Load() < int64(w.max) {
			w.start(msg)
			return
		}
		select {
		case w.work <- msg:
			return
		case <-w.exited: // room for a worker again, perhaps
		}
	}
}

func (w *workers) start(first jetstream.Msg) {
	w.n.Add(1)
	w.wg.Go(func() {
		defer func() {
			w.n.Add(-1)
			select {
			case w.exited <- struct{}{}:
			default:
			}
		}()
		w.handle(first)
		idle := time.NewTimer(workerIdle)
		defer idle.Stop()
		for {
			select {
			case msg, ok := <-w.work:
				if !ok {
					return
				}
				w.handle(msg)
				idle.Reset(workerIdle)
			case <-idle.C:
				return
			}
		}
	})
}

// close ends the workers once they finished the events they hold.
func (w *workers) close() {
	close(w.work)
	w.wg.Wait()
}

// eventLog logs about one event's handling, with the trigger, the event's id and the
// attempt. The logger with those attributes is made on first use: most events log
// nothing (debug is off), and slog.Logger.With copies the handler's state every time.
// It belongs to the goroutine handling the event.
type eventLog struct {
	base    *slog.Logger
	tk      triggerKey
	id      string
	attempt int
	l       *slog.Logger // made by logger, or given
}

func (e *eventLog) logger() *slog.Logger {
	if e.l == nil {
		e.l = e.base.With("trigger", e.tk.String(), "id", e.id, "attempt", e.attempt)
	}
	return e.l
}

func (e *eventLog) enabled(level slog.Level) bool {
	return e.base.Enabled(context.Background(), level)
}

func (e *eventLog) log(level slog.Level, msg string, args ...any) {
	if e.enabled(level) {
		e.logger().Log(context.Background(), level, msg, args...)
	}
}

func (e *eventLog) Debug(msg string, args ...any) { e.log(slog.LevelDebug, msg, args...) }
func (e *eventLog) Info(msg string, args ...any)  { e.log(slog.LevelInfo, msg, args...) }
func (e *eventLog) Warn(msg string, args ...any)  { e.log(slog.LevelWarn, msg, args...) }
func (e *eventLog) Error(msg string, args ...any) { e.log(slog.LevelError, msg, args...) }

// result is the outcome of one HTTP attempt.
type result struct {
	code  int // HTTP status; 0 when the request failed
	body  []byte
	err   error
	reply *eventfilter.Event
	// replyHeader is the response's pass-through headers, for the reply.
	replyHeader http.Header
	// proxy is set when the attempt failed in Skiff's own proxy
	// (Options.ProxyFailed): not a delivery attempt.
	proxy bool
	// retryAfter is what a 429 or 503 response's Retry-After asked for (0: nothing).
	retryAfter time.Duration
}

// structuredKey marks a context whose deliveries go in structured content mode
// (DeliverySpec.Format "json"), as Knative's dispatcher marks its context with
// binding.WithForceStructured.
type structuredKey struct{}

// withFormat returns ctx marked for structured deliveries when p asks for them.
func withFormat(ctx context.Context, p policy) context.Context {
	if !p.structured {
		return ctx
	}
	return context.WithValue(ctx, structuredKey{}, true)
}

// retryAfterOf is the wait a response with status code and header h asks for,
// as kncloudevents reads it (parseRetryAfterDuration): only a 429 or 503 asks,
// with a Retry-After of delay-seconds or an HTTP date; 0 when absent or
// unreadable.
func retryAfterOf(code int, h http.Header, now time.Time) time.Duration {
	if code != http.StatusTooManyRequests && code != http.StatusServiceUnavailable {
		return 0
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

// deliveryHeaders returns the HTTP headers a delivery of a stored message
// carries besides the event, as Knative's broker filter sends them: the
// sender's pass-through headers and Kn-Namespace.
func deliveryHeaders(msg jetstream.Msg, namespace string) http.Header {
	h := http.Header{NamespaceHeader: {namespace}}
	for name, vs := range msg.Headers() {
		if fwd, ok := strings.CutPrefix(name, HeaderForwardPrefix); ok && fwd != "" {
			h[fwd] = vs
		}
	}
	return h
}

// Pauses between sends of an event whose attempts fail in Skiff's own proxy.
const (
	proxyRetryMin = 100 * time.Millisecond
	proxyRetryMax = 5 * time.Second
	// proxyWarnEvery spaces the warnings about such failures.
	proxyWarnEvery = 10 * time.Second
)

// sendPast is send, repeated while the attempt fails in Skiff's own proxy
// (which says nothing about the destination and is no delivery attempt), with
// growing pauses, until it gets through or ctx ends. target is asked before
// every send for the destination and the attempt's timeout, which a
// configuration change may have changed meanwhile; ok false gives up (the
// trigger is gone), returning a result with proxy set.
func (s *Server) sendPast(ctx context.Context, log *eventLog, target func() (url string, timeout time.Duration, ok bool), ev eventfilter.Event, preferReply bool, header http.Header) result {
	pause := proxyRetryMin
	for {
		url, timeout, ok := target()
		if !ok {
			return result{proxy: true, err: errors.New("the trigger was removed")}
		}
		res := s.send(ctx, url, ev, timeout, preferReply, header)
		if !res.proxy || ctx.Err() != nil {
			return res
		}
		s.stats.proxyFailures.Add(1)
		if now := time.Now().UnixNano(); now-s.proxyWarned.Load() >= int64(proxyWarnEvery) {
			s.proxyWarned.Store(now)
			log.Warn("the proxy did not take the delivery; the event waits and is sent again (not counted as an attempt)", "status", res.code, "error", res.err)
		} else {
			log.Debug("the proxy did not take the delivery; sending again", "status", res.code, "error", res.err, "in", pause)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return res
		case <-t.C:
		}
		pause = min(2*pause, proxyRetryMax)
	}
}

func (r result) ok() bool { return r.err == nil && r.code >= 200 && r.code < 300 }

// handle delivers one stored event and settles its message.
func (s *Server) handle(ctx context.Context, tk triggerKey, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		s.log.Error("message without JetStream metadata", "trigger", tk.String(), "error", err)
		_ = msg.Nak()
		return
	}
	attempt := int(meta.NumDelivered)
	b, t := s.lookup(tk)
	if t == nil {
		_ = msg.Nak() // the trigger is being removed
		return
	}
	if list, fanOut := msg.Headers()[HeaderTriggers]; fanOut && !listed(list, t.name) {
		s.ack(msg) // a fan-out message for other triggers of the broker
		return
	}
	ev, err := decodeStored(msg.Headers(), msg.Data())
	if err != nil {
		s.stats.dropped.Add(1)
		s.log.Error("dropping an unreadable stored event", "trigger", tk.String(), "seq", meta.Sequence.Stream, "error", err)
		_ = msg.Term()
		return
	}
	log := &eventLog{base: s.log, tk: tk, id: ev.Attributes["id"], attempt: attempt}
	// delivery.format goes for the subscriber and the dead letter sink alike, as
	// Knative's dispatcher sends both with the same context.
	ctx = withFormat(ctx, t.policy)
	if msg.Headers().Get(HeaderPhase) == PhaseDeadLetter {
		s.deadLetter(ctx, msg, tk, t, ev, attempt)
		return
	}

	ctx, endSpan := s.deliverySpan(ctx, tk, msg, ev, attempt)
	if at, ok := acceptedAt(msg); ok {
		s.metrics.TriggerProcessed(ctx, tk.namespace, tk.name, tk.trigger, ev.Attributes["type"], t.filterType, time.Since(at))
	}
	stop := s.keepAlive(msg)
	start := time.Now()
	// dest is the destination whose failure the event is dead-lettered for.
	dest := t.subscriber
	var res result
	if b.channel {
		res, dest, t = s.sendChannel(ctx, log, tk, t, ev, deliveryHeaders(msg, tk.namespace))
	} else {
		res = s.sendPast(ctx, log, func() (string, time.Duration, bool) {
			if b, t = s.lookup(tk); t == nil {
				return "", 0, false
			}
			return t.subscriber, t.policy.timeout, true
		}, ev, true, deliveryHeaders(msg, tk.namespace))
		if t != nil {
			dest = t.subscriber
		}
	}
	stop()
	endSpan(res)
	if !res.proxy {
		s.metrics.TriggerAttempt(ctx, tk.namespace, tk.name, tk.trigger, ev.Attributes["type"], t.filterType, res.code, time.Since(start))
	}
	if ctx.Err() != nil || res.proxy {
		_ = msg.Nak() // stopping, or the trigger is gone: the outcome is unknown, deliver again later
		return
	}
	if res.ok() {
		if res.reply != nil && !b.channel {
			if err := s.storeReply(ctx, b, ev, *res.reply, res.replyHeader); err != nil {
				// The subscriber's reply could not be stored: deliver again
				// later rather than lose it.
				log.Warn("reply not stored; delivering again later", "error", err)
				s.nakWithDelay(msg, max(t.policy.backoff(attempt, s.retryRules), time.Second))
				return
			}
		}
		s.stats.delivered.Add(1)
		if log.enabled(slog.LevelDebug) {
			log.Debug("delivered", "status", res.code)
		}
		s.ack(msg)
		return
	}
	if s.retryRules.retryable(res.code) && attempt <= t.policy.retry {
		s.stats.retries.Add(1)
		delay := t.policy.retryWait(attempt, s.retryRules, res.retryAfter)
		log.Debug("delivery failed; retrying", "status", res.code, "error", res.err, "in", delay)
		s.nakWithDelay(msg, delay)
		return
	}

	// The outcome is final: failed.
	if t.policy.deadLetter == "" {
		s.stats.dropped.Add(1)
		log.Warn("delivery failed; no dead letter sink, dropping the event", "status", res.code, "error", res.err)
		s.ack(msg)
		return
	}
	code, body := res.code, res.body
	if code == 0 {
		code, body = http.StatusInternalServerError, []byte("dispatch error: "+res.err.Error())
	}
	dl := cloneEvent(ev)
	dl.Attributes[ErrorDestExtension] = dest
	dl.Attributes[ErrorCodeExtension] = strconv.Itoa(code)
	dl.Attributes[ErrorDataExtension] = errorData(body)
	copyMsg := &nats.Msg{
		Subject: t.subject, // this trigger's, also when the event came in a fan-out message
		Data:    encodeStructured(dl),
		Header: nats.Header{
			"Content-Type":   {structuredContentType},
			HeaderBroker:     {msg.Headers().Get(HeaderBroker)},
			HeaderTrigger:    {t.name},
			HeaderAcceptedAt: {msg.Headers().Get(HeaderAcceptedAt)},
			HeaderPhase:      {PhaseDeadLetter},
		},
	}
	for name, vs := range msg.Headers() {
		if strings.HasPrefix(name, HeaderForwardPrefix) {
			copyMsg.Header[name] = vs
		}
	}
	s.traceHeaders(ctx, copyMsg.Header)
	// The dead letter sink gets its own message, retried with the same
	// policy, so the original can be settled now.
	if err := s.publish(ctx, []*nats.Msg{copyMsg}); err != nil {
		log.Warn("cannot store the event for the dead letter sink; trying again later", "error", err)
		s.nakWithDelay(msg, max(t.policy.backoff(attempt, s.retryRules), time.Second))
		return
	}
	log.Info("delivery failed; sending to the dead letter sink", "status", res.code, "error", res.err)
	s.ack(msg)
}

// deadLetter sends an event to the trigger's dead letter sink.
func (s *Server) deadLetter(ctx context.Context, msg jetstream.Msg, tk triggerKey, t *triggerState, ev eventfilter.Event, attempt int) {
	log := &eventLog{base: s.log, l: s.log.With("trigger", t.name, "id", ev.Attributes["id"], "attempt", attempt, "deadLetterSink", t.policy.deadLetter)}
	if t.policy.deadLetter == "" {
		s.stats.dropped.Add(1)
		log.Warn("dead letter sink removed; dropping the event")
		s.ack(msg)
		return
	}
	ctx, endSpan := s.deliverySpan(ctx, tk, msg, ev, attempt)
	stop := s.keepAlive(msg)
	res := s.sendPast(ctx, log, func() (string, time.Duration, bool) {
		if _, cur := s.lookup(tk); cur != nil && cur.policy.deadLetter != "" {
			t = cur
		}
		return t.policy.deadLetter, t.policy.timeout, true
	}, ev, false, deliveryHeaders(msg, tk.namespace))
	stop()
	endSpan(res)
	switch {
	case ctx.Err() != nil || res.proxy:
		_ = msg.Nak()
	case res.ok():
		s.stats.deadLettered.Add(1)
		log.Debug("dead-lettered")
		s.ack(msg)
	case s.retryRules.retryable(res.code) && attempt <= t.policy.retry:
		s.stats.retries.Add(1)
		s.nakWithDelay(msg, t.policy.retryWait(attempt, s.retryRules, res.retryAfter))
	default:
		s.stats.dropped.Add(1)
		log.Error("the dead letter sink failed too; dropping the event", "status", res.code, "error", res.err)
		s.ack(msg)
	}
}

// storeReply puts a subscriber's reply into the broker the event came from,
// with the event's TTL, which accept decrements (a reply whose TTL runs out
// is dropped, as Knative does).
func (s *Server) storeReply(ctx context.Context, b *brokerState, orig, reply eventfilter.Event, forward http.Header) error {
	reply = cloneEvent(reply)
	// The reply carries the TTL the event was delivered with (as Knative's
	// filter reattaches it), which accept decrements.
	n := DefaultTTL
	if v, err := strconv.Atoi(orig.Attributes[TTLExtension]); err == nil {
		n = v
	}
	reply.Attributes[TTLExtension] = strconv.Itoa(n)
	if cur := s.broker(b.key()); cur != nil {
		b = cur
	}
	_, err := s.accept(ctx, b, reply, false, nil, forward)
	var ie *ingressError
	switch {
	case err == nil:
		s.stats.replies.Add(1)
		return nil
	case errors.As(err, &ie):
		s.log.Info("reply dropped", "broker", b.namespace+"/"+b.name, "id", reply.Attributes["id"], "reason", ie.reason, "error", err)
		return nil
	}
	return err
}

// send makes one attempt to deliver an event in binary content mode, with
// the given extra headers.
func (s *Server) send(ctx context.Context, target string, ev eventfilter.Event, timeout time.Duration, preferReply bool, header http.Header) result {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		return result{err: fmt.Errorf("building request to %s: %w", target, err)}
	}
	// Sized for every header the delivery carries (the event's attributes, the forwarded
	// ones, Prefer, trace context): the empty map NewRequest makes grew twice on the way.
	req.Header = make(http.Header, len(header)+len(ev.Attributes)+4)
	for name, vs := range header {
		req.Header[name] = vs
	}
	s.injectTrace(ctx, req.Header)
	if structured, _ := ctx.Value(structuredKey{}).(bool); structured {
		// delivery.format json: one application/cloudevents+json body.
		out := cloneEvent(ev)
		delete(out.Attributes, TTLExtension)
		body := encodeStructured(out)
		req.Header.Set("Content-Type", structuredContentType)
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	} else {
		// Binary content mode, as Knative delivers by default, without the broker's TTL.
		writeBinary(req, ev, TTLExtension)
	}
	if preferReply {
		req.Header.Set("Prefer", "reply")
	}
	resp, err := s.client.Do(req)
	if s.proxyFailed != nil && s.proxyFailed(req, resp, err) {
		res := result{err: err, proxy: true}
		if resp != nil {
			res.code = resp.StatusCode
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // keep the connection
			resp.Body.Close()
		}
		return res
	}
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := readBody(io.LimitReader(resp.Body, int64(s.maxEventBytes)+1), resp.ContentLength, s.maxEventBytes)
	if err != nil {
		return result{err: fmt.Errorf("reading the response (status %d): %w", resp.StatusCode, err)}
	}
	res := result{code: resp.StatusCode, body: body}
	res.retryAfter = retryAfterOf(res.code, resp.Header, time.Now())
	if !res.ok() || !preferReply {
		return res
	}
	if len(body) > s.maxEventBytes {
		res.code, res.err = http.StatusBadGateway, fmt.Errorf("the response is larger than %d bytes", s.maxEventBytes)
		return res
	}
	reply, err := eventfilter.ParseHTTP(eventfilter.HeaderMap(resp.Header), body)
	if err == nil {
		res.reply, res.replyHeader = &reply, passThroughHeaders(resp.Header)
		return res
	}
	var ee *eventfilter.EventError
	if errors.As(err, &ee) && ee.Reason == eventfilter.ReasonNotCloudEvent && len(body) == 0 {
		return res // no reply
	}
	// As Knative's broker: a response must be empty or a valid CloudEvent.
	res.code = http.StatusBadGateway
	res.err = fmt.Errorf("the response is neither empty nor a valid CloudEvent: %w", err)
	return res
}

// keepAlive tells JetStream that a message is still being worked on, every
// third of AckWait, until the returned function is called.
func (s *Server) keepAlive(msg jetstream.Msg) (stop func()) {
	every := s.ackWait / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t.Reset(every)
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// ack acknowledges a settled message, through the acker, which sends the
// acknowledgements of concurrent deliveries together.
func (s *Server) ack(msg jetstream.Msg) { s.acks.ack(msg) }

func (s *Server) nakWithDelay(msg jetstream.Msg, d time.Duration) {
	if s.nakDelayed != nil {
		s.nakDelayed(d)
	}
	if err := msg.NakWithDelay(d); err != nil {
		s.log.Warn("nak failed; the event will be retried after the ack wait", "subject", msg.Subject(), "error", err)
	}
}

// listed reports whether name is in the comma-separated lists of a HeaderTriggers header.
func listed(lists []string, name string) bool {
	for _, l := range lists {
		for n := range strings.SplitSeq(l, ",") {
			if n == name {
				return true
			}
		}
	}
	return false
}
