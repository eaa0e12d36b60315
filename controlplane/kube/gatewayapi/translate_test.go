package gatewayapi

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/skiff-dev/skiff/controlplane/xds"
)

func TestIntersect(t *testing.T) {
	for _, tc := range []struct{ route, listener, want string }{
		{"a.example.com", "", "a.example.com"},
		{"A.example.com", "a.example.com", "a.example.com"},
		{"*.example.com", "a.example.com", "a.example.com"},
		{"a.example.com", "*.example.com", "a.example.com"},
		{"a.example.com", "b.example.com", ""},
		{"example.com", "*.example.com", ""},
		{"*.example.com", "*.example.com", "*.example.com"},
	} {
		if got := intersect(tc.route, tc.listener); got != tc.want {
			t.Errorf("intersect(%q, %q) = %q, want %q", tc.route, tc.listener, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// testWorld has Gateway default/gw (listener "web", HTTP, *.example.com, routes from
// namespaces labelled team=a) and Knative Service default/hello split over two revisions.
func testWorld() *world {
	sel := gwv1.NamespacesFromSelector
	return &world{
		gateways: map[string]*gwv1.Gateway{"default/gw": {
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gw"},
			Spec: gwv1.GatewaySpec{GatewayClassName: "skiff", Listeners: []gwv1.Listener{{
				Name: "web", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: ptr(gwv1.Hostname("*.example.com")),
				AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &sel,
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}},
			}}},
		}},
		namespaceLabels: map[string]map[string]string{"default": {"team": "a"}, "other": {"team": "b"}},
		backend: func(ns, name string) (Backend, bool) {
			if ns != "default" || name != "hello" {
				return Backend{}, false
			}
			return Backend{Clusters: []xds.WeightedCluster{{Name: "default/hello-00001", Weight: 90}, {Name: "default/hello-00002", Weight: 10}}}, true
		},
	}
}

func testRoute(ns string, mutate func(*gwv1.HTTPRoute)) *gwv1.HTTPRoute {
	r := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "r", Generation: 3},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", Namespace: ptr(gwv1.Namespace("default"))}}},
			Hostnames:       []gwv1.Hostname{"hello.example.com"},
			Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
				BackendObjectReference: gwv1.BackendObjectReference{Group: ptr(knativeGroup), Kind: ptr(gwv1.Kind("Service")), Name: "hello"},
				Weight:                 ptr(int32(2)),
			}}}}},
		},
	}
	if mutate != nil {
		mutate(r)
	}
	return r
}

func conditions(t *testing.T, res routeResult) (accepted, resolved metav1.Condition) {
	t.Helper()
	if len(res.parents) != 1 {
		t.Fatalf("%d parents, want 1", len(res.parents))
	}
	if res.parents[0].ControllerName != ControllerName {
		t.Errorf("controllerName %q", res.parents[0].ControllerName)
	}
	return res.parents[0].Conditions[0], res.parents[0].Conditions[1]
}

