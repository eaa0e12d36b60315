package reconciler

import (
	"cmp"
	"context"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// The tests below port Knative's pkg/reconciler/route/resources/ingress_test.go (and
// filters_test.go): where Knative's route reconciler turns a Route's resolved traffic into
// a KIngress's rules, Skiff's (translate) turns it into the proxy's virtual hosts. Each case
// reconciles a Route over a store holding its Configurations and Revisions, as the reconciler
// runs, and compares the virtual hosts it programmed with what Knative's case asserts:
//
//   - a KIngress rule of visibility ClusterLocal is a virtual host of VisibilityClusterLocal
//     named "{ns}/{route}[/{tag}]:local", one of ExternalIP a VisibilityExternal one named
//     "{ns}/{route}[/{tag}]". Knative makes one ExternalIP rule per external host (so that ACME
//     paths merge per host); Skiff's virtual host holds all of a target's external hosts (one
//     with Knative's templates) and its challenge paths are exact paths of that host.
//   - an IngressBackendSplit (service {revision}, percent) is a weighted cluster
//     "{ns}/{revision}" of that weight. Its AppendHeaders Knative-Serving-Revision and
//     Knative-Serving-Namespace are not applicable: they tell Knative's activator and
//     queue-proxy which revision a request is for (queue-proxy strips them); Skiff's proxy
//     knows it from the cluster.
//   - an HTTPIngressPath with Headers (tag-header-based-routing) is a Rule with HeaderMatch,
//     a path's AppendHeaders (Knative-Serving-Default-Route, Knative-Serving-Tag) the
//     SetRequestHeaders of the rule or of the virtual host.
//   - the ServicePort (80, or 443 with system-internal-tls) is not applicable: a cluster
//     names the revision's endpoints themselves.
//
// Knative's cases take a traffic.Config (resolved targets); the ported ones write the Route
// spec.traffic that resolves to it.
//
// Not ported, being about KIngress-only fields: TestMakeIngressCorrectMetadata,
// TestMakeIngressWithTaggedRollout and TestIngressNoKubectlAnnotation (the Ingress's labels,
// annotations and owner reference; Skiff has no Ingress, a tag's host is in status.traffic,
// see TestRouteReconcileTable), TestMakeIngressWithTLS and TestMakeIngressTLS (IngressTLS
// objects; Skiff's certificates are SDS secrets, see nscert_test.go),
// TestMakeIngressWithActivatorCA (system-internal-tls, read but not implemented: README
// "Named differences from Knative"), TestMakeIngressACMEChallenges and
// TestMakeIngressACMEChallengesWithTrafficTags (HTTP01 challenges come from a certificate
// provider; their paths per host are xds's, controlplane/xds/translate_tls_test.go).

// ingressNS is the namespace of Knative's ingress_test.go.
const ingressNS = "test-ns"

// inNamespace moves the fixtures (made in "default") to ns.
func inNamespace[T store.Object](ns string, o T) T {
	o.SetNamespace(ns)
	return o
}

// ingressRevision is a ready revision of configuration cfg in ns, served directly.
func ingressRevision(ns, name, cfg string) *servingv1.Revision {
	return inNamespace(ns, tRevision(name, cfg, "", duck.True, servingv1.ModeServe))
}

// ingressCase is one Route reconciled once.
type ingressCase struct {
	// objects are seeded with their status (the Route among them).
	objects []store.Object
	route   store.Key
	// tagHeader is config-features' tag-header-based-routing.
	tagHeader bool
	// network, when set, replaces config-network as loaded (after the defaults).
	network func(n *domains.Network)
}

// programRoute reconciles the case's route with config-domain's default example.com (as
// Knative's testConfig) and returns the route as stored and what the proxy was given (ok
// false when nothing was), after checking that it translates to a valid RouteConfiguration.
func programRoute(t *testing.T, tc ingressCase) (*servingv1.Route, xds.Route, bool) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seed(t, st, tc.objects...)
	p := &recordingProxy{}
	c := New(Config{Store: st, Runtime: nopRuntime{}, Proxy: p, Logger: slog.New(slog.DiscardHandler),
		Domain: "example.com", TagHeaderBasedRouting: tc.tagHeader})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	c.enqueueAfter = func(store.Key, time.Duration) {}
	if tc.network != nil {
		s := c.defaultSettings()
		n := *s.cfg.Network
		tc.network(&n)
		s.cfg.Network = &n
		c.net.Store(s)
	}
	if err := c.reconcile(ctx, tc.route); err != nil {
		t.Fatalf("reconcile %s: %v", tc.route, err)
	}
	var route servingv1.Route
	if err := st.Get(ctx, tc.route, &route); err != nil {
		t.Fatal(err)
	}
	r, ok := p.route(tc.route.Namespace + "/" + tc.route.Name)
	if ok {
		// What the proxy is given must be right for a real Envoy.
		vhs, err := xds.TranslateVirtualHosts(r, true)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := xds.TranslateRouteConfiguration(vhs)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.ValidateAll(); err != nil {
			t.Fatalf("route configuration: %v", err)
		}
	}
	return &route, r, ok
}

