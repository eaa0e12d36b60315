package xds

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	overridehostv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// httpProtocolOptionsKey is the typed_extension_protocol_options key of the
// upstream HTTP protocol options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// TranslateCluster returns the EDS Cluster of one Revision: endpoints from
// ADS, ROUND_ROBIN or LEAST_REQUEST (or, with OverrideHost, the override_host
// policy falling back to least_request), explicit HTTP/2 upstream when HTTP2,
// max_requests circuit breaker when set, and skiff metadata {namespace, revision, service,
// configuration}.
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
	fields := map[string]any{"namespace": c.Namespace, "revision": c.Revision}
	if c.Service != "" {
		fields["service"] = c.Service
	}
	if c.Configuration != "" {
		fields["configuration"] = c.Configuration
	}
	md, err := structpb.NewStruct(fields)
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
	edgeCluster(out)
	if c.OverrideHost {
		p, err := overrideHostPolicy()
		if err != nil {
			return nil, fmt.Errorf("translate cluster %s: %w", name, err)
		}
		// load_balancing_policy supersedes lb_policy; leave the latter unset.
		out.LbPolicy, out.LoadBalancingPolicy = clusterv3.Cluster_ROUND_ROBIN, p
	}
	if c.HTTP2 {
		opts, err := http2ProtocolOptions()
		if err != nil {
			return nil, fmt.Errorf("translate cluster %s: %w", name, err)
		}
		out.TypedExtensionProtocolOptions = opts
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

// http2ProtocolOptions are the typed_extension_protocol_options of an
// upstream spoken to over HTTP/2 (h2c, or gRPC).
func http2ProtocolOptions() (map[string]*anypb.Any, error) {
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
		return nil, fmt.Errorf("http protocol options: %w", err)
	}
	opts, err := anypb.New(po)
	if err != nil {
		return nil, fmt.Errorf("http protocol options: %w", err)
	}
	return map[string]*anypb.Any{httpProtocolOptionsKey: opts}, nil
}

// overrideHostPolicy is the load_balancing_policy of an OverrideHost
// cluster: the endpoint named by dynamic metadata
// envoy.lb/x-gateway-destination-endpoint when it is a healthy endpoint of
// the cluster, otherwise least_request.
func overrideHostPolicy() (*clusterv3.LoadBalancingPolicy, error) {
	lr := &leastrequestv3.LeastRequest{}
	if err := lr.ValidateAll(); err != nil {
		return nil, fmt.Errorf("least_request policy: %w", err)
	}
	lrAny, err := anypb.New(lr)
	if err != nil {
		return nil, fmt.Errorf("least_request policy: %w", err)
	}
	oh := &overridehostv3.OverrideHost{
		OverrideHostSources: []*overridehostv3.OverrideHost_OverrideHostSource{{
			Metadata: &metadatav3.MetadataKey{Key: LBMetadataNamespace, Path: []*metadatav3.MetadataKey_PathSegment{{
				Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: DestinationEndpointKey},
			}}},
		}},
		FallbackPolicy: &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.least_request", TypedConfig: lrAny},
		}}},
	}
	if err := oh.ValidateAll(); err != nil {
		return nil, fmt.Errorf("override_host policy: %w", err)
	}
	ohAny, err := anypb.New(oh)
	if err != nil {
		return nil, fmt.Errorf("override_host policy: %w", err)
	}
	return &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
		TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.override_host", TypedConfig: ohAny},
	}}}, nil
}

// TranslateExtProcCluster returns the "skiff-extproc" cluster reaching the
// ext_proc service at address ("host:port") over HTTP/2 (gRPC): STATIC when
// host is an IP address, STRICT_DNS otherwise (Envoy only accepts IP
// addresses in STATIC clusters).
func TranslateExtProcCluster(address string) (*clusterv3.Cluster, error) {
	out, err := translateAddressCluster(ExtProcClusterName, address, true)
	if err != nil {
		return nil, fmt.Errorf("translate ext_proc cluster: %w", err)
	}
	return out, nil
}

// TranslateWasmCodeCluster returns the "skiff-wasm" cluster through which
// proxies fetch remote Wasm modules from the HTTP/1.1 server at address
// ("host:port"; STATIC for an IP address, STRICT_DNS otherwise).
func TranslateWasmCodeCluster(address string) (*clusterv3.Cluster, error) {
	out, err := translateAddressCluster(WasmCodeClusterName, address, false)
	if err != nil {
		return nil, fmt.Errorf("translate wasm code cluster: %w", err)
	}
	return out, nil
}

// translateAddressCluster is a cluster named name with the one endpoint at
// address, over HTTP/2 when http2 is set.
func translateAddressCluster(name, address string, http2 bool) (*clusterv3.Cluster, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 32)
	if err != nil || port == 0 || port > 65535 {
		return nil, fmt.Errorf("address %q: port out of range 1-65535", address)
	}
	if host == "" {
		return nil, fmt.Errorf("address %q: host is required", address)
	}
	typ := clusterv3.Cluster_STRICT_DNS
	if a, err := netip.ParseAddr(host); err == nil {
		typ, host = clusterv3.Cluster_STATIC, a.Unmap().String()
	}
	out := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(DefaultConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Protocol:      corev3.SocketAddress_TCP,
						Address:       host,
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
					}}},
				}},
			}}}},
		},
	}
	if http2 {
		if out.TypedExtensionProtocolOptions, err = http2ProtocolOptions(); err != nil {
			return nil, err
		}
	}
	if err := out.ValidateAll(); err != nil {
		return nil, err
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
