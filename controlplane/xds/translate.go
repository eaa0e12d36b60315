package xds

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
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
// HTTP connection manager (codec AUTO so h2c works, host port stripped,
// WebSocket upgrades allowed) whose
// RouteConfiguration "skiff-http" comes from RDS over ADS, ending with the
// router filter. With extProc, the ext_proc filter (see ExtProcFilter) runs
// before the router. The wasm filters (see TranslateWasmFilter) come first,
// in order.
func TranslateListener(address string, port uint32, extProc bool, wasm ...WasmFilter) (*listenerv3.Listener, error) {
	return translateHTTPListener(ListenerName, RouteConfigName, address, port, extProc, nil, wasm, false)
}

// TranslateLocalListener returns the "skiff-local" Listener: the same HTTP
// connection manager as TranslateListener's, with the "skiff-local"
// RouteConfiguration, which alone carries cluster-local names.
func TranslateLocalListener(address string, port uint32, extProc bool, wasm ...WasmFilter) (*listenerv3.Listener, error) {
	return translateHTTPListener(LocalListenerName, LocalRouteConfigName, address, port, extProc, nil, wasm, false)
}

// TranslateHTTPSListener returns the "skiff-https" Listener: a tls_inspector
// listener filter and one filter chain per certificate, matched by SNI
// (server_names: its Hosts), terminating TLS (1.2 or later, ALPN h2 and
// http/1.1) with the certificate as the SDS secret of its Name over ADS, each
// running the HTTP connection manager of TranslateListener with the
// "skiff-https" RouteConfiguration. certs must be non-empty (a listener needs
// a filter chain), with no host in two certificates.
func TranslateHTTPSListener(address string, port uint32, extProc bool, certs []TLSCertificate, wasm ...WasmFilter) (*listenerv3.Listener, error) {
	if len(certs) == 0 {
		return nil, errors.New("translate https listener: at least one certificate is required")
	}
	return translateHTTPListener(HTTPSListenerName, HTTPSRouteConfigName, address, port, extProc, certs, wasm, false)
}

// translateHTTPListener builds the listener name on address:port around an
// HTTP connection manager with routeConfig from RDS: one plain filter chain,
// or, with certs, one TLS filter chain per certificate. With scoped, the routes come from
// scoped routes (SRDS) instead of the one RouteConfiguration.
func translateHTTPListener(name, routeConfig, address string, port uint32, extProc bool, certs []TLSCertificate, wasm []WasmFilter, scoped bool) (*listenerv3.Listener, error) {
	if _, err := netip.ParseAddr(address); err != nil {
		return nil, fmt.Errorf("translate listener %s: address %q is not an IP address: %w", name, address, err)
	}
	if port == 0 || port > 65535 {
		return nil, fmt.Errorf("translate listener %s: port %d out of range 1-65535", name, port)
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, fmt.Errorf("translate listener: router filter: %w", err)
	}
	var filters []*hcmv3.HttpFilter
	names := map[string]bool{ExtProcFilterName: true, wellknown.Router: true}
	for i, w := range wasm {
		if names[w.Name] {
			return nil, fmt.Errorf("translate listener: wasmFilters[%d]: name %q is already used by another HTTP filter", i, w.Name)
		}
		names[w.Name] = true
		f, err := TranslateWasmFilter(w)
		if err != nil {
			return nil, fmt.Errorf("translate listener: wasmFilters[%d]: %w", i, err)
		}
		filters = append(filters, f)
	}
	if extProc {
		f, err := ExtProcFilter()
		if err != nil {
			return nil, fmt.Errorf("translate listener: %w", err)
		}
		filters = append(filters, f)
	}
	filters = append(filters, &hcmv3.HttpFilter{
		Name:       wellknown.Router,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
	})
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: routeConfig,
		}},
		StripPortMode: &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		HttpFilters:   filters,
		// Knative serves WebSockets; Envoy refuses upgrades a listener does not list.
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	}
	if scoped {
		hcm.RouteSpecifier = scopedRoutes(name)
	}
	edgeHCM(hcm)
	if err := hcm.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate listener: http connection manager: %w", err)
	}
	hcmAny, err := anypb.New(hcm)
	if err != nil {
		return nil, fmt.Errorf("translate listener: http connection manager: %w", err)
	}
	hcmFilter := &listenerv3.Filter{
		Name:       wellknown.HTTPConnectionManager,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
	}
	l := &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       address,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
	}
	edgeListener(l)
	if certs == nil {
		l.FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter}}}
	} else if err := addTLSFilterChains(l, hcmFilter, certs); err != nil {
		return nil, fmt.Errorf("translate listener %s: %w", name, err)
	}
	if err := l.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate listener: %w", err)
	}
	return l, nil
}

