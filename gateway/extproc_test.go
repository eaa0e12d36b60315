package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
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
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	overridehostv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	ringhashv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	extProcFilterName  = "envoy.filters.http.ext_proc"
	extProcClusterName = "skiff-extproc"
	extProcStat        = "http." + listenerName + ".ext_proc."
)

// procServer is a tiny ext_proc server: handle answers the request_headers
// message (a nil response sends nothing; an error ends the stream with it).
// After answering it keeps the stream open until the gateway ends it, and
// reports each stream end on ended.
type procServer struct {
	extprocsvc.UnimplementedExternalProcessorServer
	addr   string
	handle func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error)
	ended  chan struct{}

	mu   sync.Mutex
	reqs []*extprocsvc.ProcessingRequest
}

func startProcServer(t *testing.T, handle func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error)) *procServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &procServer{addr: ln.Addr().String(), handle: handle, ended: make(chan struct{}, 100)}
	g := grpc.NewServer()
	extprocsvc.RegisterExternalProcessorServer(g, p)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return p
}

func (p *procServer) Process(stream extprocsvc.ExternalProcessor_ProcessServer) error {
	defer func() { p.ended <- struct{}{} }()
	req, err := stream.Recv()
	if err != nil {
		return nil
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, req)
	p.mu.Unlock()
	resp, err := p.handle(stream.Context(), req)
	if err != nil {
		return err
	}
	if resp != nil {
		if err := stream.Send(resp); err != nil {
			return nil
		}
	}
	for {
		if _, err := stream.Recv(); err != nil {
			return nil
		}
	}
}

func (p *procServer) requests() []*extprocsvc.ProcessingRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*extprocsvc.ProcessingRequest(nil), p.reqs...)
}

// waitEnded waits for n stream ends.
func (p *procServer) waitEnded(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-p.ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d ext_proc streams ended", i, n)
		}
	}
}

// continueWith answers CONTINUE with a header mutation and dynamic metadata.
func continueWith(set map[string]string, remove []string, dynamic map[string]any) *extprocsvc.ProcessingResponse {
	hm := &extprocsvc.HeaderMutation{RemoveHeaders: remove}
	for k, v := range set {
		hm.SetHeaders = append(hm.SetHeaders, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}})
	}
	resp := &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvc.HeadersResponse{
		Response: &extprocsvc.CommonResponse{HeaderMutation: hm},
	}}}
	if dynamic != nil {
		s, err := structpb.NewStruct(dynamic)
		if err != nil {
			panic(err)
		}
		resp.DynamicMetadata = s
	}
	return resp
}

// extProcConfig is Skiff's ext_proc filter configuration (the contract with extproc/).
func extProcConfig(failureModeAllow bool, timeout time.Duration) *extprocv3.ExternalProcessor {
	return &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: extProcClusterName}}},
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		RequestAttributes: []string{"xds.cluster_name", "xds.route_metadata"},
		FailureModeAllow:  failureModeAllow,
		MessageTimeout:    durationpb.New(timeout),
		MaxMessageTimeout: durationpb.New(timeout),
		MetadataOptions: &extprocv3.MetadataOptions{ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{
			Untyped: []string{"envoy.lb"},
		}},
	}
}

func withExtProc(t testing.TB, cfg *extprocv3.ExternalProcessor) listenerOpt {
	return func(h *hcmv3.HttpConnectionManager) {
		f := &hcmv3.HttpFilter{Name: extProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, cfg)}}
		h.HttpFilters = append([]*hcmv3.HttpFilter{f}, h.HttpFilters...)
	}
}

// staticCluster is a STATIC cluster with inline endpoints.
func staticCluster(name string, addrs []string, opts ...clusterOpt) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment:       cla(name, addrs...),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func extProcDisabled(t testing.TB) map[string]*anypb.Any {
	return map[string]*anypb.Any{extProcFilterName: mustAny(t, &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}})}
}

func withOverrideHost(fallback proto.Message) clusterOpt {
	return func(c *clusterv3.Cluster) {
		fb, _ := anypb.New(fallback)
		oh, _ := anypb.New(&overridehostv3.OverrideHost{
			OverrideHostSources: []*overridehostv3.OverrideHost_OverrideHostSource{{
				Metadata: &metadatav3.MetadataKey{Key: "envoy.lb", Path: []*metadatav3.MetadataKey_PathSegment{{
					Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "x-gateway-destination-endpoint"},
				}}},
			}},
			FallbackPolicy: &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
				TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "fallback", TypedConfig: fb},
			}}},
		})
		c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.override_host", TypedConfig: oh},
		}}}
	}
}

