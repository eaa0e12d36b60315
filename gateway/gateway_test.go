package gateway_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	helloV1 = "default/hello-00001"
	helloV2 = "default/hello-00002"
)

// baseConfig routes hello.default.localhost 50/50 across two revisions,
// tag-hello to the first, plus wildcard and prefix-wildcard hosts.
func baseConfig(t *testing.T, b1, b2 *backend) config {
	rc := routeConfig(listenerName,
		vhost("hello", []string{"hello.default.localhost"}, weightedRoute("/", map[string]uint32{helloV1: 50, helloV2: 50})),
		vhost("tag-hello", []string{"tag-hello.default.localhost"}, routeTo("/", helloV1)),
		vhost("wild", []string{"*.wild.localhost"}, routeTo("/", helloV2)),
		vhost("wild-longer", []string{"*-x.wild.localhost"}, routeTo("/", helloV1)),
		vhost("prefix", []string{"pre.*"}, routeTo("/", helloV1)),
	)
	return config{
		listeners: []types.Resource{httpListener(t, listenerName)},
		routes:    []types.Resource{rc},
		clusters:  []types.Resource{edsCluster(helloV1), edsCluster(helloV2)},
		endpoints: []types.Resource{cla(helloV1, b1.addr()), cla(helloV2, b2.addr())},
	}
}

func TestRoutingWeightsAndDomains(t *testing.T) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) {
			b1 := newBackend(t, "v1", false, nil)
			b2 := newBackend(t, "v2", false, nil)
			x := startXDS(t)
			x.set(t, baseConfig(t, b1, b2))
			g := startGateway(t, x, delta)
			g.waitReady(t)
			if got := x.deltaRequests(); (got > 0) != delta {
				t.Fatalf("delta=%v but the server saw %d delta requests", delta, got)
			}

			counts := map[string]int{}
			const n = 400
			for i := 0; i < n; i++ {
				r := g.do(t, "hello.default.localhost", "/")
				if r.status != http.StatusOK {
					t.Fatalf("status %d body %q", r.status, r.body)
				}
				counts[r.body]++
			}
			for _, b := range []string{"v1", "v2"} {
				if c := counts[b]; c < n*35/100 || c > n*65/100 {
					t.Errorf("backend %s got %d of %d requests, want 35%%-65%% (counts %v)", b, c, n, counts)
				}
			}

			cases := []struct{ host, want string }{
				{"tag-hello.default.localhost", "v1"},
				{"tag-hello.default.localhost:8080", "v1"}, // strip_any_host_port
				{"TAG-HELLO.default.localhost", "v1"},
				{"a.wild.localhost", "v2"},
				{"a-x.wild.localhost", "v1"}, // longest suffix wins
				{"pre.anything", "v1"},
			}
			for _, c := range cases {
				if r := g.do(t, c.host, "/"); r.status != 200 || r.body != c.want {
					t.Errorf("Host %s: got %d %q, want 200 %q", c.host, r.status, r.body, c.want)
				}
			}
			r := g.do(t, "unknown.default.localhost", "/")
			if r.status != http.StatusNotFound || r.body != "" {
				t.Errorf("unknown host: got %d %q, want 404 with empty body", r.status, r.body)
			}
			if got := g.stat(t, "http.skiff-http.no_route"); got != 1 {
				t.Errorf("no_route = %d, want 1", got)
			}
			r = g.do(t, "tag-hello.default.localhost", "/x")
			if r.header.Get("X-Envoy-Upstream-Service-Time") == "" {
				t.Error("missing x-envoy-upstream-service-time")
			}
			if r.header.Get("Server") != "envoy" {
				t.Errorf("server header %q, want envoy", r.header.Get("Server"))
			}
			last := b1.lastRequest()
			if last.Header.Get("X-Request-Id") == "" || last.Header.Get("X-Forwarded-Proto") != "http" {
				t.Errorf("upstream headers missing x-request-id / x-forwarded-proto: %v", last.Header)
			}
			if last.Host != "tag-hello.default.localhost" {
				t.Errorf("upstream Host %q", last.Host)
			}

			// Config update: point tag-hello at v2.
			c := baseConfig(t, b1, b2)
			c.routes = []types.Resource{routeConfig(listenerName, vhost("tag-hello", []string{"tag-hello.default.localhost"}, routeTo("/", helloV2)))}
			x.set(t, c)
			eventually(t, 5*time.Second, func() bool { return g.do(t, "tag-hello.default.localhost", "/").body == "v2" }, "route update to take effect")
			if r := g.do(t, "hello.default.localhost", "/"); r.status != 404 {
				t.Errorf("removed virtual host still served: %d", r.status)
			}
		})
	}
}

