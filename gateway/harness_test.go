package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/gateway"
	"github.com/skiff-dev/skiff/gateway/filter"
)

const (
	nodeID       = "test-node"
	listenerName = "skiff-http"
)

// eventually polls cond until it is true or the deadline passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, fmt.Sprintf(what, args...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// xdsServer is a go-control-plane ADS server on loopback.
type xdsServer struct {
	addr    string
	cache   cachev3.SnapshotCache
	grpc    *grpc.Server
	version int

	mu      sync.Mutex
	nacks   []string // "<type>: <message>"
	acks    map[string]string
	reqs    int
	deltas  int
	node    *corev3.Node
	lastReq map[string]*discoveryv3.DiscoveryRequest
}

func startXDS(t *testing.T) *xdsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startXDSOn(t, ln, nil)
}

func startXDSOn(t *testing.T, ln net.Listener, snapshotCache cachev3.SnapshotCache) *xdsServer {
	t.Helper()
	x := &xdsServer{addr: ln.Addr().String(), acks: map[string]string{}, lastReq: map[string]*discoveryv3.DiscoveryRequest{}}
	x.cache = snapshotCache
	if x.cache == nil {
		x.cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	}
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			x.mu.Lock()
			defer x.mu.Unlock()
			x.reqs++
			if x.node == nil {
				x.node = req.GetNode()
			}
			x.lastReq[req.GetTypeUrl()] = req
			if req.GetErrorDetail() != nil {
				x.nacks = append(x.nacks, req.GetTypeUrl()+": "+req.GetErrorDetail().GetMessage())
			} else if req.GetResponseNonce() != "" {
				x.acks[req.GetTypeUrl()] = req.GetVersionInfo()
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			x.mu.Lock()
			defer x.mu.Unlock()
			x.reqs++
			x.deltas++
			if req.GetErrorDetail() != nil {
				x.nacks = append(x.nacks, req.GetTypeUrl()+": "+req.GetErrorDetail().GetMessage())
			} else if req.GetResponseNonce() != "" {
				x.acks[req.GetTypeUrl()] = req.GetResponseNonce()
			}
			return nil
		},
	}
	srv := serverv3.NewServer(context.Background(), x.cache, cb)
	x.grpc = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(x.grpc, srv)
	go func() { _ = x.grpc.Serve(ln) }()
	t.Cleanup(x.grpc.Stop)
	return x
}

// deltaRequests returns how many incremental xDS requests the server saw.
func (x *xdsServer) deltaRequests() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.deltas
}

func (x *xdsServer) nackList() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.nacks...)
}

// config is a hand-built Skiff-style xDS configuration.
type config struct {
	listeners []types.Resource
	routes    []types.Resource
	clusters  []types.Resource
	endpoints []types.Resource
	secrets   []types.Resource
	scopes    []types.Resource
}

func (x *xdsServer) set(t *testing.T, c config) {
	t.Helper()
	x.version++
	snap, err := cachev3.NewSnapshot(strconv.Itoa(x.version), map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType:    c.listeners,
		resourcev3.RouteType:       c.routes,
		resourcev3.ClusterType:     c.clusters,
		resourcev3.EndpointType:    c.endpoints,
		resourcev3.SecretType:      c.secrets,
		resourcev3.ScopedRouteType: c.scopes,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		t.Fatal(err)
	}
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type listenerOpt func(*hcmv3.HttpConnectionManager)

func httpListener(t testing.TB, routeName string, opts ...listenerOpt) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:    listenerName,
		StripPortMode: &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeName,
			ConfigSource:    &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}},
	}
	for _, o := range opts {
		o(hcm)
	}
	return &listenerv3.Listener{
		Name: listenerName,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)},
		}}}},
	}
}

func skiffMeta(revision string) *corev3.Metadata {
	s, _ := structpb.NewStruct(map[string]any{"revision": revision})
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"skiff": s}}
}

func routeTo(prefix, cluster string) *routev3.Route {
	return &routev3.Route{
		Match:    &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action:   &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		Metadata: skiffMeta(cluster),
	}
}

func weightedRoute(prefix string, weights map[string]uint32) *routev3.Route {
	var wcs []*routev3.WeightedCluster_ClusterWeight
	for name, w := range weights {
		wcs = append(wcs, &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(w)})
	}
	return &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: wcs}}}},
	}
}

