package xds

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// adsConfigSource is the ConfigSource that points a dependent resource
// (RDS from the listener, EDS from a cluster) at the ADS stream.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// TranslateListener returns the "skiff-http" Listener on address:port: an
// HTTP connection manager (codec AUTO so h2c works, host port stripped) whose
// RouteConfiguration "skiff-http" comes from RDS over ADS, ending with the router filter.
func TranslateListener(address string, port uint32) (*listenerv3.Listener, error) {
	if _, err := netip.ParseAddr(address); err != nil {
		return nil, fmt.Errorf("translate listener: address %q is not an IP address: %w", address, err)
	}
	if port == 0 || port > 65535 {
		return nil, fmt.Errorf("translate listener: port %d out of range 1-65535", port)
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, fmt.Errorf("translate listener: router filter: %w", err)
	}
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: ListenerName,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: RouteConfigName,
		}},
		StripPortMode: &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	}
	if err := hcm.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate listener: http connection manager: %w", err)
	}
	hcmAny, err := anypb.New(hcm)
	if err != nil {
		return nil, fmt.Errorf("translate listener: http connection manager: %w", err)
	}
	l := &listenerv3.Listener{
		Name: ListenerName,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       address,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
		}},
	}
	if err := l.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate listener: %w", err)
	}
	return l, nil
}

// TranslateVirtualHosts returns the Envoy virtual hosts of one Route, in the
// Route's order. Each has a single prefix "/" route with weighted clusters
// (or a single cluster), timeout, retry policy and skiff route metadata.
func TranslateVirtualHosts(r Route) ([]*routev3.VirtualHost, error) {
	if r.Namespace == "" || r.Name == "" {
		return nil, fmt.Errorf("translate route %s/%s: namespace and name are required", r.Namespace, r.Name)
	}
	out := make([]*routev3.VirtualHost, 0, len(r.VirtualHosts))
	for i, vh := range r.VirtualHosts {
		v, err := translateVirtualHost(r, vh)
		if err != nil {
			return nil, fmt.Errorf("translate route %s/%s: virtualHosts[%d] %q: %w", r.Namespace, r.Name, i, vh.Name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func translateVirtualHost(r Route, vh VirtualHost) (*routev3.VirtualHost, error) {
	if vh.Timeout < 0 {
		return nil, fmt.Errorf("timeout %v is negative", vh.Timeout)
	}
	action := &routev3.RouteAction{
		Timeout: durationpb.New(cmp.Or(vh.Timeout, DefaultRouteTimeout)),
		RetryPolicy: &routev3.RetryPolicy{
			RetryOn:    RetryOn,
			NumRetries: wrapperspb.UInt32(NumRetries),
		},
	}
	var weighted []*routev3.WeightedCluster_ClusterWeight
	for i, c := range vh.Clusters {
		if c.Name == "" {
			return nil, fmt.Errorf("clusters[%d]: name is required", i)
		}
		if c.Weight == 0 {
			continue
		}
		weighted = append(weighted, &routev3.WeightedCluster_ClusterWeight{Name: c.Name, Weight: wrapperspb.UInt32(c.Weight)})
	}
	switch len(weighted) {
	case 0:
		return nil, errors.New("clusters: at least one cluster with a positive weight is required")
	case 1:
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].GetName()}
	default:
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}

	md := map[string]any{"namespace": r.Namespace, "route": r.Name}
	for k, v := range vh.Metadata {
		md[k] = v
	}
	st, err := structpb.NewStruct(md)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	v := &routev3.VirtualHost{
		Name:    vh.Name,
		Domains: slices.Clone(vh.Domains),
		Routes: []*routev3.Route{{
			Match:    &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action:   &routev3.Route_Route{Route: action},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataNamespace: st}},
		}},
	}
	if err := v.ValidateAll(); err != nil {
		return nil, err
	}
	return v, nil
}

// TranslateRouteConfiguration assembles the single "skiff-http"
// RouteConfiguration from already translated virtual hosts, sorted by name.
// It rejects duplicate virtual host names and duplicate domains, which Envoy
// would NACK for the whole configuration.
func TranslateRouteConfiguration(vhosts []*routev3.VirtualHost) (*routev3.RouteConfiguration, error) {
	sorted := slices.Clone(vhosts)
	slices.SortFunc(sorted, func(a, b *routev3.VirtualHost) int { return cmp.Compare(a.GetName(), b.GetName()) })
	names := make(map[string]bool, len(sorted))
	domains := make(map[string]string)
	for _, vh := range sorted {
		if names[vh.GetName()] {
			return nil, fmt.Errorf("translate route configuration: duplicate virtual host name %q", vh.GetName())
		}
		names[vh.GetName()] = true
		for _, d := range vh.GetDomains() {
			key := strings.ToLower(d)
			if other, ok := domains[key]; ok {
				return nil, fmt.Errorf("translate route configuration: domain %q is in both virtual hosts %q and %q", d, other, vh.GetName())
			}
			domains[key] = vh.GetName()
		}
	}
	rc := &routev3.RouteConfiguration{Name: RouteConfigName, VirtualHosts: sorted}
	if err := rc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate route configuration: %w", err)
	}
	return rc, nil
}
