package xds

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// routeKey is the key of a Route's virtual hosts: "{namespace}/{name}".
func routeKey(namespace, name string) string { return namespace + "/" + name }

// SetRoute adds or replaces the virtual hosts of one Route. Only this Route is
// translated (and checked against the other Routes' names and domains) now; the
// RouteConfigurations are reassembled and pushed right after, once for any number
// of Routes changed meanwhile, so loading N Routes costs O(N), not O(N²).
func (s *Server) SetRoute(r Route) error {
	vhosts, err := TranslateRouteVirtualHosts(r, s.extProc, s.ls)
	if err != nil {
		return fmt.Errorf("set route: %w", err)
	}
	key := routeKey(r.Namespace, r.Name)
	if s.buckets > 0 {
		// A scope is keyed by an exact host: check now, not when the buckets are assembled.
		for i, vh := range r.VirtualHosts {
			for j, d := range vh.Domains {
				if d == "" || strings.Contains(d, "*") {
					return fmt.Errorf("set route %s: virtualHosts[%d].domains[%d] %q: scoped routes need an exact host (wildcards need the single route layout)", key, i, j, d)
				}
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.vhosts[key]; ok && equalVhosts(old, vhosts) {
		return nil
	}
	claimed := map[string]bool{}
	for _, vh := range r.VirtualHosts {
		for _, name := range append([]string{"vhost:" + vh.Name}, vh.Domains...) {
			name = strings.ToLower(name)
			if other, ok := s.domains[name]; (ok && other != key) || claimed[name] {
				return fmt.Errorf("set route %s: %s is already used by route %s", key, strings.TrimPrefix(name, "vhost:"), cmp.Or(other, key))
			}
			claimed[name] = true
		}
	}
	s.setVhostsLocked(key, vhosts, claimed)
	return nil
}

// equalVhosts reports whether two Routes' virtual hosts, by RouteConfiguration, are the same.
func equalVhosts(a, b map[string][]*routev3.VirtualHost) bool {
	if len(a) != len(b) {
		return false
	}
	for name, va := range a {
		vb, ok := b[name]
		if !ok || !slices.EqualFunc(va, vb, func(x, y *routev3.VirtualHost) bool { return proto.Equal(x, y) }) {
			return false
		}
	}
	return true
}

// DeleteRoute removes the virtual hosts of one Route; unknown Routes are ignored.
func (s *Server) DeleteRoute(namespace, name string) {
	key := routeKey(namespace, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vhosts[key]; ok {
		s.setVhostsLocked(key, nil, nil)
	}
}

// setVhostsLocked records key's virtual hosts (nil removes them) and their claimed
// names, and asks for the RouteConfigurations to be reassembled.
func (s *Server) setVhostsLocked(key string, vhosts map[string][]*routev3.VirtualHost, claimed map[string]bool) {
	for _, name := range s.claims[key] {
		delete(s.domains, name)
	}
	delete(s.claims, key)
	for name := range claimed {
		s.domains[name] = key
		s.claims[key] = append(s.claims[key], name)
	}
	if vhosts == nil {
		delete(s.vhosts, key)
		delete(s.routeVersions, key)
	} else {
		s.vhosts[key] = vhosts
	}
	s.dirty[key] = true
	if s.buckets > 0 {
		s.dirtyBuckets[routeBucket(key, s.buckets)] = true
	}
	select {
	case s.kick <- struct{}{}:
	default: // a reassembly is already due; it will see this change
	}
}

// assembleRoutes reassembles and pushes the RouteConfigurations whenever Routes changed,
// until ctx ends. Changes made while it works, or within flushInterval of its last round,
// are coalesced into the next round: each round costs O(virtual hosts) in the single layout,
// here and in every proxy, so a burst must not cost one round per Route.
//
// The interval grows with what the last round cost, so that assembling takes at most
// 1/routeFlushDuty of the time while a burst lasts (the proxies' applying each round grows
// with it too): in the single layout one round over a thousand Routes takes ~10 ms, and ten
// of them a second were a fifth of a core here and as much in each proxy. It stays within
// routeFlushMaxFactor intervals, which bounds what it adds to a Route's time to Ready (the
// cost is wall time, which a busy machine stretches).
func (s *Server) assembleRoutes(ctx context.Context) {
	var last time.Time
	var cost time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		if wait := time.Until(last.Add(min(max(s.flushInterval, cost*routeFlushDuty), routeFlushMaxFactor*s.flushInterval))); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		if err := s.flushRoutes(); err != nil {
			s.logger.Error("assemble route configuration", "error", err)
		}
		cost = time.Since(last)
	}
}

// routeFlushDuty is how many times its own cost a round of route assembly waits behind the
// previous one at least (see assembleRoutes).
const routeFlushDuty = 20

// routeFlushMaxFactor bounds the interval assembleRoutes stretches to, in flush intervals.
const routeFlushMaxFactor = 3

// flushRoutes assembles each RouteConfiguration from every Route's virtual hosts and
// pushes those that changed; the Routes changed since the last push then wait for the
// versions carrying them to be ACKed.
func (s *Server) flushRoutes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) == 0 {
		return nil
	}
	if s.buckets > 0 {
		return s.flushScopedLocked()
	}
	for _, name := range s.ls.RouteConfigNames() {
		var all []*routev3.VirtualHost
		for _, v := range s.vhosts {
			all = append(all, v[name]...)
		}
		rc, err := TranslateRouteConfiguration(all)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rc.Name = name
		b, err := cache.MarshalResource(rc)
		if err != nil {
			return fmt.Errorf("marshal route configuration %s: %w", name, err)
		}
		// Comparing the deterministic encoding's hash is what the proxy's ACK is matched
		// on too, and costs far less than proto.Equal over every virtual host.
		hash := cache.HashResource(b)
		if s.routeHashes[name] == hash {
			continue
		}
		s.routeHashes[name] = hash
		// Record the hash before pushing, so the proxy's ACK can be matched.
		s.routesVersions[name] = s.acks.recordRoutes(name, hash)
		if err := s.routes.updateMarshalled(map[string]marshalled{name: {rc, b}}, nil); err != nil {
			return fmt.Errorf("update cache: %w", err)
		}
		s.routeConfigs[name] = rc
	}
	for key := range s.dirty {
		v, ok := s.vhosts[key]
		if !ok {
			continue
		}
		versions := make(map[string]uint64, len(v))
		for name := range v {
			versions[name] = s.routesVersions[name]
		}
		s.routeVersions[key] = versions
	}
	clear(s.dirty)
	return nil
}

// RouteAcked reports whether every serving proxy (at least one; see
// Options.ServingNodes and Options.AckTimeout) has ACKed the
// RouteConfigurations carrying the Route's current virtual hosts, the current
// endpoints of every cluster those virtual hosts send traffic to and, on the
// TLS listener, the certificates of its hosts: only then can a request for
// the Route be served everywhere.
func (s *Server) RouteAcked(namespace, name string) bool {
	need, ok := s.routeNeeds(namespace, name)
	return ok && s.acks.routeServed(need)
}

// RouteStatus is what the serving proxies made of a Route's configuration.
type RouteStatus struct {
	// Acked is RouteAcked.
	Acked bool
	// Rejected, when not Acked, is why a serving proxy NACKed what the Route
	// needs (a RouteConfiguration carrying it, the cluster or endpoints of
	// one of its revisions, or the certificate of one of its TLS hosts), with
	// the proxy's error_detail message.
	Rejected string
}

// RouteStatus reports whether the Route is served (RouteAcked) and, if not,
// whether a serving proxy rejected its configuration.
func (s *Server) RouteStatus(namespace, name string) RouteStatus {
	need, ok := s.routeNeeds(namespace, name)
	if !ok {
		return RouteStatus{}
	}
	if s.acks.routeServed(need) {
		return RouteStatus{Acked: true}
	}
	return RouteStatus{Rejected: s.acks.routeRejection(need)}
}

// routeNeeds returns what the serving proxies must ACK for the Route to be
// served; ok is false while the Route's virtual hosts are not in pushed
// RouteConfigurations.
func (s *Server) routeNeeds(namespace, name string) (need routeNeed, ok bool) {
	key := routeKey(namespace, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.routeVersions[key]
	ok = ok && !s.dirty[key]
	// Only the RouteConfigurations of listeners proxies have are waited for (the TLS
	// listener exists once there is a certificate); each is named after its listener.
	need.routes = make(map[string]uint64, len(v))
	for name, version := range v {
		if s.listenerRes[listenerOfRouteConfig(name)] != nil {
			need.routes[name] = version
		}
	}
	// In the scoped layout, the scopes of its hosts too, on the listeners proxies have.
	for name, sc := range s.routeScopes[key] {
		if s.listenerRes[listenerOfRouteConfig(name)] == nil {
			continue
		}
		if need.scopes == nil {
			need.scopes = make(map[string]string)
		}
		need.scopes[sc.GetName()] = s.scopeHash[name]
	}
	for _, vhs := range s.vhosts[key] {
		for _, vh := range vhs {
			for _, r := range vh.GetRoutes() {
				if c := r.GetRoute().GetCluster(); c != "" {
					need.clusters = append(need.clusters, c)
				}
				for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
					need.clusters = append(need.clusters, wc.GetName())
				}
			}
		}
	}
	slices.Sort(need.clusters)
	need.clusters = slices.Compact(need.clusters)
	// With the TLS listener, the certificates of the route's TLS hosts must be there too.
	tlsWanted := false
	for name := range need.routes {
		tlsWanted = tlsWanted || listenerOfRouteConfig(name) == HTTPSListenerName
	}
	if tlsWanted {
		for _, vh := range s.vhosts[key][HTTPSRouteConfigName] {
			for _, d := range vh.GetDomains() {
				if name := s.certForHostLocked(d); name != "" {
					need.secrets = append(need.secrets, name)
				}
			}
		}
	}
	return need, ok
}

// certForHostLocked returns the certificate serving host (exact, else a wildcard); s.mu must
// be held.
func (s *Server) certForHostLocked(host string) string {
	host = strings.ToLower(host)
	for n, c := range s.certs {
		for _, h := range c.Hosts {
			h = strings.ToLower(h)
			if h == host || (strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:])) {
				return n
			}
		}
	}
	return ""
}

