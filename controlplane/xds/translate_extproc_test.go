package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	overridehostv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// perRouteDisabled decodes typed_per_filter_config[ext_proc] and reports
// whether it is ExtProcPerRoute{disabled: true}; ok is false when absent.
// perRouteEnabled reports whether m turns the (by default disabled) ext_proc
// filter on, and whether m has any ext_proc entry at all.
func perRouteEnabled(t *testing.T, m map[string]*anypb.Any) (enabled, ok bool) {
	t.Helper()
	a, ok := m[ExtProcFilterName]
	if !ok {
		return false, false
	}
	var fc routev3.FilterConfig
	if err := a.UnmarshalTo(&fc); err != nil {
		t.Fatal(err)
	}
	if err := fc.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	return !fc.GetDisabled(), true
}

func TestTranslateExtProcFilter(t *testing.T) {
	l, _, _, _ := translateFixture(t)
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	fs := hcm.GetHttpFilters()
	if len(fs) != 2 || fs[0].GetName() != ExtProcFilterName || fs[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("http filters = %v, want ext_proc then router", fs)
	}
	if !fs[0].GetDisabled() {
		t.Error("ext_proc must be disabled by default so only proxy-mode routes call it")
	}
	var cfg extprocv3.ExternalProcessor
	if err := fs[0].GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateAll(); err != nil {
		t.Fatalf("ext_proc config: %v", err)
	}
	pm := cfg.GetProcessingMode()
	switch {
	case cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName() != ExtProcClusterName:
		t.Errorf("grpc_service = %v", cfg.GetGrpcService())
	case pm.GetRequestHeaderMode() != extprocv3.ProcessingMode_SEND || pm.GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP,
		pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE || pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE,
		pm.GetRequestTrailerMode() != extprocv3.ProcessingMode_SKIP || pm.GetResponseTrailerMode() != extprocv3.ProcessingMode_SKIP:
		t.Errorf("processing mode = %v", pm)
	case strings.Join(cfg.GetRequestAttributes(), ",") != "xds.cluster_name,xds.route_metadata":
		t.Errorf("request attributes = %v", cfg.GetRequestAttributes())
	case cfg.GetFailureModeAllow():
		t.Error("failure_mode_allow must be false")
	case cfg.GetMessageTimeout().AsDuration() != ExtProcMessageTimeout || cfg.GetMaxMessageTimeout().AsDuration() != ExtProcMessageTimeout:
		t.Errorf("timeouts = %v / %v", cfg.GetMessageTimeout(), cfg.GetMaxMessageTimeout())
	case strings.Join(cfg.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), ",") != LBMetadataNamespace:
		t.Errorf("receiving namespaces = %v", cfg.GetMetadataOptions())
	}

	// Without ext_proc, only the router.
	plain, err := TranslateListener(DefaultListenerAddress, DefaultListenerPort, false)
	if err != nil {
		t.Fatal(err)
	}
	var phcm hcmv3.HttpConnectionManager
	if err := plain.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&phcm); err != nil {
		t.Fatal(err)
	}
	if n := len(phcm.GetHttpFilters()); n != 1 {
		t.Errorf("listener without ext_proc has %d filters", n)
	}
}

func TestTranslateExtProcPerRoute(t *testing.T) {
	_, rc, _, _ := translateFixture(t)
	echo, hello, prev := rc.GetVirtualHosts()[0].GetRoutes()[0], rc.GetVirtualHosts()[1].GetRoutes()[0], rc.GetVirtualHosts()[2].GetRoutes()[0]
	if e, ok := perRouteEnabled(t, echo.GetTypedPerFilterConfig()); !ok || !e {
		t.Error("echo (proxy mode, single cluster) does not enable ext_proc on the route")
	}
	if _, ok := perRouteEnabled(t, prev.GetTypedPerFilterConfig()); ok {
		t.Error("prev tag (serve mode, single cluster) has a per-route ext_proc config")
	}
	if _, ok := perRouteEnabled(t, hello.GetTypedPerFilterConfig()); ok {
		t.Error("weighted route has a route-level ext_proc config")
	}
	for _, wc := range hello.GetRoute().GetWeightedClusters().GetClusters() {
		e, ok := perRouteEnabled(t, wc.GetTypedPerFilterConfig())
		switch wc.GetName() {
		case helloV1:
			if ok {
				t.Errorf("%s (serve mode) has a per-cluster ext_proc config", helloV1)
			}
		case helloV2:
			if !ok || !e {
				t.Errorf("%s (proxy mode) does not enable ext_proc", helloV2)
			}
		}
	}

	// Without an ext_proc service, no per-route configuration at all.
	for _, r := range fixtureRoutes() {
		vhs, err := TranslateVirtualHosts(r, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, vh := range vhs {
			rt := vh.GetRoutes()[0]
			if len(rt.GetTypedPerFilterConfig()) > 0 {
				t.Errorf("%s: per-route config without ext_proc", vh.GetName())
			}
			for _, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
				if len(wc.GetTypedPerFilterConfig()) > 0 {
					t.Errorf("%s/%s: per-cluster config without ext_proc", vh.GetName(), wc.GetName())
				}
			}
		}
	}
}

