package gatewayapi

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/skiff-dev/skiff/controlplane/xds"
)

// Backend is what a backendRef to a Knative Service resolves to: the Service's revision
// clusters, weighted by its Route's traffic percentages.
type Backend struct {
	Clusters []xds.WeightedCluster
}

// world is everything one translation reads, from the informers.
type world struct {
	// gateways are the Gateways whose GatewayClass names ControllerName, by "ns/name".
	gateways map[string]*gwv1.Gateway
	// namespaceLabels are every namespace's labels, for allowedRoutes selectors.
	namespaceLabels map[string]map[string]string
	grants          []*gwv1.ReferenceGrant
	// backend resolves a Knative Service; false when it does not exist.
	backend func(namespace, name string) (Backend, bool)
}

// routeResult is one HTTPRoute's outcome: its parents' conditions and the rules it adds to
// each hostname.
type routeResult struct {
	parents []gwv1.RouteParentStatus
	// hostnames are the hostnames the route is attached with (through any parent).
	hostnames []string
	rules     []rankedRule
}

// rankedRule is an xds.Rule with what Gateway API's precedence between rules reads.
type rankedRule struct {
	rule        xds.Rule
	route       *gwv1.HTTPRoute
	ruleIdx     int
	matchIdx    int
	exact       bool
	pathLen     int
	headerCount int
}

var (
	knativeGroup = gwv1.Group("serving.knative.dev")
	gatewayGroup = gwv1.Group(gwv1.GroupName)
)

// translateRoute works out one HTTPRoute's attachment to Skiff's Gateways and its rules.
// A route none of whose parentRefs is a Skiff Gateway gets no parents (its status is left
// to whichever controller owns them).
// Each listener that takes the route counts it in attached ("ns/gateway/listener").
func (w *world) translateRoute(r *gwv1.HTTPRoute, attached map[string]int32) routeResult {
	var out routeResult
	rules, unsupported := w.translateRules(r)
	resolved := w.resolvedRefs(r)
	seen := map[string]bool{}
	for _, ref := range r.Spec.ParentRefs {
		if g := ptrOr(ref.Group, gatewayGroup); g != gatewayGroup || ptrOr(ref.Kind, "Gateway") != "Gateway" {
			continue
		}
		gw := w.gateways[string(ptrOr(ref.Namespace, gwv1.Namespace(r.Namespace)))+"/"+string(ref.Name)]
		if gw == nil {
			continue
		}
		accepted := metav1.Condition{Type: string(gwv1.RouteConditionAccepted), Status: metav1.ConditionTrue,
			Reason: string(gwv1.RouteReasonAccepted), Message: "Accepted by Skiff: routed through the skiff-http listener."}
		hosts, listeners, reason, msg := w.attach(r, gw, ref)
		switch {
		case unsupported != "":
			accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, string(gwv1.RouteReasonUnsupportedValue), unsupported
		case reason != "":
			accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, string(reason), msg
		default:
			for _, l := range listeners {
				attached[l]++
			}
			for _, h := range hosts {
				if !seen[h] {
					seen[h] = true
					out.hostnames = append(out.hostnames, h)
				}
			}
		}
		accepted.ObservedGeneration = r.Generation
		res := resolved
		res.ObservedGeneration = r.Generation
		out.parents = append(out.parents, gwv1.RouteParentStatus{
			ParentRef: ref, ControllerName: ControllerName, Conditions: []metav1.Condition{accepted, res},
		})
	}
	if len(out.hostnames) > 0 {
		out.rules = rules
	}
	return out
}

// attach returns the hostnames the route gets on gw through ref and the listeners
// ("ns/gateway/listener") that take it, or the reason it is not accepted there.
func (w *world) attach(r *gwv1.HTTPRoute, gw *gwv1.Gateway, ref gwv1.ParentReference) (hosts, listeners []string, _ gwv1.RouteConditionReason, _ string) {
	matched, allowed := false, false
	for _, l := range gw.Spec.Listeners {
		if ref.SectionName != nil && *ref.SectionName != l.Name {
			continue
		}
		if ref.Port != nil && *ref.Port != l.Port {
			continue
		}
		matched = true
		if !servedProtocol(l) || !w.allows(gw, l, r.Namespace) {
			continue
		}
		allowed = true
		lh := ""
		if l.Hostname != nil {
			lh = string(*l.Hostname)
		}
		var got []string
		if len(r.Spec.Hostnames) == 0 {
			got = []string{cmp.Or(lh, "*")}
		}
		for _, h := range r.Spec.Hostnames {
			if i := intersect(string(h), lh); i != "" {
				got = append(got, i)
			}
		}
		if len(got) > 0 {
			listeners = append(listeners, gw.Namespace+"/"+gw.Name+"/"+string(l.Name))
			hosts = append(hosts, got...)
		}
	}
	switch {
	case !matched:
		return nil, nil, gwv1.RouteReasonNoMatchingParent, fmt.Sprintf("Gateway %s/%s has no listener matching the parentRef's sectionName and port.", gw.Namespace, gw.Name)
	case !allowed:
		return nil, nil, gwv1.RouteReasonNotAllowedByListeners, fmt.Sprintf("No HTTP listener of Gateway %s/%s allows HTTPRoutes from namespace %q.", gw.Namespace, gw.Name, r.Namespace)
	case len(hosts) == 0:
		return nil, nil, gwv1.RouteReasonNoMatchingListenerHostname, fmt.Sprintf("No hostname of the route matches a listener hostname of Gateway %s/%s.", gw.Namespace, gw.Name)
	}
	return hosts, listeners, "", ""
}

