package xds

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const testCloudEventsFilter = "skiff.cloudevents"

// listenerFilters decodes the HTTP filters of the "skiff-http" listener.
func listenerFilters(t *testing.T, l *listenerv3.Listener) []*hcmv3.HttpFilter {
	t.Helper()
	if err := l.ValidateAll(); err != nil {
		t.Fatalf("listener: %v", err)
	}
	hcm := unmarshalAny(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	return hcm.GetHttpFilters()
}

// pluginConfiguration is the StringValue configuration of a wasm HttpFilter.
func pluginConfiguration(t *testing.T, f *hcmv3.HttpFilter) string {
	t.Helper()
	w := unmarshalAny(t, f.GetTypedConfig(), &wasmhttpv3.Wasm{})
	if w.GetConfig().GetConfiguration() == nil {
		return ""
	}
	return unmarshalAny(t, w.GetConfig().GetConfiguration(), &wrapperspb.StringValue{}).GetValue()
}

func TestDisabledWasmFilterEnabledPerVirtualHost(t *testing.T) {
	l, err := TranslateListener(DefaultListenerAddress, DefaultListenerPort, false,
		WasmFilter{Name: testCloudEventsFilter, Path: "cloudevents.wasm", Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	fs := listenerFilters(t, l)
	if fs[0].GetName() != testCloudEventsFilter || !fs[0].GetDisabled() {
		t.Fatalf("first filter = %s disabled=%v, want %s disabled by default", fs[0].GetName(), fs[0].GetDisabled(), testCloudEventsFilter)
	}

	vhs, err := TranslateVirtualHosts(Route{Namespace: "skiff-system", Name: "broker-ingress", VirtualHosts: []VirtualHost{{
		Name: "skiff-system/broker-ingress", Domains: []string{"broker-ingress.localhost"},
		Clusters:      []WeightedCluster{{Name: "skiff-system/broker-ingress", Weight: 100}},
		EnableFilters: []string{testCloudEventsFilter},
	}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	pfc := vhs[0].GetTypedPerFilterConfig()[testCloudEventsFilter]
	if pfc == nil {
		t.Fatalf("virtual host typed_per_filter_config = %v, want an entry for %s", vhs[0].GetTypedPerFilterConfig(), testCloudEventsFilter)
	}
	if fc := unmarshalAny(t, pfc, &routev3.FilterConfig{}); fc.GetDisabled() {
		t.Fatal("the virtual host's FilterConfig disables the filter it should enable")
	}
	if _, err := TranslateRouteConfiguration(vhs); err != nil {
		t.Fatal(err)
	}

	// Virtual hosts that do not name it get no per-filter config.
	other, err := TranslateVirtualHosts(Route{Namespace: "default", Name: "hello", VirtualHosts: []VirtualHost{{
		Name: "default/hello", Domains: []string{"hello.default.localhost"},
		Clusters: []WeightedCluster{{Name: "default/hello-00001", Weight: 100}},
	}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(other[0].GetTypedPerFilterConfig()) != 0 {
		t.Fatalf("unrelated virtual host has typed_per_filter_config %v", other[0].GetTypedPerFilterConfig())
	}
}

func TestSetWasmFilterConfigurationResendsOnlyTheListener(t *testing.T) {
	h := newHarnessWith(t, Options{ListenerAddress: "127.0.0.1", ListenerPort: 18080, WasmFilters: []WasmFilter{
		{Name: testCloudEventsFilter, Path: "cloudevents.wasm", Disabled: true, Configuration: `{"brokers":[]}`},
	}})
	c := h.delta("envoy-wasm-config")
	deltaSubscribeAll(t, c)

	want := `{"brokers":[{"broker":"default/default","triggers":[]}]}`
	if err := h.srv.SetWasmFilterConfiguration(testCloudEventsFilter, want); err != nil {
		t.Fatal(err)
	}
	lds := c.recv(resourcev3.ListenerType)
	wantNames(t, "listeners after the configuration change", deltaNames(lds), ListenerName)
	l := unmarshalAny(t, lds.GetResources()[0].GetResource(), &listenerv3.Listener{})
	fs := listenerFilters(t, l)
	if got := pluginConfiguration(t, fs[0]); got != want {
		t.Fatalf("plugin configuration = %s, want %s", got, want)
	}
	if !fs[0].GetDisabled() {
		t.Fatal("the filter lost disabled: true")
	}
	c.ack(lds)

	// The same configuration again pushes nothing; a route change after it
	// shows that nothing else was queued before it (the next response is RDS).
	if err := h.srv.SetWasmFilterConfiguration(testCloudEventsFilter, want); err != nil {
		t.Fatal(err)
	}
	routes := fixtureRoutes()
	routes[0].VirtualHosts[0].Timeout = 7e9
	if err := h.srv.SetRoute(routes[0]); err != nil {
		t.Fatal(err)
	}
	c.recv(resourcev3.RouteType)

	if err := h.srv.SetWasmFilterConfiguration("skiff.nope", "{}"); err == nil {
		t.Fatal("configuring a filter the listener does not have succeeded")
	}
}
