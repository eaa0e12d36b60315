package reconciler

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/domains"
)

// TestMarkRouteURLs tests the status step that reports a Route's URLs: http for cluster-local
// targets, the certificate's scheme for external hosts (the cluster's default scheme without
// one), as Knative's route reconciler fills status.url and status.traffic[].url
// (knative/serving pkg/reconciler/route/route_test.go, TestReconcile "cluster local" and the
// external-domain-tls cases).
func TestMarkRouteURLs(t *testing.T) {
	route := &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"}}
	ext := func(host string) targetNames {
		return targetNames{visibility: domains.ExternalIP, external: domains.Domains{Primary: host}, local: domains.Domains{Primary: "local-" + host}}
	}
	names := map[string]targetNames{
		"":       ext("r.ns.example.com"),
		"canary": ext("canary-r.ns.example.com"),
		"local":  {visibility: domains.ClusterLocal, local: domains.Domains{Primary: "local-r.ns.svc.cluster.local"}},
	}
	targets := []servingv1.TrafficTarget{{Tag: "canary"}, {Tag: "local"}}
	tls := &hostTLS{scheme: map[string]string{"r.ns.example.com": "https"}}
	var st servingv1.RouteStatus
	markRouteURLs(&st, route, targets, names, tls, "http")
	if st.URL != "https://r.ns.example.com" {
		t.Errorf("url %q, want the certificate's https", st.URL)
	}
	if st.Address == nil || st.Address.URL != "http://r.ns.svc.cluster.local" {
		t.Errorf("address %+v, want http://r.ns.svc.cluster.local", st.Address)
	}
	want := []string{"http://canary-r.ns.example.com", "http://local-r.ns.svc.cluster.local"}
	for i, tt := range st.Traffic {
		if tt.URL != want[i] {
			t.Errorf("traffic[%d].url %q, want %q", i, tt.URL, want[i])
		}
	}
	if len(st.Traffic) != 2 {
		t.Fatalf("traffic %+v, want two targets", st.Traffic)
	}
}
