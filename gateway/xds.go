package gateway

import (
	"context"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/skiff-dev/skiff/gateway/xdsclient"
)

// Apply implements xdsclient.Handler: it validates and applies one type's
// complete resource set, or rejects it leaving the previous one in force.
func (g *Gateway) Apply(ctx context.Context, typeURL string, res map[string]xdsclient.Resource) error {
	var err error
	switch typeURL {
	case xdsclient.ListenerType:
		err = g.applyListeners(res)
	case xdsclient.RouteType:
		err = g.applyRoutes(res)
	case xdsclient.ClusterType:
		err = g.applyClusters(res)
	case xdsclient.EndpointType:
		err = g.applyEndpoints(res)
	case xdsclient.SecretType:
		err = g.applySecrets(res)
	case xdsclient.ScopedRouteType:
		err = g.applyScopes(res)
	default:
		err = fmt.Errorf("unsupported resource type %s", typeURL)
	}
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.raw[typeURL] = res
	g.mu.Unlock()
	return nil
}

func (g *Gateway) applyClusters(res map[string]xdsclient.Resource) error {
	cs := make(map[string]*clusterv3.Cluster, len(res))
	for name, r := range res {
		cs[name] = r.Message.(*clusterv3.Cluster)
	}
	if err := g.clusters.ApplyClusters(cs); err != nil {
		return err
	}
	g.xds.Subscribe(xdsclient.EndpointType, g.clusters.EDSServiceNames())
	return nil
}

func (g *Gateway) applyEndpoints(res map[string]xdsclient.Resource) error {
	clas := make(map[string]*endpointv3.ClusterLoadAssignment, len(res))
	for name, r := range res {
		clas[name] = r.Message.(*endpointv3.ClusterLoadAssignment)
	}
	err := g.clusters.ApplyEndpoints(clas)
	result := "update_success"
	if err != nil {
		result = "update_rejected"
	}
	for _, c := range g.clusters.Clusters() {
		if _, ok := clas[c.ServiceName]; ok && c.EDS {
			c.Counter(result).Inc()
		}
	}
	return err
}