// ExtProcFilter returns the ext_proc HTTP filter of the "skiff-http"
// listener, as agreed with the ext_proc service: gRPC to the
// "skiff-extproc" cluster, request headers only, the upstream cluster and
// route metadata as attributes, fail closed, a message timeout long enough to
// hold a request through a cold start, and dynamic metadata accepted in the
// "envoy.lb" namespace (the endpoint for override_host clusters; Envoy drops
// dynamic metadata of namespaces not listed in receiving_namespaces).
func ExtProcFilter() (*hcmv3.HttpFilter, error) {
	cfg := &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcClusterName},
		}},
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
			RequestBodyMode:     extprocv3.ProcessingMode_NONE,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		RequestAttributes: slices.Clone(ExtProcRequestAttributes),
		FailureModeAllow:  false,
		MessageTimeout:    durationpb.New(ExtProcMessageTimeout),
		// Lets the processor extend the wait (override_message_timeout) by up
		// to the same amount at a time.
		MaxMessageTimeout: durationpb.New(ExtProcMessageTimeout),
		MetadataOptions: &extprocv3.MetadataOptions{
			ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{LBMetadataNamespace}},
		},
	}
	if err := cfg.ValidateAll(); err != nil {
		return nil, fmt.Errorf("ext_proc filter: %w", err)
	}
	a, err := anypb.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("ext_proc filter: %w", err)
	}
	// Disabled by default: only routes to revisions in proxy mode turn it on, so requests
	// to serve-mode revisions and requests matching no route never call the processor.
	return &hcmv3.HttpFilter{Name: ExtProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}, Disabled: true}, nil
}

// TranslateWasmFilter returns the envoy.filters.http.wasm HttpFilter of w:
// a PluginConfig named w.Name (also its root_id) on a V8 VM (vm_id w.Name,
// plus "@" and the first 12 hex digits of w.SHA256 when set) loading
// w.Path (or fetching w.RemoteURL), with w.Configuration as a StringValue and failure_policy
// FAIL_OPEN (w.FailOpen) or FAIL_RELOAD.
func TranslateWasmFilter(w WasmFilter) (*hcmv3.HttpFilter, error) {
	if w.Name == "" {
		return nil, errors.New("name is required")
	}
	if w.Path == "" && w.RemoteURL == "" {
		return nil, fmt.Errorf("wasm filter %q: path (or remoteURL) is required", w.Name)
	}
	vmID := w.Name
	if w.SHA256 != "" {
		if b, err := hex.DecodeString(w.SHA256); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("wasm filter %q: sha256 %q is not a hex SHA-256 digest", w.Name, w.SHA256)
		}
		vmID += "@" + strings.ToLower(w.SHA256[:12])
	}
	code := &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
		Specifier: &corev3.DataSource_Filename{Filename: w.Path},
	}}}
	if w.RemoteURL != "" {
		if w.SHA256 == "" {
			return nil, fmt.Errorf("wasm filter %q: sha256 is required with remoteURL %q (the proxy verifies the download against it)", w.Name, w.RemoteURL)
		}
		code = &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Remote{Remote: &corev3.RemoteDataSource{
			HttpUri: &corev3.HttpUri{
				Uri:              w.RemoteURL,
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: WasmCodeClusterName},
				Timeout:          durationpb.New(WasmFetchTimeout),
			},
			Sha256: strings.ToLower(w.SHA256),
			// Envoy retries a failed fetch (the control plane restarting, say) with backoff.
			RetryPolicy: &corev3.RetryPolicy{NumRetries: wrapperspb.UInt32(WasmFetchRetries)},
		}}}
	}
	pc := &wasmv3.PluginConfig{
		Name:   w.Name,
		RootId: w.Name,
		Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
			VmId:    vmID,
			Runtime: WasmRuntime,
			Code:    code,
		}},
		FailurePolicy: wasmv3.FailurePolicy_FAIL_RELOAD,
	}
	if w.FailOpen {
		pc.FailurePolicy = wasmv3.FailurePolicy_FAIL_OPEN
	}
	if w.Configuration != "" {
		c, err := anypb.New(wrapperspb.String(w.Configuration))
		if err != nil {
			return nil, fmt.Errorf("wasm filter %q: configuration: %w", w.Name, err)
		}
		pc.Configuration = c
	}
	cfg := &wasmhttpv3.Wasm{Config: pc}
	if err := cfg.ValidateAll(); err != nil {
		return nil, fmt.Errorf("wasm filter %q: %w", w.Name, err)
	}
	a, err := anypb.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("wasm filter %q: %w", w.Name, err)
	}
	f := &hcmv3.HttpFilter{Name: w.Name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}, Disabled: w.Disabled}
	if len(w.RunWhen) > 0 {
		return compositeFilter(w, f)
	}
	return f, nil
}

