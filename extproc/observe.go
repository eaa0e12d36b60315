package extproc

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/skiff-dev/skiff/telemetry"
)

// splitCluster splits a revision's cluster name "namespace/revision".
func splitCluster(cluster string) (namespace, revision string) {
	ns, rev, _ := strings.Cut(cluster, "/")
	return ns, rev
}

// startHold starts the span of a request's wait for capacity (Knative's activator
// "throttler_try"), continuing the trace context the proxy sent in the stream's metadata.
// end records how the wait ended: a failure answered in the revision's stead, or err when
// the request went away.
func (s *Server) startHold(ctx context.Context, cluster string) (context.Context, func(*failure, error)) {
	if s.tracer == nil {
		return ctx, func(*failure, error) {}
	}
	ns, rev := splitCluster(cluster)
	ctx, span := s.tracer.Start(telemetry.ExtractGRPC(ctx), telemetry.SpanHold,
		trace.WithAttributes(telemetry.KeyNamespace.String(ns), telemetry.KeyRevision.String(rev)))
	return ctx, func(f *failure, err error) {
		switch {
		case err != nil:
			span.SetStatus(codes.Error, err.Error())
		case f != nil:
			span.SetAttributes(attribute.Int("http.response.status_code", f.status))
			span.SetStatus(codes.Error, f.details)
		}
		span.End()
	}
}

// held accounts for a request that waits in its revision's queue; the returned function,
// called once the wait is over, records how long it was and how it ended.
func (s *Server) held(ctx context.Context, cluster string, w *waiter, since time.Time) func() {
	trace.SpanFromContext(ctx).SetAttributes(attribute.Bool("skiff.held", true))
	if s.metrics == nil {
		return func() {}
	}
	ns, rev := splitCluster(cluster)
	s.metrics.Queued(ctx, ns, rev, 1)
	return func() {
		s.metrics.Queued(ctx, ns, rev, -1)
		var outcome string
		switch {
		case ctx.Err() != nil:
			outcome = "cancelled"
		case w.outcome == outcomeGranted:
			outcome = "released"
		case w.failure != nil:
			outcome = w.failure.details // the revision was deleted, ...
		default:
			outcome = "timeout"
		}
		s.metrics.Held(ctx, ns, rev, outcome, time.Since(since))
	}
}

// active counts a released request as in flight until the returned function is called.
func (s *Server) active(ctx context.Context, cluster string) func() {
	if s.metrics == nil {
		return func() {}
	}
	ns, rev := splitCluster(cluster)
	s.metrics.Active(ctx, ns, rev, 1)
	return func() { s.metrics.Active(ctx, ns, rev, -1) }
}
