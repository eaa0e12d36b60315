package kube

import (
	"cmp"
	"time"

	"k8s.io/client-go/rest"
)

// Defaults for the controller's API client and work queue, sized so that a thousand Services
// created at once (or found at a restart) reconcile in seconds, not minutes: each Service
// takes about fifteen API writes (see bench/RESULTS.md), and every reconcile waits on the
// API server's round trips, so more workers than cores keep the API server busy.
// Kubernetes' API Priority and Fairness protects the API server from a client that asks for
// more than its share; client-go's 5 QPS default predates it.
const (
	DefaultWorkers = 16
	DefaultQPS     = 1000
	DefaultBurst   = 2000
)

// DefaultStatusCoalesce is how long an object still in progress may go without writing its
// intermediate statuses (Config.StatusCoalesce): each API write costs the API server ~2.5 ms
// of CPU, and a Service rolling out passes through about eight in-progress statuses on its
// four objects within a second or two of being created (bench/RESULTS.md).
const DefaultStatusCoalesce = time.Second

// clientConfig is cfg.Rest with the controller's client rate limits (Config.QPS, Config.Burst).
func (c *Controller) clientConfig() *rest.Config {
	rc := rest.CopyConfig(c.cfg.Rest)
	rc.QPS = cmp.Or(c.cfg.QPS, DefaultQPS)
	rc.Burst = cmp.Or(c.cfg.Burst, DefaultBurst)
	return rc
}
