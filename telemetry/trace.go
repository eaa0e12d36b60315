package telemetry

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// Propagator is how every Skiff component passes trace context: W3C traceparent and
// tracestate, and W3C baggage (Knative's DefaultTextMapPropagator).
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// TraceParentAttr and TraceStateAttr are the CloudEvents distributed tracing extension's
// attributes, which carry an event's creation context.
const (
	TraceParentAttr = "traceparent"
	TraceStateAttr  = "tracestate"
)

// MapCarrier is a TextMapCarrier over a map with lower-case keys (CloudEvents attributes,
// NATS headers written by Skiff).
type MapCarrier map[string]string

// Get implements propagation.TextMapCarrier.
func (c MapCarrier) Get(key string) string { return c[strings.ToLower(key)] }

// Set implements propagation.TextMapCarrier.
func (c MapCarrier) Set(key, value string) { c[strings.ToLower(key)] = value }

// Keys implements propagation.TextMapCarrier.
func (c MapCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// SetEventCreation gives an event's attributes the distributed tracing extension from
// ctx's span when the event has none yet (OpenTelemetry's CloudEvents conventions: the
// extension carries the context in which the event was created and is not changed after).
// It reports whether it set it.
func SetEventCreation(ctx context.Context, attrs map[string]string) bool {
	if _, ok := attrs[TraceParentAttr]; ok {
		return false
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return false
	}
	c := MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	attrs[TraceParentAttr] = c[TraceParentAttr]
	if ts := c[TraceStateAttr]; ts != "" {
		attrs[TraceStateAttr] = ts
	}
	return true
}

// EventCreation is the span context of an event's distributed tracing extension, if valid.
func EventCreation(attrs map[string]string) (trace.SpanContext, bool) {
	tp, ok := attrs[TraceParentAttr]
	if !ok {
		return trace.SpanContext{}, false
	}
	c := MapCarrier{TraceParentAttr: tp}
	if ts, ok := attrs[TraceStateAttr]; ok {
		c[TraceStateAttr] = ts
	}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), c))
	return sc, sc.IsValid()
}

// grpcCarrier is a TextMapCarrier over gRPC metadata.
type grpcCarrier metadata.MD

func (c grpcCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c grpcCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c grpcCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// InjectGRPC adds ctx's trace context to the outgoing gRPC metadata of ctx, as Envoy's gRPC
// client does for the ext_proc stream of a traced request.
func InjectGRPC(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	md := metadata.MD{}
	Propagator().Inject(ctx, grpcCarrier(md))
	kv := make([]string, 0, 2*len(md))
	for k, vs := range md {
		for _, v := range vs {
			kv = append(kv, k, v)
		}
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// ExtractGRPC returns ctx with the remote trace context of its incoming gRPC metadata.
func ExtractGRPC(ctx context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	return Propagator().Extract(ctx, grpcCarrier(md))
}