func TestTranslateRoute(t *testing.T) {
	w := testWorld()
	attached := map[string]int32{}
	res := w.translateRoute(testRoute("default", nil), attached)
	a, r := conditions(t, res)
	if a.Status != metav1.ConditionTrue || r.Status != metav1.ConditionTrue || a.ObservedGeneration != 3 {
		t.Errorf("conditions %+v %+v", a, r)
	}
	if attached["default/gw/web"] != 1 || len(res.hostnames) != 1 || res.hostnames[0] != "hello.example.com" {
		t.Errorf("attached %v, hostnames %v", attached, res.hostnames)
	}
	if cl := res.rules[0].rule.Clusters; len(cl) != 2 || cl[0].Weight != 180 || cl[1].Weight != 20 {
		t.Errorf("clusters %+v: want the Service's 90/10 split times the backendRef weight 2", cl)
	}
	twice := testRoute("default", func(r *gwv1.HTTPRoute) {
		r.Spec.Rules[0].BackendRefs = append(r.Spec.Rules[0].BackendRefs, r.Spec.Rules[0].BackendRefs[0])
	})
	if cl := w.translateRoute(twice, map[string]int32{}).rules[0].rule.Clusters; len(cl) != 2 || cl[0].Weight != 360 {
		t.Errorf("clusters %+v: a Service named twice must give one entry per revision, weights summed", cl)
	}

	for _, tc := range []struct {
		name         string
		ns           string
		mutate       func(*gwv1.HTTPRoute)
		cond, reason string
		message      string
	}{
		{"namespace not selected", "other", nil, "Accepted", "NotAllowedByListeners", `namespace "other"`},
		{"hostname outside the listener's", "default", func(r *gwv1.HTTPRoute) { r.Spec.Hostnames = []gwv1.Hostname{"hello.example.org"} },
			"Accepted", "NoMatchingListenerHostname", "No hostname"},
		{"no such listener", "default", func(r *gwv1.HTTPRoute) { r.Spec.ParentRefs[0].SectionName = ptr(gwv1.SectionName("tls")) },
			"Accepted", "NoMatchingParent", "sectionName"},
		{"query match", "default", func(r *gwv1.HTTPRoute) {
			r.Spec.Rules[0].Matches = []gwv1.HTTPRouteMatch{{QueryParams: []gwv1.HTTPQueryParamMatch{{Name: "a", Value: "b"}}}}
		}, "Accepted", "UnsupportedValue", "spec.rules[0].matches[0].queryParams"},
		{"missing Service", "default", func(r *gwv1.HTTPRoute) { r.Spec.Rules[0].BackendRefs[0].Name = "nope" },
			"ResolvedRefs", "BackendNotFound", "spec.rules[0].backendRefs[0]: backendRef to Knative Service default/nope: not found."},
		{"core Service", "default", func(r *gwv1.HTTPRoute) { r.Spec.Rules[0].BackendRefs[0].Group = nil },
			"ResolvedRefs", "InvalidKind", "Knative Services only"},
		{"other namespace without a ReferenceGrant", "default", func(r *gwv1.HTTPRoute) {
			r.Spec.Rules[0].BackendRefs[0].Namespace = ptr(gwv1.Namespace("other"))
		}, "ResolvedRefs", "RefNotPermitted", "no ReferenceGrant in namespace other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := w.translateRoute(testRoute(tc.ns, tc.mutate), map[string]int32{})
			a, r := conditions(t, res)
			c := a
			if tc.cond == "ResolvedRefs" {
				c = r
			}
			if c.Status != metav1.ConditionFalse || c.Reason != tc.reason || !strings.Contains(c.Message, tc.message) {
				t.Errorf("%s = %s/%s %q, want False/%s containing %q", tc.cond, c.Status, c.Reason, c.Message, tc.reason, tc.message)
			}
		})
	}

	// A missing backend leaves its rule with no traffic (answered 500), still attached.
	res = w.translateRoute(testRoute("default", func(r *gwv1.HTTPRoute) { r.Spec.Rules[0].BackendRefs[0].Name = "nope" }), map[string]int32{})
	if len(res.rules) != 1 || len(res.rules[0].rule.Clusters) != 0 {
		t.Errorf("rules %+v, want one rule without clusters", res.rules)
	}
	// A route to a Gateway Skiff does not serve gets no status from Skiff.
	if res := w.translateRoute(testRoute("default", func(r *gwv1.HTTPRoute) { r.Spec.ParentRefs[0].Name = "istio" }), map[string]int32{}); len(res.parents) != 0 {
		t.Errorf("parents %+v for a foreign Gateway", res.parents)
	}
}

func TestReferenceGrant(t *testing.T) {
	w := testWorld()
	w.backend = func(string, string) (Backend, bool) { return Backend{}, true }
	w.grants = []*gwv1.ReferenceGrant{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "g"},
		Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gatewayGroup, Kind: "HTTPRoute", Namespace: "default"}},
			To:   []gwv1.ReferenceGrantTo{{Group: knativeGroup, Kind: "Service"}},
		},
	}}
	res := w.translateRoute(testRoute("default", func(r *gwv1.HTTPRoute) {
		r.Spec.Rules[0].BackendRefs[0].Namespace = ptr(gwv1.Namespace("other"))
	}), map[string]int32{})
	if _, r := conditions(t, res); r.Status != metav1.ConditionTrue {
		t.Errorf("ResolvedRefs %+v with a ReferenceGrant", r)
	}
}

// Rules on one hostname are ordered as Gateway API says: exact before prefix, longer path,
// more headers, then the older route.
func TestSortRules(t *testing.T) {
	old := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "old", CreationTimestamp: metav1.NewTime(time.Unix(100, 0))}}
	young := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "young", CreationTimestamp: metav1.NewTime(time.Unix(200, 0))}}
	rules := []rankedRule{
		{route: young, pathLen: 0, rule: xds.Rule{PathPrefix: "/"}},
		{route: old, pathLen: 0, rule: xds.Rule{PathPrefix: "/"}},
		{route: young, pathLen: 4, headerCount: 1, rule: xds.Rule{PathPrefix: "/api"}},
		{route: young, pathLen: 4, rule: xds.Rule{PathPrefix: "/api"}},
		{route: young, exact: true, pathLen: 2, rule: xds.Rule{PathExact: "/x"}},
	}
	sortRules(rules)
	var got []string
	for _, r := range rules {
		got = append(got, r.route.Name+":"+r.rule.PathExact+r.rule.PathPrefix+strings.Repeat("+h", r.headerCount))
	}
	want := "young:/x young:/api+h young:/api old:/ young:/"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}
