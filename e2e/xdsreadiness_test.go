package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// nackingClient is an xDS client that subscribes like a proxy and NACKs every response
// with message; the function returned ends its stream.
func nackingClient(t *testing.T, addr string, node *corev3.Node, message string) func() {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string][]string{resourcev3.RouteType: {xds.RouteConfigName}}
	for _, typ := range []string{resourcev3.ListenerType, resourcev3.ClusterType, resourcev3.RouteType} {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typ, ResourceNames: names[typ]}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			// Claiming to keep the rejected version, so the server does not resend it at once.
			if stream.Send(&discoveryv3.DiscoveryRequest{
				Node: node, TypeUrl: resp.GetTypeUrl(), ResourceNames: names[resp.GetTypeUrl()],
				VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
				ErrorDetail: &rpcstatus.Status{Code: 3, Message: message},
			}) != nil {
				return
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			conn.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// service reads a Knative Service (zero while it does not exist).
func (s *skiff) service(name string) servingv1.Service {
	s.t.Helper()
	var svc servingv1.Service
	raw, err := s.api.Get(context.Background(), api.LookupKind("ksvc"), "default", name)
	if err != nil {
		return svc
	}
	if err := json.Unmarshal(raw, &svc); err != nil {
		s.t.Fatal(err)
	}
	return svc
}

// route reads a Route (zero while it does not exist).
func (s *skiff) route(name string) servingv1.Route {
	s.t.Helper()
	var r servingv1.Route
	raw, err := s.api.Get(context.Background(), api.LookupKind("route"), "default", name)
	if err != nil {
		return r
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// Readiness waits only for the proxies meant to serve (node cluster skiff-gateway here):
// an xDS client of another node cluster that NACKs everything does not keep a new
// Service from becoming Ready. A serving proxy's NACK is reported on the Route
// (IngressReady=False, ProxyRejected, with the proxy's error_detail) and on the Service,
// until that proxy goes away. (Issue 13, item 5.)
func TestRogueXDSClientDoesNotBlockReady(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir())
	xdsAddr := s.cp.XDSAddr().String()
	nackingClient(t, xdsAddr, &corev3.Node{Id: "intruder", Cluster: "not-a-gateway"}, "intruder: rejected")

	s.apply(serviceYAML("first", "first", ""))
	s.waitReady("ksvc", "first", nil)
	if code, r, body := s.get("first.default.localhost", "/"); code != http.StatusOK || r.Revision != "first-00001" {
		t.Fatalf("GET first: %d %s", code, body)
	}

	// A proxy of the serving node cluster rejects the configuration.
	closeBroken := nackingClient(t, xdsAddr, &corev3.Node{Id: "broken-envoy", Cluster: "skiff-gateway"}, "Proto constraint validation failed: bad route")
	s.apply(serviceYAML("second", "second", ""))
	var cond *duck.Condition
	eventually(t, 90*time.Second, "route second IngressReady=False from the NACK", func() bool {
		r := s.route("second")
		cond = r.Status.GetCondition(servingv1.RouteConditionIngressReady)
		return cond != nil && cond.Status == duck.False
	})
	if cond.Reason != reconciler.ReasonProxyRejected || !strings.Contains(cond.Message, `proxy "broken-envoy"`) ||
		!strings.Contains(cond.Message, "Proto constraint validation failed: bad route") {
		t.Errorf("IngressReady = %+v, want reason %s naming broken-envoy and its error", cond, reconciler.ReasonProxyRejected)
	}
	if r := s.route("first"); r.Status.GetCondition(duck.ConditionReady).Status != duck.True {
		t.Errorf("route first, served before the NACK, is %+v", r.Status.GetCondition(duck.ConditionReady))
	}
	eventually(t, 30*time.Second, "ksvc second Ready=False with the NACK", func() bool {
		svc := s.service("second")
		c := svc.Status.GetCondition(duck.ConditionReady)
		return c != nil && c.Status == duck.False && c.Reason == reconciler.ReasonProxyRejected && strings.Contains(c.Message, `proxy "broken-envoy"`)
	})
	// The rejecting proxy goes away: the Route and the Service are Ready with the gateway's
	// ACK. (Not waitReady, which gives up on the Ready=False the Service may still show.)
	closeBroken()
	eventually(t, 90*time.Second, "ksvc second Ready once the rejecting proxy is gone", func() bool {
		svc := s.service("second")
		c := svc.Status.GetCondition(duck.ConditionReady)
		return c != nil && c.Status == duck.True
	})
	if code, r, body := s.get("second.default.localhost", "/"); code != http.StatusOK || r.Revision != "second-00001" {
		t.Fatalf("GET second: %d %s", code, body)
	}
}
