package gateway_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/gateway/filter"
)

// tagFilter is a test HTTP filter: it stamps the request with the route's
// skiff revision metadata.
type tagFilter struct{}

func (tagFilter) ConfigTypes() []string {
	return []string{"type.googleapis.com/google.protobuf.Struct"}
}

func (tagFilter) New(_ filter.BuildContext, name string, _ *anypb.Any) (filter.Filter, error) {
	return tagFilter{}, nil
}

func (tagFilter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ri, ok := filter.RouteFromContext(r.Context()); ok {
			rev := ri.Metadata.GetFilterMetadata()["skiff"].GetFields()["revision"].GetStringValue()
			r.Header.Set("X-Skiff-Revision", rev)
			r.Header.Set("X-Skiff-Cluster", ri.Cluster)
		}
		next.ServeHTTP(w, r)
	})
}

func TestHTTPFilterPerRouteEnable(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	c.listeners = []types.Resource{httpListener(t, listenerName, func(h *hcmv3.HttpConnectionManager) {
		f := &hcmv3.HttpFilter{Name: "skiff.tag", Disabled: true, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &structpb.Struct{})}}
		h.HttpFilters = append([]*hcmv3.HttpFilter{f}, h.HttpFilters...)
	})}
	enabled := routeTo("/on", helloV1)
	enabled.TypedPerFilterConfig = map[string]*anypb.Any{"skiff.tag": mustAny(t, &routev3.FilterConfig{})}
	c.routes = []types.Resource{routeConfig(listenerName, vhost("h", []string{"*"}, enabled, routeTo("/", helloV1)))}
	x.set(t, c)
	gw := startGatewayWith(t, x, tagFilter{})
	gw.waitReady(t)

	gw.do(t, "x", "/on")
	if got := b1.lastRequest().Header.Get("X-Skiff-Revision"); got != helloV1 {
		t.Errorf("filter enabled per route: revision header %q", got)
	}
	gw.do(t, "x", "/off")
	if got := b1.lastRequest().Header.Get("X-Skiff-Revision"); got != "" {
		t.Errorf("filter disabled by default ran: %q", got)
	}
}

func TestPerTryTimeoutRetry(t *testing.T) {
	calls := make(chan struct{}, 10)
	slowFirst := newBackend(t, "v1", false, func(w http.ResponseWriter, r *http.Request) {
		calls <- struct{}{}
		if len(calls) == 1 {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.Write([]byte("second"))
	})
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, slowFirst, b2)
	rt := routeTo("/", helloV1)
	rt.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(1), PerTryTimeout: durationpb.New(100 * time.Millisecond)}
	c.routes = []types.Resource{routeConfig(listenerName, vhost("h", []string{"*"}, rt))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)
	if r := g.do(t, "x", "/"); r.status != 200 || r.body != "second" {
		t.Errorf("got %d %q, want the retried attempt's answer", r.status, r.body)
	}
	if got := g.stat(t, "cluster."+helloV1+".upstream_rq_per_try_timeout"); got != 1 {
		t.Errorf("upstream_rq_per_try_timeout = %d", got)
	}
}

// Envoy's per_try_idle_timeout (Knative's idleTimeoutSeconds): an upstream silent for
// longer than it before answering gets 504 (UT); one that stalls after its response
// started has the response cut; one that keeps sending, however slowly, finishes.
func TestPerTryIdleTimeout(t *testing.T) {
	b := newBackend(t, "v1", false, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent":
			<-r.Context().Done()
		case "/stall":
			w.Write([]byte("part"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/trickle":
			for i := 0; i < 6; i++ {
				w.Write([]byte{'a' + byte(i)})
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	x := startXDS(t)
	c := baseConfig(t, b, newBackend(t, "v2", false, nil))
	rt := routeTo("/", helloV1)
	rt.GetRoute().RetryPolicy = &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(0), PerTryIdleTimeout: durationpb.New(300 * time.Millisecond)}
	c.routes = []types.Resource{routeConfig(listenerName, vhost("h", []string{"*"}, rt))}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	if r := g.do(t, "x", "/silent"); r.status != http.StatusGatewayTimeout || r.body != "upstream request timeout" {
		t.Errorf("silent upstream: %d %q, want 504 upstream request timeout", r.status, r.body)
	}
	if got := g.stat(t, "cluster."+helloV1+".upstream_rq_per_try_idle_timeout"); got != 1 {
		t.Errorf("upstream_rq_per_try_idle_timeout = %d, want 1", got)
	}
	if r := g.do(t, "x", "/trickle"); r.status != 200 || r.body != "abcdef" {
		t.Errorf("trickling upstream: %d %q, want 200 abcdef", r.status, r.body)
	}

	req, _ := http.NewRequest(http.MethodGet, g.url(t, "/stall"), nil)
	req.Host = "x"
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // returns once the gateway cuts the response
	if resp.StatusCode != 200 || string(body) != "part" || err == nil {
		t.Errorf("stalled upstream: %d %q, %v; want 200, \"part\" and then an error", resp.StatusCode, body, err)
	}
}
