package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// With ProxyTLS the clusters through which proxies reach Skiff's own services are mTLS: they
// name the proxy's static secrets (never a key or a file), send the service's name as SNI
// and require it among the peer's SANs, and the wasm modules' URLs are https. Everything
// passes ValidateAll. (Issue 13, item 6.)
func TestProxyTLSClusters(t *testing.T) {
	opts := Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080, WasmFilters: fixtureWasmFilters()[:1],
		ExtProcAddress: "skiff-extproc.skiff-system.svc.cluster.local:9002",
		WasmCodeServer: "skiff-controlplane.skiff-system.svc.cluster.local:8090",
		ProxyTLS:       &ProxyTLS{ExtProcServerName: "skiff-extproc.skiff-system.svc", WasmServerName: "skiff-controlplane.skiff-system.svc"}}
	h := newHarnessWith(t, opts)
	c := h.sotw("envoy-1")
	c.subscribe(resourcev3.ClusterType)
	seen := map[string]bool{}
	for _, a := range c.recv(resourcev3.ClusterType).GetResources() {
		cl := unmarshalAny(t, a, &clusterv3.Cluster{})
		want := map[string]struct {
			sni  string
			alpn string
		}{ExtProcClusterName: {"skiff-extproc.skiff-system.svc", "h2"}, WasmCodeClusterName: {"skiff-controlplane.skiff-system.svc", ""}}[cl.GetName()]
		if want.sni == "" {
			if cl.GetTransportSocket() != nil {
				t.Errorf("revision cluster %s has a transport socket", cl.GetName())
			}
			continue
		}
		seen[cl.GetName()] = true
		if err := cl.ValidateAll(); err != nil {
			t.Fatal(err)
		}
		ts := cl.GetTransportSocket()
		if ts.GetName() != TLSTransportSocketName {
			t.Fatalf("%s transport socket %v", cl.GetName(), ts)
		}
		var tc tlsv3.UpstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&tc); err != nil {
			t.Fatal(err)
		}
		common := tc.GetCommonTlsContext()
		combined := common.GetCombinedValidationContext()
		switch {
		case tc.GetSni() != want.sni:
			t.Errorf("%s sni %q, want %q", cl.GetName(), tc.GetSni(), want.sni)
		case len(common.GetTlsCertificates()) > 0 || common.GetTlsCertificateSdsSecretConfigs()[0].GetName() != DefaultClientCertSecret:
			t.Errorf("%s client certificate %v, want the static secret %s", cl.GetName(), common, DefaultClientCertSecret)
		case combined.GetValidationContextSdsSecretConfig().GetName() != DefaultCASecret || combined.GetValidationContextSdsSecretConfig().GetSdsConfig() != nil:
			t.Errorf("%s validation context %v, want the static secret %s", cl.GetName(), combined, DefaultCASecret)
		case combined.GetDefaultValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact() != want.sni:
			t.Errorf("%s SAN matchers %v", cl.GetName(), combined.GetDefaultValidationContext())
		case strings.Join(common.GetAlpnProtocols(), ",") != want.alpn:
			t.Errorf("%s ALPN %v, want %q", cl.GetName(), common.GetAlpnProtocols(), want.alpn)
		}
	}
	if !seen[ExtProcClusterName] || !seen[WasmCodeClusterName] {
		t.Fatalf("CDS lacks the mTLS clusters: %v", seen)
	}
	c.subscribe(resourcev3.ListenerType)
	l := unmarshalAny(t, c.recv(resourcev3.ListenerType).GetResources()[0], &listenerv3.Listener{})
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	var w wasmhttpv3.Wasm
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&w); err != nil {
		t.Fatal(err)
	}
	if uri := w.GetConfig().GetVmConfig().GetCode().GetRemote().GetHttpUri().GetUri(); !strings.HasPrefix(uri, "https://skiff-controlplane.skiff-system.svc.cluster.local:8090/wasm/") {
		t.Errorf("wasm uri %q, want https", uri)
	}
}