func TestRewritesAndMatchers(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	rw := routeTo("/api/", helloV1)
	rw.GetRoute().PrefixRewrite = "/v1/"
	rw.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "internal.example"}
	hdr := routeTo("/", helloV2)
	hdr.Match.Headers = []*routev3.HeaderMatcher{{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "yes"}}}
	exact := routeTo("", helloV2)
	exact.Match.PathSpecifier = &routev3.RouteMatch_Path{Path: "/exact"}
	re := routeTo("", helloV2)
	re.Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/re/[0-9]+"}}
	direct := &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/direct"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}},
	}
	c := baseConfig(t, b1, b2)
	c.routes = []types.Resource{routeConfig(listenerName, vhost("h", []string{"*"}, rw, exact, re, direct, hdr, routeTo("/", helloV1)))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	if r := g.do(t, "any", "/api/things?q=1"); r.body != "v1" {
		t.Fatalf("rewrite route: %d %q", r.status, r.body)
	}
	last := b1.lastRequest()
	if last.URL.Path != "/v1/things" || last.URL.RawQuery != "q=1" || last.Host != "internal.example" {
		t.Errorf("upstream saw path %q query %q host %q", last.URL.Path, last.URL.RawQuery, last.Host)
	}
	if r := g.do(t, "any", "/exact"); r.body != "v2" {
		t.Errorf("path match: %q", r.body)
	}
	if r := g.do(t, "any", "/exact/no"); r.body != "v1" {
		t.Errorf("path match must be exact: %q", r.body)
	}
	if r := g.do(t, "any", "/re/42"); r.body != "v2" {
		t.Errorf("regex match: %q", r.body)
	}
	if r := g.do(t, "any", "/direct"); r.status != 418 || r.body != "teapot" {
		t.Errorf("direct response: %d %q", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", g.url(t, "/"), nil)
	req.Header.Set("X-Canary", "yes")
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "v2" {
		t.Errorf("header match: %q", body)
	}
	if r := g.do(t, "any", "/other"); r.body != "v1" {
		t.Errorf("fallthrough: %q", r.body)
	}
}

func TestNoHealthyUpstream(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	unhealthy := cla(helloV2, b2.addr())
	unhealthy.Endpoints[0].LbEndpoints[0].HealthStatus = corev3.HealthStatus_UNHEALTHY
	c.endpoints = []types.Resource{&endpointv3.ClusterLoadAssignment{ClusterName: helloV1}, unhealthy}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	for _, host := range []string{"tag-hello.default.localhost", "a.wild.localhost"} {
		r := g.do(t, host, "/")
		if r.status != http.StatusServiceUnavailable || r.body != "no healthy upstream" {
			t.Errorf("%s: got %d %q, want 503 \"no healthy upstream\"", host, r.status, r.body)
		}
	}
	if got := g.stat(t, "cluster."+helloV2+".membership_healthy"); got != 0 {
		t.Errorf("membership_healthy = %d", got)
	}
	if got := g.stat(t, "cluster."+helloV2+".membership_total"); got != 1 {
		t.Errorf("membership_total = %d", got)
	}
}

func TestTimeout(t *testing.T) {
	slow := newBackend(t, "slow", false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, slow, b2)
	rt := routeTo("/", helloV1)
	rt.GetRoute().Timeout = durationpb.New(200 * time.Millisecond)
	c.routes = []types.Resource{routeConfig(listenerName, vhost("h", []string{"*"}, rt))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	start := time.Now()
	r := g.do(t, "x", "/")
	if r.status != http.StatusGatewayTimeout || r.body != "upstream request timeout" {
		t.Errorf("got %d %q, want 504 \"upstream request timeout\"", r.status, r.body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %s", d)
	}
	if got := g.stat(t, "cluster."+helloV1+".upstream_rq_timeout"); got != 1 {
		t.Errorf("upstream_rq_timeout = %d", got)
	}
	if got := g.stat(t, "cluster."+helloV1+".upstream_rq_504"); got != 1 {
		t.Errorf("upstream_rq_504 = %d", got)
	}
}

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestConnectFailureRetry(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	dead := deadAddr(t)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	retry := routeTo("/retry", helloV1)
	retry.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream", NumRetries: wrapperspb.UInt32(2)}
	c.routes = []types.Resource{routeConfig(listenerName, vhost("h", []string{"*"}, retry, routeTo("/", helloV2)))}
	c.endpoints = []types.Resource{cla(helloV1, dead, b1.addr()), cla(helloV2, dead)}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	for i := 0; i < 10; i++ {
		r := g.do(t, "x", "/retry")
		if r.status != 200 || r.body != "v1" {
			t.Fatalf("request %d: got %d %q, want the live endpoint", i, r.status, r.body)
		}
	}
	if g.stat(t, "cluster."+helloV1+".upstream_cx_connect_fail") == 0 || g.stat(t, "cluster."+helloV1+".upstream_rq_retry") == 0 {
		t.Errorf("expected connect failures and retries: connect_fail=%d retry=%d",
			g.stat(t, "cluster."+helloV1+".upstream_cx_connect_fail"), g.stat(t, "cluster."+helloV1+".upstream_rq_retry"))
	}
	r := g.do(t, "x", "/")
	want := "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	if r.status != http.StatusServiceUnavailable || r.body != want {
		t.Errorf("dead-only cluster: got %d %q", r.status, r.body)
	}
}

func TestRetryReplaysBody(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	flaky := newBackend(t, "flaky", false, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write(b)
	})
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, flaky, b2)
	rt := routeTo("/", helloV1)
	rt.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(1)}
	c.routes = []types.Resource{routeConfig(listenerName, vhost("h", []string{"*"}, rt))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	resp, err := g.client.Post(g.url(t, "/"), "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "payload" {
		t.Errorf("got %d %q, want the retried request's echoed body", resp.StatusCode, body)
	}
}

func TestCircuitBreakerOverflow(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	blocking := newBackend(t, "blocking", false, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.Write([]byte("done"))
	})
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, blocking, b2)
	c.clusters = []types.Resource{edsCluster(helloV1, withMaxRequests(1)), edsCluster(helloV2)}
	c.routes = []types.Resource{routeConfig(listenerName, vhost("h", []string{"*"}, routeTo("/", helloV1)))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	first := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", g.url(t, "/"), nil)
		resp, err := g.client.Do(req)
		if err != nil {
			first <- result{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-entered
	r := g.do(t, "x", "/")
	close(release)
	want := "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	if r.status != 503 || r.body != want {
		t.Errorf("overflow: got %d %q", r.status, r.body)
	}
	if f := <-first; f.status != 200 || f.body != "done" {
		t.Errorf("first request: %d %q", f.status, f.body)
	}
	if got := g.stat(t, "cluster."+helloV1+".upstream_rq_pending_overflow"); got != 1 {
		t.Errorf("upstream_rq_pending_overflow = %d", got)
	}
}

func TestNACKKeepsOldConfig(t *testing.T) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) {
			b1 := newBackend(t, "v1", false, nil)
			b2 := newBackend(t, "v2", false, nil)
			x := startXDS(t)
			x.set(t, baseConfig(t, b1, b2))
			g := startGateway(t, x, delta)
			g.waitReady(t)

			// A route configuration failing ValidateAll (virtual host without domains).
			bad := baseConfig(t, b1, b2)
			bad.routes = []types.Resource{routeConfig(listenerName, vhost("bad", nil, routeTo("/", helloV2)))}
			x.set(t, bad)
			eventually(t, 5*time.Second, func() bool {
				for _, n := range x.nackList() {
					if strings.HasPrefix(n, "type.googleapis.com/envoy.config.route.v3.RouteConfiguration") && strings.Contains(n, "Domains") {
						return true
					}
				}
				return false
			}, "RDS NACK with the validation error")
			if r := g.do(t, "tag-hello.default.localhost", "/"); r.status != 200 || r.body != "v1" {
				t.Errorf("old config no longer served after NACK: %d %q", r.status, r.body)
			}
			if g.stat(t, "http.skiff-http.rds.skiff-http.update_rejected") == 0 {
				t.Error("rds update_rejected not counted")
			}

			// A listener with an unknown required HTTP filter.
			unknown := baseConfig(t, b1, b2)
			unknownFilter := &hcmv3.HttpFilter{Name: "skiff.unknown", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &structpb.Struct{})}}
			unknown.listeners = []types.Resource{httpListener(t, listenerName, func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append([]*hcmv3.HttpFilter{unknownFilter}, h.HttpFilters...)
			})}
			x.set(t, unknown)
			eventually(t, 5*time.Second, func() bool {
				for _, n := range x.nackList() {
					if strings.HasPrefix(n, "type.googleapis.com/envoy.config.listener.v3.Listener") && strings.Contains(n, "unknown filter type") {
						return true
					}
				}
				return false
			}, "LDS NACK for the unknown filter")
			if g.stat(t, "listener_manager.lds.update_rejected") == 0 {
				t.Error("lds update_rejected not counted")
			}
			// The same filter marked optional is accepted.
			optional := baseConfig(t, b1, b2)
			optionalFilter := &hcmv3.HttpFilter{Name: "skiff.unknown", IsOptional: true, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &structpb.Struct{})}}
			optional.listeners = []types.Resource{httpListener(t, listenerName, func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append([]*hcmv3.HttpFilter{optionalFilter}, h.HttpFilters...)
				h.StatPrefix = "renamed"
			})}
			x.set(t, optional)
			eventually(t, 5*time.Second, func() bool {
				g.do(t, "tag-hello.default.localhost", "/")
				return g.stat(t, "http.renamed.downstream_rq_total") > 0
			}, "listener update with optional filter")
		})
	}
}

