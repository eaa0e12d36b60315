package xds

import (
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// translateFixture translates the whole fixture.
func translateFixture(t *testing.T) (*listenerv3.Listener, *routev3.RouteConfiguration, []*clusterv3.Cluster, []*endpointv3.ClusterLoadAssignment) {
	t.Helper()
	l, err := TranslateListener(DefaultListenerAddress, DefaultListenerPort, true)
	if err != nil {
		t.Fatal(err)
	}
	var vhosts []*routev3.VirtualHost
	for _, r := range fixtureRoutes() {
		v, err := TranslateVirtualHosts(r, true)
		if err != nil {
			t.Fatal(err)
		}
		vhosts = append(vhosts, v...)
	}
	rc, err := TranslateRouteConfiguration(vhosts)
	if err != nil {
		t.Fatal(err)
	}
	var clusters []*clusterv3.Cluster
	for _, c := range fixtureClusters() {
		cl, err := TranslateCluster(c)
		if err != nil {
			t.Fatal(err)
		}
		clusters = append(clusters, cl)
	}
	ep, err := TranslateExtProcCluster(fixtureExtProcAddress)
	if err != nil {
		t.Fatal(err)
	}
	clusters = append(clusters, ep)
	var clas []*endpointv3.ClusterLoadAssignment
	eps := fixtureEndpoints()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range eps {
			if !yield(k) {
				return
			}
		}
	}) {
		cla, err := TranslateEndpoints(name, eps[name])
		if err != nil {
			t.Fatal(err)
		}
		clas = append(clas, cla)
	}
	return l, rc, clusters, clas
}

func TestTranslateFixtureValidates(t *testing.T) {
	l, rc, clusters, clas := translateFixture(t)
	if err := l.ValidateAll(); err != nil {
		t.Errorf("listener: %v", err)
	}
	if err := rc.ValidateAll(); err != nil {
		t.Errorf("route configuration: %v", err)
	}
	for _, c := range clusters {
		if err := c.ValidateAll(); err != nil {
			t.Errorf("cluster %s: %v", c.GetName(), err)
		}
	}
	for _, c := range clas {
		if err := c.ValidateAll(); err != nil {
			t.Errorf("cla %s: %v", c.GetClusterName(), err)
		}
	}
	// The HCM and upstream protocol options inside Any must validate too.
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if err := hcm.ValidateAll(); err != nil {
		t.Errorf("hcm: %v", err)
	}
	if !hcm.GetStripAnyHostPort() || hcm.GetCodecType() != hcmv3.HttpConnectionManager_AUTO || hcm.GetRds().GetRouteConfigName() != RouteConfigName {
		t.Errorf("hcm conventions not met: %v", &hcm)
	}
	var po upstreamhttpv3.HttpProtocolOptions
	if err := clusters[1].GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&po); err != nil {
		t.Fatal(err)
	}
	if err := po.ValidateAll(); err != nil {
		t.Errorf("http protocol options: %v", err)
	}
	if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("h2c cluster has no explicit http2 config")
	}
}

func TestTranslateGolden(t *testing.T) {
	l, rc, clusters, clas := translateFixture(t)
	checkGolden(t, "listener.golden.json", []*listenerv3.Listener{l})
	checkGolden(t, "routes.golden.json", []*routev3.RouteConfiguration{rc})
	checkGolden(t, "clusters.golden.json", clusters)
	checkGolden(t, "endpoints.golden.json", clas)
}

