package gateway

import (
	"context"
	"fmt"
	"maps"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/skiff-dev/skiff/gateway/xdsclient"
)

// Apply implements xdsclient.Handler: it validates and applies one type's
// changes, or rejects them leaving what was applied before in force. Routes,
// scopes, clusters and endpoints are applied incrementally (the work grows with
// the change); listeners and secrets, which are few, as a whole.
func (g *Gateway) Apply(ctx context.Context, typeURL string, u xdsclient.Update) error {
	var err error
	switch typeURL {
	case xdsclient.ListenerType:
		err = g.applyListeners(u.All())
	case xdsclient.RouteType:
		err = g.applyRoutes(u)
	case xdsclient.ClusterType:
		err = g.applyClusters(u)
	case xdsclient.EndpointType:
		err = g.applyEndpoints(u)
	case xdsclient.SecretType:
		err = g.applySecrets(u.All())
	case xdsclient.ScopedRouteType:
		err = g.applyScopes(u)
	default:
		err = fmt.Errorf("unsupported resource type %s", typeURL)
	}
	if err != nil {
		return err
	}
	g.mu.Lock()
	raw := g.raw[typeURL]
	if raw == nil {
		raw = make(map[string]xdsclient.Resource, len(u.Changed))
		g.raw[typeURL] = raw
	}
	for _, name := range u.Removed {
		delete(raw, name)
	}
	maps.Copy(raw, u.Changed)
	g.mu.Unlock()
	return nil
}

func (g *Gateway) applyClusters(u xdsclient.Update) error {
	cs := make(map[string]*clusterv3.Cluster, len(u.Changed))
	for name, r := range u.Changed {
		cs[name] = r.Message.(*clusterv3.Cluster)
	}
	added, removed, err := g.clusters.UpdateClusters(cs, u.Removed)
	if err != nil {
		return err
	}
	// EDS is asked for the service names the clusters need, as they change.
	g.xds.UpdateSubscription(xdsclient.EndpointType, added, removed)
	return nil
}

func (g *Gateway) applyEndpoints(u xdsclient.Update) error {
	clas := make(map[string]*endpointv3.ClusterLoadAssignment, len(u.Changed))
	for name, r := range u.Changed {
		clas[name] = r.Message.(*endpointv3.ClusterLoadAssignment)
	}
	err := g.clusters.UpdateEndpoints(clas, u.Removed)
	result := "update_success"
	if err != nil {
		result = "update_rejected"
	}
	for name := range clas {
		for _, c := range g.clusters.ServiceClusters(name) {
			c.Counter(result).Inc()
		}
	}
	return err
}
