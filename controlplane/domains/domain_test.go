package domains

import (
	"reflect"
	"strings"
	"testing"
)

// Ported from knative.dev/serving pkg/reconciler/route/config/domain_test.go TestSelectorMatches.
func TestSelectorMatches(t *testing.T) {
	sel := map[string]string{"app": "bar", "version": "beta"}
	for _, labels := range []map[string]string{{"app": "bar"}, {"version": "beta"}, {"app": "foo"}, {}} {
		if selectorMatches(sel, labels) {
			t.Errorf("selector %v matches %v, want no match", sel, labels)
		}
	}
	for _, labels := range []map[string]string{
		{"app": "bar", "version": "beta"},
		{"app": "bar", "version": "beta", "last_updated": "yesterday"},
		{"app": "bar", "version": "beta", "deployer": "Felicity Smoak"},
	} {
		if !selectorMatches(sel, labels) {
			t.Errorf("selector %v does not match %v", sel, labels)
		}
	}
}

// Ported from domain_test.go TestNewConfigNoEntry: with no entry the default is Skiff's
// --domain (Knative's is svc.cluster.local; see ParseDomain).
func TestParseDomainNoEntry(t *testing.T) {
	d, err := ParseDomain(nil, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.LookupDomainForLabels(nil); got != "localhost" {
		t.Errorf("LookupDomainForLabels() = %q, want the default domain localhost", got)
	}
	// Knative's own default, asked for explicitly, makes Routes cluster-local.
	d, _ = ParseDomain(map[string]string{ClusterLocalDomain: ""}, "localhost")
	c := &Config{Network: knativeDefaults(), Domain: d}
	if got := c.RouteVisibility(nil); got != ClusterLocal {
		t.Errorf("default domain svc.cluster.local: RouteVisibility = %s, want ClusterLocal", got)
	}
}

// Ported from domain_test.go TestNewConfigBadYaml.
func TestParseDomainBadYAML(t *testing.T) {
	_, err := ParseDomain(map[string]string{"default.com": "bad: yaml: all: day"}, "localhost")
	if err == nil || !strings.Contains(err.Error(), "default.com") {
		t.Errorf("ParseDomain(bad yaml) error = %v, want one naming the key default.com", err)
	}
}

// Ported from domain_test.go TestNewConfig.
func TestParseDomain(t *testing.T) {
	got, err := ParseDomain(map[string]string{
		"test-domain.foo.com": "selector:\n  app: foo\n",
		"bar.com":             "selector:\n  app: bar\n  version: beta\ntype: wildcard",
		"default.com":         "",
		"_example":            "this is documentation",
	}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	want := &Domain{Domains: map[string]DomainConfig{
		"test-domain.foo.com": {Selector: map[string]string{"app": "foo"}},
		"bar.com":             {Selector: map[string]string{"app": "bar", "version": "beta"}, Type: DomainTypeWildcard},
		"default.com":         {Selector: map[string]string{}, Type: DomainTypeWildcard},
	}}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("ParseDomain() = %+v, want %+v", got, want)
	}
}

// Ported from domain_test.go TestLookupDomainForLabels.
func TestLookupDomainForLabels(t *testing.T) {
	d := &Domain{Domains: map[string]DomainConfig{
		"test-domain.foo.com": {Selector: map[string]string{"app": "foo"}},
		"foo.com":             {Selector: map[string]string{"app": "foo", "version": "prod"}},
		"bar.com":             {Selector: map[string]string{"app": "bar"}},
		"default.com":         {Selector: map[string]string{}, Type: DomainTypeWildcard},
	}}
	for _, tc := range []struct {
		labels map[string]string
		domain string
	}{
		{map[string]string{"app": "foo"}, "test-domain.foo.com"},
		// Matches two selectors; the one with version=prod is more specific.
		{map[string]string{"app": "foo", "version": "prod"}, "foo.com"},
		{map[string]string{"app": "bar"}, "bar.com"},
		{map[string]string{"app": "bar", "version": "whatever"}, "bar.com"},
		{map[string]string{"app": "whatever"}, "default.com"},
		{map[string]string{}, "default.com"},
		{map[string]string{VisibilityLabel: "cluster-local"}, ClusterLocalDomain},
	} {
		if got := d.LookupDomainForLabels(tc.labels); got != tc.domain {
			t.Errorf("LookupDomainForLabels(%v) = %q, want %q", tc.labels, got, tc.domain)
		}
	}
	// Skiff: equally specific selectors go to the alphabetically first domain, every time.
	tie := &Domain{Domains: map[string]DomainConfig{
		"b.example.com": {Selector: map[string]string{"app": "x"}},
		"a.example.com": {Selector: map[string]string{"tier": "y"}},
	}}
	for range 20 {
		if got := tie.LookupDomainForLabels(map[string]string{"app": "x", "tier": "y"}); got != "a.example.com" {
			t.Fatalf("tie = %q, want a.example.com", got)
		}
	}
}
