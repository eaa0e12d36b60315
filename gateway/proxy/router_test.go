package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/gateway/proxy"
	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
)

func staticCluster(t *testing.T, name string, hosts ...string) *clusterv3.Cluster {
	t.Helper()
	var lbs []*endpointv3.LbEndpoint
	for _, h := range hosts {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
			}}},
		}}})
	}
	return &clusterv3.Cluster{
		Name:           name,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}},
	}
}

func prefixRoute(prefix string, action func(*routev3.Route)) *routev3.Route {
	r := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}}}
	action(r)
	return r
}

func toCluster(name string, retry *routev3.RetryPolicy) func(*routev3.Route) {
	return func(r *routev3.Route) {
		r.Action = &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
			RetryPolicy:      retry,
		}}
	}
}

// TestRouterDecisions drives a connection manager over loopback HTTP
// through each of the router's outcomes: no route, direct response,
// redirect, unknown cluster, no healthy upstream, an upstream answer
// passed through, and a retried one.
func TestRouterDecisions(t *testing.T) {
	// flaky answers 503 to every other request, starting with the first.
	var flakyHits, steadyHits atomic.Int64
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flakyHits.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "flaky")
			return
		}
		io.WriteString(w, "ok")
	}))
	defer flaky.Close()
	steady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		steadyHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down for good")
	}))
	defer steady.Close()

	s := stats.NewStore()
	clusters := upstream.NewManager(s, upstream.StaticSecrets{})
	defer clusters.Close()
	err := clusters.ApplyClusters(map[string]*clusterv3.Cluster{
		"flaky":  staticCluster(t, "flaky", flaky.Listener.Addr().String()),
		"steady": staticCluster(t, "steady", steady.Listener.Addr().String()),
		"empty":  staticCluster(t, "empty"),
	})
	if err != nil {
		t.Fatal(err)
	}
	retry5xx := &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(2)}
	table, err := route.Compile(&routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"example.com"},
		Routes: []*routev3.Route{
			prefixRoute("/direct", func(r *routev3.Route) {
				r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
					Status: http.StatusTeapot, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}},
				}}
			}),
			prefixRoute("/old", func(r *routev3.Route) {
				r.Action = &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
					SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
					HostRedirect:           "other.example",
					PortRedirect:           8443,
					PathRewriteSpecifier:   &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"},
					ResponseCode:           routev3.RedirectAction_FOUND,
					StripQuery:             true,
				}}
			}),
			prefixRoute("/nocluster", toCluster("missing", nil)),
			prefixRoute("/empty", toCluster("empty", nil)),
			prefixRoute("/steady", toCluster("steady", retry5xx)),
			prefixRoute("/flaky-noretry", toCluster("flaky", nil)),
			prefixRoute("/flaky", toCluster("flaky", retry5xx)),
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	cm := proxy.New(proxy.Options{StatPrefix: "test", InlineRoutes: table, Clusters: clusters, Stats: s})
	gw := httptest.NewServer(cm)
	defer gw.Close()

	tests := []struct {
		name       string
		host, path string
		wantCode   int
		wantBody   string
		wantHeader map[string]string
		flakyHits  int64 // requests the flaky upstream saw
		steadyHits int64
	}{
		{name: "no virtual host", host: "unknown.com", path: "/direct", wantCode: 404},
		{name: "direct response", host: "example.com", path: "/direct", wantCode: 418, wantBody: "teapot"},
		{name: "redirect", host: "example.com", path: "/old/page?q=1", wantCode: 302,
			wantHeader: map[string]string{"Location": "https://other.example:8443/new/page"}},
		{name: "unknown cluster", host: "example.com", path: "/nocluster", wantCode: 503},
		{name: "no healthy upstream", host: "example.com", path: "/empty", wantCode: 503, wantBody: proxy.BodyNoHealthyUpstream},
		{name: "5xx retried until the budget runs out", host: "example.com", path: "/steady", wantCode: 503, wantBody: "down for good", steadyHits: 3},
		{name: "5xx passed through without a retry policy", host: "example.com", path: "/flaky-noretry", wantCode: 503, wantBody: "flaky", flakyHits: 1},
		{name: "5xx retried to success", host: "example.com", path: "/flaky", wantCode: 200, wantBody: "ok", flakyHits: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flakyHits.Store(0)
			steadyHits.Store(0)
			req, err := http.NewRequest(http.MethodGet, gw.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			resp, err := gw.Client().Transport.RoundTrip(req) // no redirect following
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status = %d (%q), want %d", resp.StatusCode, body, tt.wantCode)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := flakyHits.Load(); got != tt.flakyHits {
				t.Errorf("flaky upstream saw %d requests, want %d", got, tt.flakyHits)
			}
			if got := steadyHits.Load(); got != tt.steadyHits {
				t.Errorf("steady upstream saw %d requests, want %d", got, tt.steadyHits)
			}
		})
	}
	if v, _ := s.Value("cluster.flaky.upstream_rq_retry_success"); v != 1 {
		t.Errorf("cluster.flaky.upstream_rq_retry_success = %d, want 1", v)
	}
	if v, _ := s.Value("cluster.steady.upstream_rq_retry"); v != 2 {
		t.Errorf("cluster.steady.upstream_rq_retry = %d, want 2", v)
	}
}
