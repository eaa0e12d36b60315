// Package upstream is the gateway's cluster manager: it turns CDS Clusters and
// EDS ClusterLoadAssignments into clusters of hosts, picks hosts with Envoy's
// load balancing policies, enforces circuit breakers and owns the HTTP/1.1
// and h2c connection pools to the hosts, keeping Envoy's cluster stats.
package upstream

import (
	"crypto/tls"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/telemetry"
)

// HTTPProtocolOptionsKey is the typed_extension_protocol_options key for
// upstream HTTP protocol options.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// Host is one upstream endpoint.
type Host struct {
	// Address is the host:port dialled.
	Address string
	// Healthy reports whether the endpoint's health status is HEALTHY or UNKNOWN.
	Healthy bool
	// Priority is the endpoint's locality priority.
	Priority uint32

	active        atomic.Int64
	rqTotal       atomic.Uint64
	rqError       atomic.Uint64
	cxActive      atomic.Int64
	cxConnectFail atomic.Uint64
}

// Active returns the number of requests in flight to the host.
func (h *Host) Active() int64 { return h.active.Load() }

// Cluster is one upstream cluster. Its configuration is immutable; its
// endpoints change with EDS updates.
type Cluster struct {
	// Name is the cluster name.
	Name string
	// ServiceName is the EDS service name ("" for non-EDS clusters).
	ServiceName string
	// EDS reports whether the cluster takes its endpoints from EDS.
	EDS bool

	raw            *clusterv3.Cluster
	lb             lbConfig
	protocol       Protocol
	connectTimeout time.Duration
	maxRequests    int64
	maxRetries     int64

	hosts atomic.Pointer[hostSet]
	rr    atomic.Uint64

	activeRequests atomic.Int64
	activeRetries  atomic.Int64

	h1, h2 roundTripper
	st     *clusterStats
	// revision is the Knative Revision named by the cluster's skiff metadata, if any.
	revision *telemetry.Revision
	// tls is the client configuration of the cluster's TLS transport socket (nil: cleartext).
	tls *tls.Config
}

// TLSConfig returns the cluster's upstream TLS configuration, nil for cleartext, for filters
// that open their own connections to the cluster (ext_proc's gRPC). It is shared: clone it
// before changing it. A cluster update makes a new one.
func (c *Cluster) TLSConfig() *tls.Config { return c.tls }

// roundTripper is a connection pool to the cluster's hosts.
type roundTripper interface {
	http.RoundTripper
	CloseIdleConnections()
}

// clusterStats are the cluster.<name>.* stats touched on every request.
type clusterStats struct {
	store                                                                       *stats.Store
	prefix                                                                      string
	rqTotal, rqCompleted, cxTotal, cxConnectFail, cxConnectTimeout, noneHealthy *stats.Counter
	rqActive, cxActive, membershipHealthy, membershipTotal                      *stats.Gauge
	// byCode caches *responseCounters by status code (see codeCounters).
	byCode sync.Map
}

func newClusterStats(s *stats.Store, name string) *clusterStats {
	p := "cluster." + name + "."
	return &clusterStats{
		store: s, prefix: p,
		rqTotal:           s.Counter(p + "upstream_rq_total"),
		rqCompleted:       s.Counter(p + "upstream_rq_completed"),
		cxTotal:           s.Counter(p + "upstream_cx_total"),
		cxConnectFail:     s.Counter(p + "upstream_cx_connect_fail"),
		cxConnectTimeout:  s.Counter(p + "upstream_cx_connect_timeout"),
		noneHealthy:       s.Counter(p + "upstream_cx_none_healthy"),
		rqActive:          s.Gauge(p + "upstream_rq_active"),
		cxActive:          s.Gauge(p + "upstream_cx_active"),
		membershipHealthy: s.Gauge(p + "membership_healthy"),
		membershipTotal:   s.Gauge(p + "membership_total"),
	}
}

// Counter returns the cluster-scoped counter cluster.<name>.<suffix>.
func (c *Cluster) Counter(suffix string) *stats.Counter {
	return c.st.store.Counter(c.st.prefix + suffix)
}

// OverrideHost reports whether the cluster uses the override_host load
// balancing policy.
func (c *Cluster) OverrideHost() bool { return c.lb.override != nil }

// Raw returns the Cluster resource the cluster was built from.
func (c *Cluster) Raw() *clusterv3.Cluster { return c.raw }

// Hosts returns all hosts of the cluster.
func (c *Cluster) Hosts() []*Host {
	if hs := c.hosts.Load(); hs != nil {
		return hs.all
	}
	return nil
}

// StartRequest records the start of an upstream request to h and returns a
// function to call exactly once when the response is complete (or failed).
func (c *Cluster) StartRequest(h *Host) (done func()) {
	h.active.Add(1)
	c.st.rqActive.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.active.Add(-1)
			c.st.rqActive.Dec()
		})
	}
}

// CountRequest counts a request that was written to a connection to h
// (Envoy's upstream_rq_total).
func (c *Cluster) CountRequest(h *Host) {
	h.rqTotal.Add(1)
	c.st.rqTotal.Inc()
}

// CountResponse charges a response code (or an abort with the code Envoy
// charges for it) to the cluster's upstream_rq_<code>, upstream_rq_<N>xx and
// upstream_rq_completed stats.
func (c *Cluster) CountResponse(h *Host, code int) {
	cc := c.codeCounters(code)
	cc.code.Inc()
	cc.class.Inc()
	c.st.rqCompleted.Inc()
	if h != nil && code >= 500 {
		h.rqError.Add(1)
	}
}

// responseCounters are upstream_rq_<code> and upstream_rq_<N>xx of one status code.
type responseCounters struct{ code, class *stats.Counter }

// codeCounters returns the counters of a status code, looked up in the store (and so
// created, and listed) at the code's first use and cached, so that the request path takes no
// store lock and builds no stat name.
func (c *Cluster) codeCounters(code int) *responseCounters {
	if v, ok := c.st.byCode.Load(code); ok {
		return v.(*responseCounters)
	}
	rc := &responseCounters{
		code:  c.Counter("upstream_rq_" + strconv.Itoa(code)),
		class: c.Counter("upstream_rq_" + strconv.Itoa(code/100) + "xx"),
	}
	v, _ := c.st.byCode.LoadOrStore(code, rc)
	return v.(*responseCounters)
}

// HostStats are the per-host numbers shown by the admin /clusters page.
type HostStats struct {
	CxActive, RqActive              int64
	RqTotal, RqError, CxConnectFail uint64
}

// Stats returns h's counters.
func (h *Host) Stats() HostStats {
	return HostStats{CxActive: h.cxActive.Load(), RqActive: h.active.Load(), RqTotal: h.rqTotal.Load(), RqError: h.rqError.Load(), CxConnectFail: h.cxConnectFail.Load()}
}