// SetCertificate adds or replaces a certificate of the TLS listener: its chain and key go
// to proxies as the SDS secret c.Name, and the listener gets a filter chain selecting it for
// c.Hosts (an LDS update only when its name or hosts change, so a renewal is an SDS update
// alone). A certificate that does not load (see CheckCertificate), or a host already served
// by another certificate, is refused with an error naming why, and nothing is sent: other
// hosts' certificates are unaffected.
func (s *Server) SetCertificate(c TLSCertificate) error {
	if !s.ls.HTTPS {
		return fmt.Errorf("set certificate %s: the control plane has no TLS listener", c.Name)
	}
	if err := CheckCertificate(c, time.Now()); err != nil {
		return fmt.Errorf("set certificate %s: %w", c.Name, err)
	}
	sec, err := TranslateSecret(c)
	if err != nil {
		return fmt.Errorf("set certificate: %w", err)
	}
	c.Hosts = slices.Clone(c.Hosts)
	slices.Sort(c.Hosts)
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, other := range s.certs {
		if name == c.Name {
			continue
		}
		for _, h := range c.Hosts {
			if slices.Contains(other.Hosts, strings.ToLower(h)) || slices.Contains(other.Hosts, h) {
				return fmt.Errorf("set certificate %s: host %s is already served by certificate %s", c.Name, h, name)
			}
		}
	}
	old, had := s.certs[c.Name]
	if had && slices.Equal(old.Hosts, c.Hosts) && bytes.Equal(old.CertPEM, c.CertPEM) && bytes.Equal(old.KeyPEM, c.KeyPEM) {
		return nil
	}
	// The secret first, so a proxy given the new filter chain can already find it.
	if err := s.secrets.UpdateResource(c.Name, sec); err != nil {
		return fmt.Errorf("set certificate %s: %w", c.Name, err)
	}
	next := maps.Clone(s.certs)
	next[c.Name] = c
	if !had || !slices.Equal(old.Hosts, c.Hosts) {
		if err := s.updateListenersLocked(s.wasm, next); err != nil {
			if !had {
				_ = s.secrets.DeleteResource(c.Name)
			}
			return fmt.Errorf("set certificate %s: %w", c.Name, err)
		}
	}
	s.certs = next
	return nil
}

