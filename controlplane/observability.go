package controlplane

import (
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/telemetry"
)

// observability is what the control plane's parts record with, from a Telemetry (all nil
// without one).
type observability struct {
	t            *telemetry.Telemetry
	tracer       trace.TracerProvider
	activator    *telemetry.ActivatorMetrics
	xds          *telemetry.XDSMetrics
	queue        workqueue.MetricsProvider
	proxyTracing *xds.Tracing
}

// newObservability creates the control plane's instruments on t. Proxies trace to t's
// collector when it is reachable in plaintext; otherwise they do not trace, and log says why.
func newObservability(t *telemetry.Telemetry, log *slog.Logger) (*observability, error) {
	o := &observability{t: t}
	if t == nil {
		return o, nil
	}
	if t.Traces() {
		o.tracer = t.TracerProvider()
	}
	var err error
	if o.activator, err = telemetry.NewActivatorMetrics(t); err != nil {
		return nil, err
	}
	if o.xds, err = telemetry.NewXDSMetrics(t); err != nil {
		return nil, err
	}
	q, err := telemetry.NewWorkqueueMetrics(t)
	if err != nil {
		return nil, err
	}
	o.queue = q
	if o.proxyTracing, err = xds.ProxyTracing(t.Tracing()); err != nil {
		log.Warn("proxies will not trace requests", "err", err)
		o.proxyTracing = nil
	}
	return o, nil
}

// registerAutoscaler reports the autoscaler's gauges; the returned function stops it.
func (o *observability) registerAutoscaler(a *autoscaler.Autoscaler) (func(), error) {
	if o.t == nil {
		return func() {}, nil
	}
	stop, err := telemetry.RegisterAutoscaler(o.t, a.Scales)
	if err != nil {
		return nil, fmt.Errorf("autoscaler metrics: %w", err)
	}
	return stop, nil
}