func TestH2C(t *testing.T) {
	b1 := newBackend(t, "v1", true, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	c.clusters = []types.Resource{edsCluster(helloV1, withH2()), edsCluster(helloV2)}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	h2 := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	req, _ := http.NewRequest("GET", g.url(t, "/"), nil)
	req.Host = "tag-hello.default.localhost"
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || string(body) != "v1" {
		t.Errorf("h2c downstream: proto %s body %q", resp.Proto, body)
	}
	if got := resp.Header.Get("X-Backend-Proto"); got != "HTTP/2.0" {
		t.Errorf("upstream protocol %q, want HTTP/2.0 (h2c)", got)
	}
	// HTTP/1.1 downstream to the same h2c cluster, and h2c downstream to an HTTP/1.1 cluster.
	if r := g.do(t, "tag-hello.default.localhost", "/"); r.header.Get("X-Backend-Proto") != "HTTP/2.0" {
		t.Errorf("h1 downstream to h2 cluster: upstream proto %q", r.header.Get("X-Backend-Proto"))
	}
	if r := g.doWith(t, h2, "a.wild.localhost", "/"); r.body != "v2" || r.header.Get("X-Backend-Proto") != "HTTP/1.1" {
		t.Errorf("h2c downstream to h1 cluster: %q %q", r.body, r.header.Get("X-Backend-Proto"))
	}
	if g.stat(t, "http.skiff-http.downstream_rq_http2_total") < 2 {
		t.Error("downstream_rq_http2_total not counted")
	}
}

func TestStatsAndAdmin(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	x.set(t, baseConfig(t, b1, b2))
	g := startGateway(t, x, false)
	g.waitReady(t)
	for i := 0; i < 3; i++ {
		g.do(t, "tag-hello.default.localhost", "/")
	}
	g.do(t, "nope", "/")
	// upstream_rq_completed is counted when the body is done; wait for it.
	eventually(t, 5*time.Second, func() bool { return g.stat(t, "cluster."+helloV1+".upstream_rq_active") == 0 }, "requests complete")

	x.mu.Lock()
	node := x.node
	x.mu.Unlock()
	if node.GetId() != nodeID || node.GetCluster() != "skiff" || node.GetUserAgentName() != "skiff-gateway" {
		t.Errorf("first request node = %v", node)
	}

	text := g.admin(t, "/stats")
	for _, want := range []string{
		"cluster.default/hello-00001.upstream_rq_total: 3\n",
		"cluster.default/hello-00001.upstream_rq_200: 3\n",
		"cluster.default/hello-00001.upstream_rq_2xx: 3\n",
		"cluster.default/hello-00001.upstream_rq_completed: 3\n",
		"cluster.default/hello-00001.upstream_rq_active: 0\n",
		"cluster.default/hello-00001.membership_healthy: 1\n",
		"http.skiff-http.downstream_rq_total: 4\n",
		"http.skiff-http.downstream_rq_2xx: 3\n",
		"http.skiff-http.downstream_rq_4xx: 1\n",
		"http.skiff-http.no_route: 1\n",
		"control_plane.connected_state: 1\n",
		"cluster_manager.cds.update_success: 1\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/stats missing %q", want)
		}
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i-1] > lines[i] {
			t.Errorf("/stats not sorted: %q before %q", lines[i-1], lines[i])
			break
		}
	}
	filtered := g.admin(t, "/stats?filter=upstream_rq_total")
	for _, l := range strings.Split(strings.TrimSpace(filtered), "\n") {
		if !strings.Contains(l, "upstream_rq_total") {
			t.Errorf("filter let through %q", l)
		}
	}

	prom := g.admin(t, "/stats/prometheus")
	for _, want := range []string{
		"# TYPE envoy_cluster_upstream_rq_total counter\n",
		`envoy_cluster_upstream_rq_total{envoy_cluster_name="default/hello-00001"} 3` + "\n",
		`envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="default/hello-00001"} 3` + "\n",
		`envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="default/hello-00001"} 3` + "\n",
		"# TYPE envoy_cluster_upstream_rq_active gauge\n",
		`envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="skiff-http"} 4` + "\n",
		"envoy_control_plane_connected_state 1\n",
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("/stats/prometheus missing %q", want)
		}
	}
	if got := g.admin(t, "/ready"); got != "LIVE\n" {
		t.Errorf("/ready = %q", got)
	}
	dump := g.admin(t, "/config_dump")
	for _, want := range []string{"envoy.admin.v3.ListenersConfigDump", "default/hello-00001", "tag-hello.default.localhost"} {
		if !strings.Contains(dump, want) {
			t.Errorf("/config_dump missing %q", want)
		}
	}
	clusters := g.admin(t, "/clusters")
	if !strings.Contains(clusters, "default/hello-00001::"+b1.addr()+"::rq_total::3") {
		t.Errorf("/clusters:\n%s", clusters)
	}
}

