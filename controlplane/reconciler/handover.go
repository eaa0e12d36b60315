package reconciler

import (
	"reflect"
	"slices"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// routeServed is what a Route's status said before a reconcile: whether the proxies served it
// (IngressReady=True) at that generation, URL and traffic.
type routeServed struct {
	ready      bool
	generation int64
	url        string
	traffic    []servingv1.TrafficTarget
}

func routeServedBefore(r *servingv1.Route) routeServed {
	c := r.Status.GetCondition(servingv1.RouteConditionIngressReady)
	return routeServed{
		ready:      c != nil && c.Status == duck.True,
		generation: r.Status.ObservedGeneration,
		url:        r.Status.URL,
		traffic:    slices.Clone(r.Status.Traffic),
	}
}

// unchanged reports whether r, reconciled again, is what the proxies already served: same
// generation, URL and resolved traffic as when it was IngressReady=True. Then the proxies'
// configuration already carries it, and a proxy not yet ACKing this process's xDS (a new
// leader's, before the proxies reconnect to it) does not make it not ready: the Route stays
// Ready through a controller handover, as Knative's Route keeps its Ingress's status across
// controller restarts.
func (p routeServed) unchanged(r *servingv1.Route) bool {
	return p.ready && p.generation == r.Generation && p.url == r.Status.URL && reflect.DeepEqual(p.traffic, r.Status.Traffic)
}
