// Package upstream is the gateway's cluster manager: it turns CDS Clusters and
// EDS ClusterLoadAssignments into clusters of hosts, picks hosts with Envoy's
// load balancing policies, enforces circuit breakers and owns the HTTP/1.1
// and h2c connection pools to the hosts, keeping Envoy's cluster stats.
package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"

	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/telemetry"
)

// HTTPProtocolOptionsKey is the typed_extension_protocol_options key for
// upstream HTTP protocol options.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// Envoy's circuit breaker defaults.
const (
	defaultMaxRequests = 1024
	defaultMaxRetries  = 3
)

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

// Protocol is the HTTP protocol used towards a cluster's hosts.
type Protocol int

const (
	// HTTP1 is HTTP/1.1.
	HTTP1 Protocol = iota
	// HTTP2 is HTTP/2 with prior knowledge over cleartext (h2c).
	HTTP2
	// Downstream uses the downstream request's protocol.
	Downstream
)

// LBPolicy is a cluster's load balancing policy (the fallback policy when
// the cluster uses override_host).
type LBPolicy int

const (
	// RoundRobin cycles through healthy hosts.
	RoundRobin LBPolicy = iota
	// LeastRequest picks the less loaded of two random hosts.
	LeastRequest
	// Random picks a random healthy host.
	Random
)

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

	h1, h2 *http.Transport
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