// extProcSetup is a gateway with the ext_proc filter in front of two
// revisions, the processor reachable through the skiff-extproc cluster.
func extProcSetup(t *testing.T, proc *procServer, cfg *extprocv3.ExternalProcessor, routes ...*routev3.Route) (*xdsServer, config) {
	t.Helper()
	x := startXDS(t)
	procAddr := deadAddr(t)
	if proc != nil {
		procAddr = proc.addr
	}
	c := config{
		listeners: []types.Resource{httpListener(t, listenerName, withExtProc(t, cfg))},
		routes:    []types.Resource{routeConfig(listenerName, vhost("all", []string{"*"}, routes...))},
		clusters:  []types.Resource{staticCluster(extProcClusterName, []string{procAddr}, withH2())},
	}
	return x, c
}

func TestExtProcContinueMutationAttributesAndStreamEnd(t *testing.T) {
	release := make(chan struct{})
	b1 := newBackend(t, "v1", false, func(w http.ResponseWriter, r *http.Request) {
		<-release // hold the response: the ext_proc stream must stay open meanwhile
		io.WriteString(w, "v1")
	})
	proc := startProcServer(t, func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		return continueWith(map[string]string{"x-extproc": "yes"}, []string{"x-remove-me"}, nil), nil
	})
	x, c := extProcSetup(t, proc, extProcConfig(false, 300*time.Second), routeTo("/", helloV1))
	c.clusters = append(c.clusters, edsCluster(helloV1))
	c.endpoints = []types.Resource{cla(helloV1, b1.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, g.url(t, "/path?q=1"), nil)
		req.Host = "hello.example.com"
		req.Header.Set("X-Remove-Me", "1")
		resp, err := g.client.Do(req)
		if err != nil {
			t.Errorf("request: %v", err)
			done <- result{}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	eventually(t, 5*time.Second, func() bool { return b1.lastRequest() != nil }, "request reached the backend")
	select {
	case <-proc.ended:
		t.Fatal("ext_proc stream ended before the HTTP request completed")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if res := <-done; res.status != 200 || res.body != "v1" {
		t.Fatalf("response = %d %q", res.status, res.body)
	}
	proc.waitEnded(t, 1)

	up := b1.lastRequest()
	if got := up.Header.Get("X-Extproc"); got != "yes" {
		t.Errorf("upstream x-extproc = %q", got)
	}
	if got := up.Header.Get("X-Remove-Me"); got != "" {
		t.Errorf("removed header reached upstream: %q", got)
	}
	reqs := proc.requests()
	if len(reqs) != 1 {
		t.Fatalf("processor saw %d requests", len(reqs))
	}
	hdrs := map[string]string{}
	for _, h := range reqs[0].GetRequestHeaders().GetHeaders().GetHeaders() {
		hdrs[h.GetKey()] = string(h.GetRawValue())
	}
	if hdrs[":authority"] != "hello.example.com" || hdrs[":path"] != "/path?q=1" || hdrs[":method"] != "GET" || hdrs["x-remove-me"] != "1" {
		t.Errorf("headers sent = %v", hdrs)
	}
	if !reqs[0].GetRequestHeaders().GetEndOfStream() {
		t.Error("GET without body: end_of_stream = false")
	}
	attrs := reqs[0].GetAttributes()["envoy.filters.http.ext_proc"].GetFields()
	if got := attrs["xds.cluster_name"].GetStringValue(); got != helloV1 {
		t.Errorf("xds.cluster_name = %q", got)
	}
	var md corev3.Metadata
	if err := prototext.Unmarshal([]byte(attrs["xds.route_metadata"].GetStringValue()), &md); err != nil {
		t.Fatalf("xds.route_metadata %q: %v", attrs["xds.route_metadata"].GetStringValue(), err)
	}
	if got := md.GetFilterMetadata()["skiff"].GetFields()["revision"].GetStringValue(); got != helloV1 {
		t.Errorf("route metadata revision = %q (metadata %v)", got, &md)
	}
	for name, want := range map[string]int64{"streams_started": 1, "stream_msgs_sent": 1, "stream_msgs_received": 1, "streams_closed": 1, "streams_failed": 0} {
		if got := g.stat(t, extProcStat+name); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

func TestExtProcImmediateResponse(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	proc := startProcServer(t, func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocsvc.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_TooManyRequests},
			Body:    []byte("slow down"),
			Headers: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "retry-after", RawValue: []byte("1")}}}},
			Details: "overloaded",
		}}}, nil
	})
	x, c := extProcSetup(t, proc, extProcConfig(false, time.Second), routeTo("/", helloV1))
	c.clusters = append(c.clusters, edsCluster(helloV1))
	c.endpoints = []types.Resource{cla(helloV1, b1.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	res := g.do(t, "x", "/")
	if res.status != http.StatusTooManyRequests || res.body != "slow down" || res.header.Get("Retry-After") != "1" {
		t.Fatalf("response = %d %q %v", res.status, res.body, res.header)
	}
	if b1.lastRequest() != nil {
		t.Error("immediate response was proxied")
	}
	proc.waitEnded(t, 1)
	if got := g.stat(t, extProcStat+"stream_msgs_received"); got != 1 {
		t.Errorf("stream_msgs_received = %d", got)
	}
}

func TestExtProcHeldRequestIsReleased(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	proc := startProcServer(t, func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		held <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return continueWith(nil, nil, nil), nil
	})
	x, c := extProcSetup(t, proc, extProcConfig(false, 300*time.Second), routeTo("/", helloV1))
	c.clusters = append(c.clusters, edsCluster(helloV1))
	c.endpoints = []types.Resource{cla(helloV1, b1.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	done := make(chan result, 1)
	go func() { done <- g.do(t, "x", "/") }()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("processor never saw the request")
	}
	time.Sleep(300 * time.Millisecond) // longer than Envoy's default 200ms message timeout
	if b1.lastRequest() != nil {
		t.Fatal("held request reached the backend")
	}
	select {
	case r := <-done:
		t.Fatalf("held request answered early: %d", r.status)
	default:
	}
	close(release)
	select {
	case r := <-done:
		if r.status != 200 || r.body != "v1" {
			t.Fatalf("released request = %d %q", r.status, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("released request never completed")
	}
	if got := g.stat(t, extProcStat+"message_timeouts"); got != 0 {
		t.Errorf("message_timeouts = %d", got)
	}
}

func TestExtProcDynamicMetadataPinsEndpoint(t *testing.T) {
	bs := []*backend{newBackend(t, "a", false, nil), newBackend(t, "b", false, nil), newBackend(t, "c", false, nil)}
	var mu sync.Mutex
	pin := bs[1].addr()
	proc := startProcServer(t, func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		return continueWith(nil, nil, map[string]any{
			"envoy.lb": map[string]any{"x-gateway-destination-endpoint": pin},
			"other.ns": map[string]any{"ignored": true},
		}), nil
	})
	x, c := extProcSetup(t, proc, extProcConfig(false, time.Second), routeTo("/", helloV1))
	c.clusters = append(c.clusters, edsCluster(helloV1, withOverrideHost(&leastrequestv3.LeastRequest{})))
	c.endpoints = []types.Resource{cla(helloV1, bs[0].addr(), bs[1].addr(), bs[2].addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	for i := 0; i < 12; i++ {
		if r := g.do(t, "x", "/"); r.body != "b" {
			t.Fatalf("request %d went to %q, want the pinned endpoint b", i, r.body)
		}
	}
	// A pinned address that is not in the cluster falls back to least request.
	mu.Lock()
	pin = "127.0.0.1:1"
	mu.Unlock()
	seen := map[string]bool{}
	for i := 0; i < 30; i++ {
		r := g.do(t, "x", "/")
		if r.status != 200 {
			t.Fatalf("fallback request: %d %q", r.status, r.body)
		}
		seen[r.body] = true
	}
	if len(seen) < 2 {
		t.Errorf("fallback used only %v", seen)
	}
}

func TestExtProcDisabledPerRouteAndWeightedCluster(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	proc := startProcServer(t, func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		return continueWith(map[string]string{"x-extproc": "yes"}, nil, nil), nil
	})
	off := routeTo("/off", helloV1)
	off.TypedPerFilterConfig = extProcDisabled(t)
	split := weightedRoute("/", map[string]uint32{helloV1: 50, helloV2: 50})
	for _, wc := range split.GetRoute().GetWeightedClusters().GetClusters() {
		if wc.GetName() == helloV1 { // serve mode: only v2 (proxy mode) goes through ext_proc
			wc.TypedPerFilterConfig = extProcDisabled(t)
		}
	}
	x, c := extProcSetup(t, proc, extProcConfig(false, time.Second), off, split)
	c.clusters = append(c.clusters, edsCluster(helloV1), edsCluster(helloV2))
	c.endpoints = []types.Resource{cla(helloV1, b1.addr()), cla(helloV2, b2.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	for i := 0; i < 3; i++ {
		if r := g.do(t, "x", "/off"); r.body != "v1" {
			t.Fatalf("/off = %q", r.body)
		}
	}
	if n := len(proc.requests()); n != 0 {
		t.Fatalf("route with ext_proc disabled reached the processor %d times", n)
	}
	if b1.lastRequest().Header.Get("X-Extproc") != "" {
		t.Error("disabled route was processed")
	}
	v2 := 0
	for i := 0; i < 40; i++ {
		if g.do(t, "x", "/").body == "v2" {
			v2++
			if b2.lastRequest().Header.Get("X-Extproc") != "yes" {
				t.Error("proxy-mode revision request was not processed")
			}
		} else if b1.lastRequest().Header.Get("X-Extproc") != "" {
			t.Error("serve-mode revision request was processed")
		}
	}
	if v2 == 0 || v2 == 40 {
		t.Fatalf("weights not applied: %d/40 to v2", v2)
	}
	reqs := proc.requests()
	if len(reqs) != v2 {
		t.Fatalf("processor saw %d requests, want exactly the %d sent to v2", len(reqs), v2)
	}
	for _, r := range reqs {
		if got := r.GetAttributes()["envoy.filters.http.ext_proc"].GetFields()["xds.cluster_name"].GetStringValue(); got != helloV2 {
			t.Fatalf("processor saw cluster %q", got)
		}
	}
}

func TestExtProcProcessorDown(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run("failure_mode_allow="+strconv.FormatBool(allow), func(t *testing.T) {
			b1 := newBackend(t, "v1", false, nil)
			x, c := extProcSetup(t, nil, extProcConfig(allow, time.Second), routeTo("/", helloV1))
			c.clusters = append(c.clusters, edsCluster(helloV1))
			c.endpoints = []types.Resource{cla(helloV1, b1.addr())}
			x.set(t, c)
			g := startGateway(t, x, false)
			g.waitReady(t)
			r := g.do(t, "x", "/")
			if allow {
				if r.status != 200 || r.body != "v1" {
					t.Fatalf("failure_mode_allow: %d %q", r.status, r.body)
				}
				if got := g.stat(t, extProcStat+"failure_mode_allowed"); got != 1 {
					t.Errorf("failure_mode_allowed = %d", got)
				}
				return
			}
			if r.status != http.StatusInternalServerError || r.body != "" {
				t.Fatalf("processor down: %d %q, want 500 with no body", r.status, r.body)
			}
			if b1.lastRequest() != nil {
				t.Error("request reached the backend")
			}
			if got := g.stat(t, extProcStat+"streams_failed"); got != 1 {
				t.Errorf("streams_failed = %d", got)
			}
		})
	}
}

func TestExtProcMessageTimeout(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	proc := startProcServer(t, func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		return nil, nil // never answer
	})
	x, c := extProcSetup(t, proc, extProcConfig(false, 100*time.Millisecond), routeTo("/", helloV1))
	c.clusters = append(c.clusters, edsCluster(helloV1))
	c.endpoints = []types.Resource{cla(helloV1, b1.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	if r := g.do(t, "x", "/"); r.status != http.StatusGatewayTimeout {
		t.Fatalf("timeout: %d %q, want 504", r.status, r.body)
	}
	proc.waitEnded(t, 1)
	if got := g.stat(t, extProcStat+"message_timeouts"); got != 1 {
		t.Errorf("message_timeouts = %d", got)
	}
}

func TestExtProcStreamEndsWhenClientGoes(t *testing.T) {
	b1 := newBackend(t, "v1", false, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	proc := startProcServer(t, func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		return continueWith(nil, nil, nil), nil
	})
	x, c := extProcSetup(t, proc, extProcConfig(false, time.Second), routeTo("/", helloV1))
	c.clusters = append(c.clusters, edsCluster(helloV1))
	c.endpoints = []types.Resource{cla(helloV1, b1.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.url(t, "/"), nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := g.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	eventually(t, 5*time.Second, func() bool { return b1.lastRequest() != nil }, "request reached the backend")
	select {
	case <-proc.ended:
		t.Fatal("stream ended while the request was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	<-errc
	proc.waitEnded(t, 1)
}

func TestExtProcConfigNACKs(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	proc := startProcServer(t, func(ctx context.Context, req *extprocsvc.ProcessingRequest) (*extprocsvc.ProcessingResponse, error) {
		return continueWith(nil, nil, nil), nil
	})
	x, c := extProcSetup(t, proc, extProcConfig(false, time.Second), routeTo("/", helloV1))
	c.clusters = append(c.clusters, edsCluster(helloV1))
	c.endpoints = []types.Resource{cla(helloV1, b1.addr())}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	nackedWith := func(what, want string, mutate func(c *config)) {
		t.Helper()
		bad := c
		mutate(&bad)
		before := len(x.nackList())
		x.set(t, bad)
		eventually(t, 5*time.Second, func() bool {
			for _, n := range x.nackList()[before:] {
				if strings.Contains(n, want) {
					return true
				}
			}
			return false
		}, "NACK for %s mentioning %q", what, want)
	}
	nackedWith("response headers SEND", "response_header_mode", func(bad *config) {
		cfg := extProcConfig(false, time.Second)
		cfg.ProcessingMode.ResponseHeaderMode = extprocv3.ProcessingMode_SEND
		bad.listeners = []types.Resource{httpListener(t, listenerName, withExtProc(t, cfg))}
	})
	nackedWith("buffered body", "body modes", func(bad *config) {
		cfg := extProcConfig(false, time.Second)
		cfg.ProcessingMode.RequestBodyMode = extprocv3.ProcessingMode_BUFFERED
		bad.listeners = []types.Resource{httpListener(t, listenerName, withExtProc(t, cfg))}
	})
	nackedWith("per-route overrides", "overrides is not supported", func(bad *config) {
		rt := routeTo("/", helloV1)
		rt.TypedPerFilterConfig = map[string]*anypb.Any{extProcFilterName: mustAny(t, &extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{}}})}
		bad.routes = []types.Resource{routeConfig(listenerName, vhost("all", []string{"*"}, rt))}
	})
	nackedWith("only unsupported LB policies", "no supported policy", func(bad *config) {
		rh, _ := anypb.New(&ringhashv3.RingHash{})
		cl := edsCluster(helloV1)
		cl.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "ring_hash", TypedConfig: rh},
		}}}
		bad.clusters = []types.Resource{c.clusters[0], cl}
	})
	// The last good configuration is still served.
	if r := g.do(t, "x", "/"); r.status != 200 || r.body != "v1" {
		t.Fatalf("after NACKs: %d %q", r.status, r.body)
	}
}

// TestControlPlaneGoldenAccepted feeds the control plane's golden xDS (with
// the ext_proc filter, per-route ExtProcPerRoute and an override_host
// cluster) to the gateway: it must be ACKed, as Envoy would accept it.
func TestControlPlaneGoldenAccepted(t *testing.T) {
	load := func(file string, mk func() proto.Message) []types.Resource {
		b, err := os.ReadFile(filepath.Join("..", "controlplane", "xds", "testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		var out []types.Resource
		for _, r := range raw {
			m := mk()
			if err := protojson.Unmarshal(r, m); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, m)
		}
		return out
	}
	x := startXDS(t)
	x.set(t, config{
		listeners: load("listener.golden.json", func() proto.Message { return &listenerv3.Listener{} }),
		routes:    load("routes.golden.json", func() proto.Message { return &routev3.RouteConfiguration{} }),
		clusters:  load("clusters.golden.json", func() proto.Message { return &clusterv3.Cluster{} }),
		endpoints: load("endpoints.golden.json", func() proto.Message { return &endpointv3.ClusterLoadAssignment{} }),
	})
	g := startGateway(t, x, false)
	g.waitReady(t)
	if n := x.nackList(); len(n) > 0 {
		t.Fatalf("control plane xDS NACKed: %v", n)
	}
}