// host is what a virtual host routes: which listeners, which names, to which revisions,
// with which headers matched and set. Clusters are left out when Rules replace them.
type host struct {
	Name       string
	Visibility xds.Visibility
	Domains    []string
	Clusters   []xds.WeightedCluster
	Rules      []xds.Rule
	SetHeaders []xds.Header
}

// hostsOf is r's virtual hosts as hosts, by name, their domains sorted (Knative lists a
// rule's hosts sorted; their order means nothing to the proxy, nor does the hosts').
func hostsOf(r xds.Route) []host {
	var out []host
	for _, vh := range r.VirtualHosts {
		// Timeouts are TestRouteHostsTimeouts' subject; the other cases compare routing.
		var rules []xds.Rule
		for _, r := range vh.Rules {
			r.Timeouts = nil
			rules = append(rules, r)
		}
		h := host{Name: vh.Name, Visibility: vh.Visibility, Domains: slices.Sorted(slices.Values(vh.Domains)), Rules: rules, SetHeaders: vh.SetRequestHeaders}
		if len(vh.Rules) == 0 {
			h.Clusters = vh.Clusters
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b host) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// localNames are a target's cluster-local names, sorted, as Knative's expected rules list
// them: {host}.{ns}, {host}.{ns}.svc and {host}.{ns}.svc.cluster.local.
func localNames(hostname, ns string) []string {
	return []string{hostname + "." + ns, hostname + "." + ns + ".svc", hostname + "." + ns + ".svc.cluster.local"}
}

// wc is the weighted cluster of revision rev of ns.
func wc(ns, rev string, weight uint32) xds.WeightedCluster {
	return xds.WeightedCluster{Name: xds.ClusterName(ns, rev), Weight: weight}
}

// targetHosts are the two virtual hosts of a public target (tag "" the default one), both
// sending to clusters.
func targetHosts(ns, route, tag string, clusters ...xds.WeightedCluster) []host {
	name, hostname := ns+"/"+route, route
	if tag != "" {
		name, hostname = name+"/"+tag, tag+"-"+route
	}
	return []host{
		{Name: name, Visibility: xds.VisibilityExternal, Domains: []string{hostname + "." + ns + ".example.com"}, Clusters: clusters},
		{Name: name + ":local", Visibility: xds.VisibilityClusterLocal, Domains: localNames(hostname, ns), Clusters: clusters},
	}
}

func wantHosts(t *testing.T, r xds.Route, want ...[]host) {
	t.Helper()
	var all []host
	for _, w := range want {
		all = append(all, w...)
	}
	slices.SortFunc(all, func(a, b host) int { return cmp.Compare(a.Name, b.Name) })
	got := hostsOf(r)
	if !reflect.DeepEqual(got, all) {
		t.Errorf("virtual hosts:\n got %+v\nwant %+v", got, all)
	}
}

// withRules gives hs (a target's hosts) rules in place of their clusters.
func withRules(hs []host, rules ...xds.Rule) []host {
	for i := range hs {
		hs[i].Clusters, hs[i].Rules = nil, rules
	}
	return hs
}

// withSet gives hs the request headers they set.
func withSet(hs []host, set ...xds.Header) []host {
	for i := range hs {
		hs[i].SetHeaders = set
	}
	return hs
}

// v1v2 is Knative's two-target traffic.Config of TestMakeIngressSpecCorrectRules: the
// default target all to v2, the tag v1 to v1 (which the default target gives 0%).
func v1v2() []store.Object {
	route := inNamespace(ingressNS, tRoute("test-route",
		servingv1.TrafficTarget{RevisionName: "v2", Percent: ptrInt64(100)},
		servingv1.TrafficTarget{Tag: "v1", RevisionName: "v1", Percent: ptrInt64(0)}))
	return []store.Object{
		inNamespace(ingressNS, tConfiguration("config", "v2")),
		ingressRevision(ingressNS, "v1", "config"), ingressRevision(ingressNS, "v2", "config"),
		route,
	}
}

func ingressRouteKey(ns, name string) store.Key {
	return store.Key{Kind: servingv1.KindRoute, Namespace: ns, Name: name}
}

// TestRouteHostsCorrectRules ports ingress_test.go TestMakeIngressSpecCorrectRules: each
// target (the default one and the tag v1) is served on its cluster-local names and on its
// external name, all to its revision.
func TestRouteHostsCorrectRules(t *testing.T) {
	_, r, ok := programRoute(t, ingressCase{objects: v1v2(), route: ingressRouteKey(ingressNS, "test-route")})
	if !ok {
		t.Fatal("route not programmed")
	}
	wantHosts(t, r,
		targetHosts(ingressNS, "test-route", "", wc(ingressNS, "v2", 100)),
		targetHosts(ingressNS, "test-route", "v1", wc(ingressNS, "v1", 100)))
}

// TestRouteHostsCorrectRulesWithTagBasedRouting ports ingress_test.go
// TestMakeIngressSpecCorrectRulesWithTagBasedRouting: with tag-header-based-routing, the
// default target's hosts (cluster-local and external alike) first send requests with
// Knative-Serving-Tag: v1 to v1, then the rest to v2 with Knative-Serving-Default-Route: true
// set; the tag's own hosts set Knative-Serving-Tag: v1 on every request.
func TestRouteHostsCorrectRulesWithTagBasedRouting(t *testing.T) {
	_, r, ok := programRoute(t, ingressCase{objects: v1v2(), route: ingressRouteKey(ingressNS, "test-route"), tagHeader: true})
	if !ok {
		t.Fatal("route not programmed")
	}
	wantHosts(t, r,
		withRules(targetHosts(ingressNS, "test-route", ""),
			xds.Rule{Headers: []xds.HeaderMatch{{Name: "Knative-Serving-Tag", Value: "v1"}}, Clusters: []xds.WeightedCluster{wc(ingressNS, "v1", 100)}},
			xds.Rule{SetRequestHeaders: []xds.Header{{Name: "Knative-Serving-Default-Route", Value: "true"}}, Clusters: []xds.WeightedCluster{wc(ingressNS, "v2", 100)}}),
		withSet(targetHosts(ingressNS, "test-route", "v1", wc(ingressNS, "v1", 100)), xds.Header{Name: "Knative-Serving-Tag", Value: "v1"}))
}

// TestRouteHostsVisibility ports ingress_test.go TestMakeIngressSpecCorrectRuleVisibility
// (each case: the names served per visibility) and filters_test.go
// TestIsClusterLocalService (only the label value cluster-local makes a target
// cluster-local). Knative's per-target visibility comes from the label on a tag's
// placeholder Kubernetes Service; Skiff's from the Route's
// networking.skiff.dev/cluster-local-tags annotation (README "Named differences from
// Knative", per-tag visibility).
func TestRouteHostsVisibility(t *testing.T) {
	const ns = "default"
	objects := func(labels, annotations map[string]string, spec ...servingv1.TrafficTarget) []store.Object {
		r := tRoute("myroute", spec...)
		r.Labels, r.Annotations = labels, annotations
		return []store.Object{tConfiguration("config", "v2"), ingressRevision(ns, "v1", "config"), ingressRevision(ns, "v2", "config"), r}
	}
	v2 := servingv1.TrafficTarget{RevisionName: "v2", Percent: ptrInt64(100)}
	local := func(hs []host) []host { return hs[1:] }
	for _, tc := range []struct {
		name      string
		objects   []store.Object
		tagHeader bool
		want      [][]host
	}{{
		name:    "public route", // TestMakeIngressSpecCorrectRuleVisibility
		objects: objects(nil, nil, v2),
		want:    [][]host{targetHosts(ns, "myroute", "", wc(ns, "v2", 100))},
	}, {
		name:    "private route", // TestMakeIngressSpecCorrectRuleVisibility: the route's visibility label
		objects: objects(map[string]string{VisibilityLabel: "cluster-local"}, nil, v2),
		want:    [][]host{local(targetHosts(ns, "myroute", "", wc(ns, "v2", 100)))},
	}, {
		// TestMakeIngressSpecCorrectRuleVisibility "unspecified route": a route whose URL is
		// cluster-local but that no label makes so is public (Skiff keeps no URL to go by).
		name:    "unspecified route",
		objects: objects(nil, nil, v2),
		want:    [][]host{targetHosts(ns, "myroute", "", wc(ns, "v2", 100))},
	}, {
		name:    "visibility label set to anything but cluster-local", // TestIsClusterLocalService
		objects: objects(map[string]string{VisibilityLabel: "something-unknown"}, nil, v2),
		want:    [][]host{targetHosts(ns, "myroute", "", wc(ns, "v2", 100))},
	}, {
		// A private route's tags are private too (Knative's visibility resolver lowers every
		// target to the route's visibility).
		name:    "private route with a tag",
		objects: objects(map[string]string{VisibilityLabel: "cluster-local"}, nil, v2, servingv1.TrafficTarget{Tag: "v1", RevisionName: "v1", Percent: ptrInt64(0)}),
		want:    [][]host{local(targetHosts(ns, "myroute", "", wc(ns, "v2", 100))), local(targetHosts(ns, "myroute", "v1", wc(ns, "v1", 100)))},
	}, {
		// TestMakeIngressSpecCorrectRuleVisibility's serviceVisibility for one tag: that tag
		// alone is cluster-local.
		name:    "public route with a cluster-local tag",
		objects: objects(nil, map[string]string{ClusterLocalTagsAnnotation: "v1"}, v2, servingv1.TrafficTarget{Tag: "v1", RevisionName: "v1", Percent: ptrInt64(0)}),
		want:    [][]host{targetHosts(ns, "myroute", "", wc(ns, "v2", 100)), local(targetHosts(ns, "myroute", "v1", wc(ns, "v1", 100)))},
	}, {
		// Knative's makeIngressSpec adds a header rule for every tag to the default target's
		// rules, cluster-local tags included: the external host reaches a cluster-local tag
		// by its header, as in Knative.
		name:      "cluster-local tag with tag-header-based-routing",
		objects:   objects(nil, map[string]string{ClusterLocalTagsAnnotation: "v1"}, v2, servingv1.TrafficTarget{Tag: "v1", RevisionName: "v1", Percent: ptrInt64(0)}),
		tagHeader: true,
		want: [][]host{
			withRules(targetHosts(ns, "myroute", ""),
				xds.Rule{Headers: []xds.HeaderMatch{{Name: "Knative-Serving-Tag", Value: "v1"}}, Clusters: []xds.WeightedCluster{wc(ns, "v1", 100)}},
				xds.Rule{SetRequestHeaders: []xds.Header{{Name: "Knative-Serving-Default-Route", Value: "true"}}, Clusters: []xds.WeightedCluster{wc(ns, "v2", 100)}}),
			withSet(local(targetHosts(ns, "myroute", "v1", wc(ns, "v1", 100))), xds.Header{Name: "Knative-Serving-Tag", Value: "v1"}),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, ok := programRoute(t, ingressCase{objects: tc.objects, route: ingressRouteKey(ns, "myroute"), tagHeader: tc.tagHeader})
			if !ok {
				t.Fatal("route not programmed")
			}
			wantHosts(t, r, tc.want...)
		})
	}
}

// TestRouteHostsSplits ports the makeIngressRules cases of ingress_test.go: which revisions
// a target's hosts send to, with which weights.
func TestRouteHostsSplits(t *testing.T) {
	const ns = ingressNS
	rev := func(name string, p int64) servingv1.TrafficTarget {
		return servingv1.TrafficTarget{RevisionName: name, Percent: ptrInt64(p)}
	}
	for _, tc := range []struct {
		name    string
		revs    map[string]string // revision: configuration
		traffic []servingv1.TrafficTarget
		want    []xds.WeightedCluster
	}{{
		// TestMakeIngressRuleVanilla: one target, all of it to its revision. (Knative's case
		// gives the rule two external hosts to show one rule per host; a Skiff virtual host
		// holds all of a target's external hosts, and a route's templates make one.)
		name:    "vanilla",
		revs:    map[string]string{"revision-shark": "config"},
		traffic: []servingv1.TrafficTarget{rev("revision-shark", 100)},
		want:    []xds.WeightedCluster{wc(ns, "revision-shark", 100)},
	}, {
		// TestMakeIngressRuleZeroPercentTarget: a target of 0% gets no cluster.
		name:    "zero percent target",
		revs:    map[string]string{"revision-dolphin": "config", "new-revision-orca": "new-config"},
		traffic: []servingv1.TrafficTarget{rev("revision-dolphin", 100), rev("new-revision-orca", 0)},
		want:    []xds.WeightedCluster{wc(ns, "revision-dolphin", 100)},
	}, {
		// TestMakeIngressRuleTwoTargets: two targets split by their percents, in order.
		// Knative's case puts both under one tag, which its webhook (and Skiff's: "Multiple
		// definitions") refuses in a Route; the default target is where two targets split.
		name:    "two targets",
		revs:    map[string]string{"revision-beluga": "config", "new-revision-narwhal": "new-config"},
		traffic: []servingv1.TrafficTarget{rev("revision-beluga", 80), rev("new-revision-narwhal", 20)},
		want:    []xds.WeightedCluster{wc(ns, "revision-beluga", 80), wc(ns, "new-revision-narwhal", 20)},
	}, {
		// Knative's traffic.Config consolidates targets naming the same revision into one
		// split of their summed percent (traffic.go consolidate): the configuration's latest
		// and the revision by name.
		name:    "two targets, same revision",
		revs:    map[string]string{"revision-beluga": "config"},
		traffic: []servingv1.TrafficTarget{{ConfigurationName: "config", LatestRevision: ptr(true), Percent: ptrInt64(30)}, rev("revision-beluga", 70)},
		want:    []xds.WeightedCluster{wc(ns, "revision-beluga", 100)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			objects := []store.Object{inNamespace(ns, tRoute("test-route", tc.traffic...))}
			cfgs := map[string]bool{}
			for name, cfg := range tc.revs {
				objects = append(objects, ingressRevision(ns, name, cfg))
				if !cfgs[cfg] {
					cfgs[cfg] = true
					latest := ""
					for n, c := range tc.revs {
						if c == cfg {
							latest = n
						}
					}
					objects = append(objects, inNamespace(ns, tConfiguration(cfg, latest)))
				}
			}
			_, r, ok := programRoute(t, ingressCase{objects: objects, route: ingressRouteKey(ns, "test-route")})
			if !ok {
				t.Fatal("route not programmed")
			}
			wantHosts(t, r, targetHosts(ns, "test-route", "", tc.want...))
		})
	}
}

// TestRouteHostsWithActualRollout ports ingress_test.go TestMakeIngressWithActualRollout: a
// configuration being rolled out splits its share of its host's traffic over the rollout's
// revisions, on the default host and on a tag's, others keep their target's revision.
// Knative's case hands makeIngressSpec a rollout that no Route makes (a configuration listed
// twice, revisions summing past its percent, two targets under one tag); this one is stored
// on the Route (as the reconciler keeps it) between two steps: on the default host rune 1%
// (no rollout), valhalla 99% moving from valhalla-01981 (41) to valhalla-01982 (58); on the
// tag hammer's host thor moving from thor-02018 (60) and thor-02019 (25) to thor-02020 (15).
func TestRouteHostsWithActualRollout(t *testing.T) {
	const ns = ingressNS
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step := traffic.RolloutParams{StartTime: now.Add(-time.Minute).UnixNano(), NextStepTime: now.Add(time.Second).UnixNano(), StepDuration: int64(3 * time.Second), StepSize: 3}
	ro := &traffic.Rollout{Configurations: []*traffic.ConfigurationRollout{
		{ConfigurationName: "rune", Percent: 1, Revisions: []traffic.RevisionRollout{{RevisionName: "rune-01911", Percent: 1}}},
		{ConfigurationName: "valhalla", Percent: 99, StepParams: step, Revisions: []traffic.RevisionRollout{
			{RevisionName: "valhalla-01981", Percent: 41}, {RevisionName: "valhalla-01982", Percent: 58}}},
		{ConfigurationName: "thor", Tag: "hammer", Percent: 100, StepParams: step, Revisions: []traffic.RevisionRollout{
			{RevisionName: "thor-02018", Percent: 60}, {RevisionName: "thor-02019", Percent: 25}, {RevisionName: "thor-02020", Percent: 15}}},
	}}
	route := inNamespace(ns, tRoute("test-route",
		servingv1.TrafficTarget{ConfigurationName: "rune", LatestRevision: ptr(true), Percent: ptrInt64(1)},
		servingv1.TrafficTarget{ConfigurationName: "valhalla", LatestRevision: ptr(true), Percent: ptrInt64(99)},
		servingv1.TrafficTarget{Tag: "hammer", ConfigurationName: "thor", LatestRevision: ptr(true), Percent: ptrInt64(0)}))
	route.Annotations = map[string]string{servingv1.RolloutDurationKey: "120s", traffic.RolloutAnnotation: ro.String()}
	route.Status.SetCondition(duck.Condition{Type: servingv1.RouteConditionIngressReady, Status: duck.Unknown, Reason: ReasonRolloutInProgress}, time.Time{})
	objects := []store.Object{
		inNamespace(ns, tConfiguration("rune", "rune-01911")),
		inNamespace(ns, tConfiguration("valhalla", "valhalla-01982")),
		inNamespace(ns, tConfiguration("thor", "thor-02020")),
		route,
	}
	for _, name := range []string{"rune-01911", "valhalla-01981", "valhalla-01982", "thor-02018", "thor-02019", "thor-02020"} {
		cfg, _, _ := strings.Cut(name, "-")
		objects = append(objects, ingressRevision(ns, name, cfg))
	}
	def := []xds.WeightedCluster{wc(ns, "rune-01911", 1), wc(ns, "valhalla-01981", 41), wc(ns, "valhalla-01982", 58)}
	hammer := []xds.WeightedCluster{wc(ns, "thor-02018", 60), wc(ns, "thor-02019", 25), wc(ns, "thor-02020", 15)}
	for _, tc := range []struct {
		name      string
		tagHeader bool
		want      [][]host
	}{{
		name: "by host",
		want: [][]host{targetHosts(ns, "test-route", "", def...), targetHosts(ns, "test-route", "hammer", hammer...)},
	}, {
		// makeTagBasedRoutingIngressPaths: the default host's rule for the tag's header
		// follows the tag's rollout too.
		name:      "tag-header-based-routing",
		tagHeader: true,
		want: [][]host{
			withRules(targetHosts(ns, "test-route", ""),
				xds.Rule{Headers: []xds.HeaderMatch{{Name: "Knative-Serving-Tag", Value: "hammer"}}, Clusters: hammer},
				xds.Rule{SetRequestHeaders: []xds.Header{{Name: "Knative-Serving-Default-Route", Value: "true"}}, Clusters: def}),
			withSet(targetHosts(ns, "test-route", "hammer", hammer...), xds.Header{Name: "Knative-Serving-Tag", Value: "hammer"}),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, r, ok := programRoute(t, ingressCase{objects: objects, route: ingressRouteKey(ns, "test-route"), tagHeader: tc.tagHeader})
			if !ok {
				t.Fatal("route not programmed")
			}
			if s := got.Annotations[traffic.RolloutAnnotation]; s != ro.String() {
				t.Fatalf("rollout state moved between steps:\n got %s\nwant %s", s, ro.String())
			}
			wantHosts(t, r, tc.want...)
		})
	}
}

// TestRouteHostsTimeouts: Knative's KIngress carries no timeouts (queue-proxy enforces each
// revision's); Skiff's proxy enforces them per route, so each host takes its revision's
// timeouts, and with tag-header-based-routing the default host's rule for a tag takes that
// tag's revision's (a route split over revisions takes their most lenient: README, "A
// route is one set of timeouts").
func TestRouteHostsTimeouts(t *testing.T) {
	const ns = ingressNS
	for _, tc := range []struct {
		name                    string
		tagHeader               bool
		wantDefault, wantTagged xds.VirtualHost
		// wantTagRule is the default host's Knative-Serving-Tag: v1 rule's own timeouts.
		wantTagRule *xds.RouteTimeouts
	}{{
		name:        "each host its revision's timeouts",
		wantDefault: xds.VirtualHost{Timeout: 30 * time.Second, ResponseStartTimeout: 10 * time.Second, IdleTimeout: 5 * time.Second},
		wantTagged:  xds.VirtualHost{Timeout: 60 * time.Second},
	}, {
		name:        "tag-header-based-routing: the tag's rule on the default host its revision's",
		tagHeader:   true,
		wantDefault: xds.VirtualHost{Timeout: 30 * time.Second, ResponseStartTimeout: 10 * time.Second, IdleTimeout: 5 * time.Second},
		wantTagged:  xds.VirtualHost{Timeout: 60 * time.Second},
		wantTagRule: &xds.RouteTimeouts{Timeout: 60 * time.Second},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			objects := v1v2()
			for _, o := range objects {
				rev, ok := o.(*servingv1.Revision)
				switch {
				case !ok:
				case rev.Name == "v2":
					rev.Spec.TimeoutSeconds, rev.Spec.ResponseStartTimeoutSeconds, rev.Spec.IdleTimeoutSeconds = ptrInt64(30), ptrInt64(10), ptrInt64(5)
				case rev.Name == "v1":
					rev.Spec.TimeoutSeconds = ptrInt64(60)
				}
			}
			_, r, ok := programRoute(t, ingressCase{objects: objects, route: ingressRouteKey(ns, "test-route"), tagHeader: tc.tagHeader})
			if !ok {
				t.Fatal("route not programmed")
			}
			for _, vh := range r.VirtualHosts {
				want := tc.wantDefault
				if vh.Metadata["tag"] == "v1" {
					want = tc.wantTagged
				}
				if vh.Timeout != want.Timeout || vh.ResponseStartTimeout != want.ResponseStartTimeout || vh.IdleTimeout != want.IdleTimeout {
					t.Errorf("%s: timeouts %v/%v/%v, want %v/%v/%v", vh.Name, vh.Timeout, vh.ResponseStartTimeout, vh.IdleTimeout,
						want.Timeout, want.ResponseStartTimeout, want.IdleTimeout)
				}
				for _, rule := range vh.Rules {
					var want *xds.RouteTimeouts // the default split's rule inherits the host's
					if len(rule.Headers) > 0 {
						want = tc.wantTagRule
					}
					if !reflect.DeepEqual(rule.Timeouts, want) {
						t.Errorf("%s: rule %v: timeouts %+v, want %+v", vh.Name, rule.Headers, rule.Timeouts, want)
					}
				}
			}
		})
	}
}

// TestRouteHostsHTTPOption ports ingress_test.go TestMakeIngressWithHTTPOption, with
// config-network's http-protocol Redirected: the Route's annotation Enabled serves plain
// HTTP, no annotation redirects it (the external hosts only: a cluster-local host is never
// redirected), a bad annotation is refused (IngressReady=False, nothing programmed).
func TestRouteHostsHTTPOption(t *testing.T) {
	const ns = ingressNS
	for _, tc := range []struct {
		name, annotation string
		wantRedirect     bool
		wantError        bool
	}{
		{name: "Route annotation HTTPOption enabled", annotation: "Enabled"},
		{name: "No HTTPOption annotation", wantRedirect: true},
		{name: "Incorrect HTTPOption annotation", annotation: "INCORRECT", wantError: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objects := v1v2()
			if tc.annotation != "" {
				objects[len(objects)-1].SetAnnotations(map[string]string{domains.HTTPProtocolAnnotation: tc.annotation})
			}
			got, r, ok := programRoute(t, ingressCase{objects: objects, route: ingressRouteKey(ns, "test-route"),
				network: func(n *domains.Network) { n.HTTPProtocol = domains.HTTPRedirected }})
			if tc.wantError {
				wantCondition(t, &got.Status.Status, servingv1.RouteConditionIngressReady, duck.False, "InvalidHTTPProtocol", "")
				if ok {
					t.Error("a route with a bad http-protocol annotation was programmed")
				}
				return
			}
			if !ok {
				t.Fatal("route not programmed")
			}
			for _, vh := range r.VirtualHosts {
				if want := tc.wantRedirect && vh.Visibility == xds.VisibilityExternal; vh.RedirectHTTP != want {
					t.Errorf("%s: RedirectHTTP %v, want %v", vh.Name, vh.RedirectHTTP, want)
				}
			}
		})
	}
}

