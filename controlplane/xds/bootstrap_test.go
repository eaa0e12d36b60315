package xds

import (
	"os"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// TestEnvoyBootstrap checks that deploy/envoy/bootstrap.yaml is a valid v3
// Bootstrap that points ADS (and LDS/CDS through it) at the skiff-xds cluster
// over HTTP/2.
func TestEnvoyBootstrap(t *testing.T) {
	y, err := os.ReadFile("../../deploy/envoy/bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("bootstrap.yaml: %v", err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &b); err != nil {
		t.Fatalf("bootstrap.yaml is not a v3 Bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("bootstrap.yaml does not validate: %v", err)
	}

	ads := b.GetDynamicResources().GetAdsConfig()
	if got := ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName(); got != "skiff-xds" {
		t.Errorf("ads cluster = %q", got)
	}
	if b.GetDynamicResources().GetLdsConfig().GetAds() == nil || b.GetDynamicResources().GetCdsConfig().GetAds() == nil {
		t.Error("lds_config and cds_config must use ADS")
	}
	xds := b.GetStaticResources().GetClusters()[0]
	var po upstreamhttpv3.HttpProtocolOptions
	if err := xds.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&po); err != nil {
		t.Fatal(err)
	}
	if err := po.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("skiff-xds cluster must speak HTTP/2 (gRPC)")
	}
	if got := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue(); got != 18000 {
		t.Errorf("skiff-xds port = %d", got)
	}

	// The ext_proc stream must stay open for the whole HTTP request (Envoy
	// 1.37+ closes it early unless this runtime guard is off).
	var guardOff bool
	for _, l := range b.GetLayeredRuntime().GetLayers() {
		if v, ok := l.GetStaticLayer().GetFields()["envoy.reloadable_features.ext_proc_stream_close_optimization"]; ok {
			guardOff = !v.GetBoolValue()
		}
	}
	if !guardOff {
		t.Error("layered_runtime must set envoy.reloadable_features.ext_proc_stream_close_optimization: false")
	}

	// Stats are pushed to the control plane's metrics_service sink, full names, cumulative.
	if len(b.GetStatsSinks()) != 1 {
		t.Fatalf("stats_sinks = %v, want the metrics_service sink", b.GetStatsSinks())
	}
	var ms metricsv3.MetricsServiceConfig
	if err := b.GetStatsSinks()[0].GetTypedConfig().UnmarshalTo(&ms); err != nil {
		t.Fatal(err)
	}
	if err := ms.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if ms.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "skiff-xds" || ms.GetEmitTagsAsLabels() || ms.GetReportCountersAsDeltas().GetValue() {
		t.Errorf("metrics_service sink = %v", &ms)
	}

	// The ext_proc service cluster: STRICT_DNS, HTTP/2 (gRPC), port 9002.
	var ep *clusterv3.Cluster
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == ExtProcClusterName {
			ep = c
		}
	}
	if ep == nil {
		t.Fatalf("no static %s cluster", ExtProcClusterName)
	}
	var epo upstreamhttpv3.HttpProtocolOptions
	if err := ep.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&epo); err != nil {
		t.Fatal(err)
	}
	if epo.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("%s cluster must speak HTTP/2 (gRPC)", ExtProcClusterName)
	}
	sa := ep.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if ep.GetType() != clusterv3.Cluster_STRICT_DNS || sa.GetAddress() != "skiff-extproc.skiff-system.svc.cluster.local" || sa.GetPortValue() != 9002 {
		t.Errorf("%s cluster = %v %s:%d", ExtProcClusterName, ep.GetType(), sa.GetAddress(), sa.GetPortValue())
	}

	// Doors (issue 13, item 6): ADS and ext_proc over mTLS with the certificate and CA of the
	// static secrets, read from the Secret the controller keeps; the admin interface on
	// loopback only, readiness on a listener of its own.
	files := map[string]string{}
	for _, s := range b.GetStaticResources().GetSecrets() {
		if c := s.GetTlsCertificate(); c != nil {
			files[s.GetName()] = c.GetCertificateChain().GetFilename() + " " + c.GetPrivateKey().GetFilename()
		}
		if v := s.GetValidationContext(); v != nil {
			files[s.GetName()] = v.GetTrustedCa().GetFilename()
		}
	}
	if files[DefaultClientCertSecret] != "/etc/skiff/tls/envoy.crt /etc/skiff/tls/envoy.key" || files[DefaultCASecret] != "/etc/skiff/tls/ca.crt" {
		t.Errorf("static secrets = %v, want %s and %s from the mounted Secret", files, DefaultClientCertSecret, DefaultCASecret)
	}
	for _, tc := range []struct {
		cluster *clusterv3.Cluster
		name    string
	}{{xds, "skiff-controlplane.skiff-system.svc"}, {ep, "skiff-extproc.skiff-system.svc"}} {
		var ctx tlsv3.UpstreamTlsContext
		if err := tc.cluster.GetTransportSocket().GetTypedConfig().UnmarshalTo(&ctx); err != nil {
			t.Fatalf("%s: no TLS transport socket: %v", tc.cluster.GetName(), err)
		}
		common := ctx.GetCommonTlsContext()
		if ctx.GetSni() != tc.name || common.GetTlsCertificateSdsSecretConfigs()[0].GetName() != DefaultClientCertSecret ||
			common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName() != DefaultCASecret ||
			common.GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact() != tc.name {
			t.Errorf("%s TLS = %v, want mTLS to %s with the static secrets", tc.cluster.GetName(), &ctx, tc.name)
		}
	}
	if a := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" {
		t.Errorf("admin address %q, want 127.0.0.1", a)
	}
	if ls := b.GetStaticResources().GetListeners(); len(ls) != 1 || ls[0].GetAddress().GetSocketAddress().GetPortValue() != 9902 {
		t.Errorf("static listeners %v, want the skiff-health listener on 9902", ls)
	}
}
