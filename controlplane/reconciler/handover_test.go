package reconciler

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// TestRouteServedUnchanged: a Route keeps IngressReady=True while the proxies have not ACKed
// this process's xDS (a new leader) only if nothing the proxies serve of it changed (e2e/kube
// TestLeaderKilledUnderLoad shows the handover); any change waits for the proxies again.
func TestRouteServedUnchanged(t *testing.T) {
	served := func() *servingv1.Route {
		r := &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default", Generation: 2}}
		r.Status.ObservedGeneration = 2
		r.Status.URL = "http://r.default.example.com"
		r.Status.Traffic = []servingv1.TrafficTarget{{RevisionName: "r-00001", Percent: ptr[int64](100)}}
		r.Status.MarkTrue(servingv1.RouteConditionIngressReady, time.Now())
		return r
	}
	for _, tc := range []struct {
		name   string
		before func(*servingv1.Route)
		after  func(*servingv1.Route)
		want   bool
	}{
		{name: "same generation, URL and traffic", want: true},
		{name: "new generation", after: func(r *servingv1.Route) { r.Generation = 3 }},
		{name: "other traffic", after: func(r *servingv1.Route) {
			r.Status.Traffic = []servingv1.TrafficTarget{{RevisionName: "r-00002", Percent: ptr[int64](100)}}
		}},
		{name: "other URL", after: func(r *servingv1.Route) { r.Status.URL = "https://r.default.example.com" }},
		{name: "not served before", before: func(r *servingv1.Route) {
			r.Status.MarkUnknown(servingv1.RouteConditionIngressReady, "Uninitialized", "Waiting for the proxy to accept the route.", time.Now())
		}},
		{name: "rejected before", before: func(r *servingv1.Route) {
			r.Status.MarkFalse(servingv1.RouteConditionIngressReady, ReasonProxyRejected, "nack", time.Now())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := served()
			if tc.before != nil {
				tc.before(r)
			}
			before := routeServedBefore(r)
			// The reconcile writes the status anew (resolveTraffic's targets are new values).
			r.Status.Traffic = []servingv1.TrafficTarget{{RevisionName: "r-00001", Percent: ptr[int64](100)}}
			if tc.after != nil {
				tc.after(r)
			}
			if got := before.unchanged(r); got != tc.want {
				t.Errorf("unchanged = %v, want %v", got, tc.want)
			}
		})
	}
}
