package xds

import (
	"fmt"
	"slices"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// routeKey is the key of a Route's virtual hosts: "{namespace}/{name}".
func routeKey(namespace, name string) string { return namespace + "/" + name }

// SetRoute adds or replaces the virtual hosts of one Route. Only this Route is
// translated; the "skiff-http" RouteConfiguration is then reassembled and, if
// it changed, pushed. Virtual host names and domains must not collide with
// other Routes'.
func (s *Server) SetRoute(r Route) error {
	vhosts, err := TranslateVirtualHosts(r)
	if err != nil {
		return fmt.Errorf("set route: %w", err)
	}
	key := routeKey(r.Namespace, r.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.updateRoutesLocked(key, vhosts); err != nil {
		return fmt.Errorf("set route %s: %w", key, err)
	}
	return nil
}

// DeleteRoute removes the virtual hosts of one Route; unknown Routes are ignored.
func (s *Server) DeleteRoute(namespace, name string) {
	key := routeKey(namespace, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vhosts[key]; !ok {
		return
	}
	if err := s.updateRoutesLocked(key, nil); err != nil {
		// Removing virtual hosts from a valid configuration cannot make it
		// invalid; this would be a cache failure.
		s.logger.Error("delete route", "route", key, "error", err)
	}
}

// updateRoutesLocked replaces (or, with nil, removes) the virtual hosts of
// key and pushes the reassembled RouteConfiguration if it changed.
func (s *Server) updateRoutesLocked(key string, vhosts []*routev3.VirtualHost) error {
	all := make([]*routev3.VirtualHost, 0, len(s.routeConfig.GetVirtualHosts())+len(vhosts))
	for k, v := range s.vhosts {
		if k != key {
			all = append(all, v...)
		}
	}
	all = append(all, vhosts...)
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
	if vhosts == nil {
		delete(s.vhosts, key)
		delete(s.routeVersions, key)
		return nil
	}
	if old, ok := s.vhosts[key]; !ok || !slices.EqualFunc(old, vhosts, func(a, b *routev3.VirtualHost) bool { return proto.Equal(a, b) }) {
		s.routeVersions[key] = s.routesVersion
	}
	s.vhosts[key] = vhosts
	return nil
}

// RouteAcked reports whether every connected proxy (at least one) has ACKed the
// RouteConfiguration carrying the Route's current virtual hosts, and the
// current endpoints of every cluster those virtual hosts send traffic to:
// only then can a request for the Route be served everywhere.
func (s *Server) RouteAcked(namespace, name string) bool {
	key := routeKey(namespace, name)
	s.mu.Lock()
	v, ok := s.routeVersions[key]
	var clusters []string
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
	return ok && s.acks.routesAcked(v, clusters)
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