type hostSet struct {
	all     []*Host
	healthy []*Host // hosts of the best priority with healthy hosts
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

// ConnectError is returned by a cluster's transports when a connection to a
// host could not be established (Envoy's "connection failure").
type ConnectError struct {
	Host    string
	Timeout bool
	Err     error
}

// Error implements error.
func (e *ConnectError) Error() string {
	return fmt.Sprintf("connecting to %s: %v", e.Host, e.Err)
}

// Unwrap returns the dial error.
func (e *ConnectError) Unwrap() error { return e.Err }

// ErrNoHealthyUpstream is returned by Pick when the cluster has no healthy host.
var ErrNoHealthyUpstream = errors.New("no healthy upstream")

// Pick chooses a healthy host by the cluster's load balancing policy,
// avoiding hosts in exclude when any other healthy host exists.
func (c *Cluster) Pick(exclude []*Host) (*Host, error) {
	return c.PickFor(LBContext{}, exclude)
}

// PickFor is Pick for a request described by lbc. With an override_host
// load balancing policy, the first healthy cluster host named by the
// request's override sources (dynamic metadata or headers) and not in
// exclude is chosen; otherwise the fallback policy picks.
func (c *Cluster) PickFor(lbc LBContext, exclude []*Host) (*Host, error) {
	hs := c.hosts.Load()
	if hs != nil && c.lb.override != nil {
		if h, err := c.lb.override.pick(hs, lbc, exclude); err == nil {
			return h, nil
		}
	}
	if hs == nil || len(hs.healthy) == 0 {
		c.st.noneHealthy.Inc()
		return nil, ErrNoHealthyUpstream
	}
	cands := hs.healthy
	if len(exclude) > 0 {
		filtered := make([]*Host, 0, len(cands))
		for _, h := range cands {
			if !slices.Contains(exclude, h) {
				filtered = append(filtered, h)
			}
		}
		if len(filtered) > 0 {
			cands = filtered
		}
	}
	if len(cands) == 1 {
		return cands[0], nil
	}
	switch c.lb.policy {
	case LeastRequest:
		if c.lb.choiceCount != defaultChoiceCount {
			return pickLeastRequest(cands, c.lb.choiceCount), nil
		}
		a, b := rand.N(len(cands)), rand.N(len(cands)-1)
		if b >= a {
			b++
		}
		ha, hb := cands[a], cands[b]
		if hb.Active() < ha.Active() {
			return hb, nil
		}
		return ha, nil
	case Random:
		return cands[rand.N(len(cands))], nil
	default:
		return cands[c.rr.Add(1)%uint64(len(cands))], nil
	}
}

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

// Transport returns the round tripper for a request whose downstream used
// HTTP major version downstreamMajor.
func (c *Cluster) Transport(downstreamMajor int) http.RoundTripper {
	switch c.protocol {
	case HTTP2:
		return c.h2
	case Downstream:
		if downstreamMajor == 2 {
			return c.h2
		}
	}
	return c.h1
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

// Manager holds the current clusters and endpoint assignments.
type Manager struct {
	stats   *stats.Store
	secrets StaticSecrets

	mu          sync.RWMutex
	clusters    map[string]*Cluster
	assignments map[string]*endpointv3.ClusterLoadAssignment // by EDS service name
}

// NewManager returns an empty Manager reporting into s; clusters' TLS transport sockets may
// refer to secrets.
func NewManager(s *stats.Store, secrets StaticSecrets) *Manager {
	return &Manager{stats: s, secrets: secrets, clusters: map[string]*Cluster{}, assignments: map[string]*endpointv3.ClusterLoadAssignment{}}
}

// Get returns the cluster called name, or nil.
func (m *Manager) Get(name string) *Cluster {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.clusters[name]
}

// Clusters returns all clusters sorted by name.
func (m *Manager) Clusters() []*Cluster {
	m.mu.RLock()
	out := make([]*Cluster, 0, len(m.clusters))
	for _, c := range m.clusters {
		out = append(out, c)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// EDSServiceNames returns the EDS service names of the current clusters, sorted.
func (m *Manager) EDSServiceNames() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.clusters))
	for _, c := range m.clusters {
		if c.EDS {
			out = append(out, c.ServiceName)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Warm reports whether every EDS cluster has received its assignment.
func (m *Manager) Warm() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range m.clusters {
		if c.EDS {
			if _, ok := m.assignments[c.ServiceName]; !ok {
				return false
			}
		}
	}
	return true
}

// ApplyClusters replaces the set of clusters with cs (CDS is state of the
// world). Every cluster is validated first; on any error nothing changes.
// Unchanged clusters keep their connection pools and endpoints.
func (m *Manager) ApplyClusters(cs map[string]*clusterv3.Cluster) error {
	m.mu.RLock()
	old := m.clusters
	m.mu.RUnlock()
	next := make(map[string]*Cluster, len(cs))
	var built []*Cluster
	for name, raw := range cs {
		// The ADS client hands back an unchanged cluster as the same message.
		if prev, ok := old[name]; ok && (prev.raw == raw || proto.Equal(prev.raw, raw)) {
			next[name] = prev
			continue
		}
		c, err := m.build(raw)
		if err != nil {
			for _, b := range built {
				b.close()
			}
			return fmt.Errorf("cluster %q: %w", name, err)
		}
		built = append(built, c)
		next[name] = c
	}
	m.mu.Lock()
	for _, c := range built {
		m.refreshHostsLocked(c)
	}
	m.clusters = next
	// Forget assignments nobody uses any more.
	used := map[string]bool{}
	for _, c := range next {
		used[c.ServiceName] = true
	}
	for sn := range m.assignments {
		if !used[sn] {
			delete(m.assignments, sn)
		}
	}
	m.mu.Unlock()
	for name, c := range old {
		if next[name] != c {
			c.close()
		}
	}
	for name := range old {
		if _, ok := next[name]; !ok {
			m.stats.Gauge("cluster." + name + ".membership_healthy").Set(0)
			m.stats.Gauge("cluster." + name + ".membership_total").Set(0)
		}
	}
	m.stats.Gauge("cluster_manager.active_clusters").Set(int64(len(next)))
	return nil
}

// ValidateAssignment checks a ClusterLoadAssignment.
func ValidateAssignment(cla *endpointv3.ClusterLoadAssignment) error {
	if err := cla.ValidateAll(); err != nil {
		return err
	}
	_, err := hostsFrom(cla, nil)
	return err
}

// ApplyEndpoints replaces the endpoint assignments of EDS clusters (keyed by
// EDS service name). All assignments are validated first.
func (m *Manager) ApplyEndpoints(clas map[string]*endpointv3.ClusterLoadAssignment) error {
	// The ADS client hands back an unchanged assignment as the same message: only the
	// changed ones are validated and refreshed, so one update costs what it changes.
	m.mu.RLock()
	prev := m.assignments
	m.mu.RUnlock()
	for name, cla := range clas {
		if prev[name] == cla {
			continue
		}
		if err := ValidateAssignment(cla); err != nil {
			return fmt.Errorf("cluster load assignment %q: %w", name, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.assignments
	m.assignments = make(map[string]*endpointv3.ClusterLoadAssignment, len(clas))
	for name, cla := range clas {
		m.assignments[name] = cla
	}
	for _, c := range m.clusters {
		if c.EDS && (old[c.ServiceName] != m.assignments[c.ServiceName] || old[c.ServiceName] == nil) {
			m.refreshHostsLocked(c)
		}
	}
	return nil
}

func (m *Manager) refreshHostsLocked(c *Cluster) {
	var cla *endpointv3.ClusterLoadAssignment
	if c.EDS {
		cla = m.assignments[c.ServiceName]
	} else {
		cla = c.raw.GetLoadAssignment()
	}
	var prev []*Host
	if hs := c.hosts.Load(); hs != nil {
		prev = hs.all
	}
	hosts, _ := hostsFrom(cla, prev) // validated already
	hs := &hostSet{all: hosts}
	best := uint32(0)
	found := false
	for _, h := range hosts {
		if h.Healthy && (!found || h.Priority < best) {
			best, found = h.Priority, true
		}
	}
	for _, h := range hosts {
		if h.Healthy && h.Priority == best {
			hs.healthy = append(hs.healthy, h)
		}
	}
	c.hosts.Store(hs)
	healthy := 0
	for _, h := range hosts {
		if h.Healthy {
			healthy++
		}
	}
	c.st.membershipHealthy.Set(int64(healthy))
	c.st.membershipTotal.Set(int64(len(hosts)))
}

// hostsFrom converts an assignment to hosts, reusing hosts from prev with the
// same address so their in-flight counts survive updates.
func hostsFrom(cla *endpointv3.ClusterLoadAssignment, prev []*Host) ([]*Host, error) {
	byAddr := map[string]*Host{}
	for _, h := range prev {
		byAddr[h.Address] = h
	}
	var out []*Host
	seen := map[string]bool{}
	for i, le := range cla.GetEndpoints() {
		for j, lb := range le.GetLbEndpoints() {
			ep := lb.GetEndpoint()
			if ep == nil {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: only endpoint (not endpoint_name) is supported", i, j)
			}
			sa := ep.GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: only socket_address endpoints are supported", i, j)
			}
			if sa.GetProtocol() != corev3.SocketAddress_TCP {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: only TCP endpoints are supported", i, j)
			}
			pv, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_PortValue)
			if !ok {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: named ports are not supported", i, j)
			}
			addr := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(pv.PortValue)))
			if seen[addr] {
				continue
			}
			seen[addr] = true
			hs := lb.GetHealthStatus()
			healthy := hs == corev3.HealthStatus_HEALTHY || hs == corev3.HealthStatus_UNKNOWN
			h := byAddr[addr]
			if h == nil || h.Healthy != healthy || h.Priority != le.GetPriority() {
				nh := &Host{Address: addr, Healthy: healthy, Priority: le.GetPriority()}
				if h != nil {
					// Carry the counters over; the old struct may still be referenced by in-flight requests.
					nh.rqTotal.Store(h.rqTotal.Load())
					nh.rqError.Store(h.rqError.Load())
					nh.cxConnectFail.Store(h.cxConnectFail.Load())
				}
				h = nh
			}
			out = append(out, h)
		}
	}
	return out, nil
}

// build validates a Cluster resource and creates its runtime form.
func (m *Manager) build(raw *clusterv3.Cluster) (*Cluster, error) {
	if err := raw.ValidateAll(); err != nil {
		return nil, err
	}
	c := &Cluster{Name: raw.GetName(), raw: raw, connectTimeout: 5 * time.Second, maxRequests: defaultMaxRequests, maxRetries: defaultMaxRetries}
	c.revision = revisionOf(raw)
	switch t := raw.GetClusterDiscoveryType().(type) {
	case nil:
		// Envoy's default type is STATIC.
	case *clusterv3.Cluster_Type:
		switch t.Type {
		case clusterv3.Cluster_STATIC, clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
			// DNS names in the load assignment are resolved when dialling.
		case clusterv3.Cluster_EDS:
			c.EDS = true
			c.ServiceName = raw.GetEdsClusterConfig().GetServiceName()
			if c.ServiceName == "" {
				c.ServiceName = raw.GetName()
			}
		default:
			return nil, fmt.Errorf("cluster type %s is not supported", t.Type)
		}
	default:
		return nil, fmt.Errorf("cluster_type (custom cluster) is not supported")
	}
	if !c.EDS {
		if _, err := hostsFrom(raw.GetLoadAssignment(), nil); err != nil {
			return nil, fmt.Errorf("load_assignment: %w", err)
		}
	}
	// As in Envoy, load_balancing_policy (when set) supersedes lb_policy.
	if lbp := raw.GetLoadBalancingPolicy(); lbp != nil {
		lb, err := compileLBPolicy(lbp, false)
		if err != nil {
			return nil, fmt.Errorf("load_balancing_policy: %w", err)
		}
		c.lb = lb
	} else {
		lb, err := compileLegacyLBPolicy(raw)
		if err != nil {
			return nil, err
		}
		c.lb = lb
	}
	if len(raw.GetTransportSocketMatches()) > 0 {
		return nil, errors.New("transport_socket_matches are not supported")
	}
	tlsCfg, err := m.upstreamTLS(raw.GetTransportSocket())
	if err != nil {
		return nil, err
	}
	c.tls = tlsCfg
	if raw.GetConnectTimeout() != nil {
		c.connectTimeout = raw.GetConnectTimeout().AsDuration()
	}
	for _, th := range raw.GetCircuitBreakers().GetThresholds() {
		if th.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		if th.GetMaxRequests() != nil {
			c.maxRequests = int64(th.GetMaxRequests().GetValue())
		}
		if th.GetMaxRetries() != nil {
			c.maxRetries = int64(th.GetMaxRetries().GetValue())
		}
	}
	//nolint:staticcheck // the deprecated field is still honoured by Envoy.
	if raw.GetHttp2ProtocolOptions() != nil {
		c.protocol = HTTP2
	}
	for key, a := range raw.GetTypedExtensionProtocolOptions() {
		if key != HTTPProtocolOptionsKey {
			return nil, fmt.Errorf("typed_extension_protocol_options %q is not supported", key)
		}
		var po httpv3.HttpProtocolOptions
		if err := a.UnmarshalTo(&po); err != nil {
			return nil, fmt.Errorf("typed_extension_protocol_options %q: %w", key, err)
		}
		if err := po.ValidateAll(); err != nil {
			return nil, fmt.Errorf("typed_extension_protocol_options %q: %w", key, err)
		}
		switch pc := po.GetUpstreamProtocolOptions().(type) {
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
			if pc.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil {
				c.protocol = HTTP2
			} else if pc.ExplicitHttpConfig.GetHttp3ProtocolOptions() != nil {
				return nil, errors.New("HTTP/3 upstreams are not supported")
			} else {
				c.protocol = HTTP1
			}
		case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
			c.protocol = Downstream
		case *httpv3.HttpProtocolOptions_AutoConfig:
			// ALPN needs TLS; over cleartext Envoy's auto config speaks HTTP/1.1.
			c.protocol = HTTP1
		}
	}
	c.st = newClusterStats(m.stats, c.Name)
	c.h1 = c.newTransport(false)
	c.h2 = c.newTransport(true)
	return c, nil
}

func (c *Cluster) newTransport(h2 bool) *http.Transport {
	dialer := &net.Dialer{Timeout: c.connectTimeout, KeepAlive: 30 * time.Second}
	var p http.Protocols
	if h2 {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	return &http.Transport{
		DialContext:           c.dial(dialer, h2),
		Protocols:             &p,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
}

// dial connects to a host of the cluster, with TLS (offering h2 or http/1.1 by ALPN unless
// the transport socket names protocols) when the cluster has a TLS transport socket; the
// transports then speak HTTP over the TLS connection as over a cleartext one.
func (c *Cluster) dial(d *net.Dialer, h2 bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var host *Host
		for _, h := range c.Hosts() {
			if h.Address == addr {
				host = h
				break
			}
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err // the request went away; not the host's fault
			}
			c.st.cxConnectFail.Inc()
			if host != nil {
				host.cxConnectFail.Add(1)
			}
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			if timeout {
				c.st.cxConnectTimeout.Inc()
			}
			return nil, &ConnectError{Host: addr, Timeout: timeout, Err: err}
		}
		if c.tls != nil {
			cfg := c.tls.Clone()
			if len(cfg.NextProtos) == 0 {
				cfg.NextProtos = []string{"http/1.1"}
				if h2 {
					cfg.NextProtos = []string{"h2"}
				}
			}
			tc := tls.Client(conn, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				c.st.cxConnectFail.Inc()
				if host != nil {
					host.cxConnectFail.Add(1)
				}
				return nil, &ConnectError{Host: addr, Err: err}
			}
			conn = tc
		}
		c.st.cxTotal.Inc()
		c.st.cxActive.Inc()
		if host != nil {
			host.cxActive.Add(1)
		}
		return &countedConn{Conn: conn, done: func() {
			c.st.cxActive.Dec()
			if host != nil {
				host.cxActive.Add(-1)
			}
		}}, nil
	}
}

type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}

func (c *Cluster) close() {
	c.h1.CloseIdleConnections()
	c.h2.CloseIdleConnections()
}

// Close releases idle connections of every cluster.
func (m *Manager) Close() {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range m.clusters {
		c.close()
	}
}