// extProcEnabled returns the typed_per_filter_config that turns the (by default
// disabled) ext_proc filter on for a route or weighted cluster (proxy mode).
func extProcEnabled() (map[string]*anypb.Any, error) {
	a, err := anypb.New(&routev3.FilterConfig{Disabled: false})
	if err != nil {
		return nil, fmt.Errorf("ext_proc per-route config: %w", err)
	}
	return map[string]*anypb.Any{ExtProcFilterName: a}, nil
}

// TranslateVirtualHosts returns the Envoy virtual hosts of one Route, in the
// Route's order. Each has a single prefix "/" route with weighted clusters
// (or a single cluster), timeout, retry policy and skiff route metadata.
// With extProc (the listener has the ext_proc filter, disabled by default),
// clusters in proxy mode (Activate) enable it with a FilterConfig on their
// ClusterWeight, or on the route when it has a single cluster.
func TranslateVirtualHosts(r Route, extProc bool) ([]*routev3.VirtualHost, error) {
	if r.Namespace == "" || r.Name == "" {
		return nil, fmt.Errorf("translate route %s/%s: namespace and name are required", r.Namespace, r.Name)
	}
	out := make([]*routev3.VirtualHost, 0, len(r.VirtualHosts))
	for i, vh := range r.VirtualHosts {
		v, err := translateVirtualHost(r, vh, extProc)
		if err != nil {
			return nil, fmt.Errorf("translate route %s/%s: virtualHosts[%d] %q: %w", r.Namespace, r.Name, i, vh.Name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func translateVirtualHost(r Route, vh VirtualHost, extProc bool) (*routev3.VirtualHost, error) {
	switch {
	case vh.Timeout < 0:
		return nil, fmt.Errorf("timeout %v is negative", vh.Timeout)
	case vh.ResponseStartTimeout < 0:
		return nil, fmt.Errorf("responseStartTimeout %v is negative", vh.ResponseStartTimeout)
	case vh.IdleTimeout < 0:
		return nil, fmt.Errorf("idleTimeout %v is negative", vh.IdleTimeout)
	}
	md := map[string]any{"namespace": r.Namespace, "route": r.Name}
	for k, v := range vh.Metadata {
		md[k] = v
	}
	st, err := structpb.NewStruct(md)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var vhostFilterConfig map[string]*anypb.Any
	if len(vh.EnableFilters) > 0 {
		on, err := anypb.New(&routev3.FilterConfig{Disabled: false})
		if err != nil {
			return nil, fmt.Errorf("enableFilters: %w", err)
		}
		vhostFilterConfig = make(map[string]*anypb.Any, len(vh.EnableFilters))
		for i, name := range vh.EnableFilters {
			if name == "" {
				return nil, fmt.Errorf("enableFilters[%d]: a filter name is required", i)
			}
			vhostFilterConfig[name] = on
		}
	}
	rules := vh.Rules
	if len(rules) == 0 {
		rules = []Rule{{Clusters: vh.Clusters}}
	}
	v := &routev3.VirtualHost{
		Name:                 vh.Name,
		TypedPerFilterConfig: vhostFilterConfig,
		Domains:              slices.Clone(vh.Domains),
	}
	for i, rule := range rules {
		rt, err := translateRule(rule, vh, extProc, len(vh.Rules) > 0)
		if err == nil && vh.HostRewrite != "" && rt.GetRoute() != nil {
			rt.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: vh.HostRewrite}
		}
		if err != nil {
			if len(vh.Rules) > 0 {
				return nil, fmt.Errorf("rules[%d]: %w", i, err)
			}
			return nil, err
		}
		rt.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataNamespace: st}}
		v.Routes = append(v.Routes, rt)
	}
	if err := v.ValidateAll(); err != nil {
		return nil, err
	}
	return v, nil
}

// translateRule is one route: its match, and a route action to its weighted clusters
// (ext_proc enabled on those in proxy mode) or, when it has none and emptyIs500, a direct
// 500 answer.
func translateRule(rule Rule, vh VirtualHost, extProc, emptyIs500 bool) (*routev3.Route, error) {
	match := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	switch p := strings.TrimRight(rule.PathPrefix, "/"); {
	case rule.PathPrefix != "" && rule.PathExact != "":
		return nil, errors.New("pathPrefix and pathExact are exclusive")
	case rule.PathExact != "":
		if !strings.HasPrefix(rule.PathExact, "/") {
			return nil, fmt.Errorf("pathExact %q must start with /", rule.PathExact)
		}
		match.PathSpecifier = &routev3.RouteMatch_Path{Path: rule.PathExact}
	case rule.PathPrefix != "" && !strings.HasPrefix(rule.PathPrefix, "/"):
		return nil, fmt.Errorf("pathPrefix %q must start with /", rule.PathPrefix)
	case p != "":
		match.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p}
	}
	for i, h := range rule.Headers {
		if h.Name == "" {
			return nil, fmt.Errorf("headers[%d]: name is required", i)
		}
		match.Headers = append(match.Headers, &routev3.HeaderMatcher{
			Name: h.Name,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Value},
			}},
		})
	}
	to := RouteTimeouts{Timeout: vh.Timeout, ResponseStartTimeout: vh.ResponseStartTimeout, IdleTimeout: vh.IdleTimeout}
	if rule.Timeouts != nil {
		to = *rule.Timeouts
		if to.Timeout < 0 || to.ResponseStartTimeout < 0 || to.IdleTimeout < 0 {
			return nil, fmt.Errorf("timeouts %+v: none may be negative", to)
		}
	}
	action := &routev3.RouteAction{
		Timeout: durationpb.New(cmp.Or(to.Timeout, DefaultRouteTimeout)),
		RetryPolicy: &routev3.RetryPolicy{
			RetryOn:    RetryOn,
			NumRetries: wrapperspb.UInt32(NumRetries),
		},
	}
	if to.ResponseStartTimeout > 0 {
		action.RetryPolicy.PerTryTimeout = durationpb.New(to.ResponseStartTimeout)
	}
	if to.IdleTimeout > 0 {
		action.RetryPolicy.PerTryIdleTimeout = durationpb.New(to.IdleTimeout)
	}
	var weighted []*routev3.WeightedCluster_ClusterWeight
	for i, c := range rule.Clusters {
		if c.Name == "" {
			return nil, fmt.Errorf("clusters[%d]: name is required", i)
		}
		if c.Weight == 0 {
			continue
		}
		cw := &routev3.WeightedCluster_ClusterWeight{Name: c.Name, Weight: wrapperspb.UInt32(c.Weight)}
		if extProc && c.Activate {
			pfc, err := extProcEnabled()
			if err != nil {
				return nil, err
			}
			cw.TypedPerFilterConfig = pfc
		}
		weighted = append(weighted, cw)
	}
	out := &routev3.Route{Match: match, Action: &routev3.Route_Route{Route: action}}
	// Knative's runtime contract: apps see a Forwarded header, which queue-proxy builds from
	// X-Forwarded-For and -Proto when the request has none (pkg/queue/forwarded_shim.go).
	// Envoy builds it from the peer's address and X-Forwarded-Proto, set by
	// use_remote_address (edgeHCM); a client's own X-Forwarded-For chain is not repeated.
	out.RequestHeadersToAdd = append(out.RequestHeadersToAdd, &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: "Forwarded", Value: ForwardedFormat},
		AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT,
	})
	for _, h := range slices.Concat(vh.SetRequestHeaders, rule.SetRequestHeaders) {
		if h.Name == "" {
			return nil, errors.New("setRequestHeaders: a header name is required")
		}
		out.RequestHeadersToAdd = append(out.RequestHeadersToAdd, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	switch len(weighted) {
	case 0:
		if !emptyIs500 {
			return nil, errors.New("clusters: at least one cluster with a positive weight is required")
		}
		out.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 500}}
	case 1:
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].GetName()}
		out.TypedPerFilterConfig = weighted[0].GetTypedPerFilterConfig()
	default:
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}
	return out, nil
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
	// Each virtual host was validated when it was translated (translateVirtualHost); the
	// configuration's own fields are checked here, without walking every host again on
	// every assembly. RouteConfiguration's rules on virtual_hosts are only its items' own.
	rc := &routev3.RouteConfiguration{Name: RouteConfigName}
	if err := rc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate route configuration: %w", err)
	}
	rc.VirtualHosts = sorted
	return rc, nil
}
