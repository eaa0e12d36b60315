package xds

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// httpProtocolOptionsKey is the typed_extension_protocol_options key of the
// upstream HTTP protocol options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// TranslateCluster returns the EDS Cluster of one Revision: endpoints from
// ADS, ROUND_ROBIN or LEAST_REQUEST, explicit HTTP/2 upstream when HTTP2,
// max_requests circuit breaker when set, and skiff metadata {namespace, revision}.
func TranslateCluster(c Cluster) (*clusterv3.Cluster, error) {
	name := cmp.Or(c.Name, ClusterName(c.Namespace, c.Revision))
	if c.Namespace == "" || c.Revision == "" {
		return nil, fmt.Errorf("translate cluster %s: namespace and revision are required", name)
	}
	if want := ClusterName(c.Namespace, c.Revision); name != want {
		return nil, fmt.Errorf("translate cluster %s: name must be %q (\"{namespace}/{revision}\")", name, want)
	}
	lb := clusterv3.Cluster_ROUND_ROBIN
	if c.LeastRequest {
		lb = clusterv3.Cluster_LEAST_REQUEST
	}
	md, err := structpb.NewStruct(map[string]any{"namespace": c.Namespace, "revision": c.Revision})
	if err != nil {
		return nil, fmt.Errorf("translate cluster %s: metadata: %w", name, err)
	}
	out := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource()},
		ConnectTimeout:       durationpb.New(cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)),
		LbPolicy:             lb,
		Metadata:             &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataNamespace: md}},
	}
	if c.HTTP2 {
		po := &upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			},
		}
		if err := po.ValidateAll(); err != nil {
			return nil, fmt.Errorf("translate cluster %s: http protocol options: %w", name, err)
		}
		opts, err := anypb.New(po)
		if err != nil {
			return nil, fmt.Errorf("translate cluster %s: http protocol options: %w", name, err)
		}
		out.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: opts}
	}
	if c.MaxRequestsPerEndpoint > 0 {
		out.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:    corev3.RoutingPriority_DEFAULT,
			MaxRequests: wrapperspb.UInt32(c.MaxRequestsPerEndpoint),
		}}}
	}
	if err := out.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate cluster %s: %w", name, err)
	}
	return out, nil
}

// TranslateEndpoints returns the ClusterLoadAssignment of a cluster: one
// locality with every endpoint HEALTHY, sorted and de-duplicated so equal
// sets give equal resources. An empty list is valid (no ready endpoint).
func TranslateEndpoints(cluster string, eps []Endpoint) (*endpointv3.ClusterLoadAssignment, error) {
	if cluster == "" {
		return nil, fmt.Errorf("translate endpoints: cluster name is required")
	}
	type key struct {
		addr netip.Addr
		port uint32
	}
	keys := make([]key, 0, len(eps))
	for i, ep := range eps {
		addr, err := netip.ParseAddr(ep.Address)
		if err != nil {
			return nil, fmt.Errorf("translate endpoints %s: endpoints[%d].address %q is not an IP address: %w", cluster, i, ep.Address, err)
		}
		if ep.Port == 0 || ep.Port > 65535 {
			return nil, fmt.Errorf("translate endpoints %s: endpoints[%d].port %d out of range 1-65535", cluster, i, ep.Port)
		}
		keys = append(keys, key{addr.Unmap(), ep.Port})
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.port, b.port))
	})
	keys = slices.Compact(keys)

	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	if len(keys) > 0 {
		lbs := make([]*endpointv3.LbEndpoint, 0, len(keys))
		for _, k := range keys {
			lbs = append(lbs, &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Protocol:      corev3.SocketAddress_TCP,
						Address:       k.addr.String(),
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: k.port},
					}}},
				}},
				HealthStatus: corev3.HealthStatus_HEALTHY,
			})
		}
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	}
	if err := cla.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate endpoints %s: %w", cluster, err)
	}
	return cla, nil
}