func TestReconnectKeepsServing(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	x.set(t, baseConfig(t, b1, b2))
	g := startGateway(t, x, false)
	g.waitReady(t)

	x.grpc.Stop()
	eventually(t, 5*time.Second, func() bool { return g.stat(t, "control_plane.connected_state") == 0 }, "disconnect noticed")
	if r := g.do(t, "tag-hello.default.localhost", "/"); r.body != "v1" {
		t.Fatalf("not serving last config while disconnected: %d %q", r.status, r.body)
	}
	// Restart the control plane on the same address with the same cache and a new snapshot.
	var ln net.Listener
	eventually(t, 5*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", x.addr)
		return err == nil
	}, "rebinding %s", x.addr)
	x2 := startXDSOn(t, ln, x.cache)
	x2.version = x.version
	c := baseConfig(t, b1, b2)
	c.routes = []types.Resource{routeConfig(listenerName, vhost("tag-hello", []string{"tag-hello.default.localhost"}, routeTo("/", helloV2)))}
	x2.set(t, c)
	eventually(t, 15*time.Second, func() bool { return g.do(t, "tag-hello.default.localhost", "/").body == "v2" }, "update after reconnect")
	if g.stat(t, "control_plane.connected_state") != 1 {
		t.Error("connected_state not 1 after reconnect")
	}
}
