package gateway

import (
	"fmt"
	"sort"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/xdsclient"
)

// ConfigDump returns the current resources as Envoy's admin ConfigDump JSON.
func (g *Gateway) ConfigDump() ([]byte, error) {
	// Apply updates the maps in place: they are read under the lock.
	sorted := func(typeURL string) []xdsclient.Resource {
		g.mu.RLock()
		out := make([]xdsclient.Resource, 0, len(g.raw[typeURL]))
		for _, r := range g.raw[typeURL] {
			out = append(out, r)
		}
		g.mu.RUnlock()
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	var dump adminv3.ConfigDump
	add := func(m proto.Message) error {
		a, err := anypb.New(m)
		if err != nil {
			return err
		}
		dump.Configs = append(dump.Configs, a)
		return nil
	}
	var ld adminv3.ListenersConfigDump
	for _, r := range sorted(xdsclient.ListenerType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		ld.DynamicListeners = append(ld.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: r.Name, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: r.Version, Listener: a},
		})
	}
	var cd adminv3.ClustersConfigDump
	for _, r := range sorted(xdsclient.ClusterType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		cd.DynamicActiveClusters = append(cd.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: r.Version, Cluster: a})
	}
	var rd adminv3.RoutesConfigDump
	for _, r := range sorted(xdsclient.RouteType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		rd.DynamicRouteConfigs = append(rd.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: r.Version, RouteConfig: a})
	}
	var ed adminv3.EndpointsConfigDump
	for _, r := range sorted(xdsclient.EndpointType) {
		a, err := anypb.New(r.Message)
		if err != nil {
			return nil, err
		}
		ed.DynamicEndpointConfigs = append(ed.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: r.Version, EndpointConfig: a})
	}
	for _, m := range []proto.Message{&cd, &ed, &ld, &rd} {
		if err := add(m); err != nil {
			return nil, fmt.Errorf("building config dump: %w", err)
		}
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&dump)
	if err != nil {
		return nil, fmt.Errorf("encoding config dump: %w", err)
	}
	return b, nil
}