// DeleteCertificate removes a certificate and its filter chain; unknown names are ignored.
func (s *Server) DeleteCertificate(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.certs[name]; !ok {
		return
	}
	next := maps.Clone(s.certs)
	delete(next, name)
	if err := s.updateListenersLocked(s.wasm, next); err != nil {
		s.logger.Error("delete certificate", "name", name, "error", err)
		return
	}
	s.certs = next
	if err := s.secrets.DeleteResource(name); err != nil {
		s.logger.Error("delete certificate secret", "name", name, "error", err)
	}
}

// Certificates returns the names of the certificates the TLS listener serves, sorted.
func (s *Server) Certificates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.certs))
}

// SetCluster adds or replaces one Revision's cluster; an unchanged cluster is not pushed again.
func (s *Server) SetCluster(c Cluster) error {
	cl, err := TranslateCluster(c)
	if err != nil {
		return fmt.Errorf("set cluster: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if proto.Equal(cl, s.clusterRes[cl.GetName()]) {
		return nil
	}
	if err := s.clusters.UpdateResource(cl.GetName(), cl); err != nil {
		return fmt.Errorf("set cluster %s: update cache: %w", cl.GetName(), err)
	}
	s.clusterRes[cl.GetName()] = cl
	return nil
}

// DeleteCluster removes one cluster and its ClusterLoadAssignment.
func (s *Server) DeleteCluster(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clusterRes[name]; ok {
		if err := s.clusters.DeleteResource(name); err != nil {
			s.logger.Error("delete cluster", "cluster", name, "error", err)
		}
		delete(s.clusterRes, name)
	}
	if _, ok := s.claRes[name]; ok {
		if err := s.endpoints.DeleteResource(name); err != nil {
			s.logger.Error("delete cluster endpoints", "cluster", name, "error", err)
		}
		delete(s.claRes, name)
	}
	s.acks.forgetCluster(name)
}

// SetEndpoints sets the ready endpoints of a cluster (it may come before the
// cluster itself) and returns the endpoints version to pass to
// WaitEndpointsAcked. Versions grow across all clusters; setting the same
// endpoints again pushes nothing and returns the version of that content.
func (s *Server) SetEndpoints(cluster string, eps []Endpoint) (string, error) {
	cla, err := TranslateEndpoints(cluster, eps)
	if err != nil {
		return "", fmt.Errorf("set endpoints: %w", err)
	}
	b, err := cache.MarshalResource(cla)
	if err != nil {
		return "", fmt.Errorf("set endpoints %s: marshal: %w", cluster, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The hash is what a proxy's ACK is matched against (go-control-plane
	// sends the same deterministic encoding), so record it before pushing.
	version, changed := s.acks.recordEndpoints(cluster, cache.HashResource(b))
	if changed {
		if err := s.endpoints.updateMarshalled(map[string]marshalled{cluster: {cla, b}}, nil); err != nil {
			return "", fmt.Errorf("set endpoints %s: update cache: %w", cluster, err)
		}
		s.claRes[cluster] = cla
	}
	return strconv.FormatUint(version, 10), nil
}

// SetServiceCluster adds or replaces a cluster named name with the one endpoint host:port
// (STRICT_DNS for a name, STATIC for an IP), for a Kubernetes Service the proxy routes to
// directly, such as an ACME HTTP01 solver's. An unchanged cluster is not pushed again.
func (s *Server) SetServiceCluster(name, host string, port uint32) error {
	cl, err := translateAddressCluster(name, net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10)), false)
	if err != nil {
		return fmt.Errorf("set service cluster %s: %w", name, err)
	}
	if err := cl.ValidateAll(); err != nil {
		return fmt.Errorf("set service cluster %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if proto.Equal(cl, s.clusterRes[name]) {
		return nil
	}
	if err := s.clusters.UpdateResource(name, cl); err != nil {
		return fmt.Errorf("set service cluster %s: update cache: %w", name, err)
	}
	s.clusterRes[name] = cl
	return nil
}
