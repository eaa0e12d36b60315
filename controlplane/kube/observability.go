package kube

import (
	"fmt"

	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/telemetry"
)

// observability is what the leader's parts record with (all nil without Config.Telemetry).
type observability struct {
	xds          *telemetry.XDSMetrics
	queue        workqueue.MetricsProvider
	proxyTracing *xds.Tracing
}

// observability creates the leader's instruments. Envoy traces to the controller's
// collector when it is reachable in plaintext; otherwise Envoy does not trace, and the log
// says why.
func (c *Controller) observability() (*observability, error) {
	o := &observability{}
	t := c.cfg.Telemetry
	if t == nil {
		return o, nil
	}
	var err error
	if o.xds, err = telemetry.NewXDSMetrics(t); err != nil {
		return nil, fmt.Errorf("kube controller: %w", err)
	}
	q, err := telemetry.NewWorkqueueMetrics(t)
	if err != nil {
		return nil, fmt.Errorf("kube controller: %w", err)
	}
	o.queue = q
	if o.proxyTracing, err = xds.ProxyTracing(t.Tracing()); err != nil {
		c.log.Warn("Envoy will not trace requests", "err", err)
		o.proxyTracing = nil
	}
	return o, nil
}
