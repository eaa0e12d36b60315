package broker

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/skiff-dev/skiff/telemetry"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// eventAttrs are the span attributes of an event, as Knative's WithEventLabels puts them on
// its broker spans.
func eventAttrs(ev eventfilter.Event) []attribute.KeyValue {
	a := ev.Attributes
	out := []attribute.KeyValue{
		telemetry.KeyEventType.String(a["type"]), telemetry.KeyEventSource.String(a["source"]),
		telemetry.KeyEventSpecVersion.String(a["specversion"]), telemetry.KeyEventID.String(a["id"]),
	}
	if v := a["subject"]; v != "" {
		out = append(out, attribute.String("cloudevents.subject", v))
	}
	if v := a["datacontenttype"]; v != "" {
		out = append(out, attribute.String("cloudevents.datacontenttype", v))
	}
	return out
}

// ingressSpan starts the span of an event arriving at broker namespace/name, continuing the
// trace context of the request (the proxy's span). end records the answer's status.
func (s *Server) ingressSpan(r *http.Request, namespace, name string, ev eventfilter.Event) (context.Context, func(code int)) {
	ctx := r.Context()
	if s.tracer == nil {
		return ctx, func(int) {}
	}
	ctx = telemetry.Propagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, span := s.tracer.Start(ctx, telemetry.BrokerDestination(namespace, name), trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(append(eventAttrs(ev),
			telemetry.KeyBrokerName.String(name), telemetry.KeyBrokerNamespace.String(namespace),
			telemetry.KeyMessagingSystem.String(telemetry.MessagingSystem),
			telemetry.KeyMessagingDest.String(telemetry.BrokerDestination(namespace, name)))...)
	}
	return ctx, func(code int) {
		span.SetAttributes(telemetry.KeyHTTPStatus.Int(code))
		if code >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(code))
		}
		span.End()
	}
}

// traceEvent gives a stored event the distributed tracing extension when it has none (the
// context it entered the broker in), when tracing.
func (s *Server) traceEvent(ctx context.Context, ev *eventfilter.Event) {
	if s.tracer != nil {
		telemetry.SetEventCreation(ctx, ev.Attributes)
	}
}

// traceHeaders are the NATS headers carrying ctx's trace context from the ingress (or a
// reply's delivery) to the dispatcher.
func (s *Server) traceHeaders(ctx context.Context, h nats.Header) {
	if s.tracer == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	c := telemetry.MapCarrier{}
	telemetry.Propagator().Inject(ctx, c)
	for k, v := range c {
		h[k] = []string{v}
	}
}

// deliverySpan starts the span of delivering a stored event to a trigger's subscriber (or
// dead letter sink): a child of the span that stored it, linked to the event's creation
// context. end records the last attempt's status.
func (s *Server) deliverySpan(ctx context.Context, tk triggerKey, msg jetstream.Msg, ev eventfilter.Event, attempt int) (context.Context, func(res result)) {
	if s.tracer == nil {
		return ctx, func(result) {}
	}
	c := telemetry.MapCarrier{}
	for _, k := range []string{telemetry.TraceParentAttr, telemetry.TraceStateAttr, "baggage"} {
		if v := msg.Headers().Get(k); v != "" {
			c[k] = v
		}
	}
	ctx = telemetry.Propagator().Extract(ctx, c)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	if created, ok := telemetry.EventCreation(ev.Attributes); ok {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: created}))
	}
	ctx, span := s.tracer.Start(ctx, telemetry.TriggerDestination(tk.namespace, tk.trigger), opts...)
	if span.IsRecording() {
		span.SetAttributes(append(eventAttrs(ev),
			telemetry.KeyBrokerName.String(tk.name), telemetry.KeyBrokerNamespace.String(tk.namespace),
			telemetry.KeyMessagingSystem.String(telemetry.MessagingSystem),
			telemetry.KeyMessagingDest.String(telemetry.TriggerDestination(tk.namespace, tk.trigger)),
			telemetry.KeyMessagingOp.String("send"),
			attribute.Int("skiff.delivery.attempt", attempt))...)
	}
	return ctx, func(res result) {
		if res.code != 0 {
			span.SetAttributes(telemetry.KeyHTTPStatus.Int(res.code))
		}
		if !res.ok() && !res.proxy {
			msg := "delivery failed"
			if res.err != nil {
				msg = res.err.Error()
			}
			span.SetStatus(codes.Error, msg)
		}
		span.End()
	}
}

// injectTrace sends ctx's trace context with a delivery.
func (s *Server) injectTrace(ctx context.Context, h http.Header) {
	if s.tracer != nil {
		telemetry.Propagator().Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// acceptedAt is when the ingress accepted a stored event.
func acceptedAt(msg jetstream.Msg) (time.Time, bool) {
	n, err := strconv.ParseInt(msg.Headers().Get(HeaderAcceptedAt), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}