func TestTranslateRouteShapes(t *testing.T) {
	_, rc, _, _ := translateFixture(t)
	var names []string
	for _, vh := range rc.GetVirtualHosts() {
		names = append(names, vh.GetName())
	}
	if want := []string{"default/echo", "default/hello", "default/hello/prev"}; !slices.Equal(names, want) {
		t.Fatalf("virtual hosts = %v, want sorted %v", names, want)
	}
	echo, hello, prev := rc.GetVirtualHosts()[0].GetRoutes()[0], rc.GetVirtualHosts()[1].GetRoutes()[0], rc.GetVirtualHosts()[2].GetRoutes()[0]
	if got := echo.GetRoute().GetCluster(); got != echoV1 {
		t.Errorf("echo cluster = %q", got)
	}
	if got := echo.GetRoute().GetTimeout().AsDuration(); got != DefaultRouteTimeout {
		t.Errorf("echo timeout = %v", got)
	}
	if got := len(hello.GetRoute().GetWeightedClusters().GetClusters()); got != 2 {
		t.Errorf("hello has %d weighted clusters", got)
	}
	if got := prev.GetRoute().GetCluster(); got != helloV1 {
		t.Errorf("prev tag: zero-weight cluster not dropped, cluster = %q", got)
	}
	md := prev.GetMetadata().GetFilterMetadata()[MetadataNamespace].GetFields()
	if md["tag"].GetStringValue() != "prev" || md["namespace"].GetStringValue() != "default" || md["route"].GetStringValue() != "hello" {
		t.Errorf("prev metadata = %v", md)
	}
	if rp := hello.GetRoute().GetRetryPolicy(); rp.GetRetryOn() != RetryOn || rp.GetNumRetries().GetValue() != NumRetries ||
		rp.GetPerTryTimeout() != nil || rp.GetPerTryIdleTimeout() != nil {
		t.Errorf("retry policy = %v", rp)
	}
}

// Knative's responseStartTimeoutSeconds and idleTimeoutSeconds become the retry policy's
// per_try_timeout (which Envoy ignores once the response has started) and
// per_try_idle_timeout, on every route of the virtual host.
func TestTranslateResponseStartAndIdleTimeouts(t *testing.T) {
	vh := VirtualHost{Name: "a", Domains: []string{"a.example.com"}, Clusters: []WeightedCluster{{Name: "ns/a-1", Weight: 100}},
		Timeout: time.Minute, ResponseStartTimeout: 10 * time.Second, IdleTimeout: 5 * time.Second}
	vhs, err := TranslateVirtualHosts(Route{Namespace: "ns", Name: "a", VirtualHosts: []VirtualHost{vh}}, false)
	if err != nil {
		t.Fatal(err)
	}
	action := vhs[0].GetRoutes()[0].GetRoute()
	if err := action.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	rp := action.GetRetryPolicy()
	if action.GetTimeout().AsDuration() != time.Minute || rp.GetPerTryTimeout().AsDuration() != 10*time.Second || rp.GetPerTryIdleTimeout().AsDuration() != 5*time.Second {
		t.Errorf("route action = %v", action)
	}
	for _, bad := range []VirtualHost{{ResponseStartTimeout: -time.Second}, {IdleTimeout: -time.Second}} {
		v := vh
		v.ResponseStartTimeout, v.IdleTimeout = bad.ResponseStartTimeout, bad.IdleTimeout
		if _, err := TranslateVirtualHosts(Route{Namespace: "ns", Name: "a", VirtualHosts: []VirtualHost{v}}, false); err == nil || !strings.Contains(err.Error(), "is negative") {
			t.Errorf("negative timeout %+v: %v", bad, err)
		}
	}
}