func vhost(name string, domains []string, routes ...*routev3.Route) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes}
}

func routeConfig(name string, vhs ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhs}
}

type clusterOpt func(*clusterv3.Cluster)

func withH2() clusterOpt {
	return func(c *clusterv3.Cluster) {
		po := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}}}
		a, _ := anypb.New(po)
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": a}
	}
}

func withMaxRequests(n uint32) clusterOpt {
	return func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(n)}}}
	}
}

func edsCluster(name string, opts ...clusterOpt) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
		ConnectTimeout: durationpb.New(time.Second),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func lbEndpoint(addr string, health corev3.HealthStatus) *endpointv3.LbEndpoint {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return &endpointv3.LbEndpoint{
		HealthStatus: health,
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
		}}}}},
	}
}

func cla(name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	var eps []*endpointv3.LbEndpoint
	for _, a := range addrs {
		eps = append(eps, lbEndpoint(a, corev3.HealthStatus_HEALTHY))
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}}
}

// backend is an HTTP server answering with its own identity.
type backend struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	last *http.Request
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

func (b *backend) lastRequest() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func newBackend(t *testing.T, name string, h2c bool, extra http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.last = r.Clone(context.Background())
		b.mu.Unlock()
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Backend-Proto", r.Proto)
		if extra != nil {
			extra(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, name)
	}))
	if h2c {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		b.srv.Config.Protocols = &p
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

// runGateway starts a gateway against x and waits until it is ready.
type runningGateway struct {
	gw     *gateway.Gateway
	client *http.Client
}

func startGateway(t *testing.T, x *xdsServer, delta bool) *runningGateway {
	t.Helper()
	return startGatewayOpts(t, x, delta, nil)
}

func startGatewayWith(t *testing.T, x *xdsServer, filters ...filter.Factory) *runningGateway {
	t.Helper()
	return startGatewayOpts(t, x, false, filters)
}

func startGatewayOpts(t *testing.T, x *xdsServer, delta bool, filters []filter.Factory, opts ...func(*gateway.Config)) *runningGateway {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("GATEWAY_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg := gateway.Config{
		ADSAddress:              x.addr,
		NodeID:                  nodeID,
		NodeCluster:             "skiff",
		AdminAddress:            "127.0.0.1:0",
		Delta:                   delta,
		Logger:                  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		ListenerAddressOverride: "127.0.0.1:0",
		DrainTimeout:            time.Second,
		HTTPFilters:             filters,
		// One on-disk cache for the package's tests: each Wasm module is
		// compiled once, not once per gateway (seconds under -race).
		WasmCacheDir: filepath.Join(wasmDir, "compiled"),
	}
	for _, o := range opts {
		o(&cfg)
	}
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway.Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &runningGateway{gw: gw, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (g *runningGateway) waitReady(t *testing.T) {
	t.Helper()
	// Generous: a listener with a Wasm filter compiles the module first
	// (seconds under -race on a busy machine).
	eventually(t, 60*time.Second, func() bool {
		_, ok := g.gw.ListenerAddr(listenerName)
		return ok && g.gw.Ready()
	}, "gateway ready")
}

func (g *runningGateway) url(t *testing.T, path string) string {
	t.Helper()
	a, ok := g.gw.ListenerAddr(listenerName)
	if !ok {
		t.Fatal("listener not bound")
	}
	return "http://" + a.String() + path
}

type result struct {
	status int
	body   string
	header http.Header
}

func (g *runningGateway) do(t *testing.T, host, path string) result {
	t.Helper()
	return g.doWith(t, g.client, host, path)
}

func (g *runningGateway) doWith(t *testing.T, c *http.Client, host, path string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.url(t, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", path, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return result{status: resp.StatusCode, body: string(b), header: resp.Header}
}

func (g *runningGateway) admin(t *testing.T, path string) string {
	t.Helper()
	resp, err := g.client.Get("http://" + g.gw.AdminAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (g *runningGateway) stat(t *testing.T, name string) int64 {
	t.Helper()
	v, _ := g.gw.Stats().Value(name)
	return v
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