func TestTranslateOverrideHostCluster(t *testing.T) {
	cl, err := TranslateCluster(Cluster{Namespace: "default", Revision: "echo-00001", OverrideHost: true, LeastRequest: true})
	if err != nil {
		t.Fatal(err)
	}
	if cl.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
		t.Errorf("lb_policy = %v, want unset (load_balancing_policy replaces it)", cl.GetLbPolicy())
	}
	pols := cl.GetLoadBalancingPolicy().GetPolicies()
	if len(pols) != 1 {
		t.Fatalf("load_balancing_policy = %v", cl.GetLoadBalancingPolicy())
	}
	var oh overridehostv3.OverrideHost
	if err := pols[0].GetTypedExtensionConfig().GetTypedConfig().UnmarshalTo(&oh); err != nil {
		t.Fatal(err)
	}
	if err := oh.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	src := oh.GetOverrideHostSources()
	if len(src) != 1 || src[0].GetMetadata().GetKey() != LBMetadataNamespace || len(src[0].GetMetadata().GetPath()) != 1 || src[0].GetMetadata().GetPath()[0].GetKey() != DestinationEndpointKey {
		t.Errorf("override_host_sources = %v", src)
	}
	var lr leastrequestv3.LeastRequest
	if err := oh.GetFallbackPolicy().GetPolicies()[0].GetTypedExtensionConfig().GetTypedConfig().UnmarshalTo(&lr); err != nil {
		t.Fatalf("fallback policy is not least_request: %v", err)
	}
}

func TestTranslateExtProcCluster(t *testing.T) {
	cl, err := TranslateExtProcCluster("10.96.0.20:9002")
	if err != nil {
		t.Fatal(err)
	}
	if cl.GetName() != ExtProcClusterName || cl.GetType() != clusterv3.Cluster_STATIC {
		t.Errorf("cluster %q type %v", cl.GetName(), cl.GetType())
	}
	var po upstreamhttpv3.HttpProtocolOptions
	if err := cl.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&po); err != nil {
		t.Fatal(err)
	}
	if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("ext_proc cluster must speak HTTP/2 (gRPC)")
	}
	dns, err := TranslateExtProcCluster("skiff-extproc.skiff-system.svc.cluster.local:9002")
	if err != nil {
		t.Fatal(err)
	}
	if dns.GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("host name address: type %v, want STRICT_DNS", dns.GetType())
	}
	for _, bad := range []string{"10.0.0.1", "10.0.0.1:0", ":9002", "host:99999"} {
		if _, err := TranslateExtProcCluster(bad); err == nil {
			t.Errorf("TranslateExtProcCluster(%q) accepted", bad)
		}
	}
}

func TestServerExtProc(t *testing.T) {
	srv, err := NewServer(nil, Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080, ExtProcAddress: "127.0.0.1:9002"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.mu.Lock()
	cl := srv.clusterRes[ExtProcClusterName]
	srv.mu.Unlock()
	if cl == nil || cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() != 9002 {
		t.Fatalf("ext_proc cluster = %v", cl)
	}
	if _, err := NewServer(nil, Options{ExtProcAddress: "no-port"}); err == nil {
		t.Error("bad ExtProcAddress accepted")
	}
	r := fixtureRoutes()[0]
	if err := srv.SetRoute(r); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	vhs := srv.vhosts[routeKey(r.Namespace, r.Name)][RouteConfigName]
	srv.mu.Unlock()
	enabled := 0
	for _, vh := range vhs {
		for _, wc := range vh.GetRoutes()[0].GetRoute().GetWeightedClusters().GetClusters() {
			if e, _ := perRouteEnabled(t, wc.GetTypedPerFilterConfig()); e {
				enabled++
			}
		}
		if e, _ := perRouteEnabled(t, vh.GetRoutes()[0].GetTypedPerFilterConfig()); e {
			enabled++
		}
	}
	if enabled == 0 {
		t.Error("server did not translate routes with ext_proc per-route config")
	}
}
