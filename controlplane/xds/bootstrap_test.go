package xds

import (
	"os"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
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
}
