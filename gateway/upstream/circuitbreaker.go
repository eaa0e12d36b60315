package upstream

// Envoy's circuit breaker defaults.
const (
	defaultMaxRequests = 1024
	defaultMaxRetries  = 3
)

// AcquireRequest reserves a slot under the cluster's max_requests circuit
// breaker. It returns false (and counts upstream_rq_pending_overflow) when the
// breaker is open. A successful acquire must be paired with ReleaseRequest.
func (c *Cluster) AcquireRequest() bool {
	if c.activeRequests.Add(1) > c.maxRequests {
		c.activeRequests.Add(-1)
		c.Counter("upstream_rq_pending_overflow").Inc()
		return false
	}
	return true
}

// ReleaseRequest returns a slot taken by AcquireRequest.
func (c *Cluster) ReleaseRequest() { c.activeRequests.Add(-1) }

// AcquireRetry reserves a slot under the max_retries circuit breaker,
// counting upstream_rq_retry_overflow when it is open.
func (c *Cluster) AcquireRetry() bool {
	if c.activeRetries.Add(1) > c.maxRetries {
		c.activeRetries.Add(-1)
		c.Counter("upstream_rq_retry_overflow").Inc()
		return false
	}
	return true
}

// ReleaseRetry returns a slot taken by AcquireRetry.
func (c *Cluster) ReleaseRetry() { c.activeRetries.Add(-1) }