// servedProtocol reports whether Skiff serves a listener: HTTP, or HTTPS terminating TLS
// (the default mode) with the certificate of its certificateRefs.
func servedProtocol(l gwv1.Listener) bool {
	switch l.Protocol {
	case gwv1.HTTPProtocolType:
		return true
	case gwv1.HTTPSProtocolType:
		return l.TLS == nil || l.TLS.Mode == nil || *l.TLS.Mode == gwv1.TLSModeTerminate
	}
	return false
}

// allows reports whether listener l of gw admits HTTPRoutes from namespace ns.
func (w *world) allows(gw *gwv1.Gateway, l gwv1.Listener, ns string) bool {
	ar := l.AllowedRoutes
	if ar != nil && len(ar.Kinds) > 0 && !slices.ContainsFunc(ar.Kinds, func(k gwv1.RouteGroupKind) bool {
		return ptrOr(k.Group, gatewayGroup) == gatewayGroup && k.Kind == "HTTPRoute"
	}) {
		return false
	}
	from := gwv1.NamespacesFromSame
	if ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil {
		from = *ar.Namespaces.From
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return ns == gw.Namespace
	case gwv1.NamespacesFromSelector:
		sel, err := metav1.LabelSelectorAsSelector(ar.Namespaces.Selector)
		return err == nil && sel.Matches(labels.Set(w.namespaceLabels[ns]))
	}
	return false
}

// intersect is the hostname a route hostname and a listener hostname ("" for any) have in
// common under Gateway API's wildcard rules, or "" if none.
func intersect(route, listener string) string {
	route, listener = strings.ToLower(route), strings.ToLower(listener)
	switch {
	case listener == "" || route == listener:
		return route
	case strings.HasPrefix(route, "*.") && strings.HasSuffix(listener, route[1:]):
		return listener
	case strings.HasPrefix(listener, "*.") && strings.HasSuffix(route, listener[1:]):
		return route
	}
	return ""
}

// translateRules turns the route's rules into xds rules, one per match, with the backends
// that resolve; unsupported names the first field Skiff cannot honour ("" if none).
func (w *world) translateRules(r *gwv1.HTTPRoute) (rules []rankedRule, unsupported string) {
	for i, rule := range r.Spec.Rules {
		field := fmt.Sprintf("spec.rules[%d]", i)
		switch {
		case len(rule.Filters) > 0:
			return nil, field + ".filters: not supported by Skiff"
		case rule.Timeouts != nil:
			return nil, field + ".timeouts: not supported by Skiff (the Knative revision's timeoutSeconds applies)"
		case rule.Retry != nil:
			return nil, field + ".retry: not supported by Skiff"
		case rule.SessionPersistence != nil:
			return nil, field + ".sessionPersistence: not supported by Skiff"
		}
		var clusters []xds.WeightedCluster
		for j, br := range rule.BackendRefs {
			if len(br.Filters) > 0 {
				return nil, fmt.Sprintf("%s.backendRefs[%d].filters: not supported by Skiff", field, j)
			}
			weight := ptrOr(br.Weight, 1)
			if weight == 0 || w.refProblem(r, br.BackendObjectReference) != nil {
				continue
			}
			b, _ := w.backend(string(ptrOr(br.Namespace, gwv1.Namespace(r.Namespace))), string(br.Name))
			for _, c := range b.Clusters {
				c.Weight *= uint32(weight)
				// One entry per revision: a revision reached twice gets the sum.
				if k := slices.IndexFunc(clusters, func(o xds.WeightedCluster) bool { return o.Name == c.Name }); k >= 0 {
					clusters[k].Weight += c.Weight
					continue
				}
				clusters = append(clusters, c)
			}
		}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.HTTPRouteMatch{{}}
		}
		for j, m := range matches {
			mf := fmt.Sprintf("%s.matches[%d]", field, j)
			rr := rankedRule{route: r, ruleIdx: i, matchIdx: j, rule: xds.Rule{Clusters: clusters}}
			switch {
			case len(m.QueryParams) > 0:
				return nil, mf + ".queryParams: not supported by Skiff"
			case m.Method != nil:
				return nil, mf + ".method: not supported by Skiff"
			}
			if p := m.Path; p != nil {
				value := ptrOr(p.Value, "/")
				switch ptrOr(p.Type, gwv1.PathMatchPathPrefix) {
				case gwv1.PathMatchPathPrefix:
					rr.rule.PathPrefix, rr.pathLen = value, len(strings.TrimRight(value, "/"))
				case gwv1.PathMatchExact:
					rr.rule.PathExact, rr.exact, rr.pathLen = value, true, len(value)
				default:
					return nil, fmt.Sprintf("%s.path.type: %s is not supported by Skiff (PathPrefix or Exact)", mf, *p.Type)
				}
			}
			for k, h := range m.Headers {
				if ptrOr(h.Type, gwv1.HeaderMatchExact) != gwv1.HeaderMatchExact {
					return nil, fmt.Sprintf("%s.headers[%d].type: %s is not supported by Skiff (Exact)", mf, k, *h.Type)
				}
				rr.rule.Headers = append(rr.rule.Headers, xds.HeaderMatch{Name: strings.ToLower(string(h.Name)), Value: h.Value})
			}
			rr.headerCount = len(m.Headers)
			rules = append(rules, rr)
		}
	}
	return rules, ""
}

