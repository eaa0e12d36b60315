package xds

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// routeKey is the key of a Route's virtual hosts: "{namespace}/{name}".
func routeKey(namespace, name string) string { return namespace + "/" + name }

// SetRoute adds or replaces the virtual hosts of one Route. Only this Route is
// translated (and checked against the other Routes' names and domains) now; the
// "skiff-http" RouteConfiguration is reassembled and pushed right after, once for
// any number of Routes changed meanwhile, so loading N Routes costs O(N), not O(N²).
func (s *Server) SetRoute(r Route) error {
	vhosts, err := TranslateVirtualHosts(r, s.extProc)
	if err != nil {
		return fmt.Errorf("set route: %w", err)
	}
	key := routeKey(r.Namespace, r.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.vhosts[key]; ok && slices.EqualFunc(old, vhosts, func(a, b *routev3.VirtualHost) bool { return proto.Equal(a, b) }) {
		return nil
	}
	claimed := map[string]bool{}
	for _, vh := range vhosts {
		for _, name := range append([]string{"vhost:" + vh.GetName()}, vh.GetDomains()...) {
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
// names, and asks for the RouteConfiguration to be reassembled.
func (s *Server) setVhostsLocked(key string, vhosts []*routev3.VirtualHost, claimed map[string]bool) {
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
	select {
	case s.kick <- struct{}{}:
	default: // a reassembly is already due; it will see this change
	}
}

// assembleRoutes reassembles and pushes the RouteConfiguration whenever Routes changed,
// until ctx ends. Changes made while it works are coalesced into the next round.
func (s *Server) assembleRoutes(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		if err := s.flushRoutes(); err != nil {
			s.logger.Error("assemble route configuration", "error", err)
		}
	}
}

// flushRoutes assembles the RouteConfiguration from every Route's virtual hosts and
// pushes it if it changed; the Routes changed since the last push then wait for
// the version carrying them to be ACKed.
func (s *Server) flushRoutes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) == 0 {
		return nil
	}
	n := 0
	for _, v := range s.vhosts {
		n += len(v)
	}
	all := make([]*routev3.VirtualHost, 0, n)
	for _, v := range s.vhosts {
		all = append(all, v...)
	}
	rc, err := TranslateRouteConfiguration(all)
	if err != nil {
		return err
	}
	if !proto.Equal(rc, s.routeConfig) {
		b, err := cache.MarshalResource(rc)
		if err != nil {
			return fmt.Errorf("marshal route configuration: %w", err)
		}
		// Record the hash before pushing, so the proxy's ACK can be matched.
		s.routesVersion = s.acks.recordRoutes(cache.HashResource(b))
		if err := s.routes.UpdateResource(RouteConfigName, rc); err != nil {
			return fmt.Errorf("update cache: %w", err)
		}
		s.routeConfig = rc
	}
	for key := range s.dirty {
		if _, ok := s.vhosts[key]; ok {
			s.routeVersions[key] = s.routesVersion
		}
	}
	clear(s.dirty)
	return nil
}

// RouteAcked reports whether every serving proxy (at least one; see
// Options.ServingNodes and Options.AckTimeout) has ACKed the
// RouteConfiguration carrying the Route's current virtual hosts, and the
// current endpoints of every cluster those virtual hosts send traffic to:
// only then can a request for the Route be served everywhere.
func (s *Server) RouteAcked(namespace, name string) bool {
	v, clusters, ok := s.routeNeeds(namespace, name)
	return ok && s.acks.routesAcked(v, clusters)
}

// RouteStatus is what the serving proxies made of a Route's configuration.
type RouteStatus struct {
	// Acked is RouteAcked.
	Acked bool
	// Rejected, when not Acked, is why a serving proxy NACKed what the Route
	// needs (the RouteConfiguration carrying it, or the cluster or endpoints
	// of one of its revisions), with the proxy's error_detail message.
	Rejected string
}

// RouteStatus reports whether the Route is served (RouteAcked) and, if not,
// whether a serving proxy rejected its configuration.
func (s *Server) RouteStatus(namespace, name string) RouteStatus {
	v, clusters, ok := s.routeNeeds(namespace, name)
	if !ok {
		return RouteStatus{}
	}
	if s.acks.routesAcked(v, clusters) {
		return RouteStatus{Acked: true}
	}
	return RouteStatus{Rejected: s.acks.routeRejection(v, clusters)}
}

// routeNeeds returns the RouteConfiguration version carrying the Route's
// current virtual hosts and the clusters they send traffic to; ok is false
// while the Route's virtual hosts are not in a pushed RouteConfiguration.
func (s *Server) routeNeeds(namespace, name string) (v uint64, clusters []string, ok bool) {
	key := routeKey(namespace, name)
	s.mu.Lock()
	v, ok = s.routeVersions[key]
	ok = ok && !s.dirty[key]
	for _, vh := range s.vhosts[key] {
		for _, r := range vh.GetRoutes() {
			if c := r.GetRoute().GetCluster(); c != "" {
				clusters = append(clusters, c)
			}
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				clusters = append(clusters, wc.GetName())
			}
		}
	}
	s.mu.Unlock()
	return v, clusters, ok
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
		if err := s.endpoints.UpdateResource(cluster, cla); err != nil {
			return "", fmt.Errorf("set endpoints %s: update cache: %w", cluster, err)
		}
		s.claRes[cluster] = cla
	}
	return strconv.FormatUint(version, 10), nil
}
