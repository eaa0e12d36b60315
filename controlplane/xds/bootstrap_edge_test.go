package xds

import (
	"os"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// TestEnvoyBootstrapEdge checks deploy/envoy/bootstrap.yaml against Envoy's edge best
// practices (configuration/best_practices/edge): no admin runtime layer (runtime cannot be
// changed through the admin interface), an overload manager with a heap limit and a global
// downstream connection limit that sheds load, buffer limits on the static listener (which
// the connection limit does not cover, so probes answer under overload), and HTTP/2
// keepalive to the controller so a vanished leader is left for the new one.
func TestEnvoyBootstrapEdge(t *testing.T) {
	y, err := os.ReadFile("../../deploy/envoy/bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &b); err != nil {
		t.Fatalf("bootstrap.yaml is not a v3 Bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("bootstrap.yaml does not validate: %v", err)
	}
	for _, l := range b.GetLayeredRuntime().GetLayers() {
		if l.GetAdminLayer() != nil {
			t.Errorf("runtime layer %q is an admin layer: /runtime_modify would change Envoy's behaviour", l.GetName())
		}
	}
	om := b.GetOverloadManager()
	var heap fixedheapv3.FixedHeapConfig
	var conns downstreamv3.DownstreamConnectionsConfig
	for _, m := range om.GetResourceMonitors() {
		switch m.GetName() {
		case "envoy.resource_monitors.fixed_heap":
			if err := m.GetTypedConfig().UnmarshalTo(&heap); err != nil {
				t.Fatal(err)
			}
		case "envoy.resource_monitors.global_downstream_max_connections":
			if err := m.GetTypedConfig().UnmarshalTo(&conns); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := heap.ValidateAll(); err != nil || heap.GetMaxHeapSizeBytes() == 0 {
		t.Errorf("fixed_heap monitor %v (%v), want a heap limit", &heap, err)
	}
	if err := conns.ValidateAll(); err != nil || conns.GetMaxActiveDownstreamConnections() == 0 {
		t.Errorf("global_downstream_max_connections monitor %v (%v), want a connection limit", &conns, err)
	}
	actions := map[string]bool{}
	for _, a := range om.GetActions() {
		for _, tr := range a.GetTriggers() {
			if tr.GetName() == "envoy.resource_monitors.fixed_heap" {
				actions[a.GetName()] = true
			}
		}
	}
	if !actions["envoy.overload_actions.shrink_heap"] || !actions["envoy.overload_actions.stop_accepting_requests"] {
		t.Errorf("overload actions on the heap %v, want shrink_heap and stop_accepting_requests", actions)
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		if l.GetPerConnectionBufferLimitBytes().GetValue() != EdgeBufferLimitBytes || !l.GetIgnoreGlobalConnLimit() {
			t.Errorf("static listener %s: buffer limit %d, ignore_global_conn_limit %v; want %d and true",
				l.GetName(), l.GetPerConnectionBufferLimitBytes().GetValue(), l.GetIgnoreGlobalConnLimit(), EdgeBufferLimitBytes)
		}
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != "skiff-xds" {
			continue
		}
		var po upstreamhttpv3.HttpProtocolOptions
		if err := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&po); err != nil {
			t.Fatal(err)
		}
		if ka := po.GetExplicitHttpConfig().GetHttp2ProtocolOptions().GetConnectionKeepalive(); ka.GetInterval() == nil || ka.GetTimeout() == nil {
			t.Errorf("skiff-xds HTTP/2 keepalive %v, want PINGs with a timeout", ka)
		}
	}
}

// TestEdgeLimitsOnTranslatedResources checks what the control plane sends carries the edge
// limits: listeners' buffer limit and the HTTP connection manager's options, revision
// clusters' buffer limit.
func TestEdgeLimitsOnTranslatedResources(t *testing.T) {
	l, err := TranslateListener("0.0.0.0", 8080, true)
	if err != nil {
		t.Fatal(err)
	}
	if l.GetPerConnectionBufferLimitBytes().GetValue() != EdgeBufferLimitBytes {
		t.Errorf("listener buffer limit %v, want %d", l.GetPerConnectionBufferLimitBytes(), EdgeBufferLimitBytes)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	h2 := hcm.GetHttp2ProtocolOptions()
	if hcm.GetRequestHeadersTimeout().AsDuration() != EdgeRequestHeadersTimeout ||
		h2.GetMaxConcurrentStreams().GetValue() != EdgeMaxConcurrentStreams || h2.GetInitialStreamWindowSize().GetValue() != EdgeInitialStreamWindow ||
		h2.GetInitialConnectionWindowSize().GetValue() != EdgeInitialConnectionWindow {
		t.Errorf("http connection manager edge options: request_headers_timeout %v, http2 %v", hcm.GetRequestHeadersTimeout(), h2)
	}
	c, err := TranslateCluster(Cluster{Namespace: "default", Revision: "hello-00001"})
	if err != nil {
		t.Fatal(err)
	}
	if c.GetPerConnectionBufferLimitBytes().GetValue() != EdgeBufferLimitBytes {
		t.Errorf("revision cluster buffer limit %v, want %d", c.GetPerConnectionBufferLimitBytes(), EdgeBufferLimitBytes)
	}
}
