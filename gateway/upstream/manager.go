package upstream

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"

	"github.com/skiff-dev/skiff/client/h1"
	"github.com/skiff-dev/skiff/gateway/stats"
)

// Manager holds the current clusters and endpoint assignments.
type Manager struct {
	stats   *stats.Store
	secrets StaticSecrets

	mu          sync.RWMutex
	clusters    map[string]*Cluster
	assignments map[string]*endpointv3.ClusterLoadAssignment // by EDS service name
	// byService holds the EDS clusters of each EDS service name.
	byService map[string]map[string]*Cluster
}

// NewManager returns an empty Manager reporting into s; clusters' TLS transport sockets may
// refer to secrets.
func NewManager(s *stats.Store, secrets StaticSecrets) *Manager {
	return &Manager{stats: s, secrets: secrets, clusters: map[string]*Cluster{}, assignments: map[string]*endpointv3.ClusterLoadAssignment{},
		byService: map[string]map[string]*Cluster{}}
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
	var removed []string
	for name := range m.clusters {
		if _, ok := cs[name]; !ok {
			removed = append(removed, name)
		}
	}
	m.mu.RUnlock()
	_, _, err := m.UpdateClusters(cs, removed)
	return err
}

// UpdateClusters adds or replaces the clusters in changed and removes those named in
// removed, at a cost that grows with the change, not with the number of clusters. Every
// changed cluster is validated first; on any error nothing changes. A cluster equal to the
// current one keeps its connection pools and endpoints. It returns the EDS service names
// that the clusters now need and did not, and those no cluster needs any more (their
// assignments are forgotten).
func (m *Manager) UpdateClusters(changed map[string]*clusterv3.Cluster, removed []string) (edsAdded, edsRemoved []string, err error) {
	m.mu.RLock()
	var built []*Cluster
	for name, raw := range changed {
		// The ADS client hands back an unchanged cluster as the same message.
		if prev, ok := m.clusters[name]; ok && (prev.raw == raw || proto.Equal(prev.raw, raw)) {
			continue
		}
		c, err := m.build(raw)
		if err != nil {
			m.mu.RUnlock()
			for _, b := range built {
				b.close()
			}
			return nil, nil, fmt.Errorf("cluster %q: %w", name, err)
		}
		built = append(built, c)
	}
	m.mu.RUnlock()
	m.mu.Lock()
	var closed []*Cluster
	needs := map[string]int{} // EDS service name → change in the number of clusters using it
	drop := func(name string) {
		old, ok := m.clusters[name]
		if !ok {
			return
		}
		delete(m.clusters, name)
		closed = append(closed, old)
		if old.EDS {
			needs[old.ServiceName]--
			delete(m.byService[old.ServiceName], name)
			if len(m.byService[old.ServiceName]) == 0 {
				delete(m.byService, old.ServiceName)
			}
		}
	}
	for _, name := range removed {
		if _, ok := changed[name]; !ok {
			drop(name)
		}
	}
	for _, c := range built {
		drop(c.Name)
		m.clusters[c.Name] = c
		if c.EDS {
			needs[c.ServiceName]++
			if m.byService[c.ServiceName] == nil {
				m.byService[c.ServiceName] = map[string]*Cluster{}
			}
			m.byService[c.ServiceName][c.Name] = c
		}
		m.refreshHostsLocked(c)
	}
	for sn, d := range needs {
		n := len(m.byService[sn])
		switch {
		case d > 0 && n == d:
			edsAdded = append(edsAdded, sn)
		case d < 0 && n == 0:
			edsRemoved = append(edsRemoved, sn)
			delete(m.assignments, sn)
		}
	}
	active := len(m.clusters)
	m.mu.Unlock()
	for _, c := range closed {
		c.close()
	}
	for _, name := range removed {
		if _, ok := changed[name]; !ok {
			m.stats.Gauge("cluster." + name + ".membership_healthy").Set(0)
			m.stats.Gauge("cluster." + name + ".membership_total").Set(0)
		}
	}
	m.stats.Gauge("cluster_manager.active_clusters").Set(int64(active))
	sort.Strings(edsAdded)
	sort.Strings(edsRemoved)
	return edsAdded, edsRemoved, nil
}

// ServiceClusters returns the EDS clusters of an EDS service name.
func (m *Manager) ServiceClusters(serviceName string) []*Cluster {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Cluster, 0, len(m.byService[serviceName]))
	for _, c := range m.byService[serviceName] {
		out = append(out, c)
	}
	return out
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
	m.mu.RLock()
	var removed []string
	for name := range m.assignments {
		if _, ok := clas[name]; !ok {
			removed = append(removed, name)
		}
	}
	m.mu.RUnlock()
	return m.UpdateEndpoints(clas, removed)
}

// UpdateEndpoints sets the assignments in changed (keyed by EDS service name) and removes
// those named in removed, refreshing the hosts of the clusters using them only. The changed
// assignments are validated first; on any error nothing changes.
func (m *Manager) UpdateEndpoints(changed map[string]*endpointv3.ClusterLoadAssignment, removed []string) error {
	// The ADS client hands back an unchanged assignment as the same message: it is not
	// validated again.
	m.mu.RLock()
	for name, cla := range changed {
		if m.assignments[name] == cla {
			continue
		}
		if err := ValidateAssignment(cla); err != nil {
			m.mu.RUnlock()
			return fmt.Errorf("cluster load assignment %q: %w", name, err)
		}
	}
	m.mu.RUnlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	touched := make([]string, 0, len(changed)+len(removed))
	for _, name := range removed {
		if _, ok := changed[name]; !ok {
			if _, had := m.assignments[name]; had {
				delete(m.assignments, name)
				touched = append(touched, name)
			}
		}
	}
	for name, cla := range changed {
		if old, ok := m.assignments[name]; ok && old == cla {
			continue
		}
		m.assignments[name] = cla
		touched = append(touched, name)
	}
	for _, name := range touched {
		for _, c := range m.byService[name] {
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
	if t, ok := c.h1.(*h1.Transport); ok {
		addrs := make(map[string]bool, len(hosts))
		for _, h := range hosts {
			addrs[h.Address] = true
		}
		t.KeepOnly(func(addr string) bool { return addrs[addr] })
	}
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
	tr := c.newTransport(false)
	c.h1 = tr
	if c.tls == nil {
		// TLS clusters keep http.Transport alone: the fast path peeks at TCP sockets.
		c.h1 = h1.New(tr, c.dial(c.dialer(), false))
	}
	c.h2 = c.newTransport(true)
	return c, nil
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