// refError is why a backendRef cannot be used, as ResolvedRefs reports it.
type refError struct {
	reason  gwv1.RouteConditionReason
	message string
}

// refProblem says why a backendRef cannot be used; nil if it can.
func (w *world) refProblem(r *gwv1.HTTPRoute, ref gwv1.BackendObjectReference) *refError {
	group, kind := ptrOr(ref.Group, ""), ptrOr(ref.Kind, "Service")
	if group != knativeGroup || kind != "Service" {
		return &refError{gwv1.RouteReasonInvalidKind, fmt.Sprintf("backendRef %s %s/%s: Skiff routes to Knative Services only (group serving.knative.dev, kind Service).", kind, group, ref.Name)}
	}
	ns := string(ptrOr(ref.Namespace, gwv1.Namespace(r.Namespace)))
	if ns != r.Namespace && !w.granted(r.Namespace, ns, string(ref.Name)) {
		return &refError{gwv1.RouteReasonRefNotPermitted, fmt.Sprintf("backendRef to Service %s/%s: no ReferenceGrant in namespace %s allows HTTPRoutes from %s.", ns, ref.Name, ns, r.Namespace)}
	}
	if _, ok := w.backend(ns, string(ref.Name)); !ok {
		return &refError{gwv1.RouteReasonBackendNotFound, fmt.Sprintf("backendRef to Knative Service %s/%s: not found.", ns, ref.Name)}
	}
	return nil
}

// resolvedRefs is the route's ResolvedRefs condition: True, or False with the first
// problem's reason and every problem's message.
func (w *world) resolvedRefs(r *gwv1.HTTPRoute) metav1.Condition {
	c := metav1.Condition{Type: string(gwv1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue,
		Reason: string(gwv1.RouteReasonResolvedRefs), Message: "All backendRefs resolved."}
	var msgs []string
	for i, rule := range r.Spec.Rules {
		for j, br := range rule.BackendRefs {
			if p := w.refProblem(r, br.BackendObjectReference); p != nil {
				if c.Status == metav1.ConditionTrue {
					c.Status, c.Reason = metav1.ConditionFalse, string(p.reason)
				}
				msgs = append(msgs, fmt.Sprintf("spec.rules[%d].backendRefs[%d]: %s", i, j, p.message))
			}
		}
	}
	if len(msgs) > 0 {
		c.Message = strings.Join(msgs, " ")
	}
	return c
}

// granted reports whether a ReferenceGrant in toNS lets HTTPRoutes in fromNS refer to the
// Knative Service name.
func (w *world) granted(fromNS, toNS, name string) bool {
	for _, g := range w.grants {
		if g.Namespace != toNS {
			continue
		}
		from := slices.ContainsFunc(g.Spec.From, func(f gwv1.ReferenceGrantFrom) bool {
			return f.Group == gatewayGroup && f.Kind == "HTTPRoute" && string(f.Namespace) == fromNS
		})
		to := slices.ContainsFunc(g.Spec.To, func(t gwv1.ReferenceGrantTo) bool {
			return t.Group == knativeGroup && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == name)
		})
		if from && to {
			return true
		}
	}
	return false
}

// sortRules orders one hostname's rules by Gateway API's precedence: an exact path before a
// prefix, longer paths first, more header matches first, then the older route, then the
// route's namespace/name, then rule and match order.
func sortRules(rules []rankedRule) {
	slices.SortStableFunc(rules, func(a, b rankedRule) int {
		if a.exact != b.exact {
			if a.exact {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(b.pathLen, a.pathLen),
			cmp.Compare(b.headerCount, a.headerCount),
			a.route.CreationTimestamp.Compare(b.route.CreationTimestamp.Time),
			cmp.Compare(a.route.Namespace+"/"+a.route.Name, b.route.Namespace+"/"+b.route.Name),
			cmp.Compare(a.ruleIdx, b.ruleIdx),
			cmp.Compare(a.matchIdx, b.matchIdx),
		)
	})
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
