package xds

import (
	"strings"
	"testing"
)

// A virtual host with Rules (Gateway API HTTPRoute rules) gets one route per rule, in order:
// exact paths, "/"-separated prefixes, exact header matches, and a direct 500 for a rule
// whose backends all failed to resolve; every route passes ValidateAll.
func TestTranslateVirtualHostRules(t *testing.T) {
	hello := []WeightedCluster{{Name: "default/hello-00001", Weight: 50}, {Name: "default/hello-00002", Weight: 50, Activate: true}}
	r := Route{Namespace: "gateway.networking.k8s.io", Name: "hello.example.org", VirtualHosts: []VirtualHost{{
		Name: "httproute:hello.example.org", Domains: []string{"hello.example.org"},
		Rules: []Rule{
			{PathExact: "/healthz", Clusters: hello[:1]},
			{PathPrefix: "/api/", Headers: []HeaderMatch{{Name: "x-canary", Value: "yes"}}, Clusters: hello[1:]},
			{PathPrefix: "/broken"},
			{Clusters: hello},
		},
	}}}
	vhs, err := TranslateVirtualHosts(r, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := vhs[0].ValidateAll(); err != nil {
		t.Fatal(err)
	}
	rs := vhs[0].GetRoutes()
	if len(rs) != 4 {
		t.Fatalf("%d routes, want one per rule", len(rs))
	}
	if got := rs[0].GetMatch().GetPath(); got != "/healthz" || rs[0].GetRoute().GetCluster() != "default/hello-00001" {
		t.Errorf("rule 0: path %q to %q", got, rs[0].GetRoute().GetCluster())
	}
	if got := rs[1].GetMatch().GetPathSeparatedPrefix(); got != "/api" {
		t.Errorf("rule 1: path_separated_prefix %q, want /api (trailing slash dropped)", got)
	}
	if h := rs[1].GetMatch().GetHeaders(); len(h) != 1 || h[0].GetName() != "x-canary" || h[0].GetStringMatch().GetExact() != "yes" {
		t.Errorf("rule 1: headers %v", h)
	}
	if _, ok := rs[1].GetTypedPerFilterConfig()[ExtProcFilterName]; !ok {
		t.Errorf("rule 1: the proxy-mode revision does not enable ext_proc")
	}
	if got := rs[2].GetDirectResponse().GetStatus(); got != 500 {
		t.Errorf("rule 2 (no backend): direct response %d, want 500", got)
	}
	if rs[3].GetMatch().GetPrefix() != "/" || len(rs[3].GetRoute().GetWeightedClusters().GetClusters()) != 2 {
		t.Errorf("rule 3: %v", rs[3])
	}
	for _, rt := range rs {
		if rt.GetMetadata().GetFilterMetadata()[MetadataNamespace] == nil {
			t.Errorf("route %v has no skiff metadata", rt.GetMatch())
		}
	}
}

func TestTranslateVirtualHostRuleErrors(t *testing.T) {
	for _, tc := range []struct {
		rule Rule
		want string
	}{
		{Rule{PathPrefix: "/a", PathExact: "/a"}, "rules[0]: pathPrefix and pathExact are exclusive"},
		{Rule{PathExact: "a"}, `rules[0]: pathExact "a" must start with /`},
		{Rule{PathPrefix: "a"}, `rules[0]: pathPrefix "a" must start with /`},
		{Rule{Headers: []HeaderMatch{{Value: "v"}}}, "rules[0]: headers[0]: name is required"},
	} {
		_, err := TranslateVirtualHosts(Route{Namespace: "n", Name: "r", VirtualHosts: []VirtualHost{{Name: "v", Domains: []string{"h"}, Rules: []Rule{tc.rule}}}}, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.rule, err, tc.want)
		}
	}
}