// TestRouteHostsBadTemplates ports ingress_test.go TestMakeIngressFailToGenerateDomain and
// TestMakeIngressFailToGenerateTagHost: a template that fails when run makes no hosts; the
// error names the template (on AllTrafficAssigned, reason ErrorConfig, as Knative's route
// reconciler reports it) and nothing is programmed. (A ConfigMap with such a template is
// refused when applied; the settings are set directly here, as Knative's case does.)
func TestRouteHostsBadTemplates(t *testing.T) {
	const bad = "{{.UnknownField}}.{{.NonExistentField}}.{{.BadField}}"
	for _, tc := range []struct {
		name, want string
		set        func(n *domains.Network)
	}{
		// Fresh Networks: a loaded one keeps the templates it parsed.
		{"domain template", "DomainTemplate", func(n *domains.Network) {
			*n = domains.Network{DomainTemplate: bad, TagTemplate: domains.DefaultTagTemplate}
		}},
		{"tag template", "TagTemplate", func(n *domains.Network) {
			*n = domains.Network{DomainTemplate: domains.DefaultDomainTemplate, TagTemplate: bad}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, ok := programRoute(t, ingressCase{objects: v1v2(), route: ingressRouteKey(ingressNS, "test-route"), network: tc.set})
			c := got.Status.GetCondition(servingv1.RouteConditionAllTrafficAssigned)
			if c == nil || c.Status != duck.False || c.Reason != "ErrorConfig" || !strings.Contains(c.Message, tc.want) {
				t.Errorf("AllTrafficAssigned %+v, want False ErrorConfig naming %s", c, tc.want)
			}
			if ok {
				t.Error("a route without hosts was programmed")
			}
		})
	}
}