// A rule with timeouts of its own (a tag's rule on a Route's default host) gets them on its
// Envoy route; the rule without keeps the virtual host's.
func TestTranslateRuleTimeouts(t *testing.T) {
	vh := VirtualHost{Name: "a", Domains: []string{"a.example.com"},
		Timeout: time.Minute, ResponseStartTimeout: 10 * time.Second, IdleTimeout: 5 * time.Second,
		Rules: []Rule{
			{Headers: []HeaderMatch{{Name: "Knative-Serving-Tag", Value: "v1"}}, Clusters: []WeightedCluster{{Name: "ns/a-1", Weight: 100}},
				Timeouts: &RouteTimeouts{Timeout: 2 * time.Minute}},
			{Clusters: []WeightedCluster{{Name: "ns/a-2", Weight: 100}}},
		}}
	vhs, err := TranslateVirtualHosts(Route{Namespace: "ns", Name: "a", VirtualHosts: []VirtualHost{vh}}, false)
	if err != nil {
		t.Fatal(err)
	}
	routes := vhs[0].GetRoutes()
	if err := vhs[0].ValidateAll(); err != nil {
		t.Fatal(err)
	}
	tagged, rest := routes[0].GetRoute(), routes[1].GetRoute()
	if tagged.GetTimeout().AsDuration() != 2*time.Minute || tagged.GetRetryPolicy().GetPerTryTimeout() != nil || tagged.GetRetryPolicy().GetPerTryIdleTimeout() != nil {
		t.Errorf("the tag's rule: %v; want timeout 2m and no per-try timeouts", tagged)
	}
	if rest.GetTimeout().AsDuration() != time.Minute || rest.GetRetryPolicy().GetPerTryTimeout().AsDuration() != 10*time.Second {
		t.Errorf("the default rule: %v; want the virtual host's timeouts", rest)
	}
	vh.Rules[0].Timeouts = &RouteTimeouts{IdleTimeout: -time.Second}
	if _, err := TranslateVirtualHosts(Route{Namespace: "ns", Name: "a", VirtualHosts: []VirtualHost{vh}}, false); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Errorf("a negative rule timeout: %v, want refused", err)
	}
}

func TestTranslateErrors(t *testing.T) {
	okVH := VirtualHost{Name: "a", Domains: []string{"a.example.com"}, Clusters: []WeightedCluster{{Name: "ns/a-1", Weight: 100}}}
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"listener address", func() error { _, err := TranslateListener("localhost", 8080, false); return err }, "not an IP address"},
		{"listener port", func() error { _, err := TranslateListener("0.0.0.0", 0, false); return err }, "out of range"},
		{"route without name", func() error { _, err := TranslateVirtualHosts(Route{Namespace: "ns"}, false); return err }, "namespace and name are required"},
		{"all weights zero", func() error {
			vh := okVH
			vh.Clusters = []WeightedCluster{{Name: "ns/a-1"}}
			_, err := TranslateVirtualHosts(Route{Namespace: "ns", Name: "a", VirtualHosts: []VirtualHost{vh}}, false)
			return err
		}, "positive weight"},
		{"no domains", func() error {
			vh := okVH
			vh.Domains = nil
			_, err := TranslateVirtualHosts(Route{Namespace: "ns", Name: "a", VirtualHosts: []VirtualHost{vh}}, false)
			return err
		}, "Domains"},
		{"negative timeout", func() error {
			vh := okVH
			vh.Timeout = -time.Second
			_, err := TranslateVirtualHosts(Route{Namespace: "ns", Name: "a", VirtualHosts: []VirtualHost{vh}}, false)
			return err
		}, "timeout -1s is negative"},
		{"duplicate domain", func() error {
			a, _ := TranslateVirtualHosts(Route{Namespace: "ns", Name: "a", VirtualHosts: []VirtualHost{okVH}}, false)
			b := okVH
			b.Name = "b"
			b.Domains = []string{"A.example.com"}
			bv, _ := TranslateVirtualHosts(Route{Namespace: "ns", Name: "b", VirtualHosts: []VirtualHost{b}}, false)
			_, err := TranslateRouteConfiguration(append(a, bv...))
			return err
		}, `domain "A.example.com" is in both`},
		{"cluster name convention", func() error {
			_, err := TranslateCluster(Cluster{Name: "other", Namespace: "ns", Revision: "r"})
			return err
		}, `must be "ns/r"`},
		{"cluster without revision", func() error { _, err := TranslateCluster(Cluster{Namespace: "ns"}); return err }, "namespace and revision are required"},
		{"endpoint host name", func() error {
			_, err := TranslateEndpoints("ns/r", []Endpoint{{Address: "pod.local", Port: 80}})
			return err
		}, "endpoints[0].address"},
		{"endpoint port", func() error {
			_, err := TranslateEndpoints("ns/r", []Endpoint{{Address: "10.0.0.1", Port: 70000}})
			return err
		}, "endpoints[0].port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
