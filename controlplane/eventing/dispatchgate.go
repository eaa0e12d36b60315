package eventing

import (
	"context"
	"net/http"
	"time"

	"github.com/skiff-dev/skiff/eventing/broker"
)

// DispatchWaitForProxy is how long, after a start, deliveries wait for the proxy to serve every
// Route before they start anyway (StartDispatchWhenServing's maxWait in skiff up and skiff
// controller).
const DispatchWaitForProxy = 30 * time.Second

// RoutesAcked is the part of the xDS server that says whether the proxy serves everything
// configured (xds.Server.RoutesAcked).
type RoutesAcked interface {
	RoutesAcked() bool
}

// StartDispatch starts delivering events held back by Config.HoldDispatch.
func (e *Eventing) StartDispatch() { e.broker.StartDispatch() }

// StartDispatchWhenServing starts delivering once the proxy serves what the control plane
// configured, so that after a (re)start no event goes to a proxy that is not listening yet or
// does not route its subscriber yet (a 404 is the subscriber's answer as far as the dispatcher
// can tell). It waits for synced (the reconcilers have configured every stored object, e.g.
// Routes), then until proxy has ACKed every Route and a request through Config.Client to the
// broker ingress's host gets an answer from the ingress. After maxWait past synced it starts
// anyway with a warning: a proxy that never comes still gets the deliveries it can take, and
// attempts it fails are not counted (Config.ProxyFailed). It returns when dispatch started or
// ctx ended; run it in a goroutine.
func (e *Eventing) StartDispatchWhenServing(ctx context.Context, synced <-chan struct{}, proxy RoutesAcked, maxWait time.Duration) {
	select {
	case <-synced:
	case <-ctx.Done():
		return
	}
	start := time.Now()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !proxy.RoutesAcked() || !e.proxyServesIngress(ctx) {
		if time.Since(start) >= maxWait {
			e.log.Warn("the proxy does not serve every route yet; delivering anyway", "waited", maxWait)
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	e.log.Info("the proxy serves; delivering events", "waited", time.Since(start).Round(time.Millisecond))
	e.StartDispatch()
}

// proxyServesIngress reports whether the broker ingress answers through the proxy (an
// OPTIONS request, the CloudEvents webhook handshake the ingress answers 200).
func (e *Eventing) proxyServesIngress(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, "http://"+broker.IngressHost(e.cfg.Domain)+"/", nil)
	if err != nil {
		return false
	}
	resp, err := e.cfg.Client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound
}
