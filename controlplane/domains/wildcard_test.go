package domains

import (
	"strings"
	"testing"
)

// From Knative's pkg/reconciler/nscert/resources/names/names_test.go, TestNamer.
func TestWildcardCertName(t *testing.T) {
	if got, want := WildcardCertName("*.testns.example.com"), "testns.example.com"; got != want {
		t.Errorf("WildcardCertName = %q, want %q", got, want)
	}
}

func wildcardConfig(t *testing.T, netData, domainData map[string]string) *Config {
	t.Helper()
	n, err := ParseNetwork(netData, NetworkDefaults{})
	if err != nil {
		t.Fatalf("ParseNetwork: %v", err)
	}
	d, err := ParseDomain(domainData, "example.com")
	if err != nil {
		t.Fatalf("ParseDomain: %v", err)
	}
	return &Config{Network: n, Domain: d}
}

// The selector cases of Knative's pkg/reconciler/nscert/nscert_test.go, TestReconcile: which
// namespaces get a wildcard certificate (and, for those that do not, lose theirs).
func TestNamespaceWildcardsSelector(t *testing.T) {
	const disable = "networking.knative.dev/disableWildcardCert"
	notIn := func(key string, values ...string) string {
		return "matchExpressions:\n- key: " + key + "\n  operator: NotIn\n  values: [" + strings.Join(values, ", ") + "]"
	}
	cases := []struct {
		name     string
		selector string // "" leaves the key unset
		labels   map[string]string
		want     bool
	}{
		{name: "unset selects no namespace (Knative's default)", labels: nil, want: false},
		{name: "create Knative certificate for namespace", selector: "{}", want: true},
		{name: "create Knative certificate for namespace with explicitly enabled", selector: "{}",
			labels: map[string]string{disable: "false"}, want: true},
		{name: "explicitly enabled under a NotIn selector", selector: notIn(disable, "true"),
			labels: map[string]string{disable: "false"}, want: true},
		{name: "skip certificate when excluded by config-network", selector: notIn("excludeWildcard", "yes", "true", "anything"),
			labels: map[string]string{"excludeWildcard": "anything"}, want: false},
		{name: "certificate not created for excluded namespace", selector: notIn(disable, "true"),
			labels: map[string]string{disable: "true"}, want: false},
		{name: "matchLabels selects the labelled namespace", selector: "matchLabels: {wildcard: \"yes\"}",
			labels: map[string]string{"wildcard": "yes"}, want: true},
		{name: "matchLabels leaves the others", selector: "matchLabels: {wildcard: \"yes\"}",
			labels: map[string]string{"wildcard": "no"}, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := map[string]string{}
			if tc.selector != "" {
				data[NamespaceWildcardCertSelectorKey] = tc.selector
			}
			cfg := wildcardConfig(t, data, nil)
			got, err := cfg.NamespaceWildcards("foo", tc.labels)
			if err != nil {
				t.Fatalf("NamespaceWildcards: %v", err)
			}
			if !tc.want {
				if len(got) != 0 {
					t.Fatalf("NamespaceWildcards = %+v, want none", got)
				}
				return
			}
			want := NamespaceWildcard{Domain: "example.com", DNSName: "*.foo.example.com", Name: "foo.example.com"}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("NamespaceWildcards = %+v, want [%+v]", got, want)
			}
		})
	}
}

// From Knative's nscert_test.go, TestDomainConfigDomain and TestChangeDefaultDomain: the
// wildcard is for the config-domain entries without a selector (else the default domain).
func TestNamespaceWildcardsDomains(t *testing.T) {
	cases := []struct {
		name   string
		domain map[string]string
		want   []string
	}{
		// Knative's default domain here is svc.cluster.local; Skiff's is --domain.
		{name: "default domain when only selected entries", domain: map[string]string{"other.com": "selector:\n app: dev"}, want: []string{"*.testns.example.com"}},
		{name: "default domain", domain: map[string]string{"default.com": ""}, want: []string{"*.testns.default.com"}},
		{name: "change default domain", domain: map[string]string{"example.net": ""}, want: []string{"*.testns.example.net"}},
		{name: "each entry without a selector", domain: map[string]string{"a.com": "", "b.com": "", "c.com": "selector:\n app: dev"}, want: []string{"*.testns.a.com", "*.testns.b.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := wildcardConfig(t, map[string]string{NamespaceWildcardCertSelectorKey: "{}"}, tc.domain)
			got, err := cfg.NamespaceWildcards("testns", nil)
			if err != nil {
				t.Fatalf("NamespaceWildcards: %v", err)
			}
			var names []string
			for _, w := range got {
				names = append(names, w.DNSName)
				if w.Name != WildcardCertName(w.DNSName) || "*."+"testns."+w.Domain != w.DNSName {
					t.Errorf("wildcard %+v: name or domain do not follow its DNS name", w)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("DNS names = %v, want %v", names, tc.want)
			}
		})
	}
}

// From Knative's nscert_test.go, TestUpdateDomainTemplate: the wildcard follows the domain
// template; one that does not put the name first cannot have a wildcard.
func TestNamespaceWildcardsDomainTemplate(t *testing.T) {
	cases := []struct {
		template, want, err string
	}{
		{template: "{{.Name}}.{{.Namespace}}.{{.Domain}}", want: "*.testns.example.com"},
		{template: "{{.Name}}.subdomain.{{.Namespace}}.{{.Domain}}", want: "*.subdomain.testns.example.com"},
		{template: "{{.Name}}-suffix.{{.Namespace}}.{{.Domain}}", err: "invalid domain-template for a wildcard certificate: *-suffix.testns.example.com"},
		{template: "{{.Namespace}}.{{.Name}}.{{.Domain}}", err: "invalid domain-template for a wildcard certificate: testns.*.example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.template, func(t *testing.T) {
			cfg := wildcardConfig(t, map[string]string{NamespaceWildcardCertSelectorKey: "{}", DomainTemplateKey: tc.template}, nil)
			got, err := cfg.NamespaceWildcards("testns", nil)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != 1 || got[0].DNSName != tc.want {
				t.Fatalf("NamespaceWildcards = %+v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestParseNetworkBadWildcardSelector(t *testing.T) {
	_, err := ParseNetwork(map[string]string{NamespaceWildcardCertSelectorKey: "matchExpressions:\n- key: a\n  operator: Sometimes"}, NetworkDefaults{})
	if err == nil || !strings.HasPrefix(err.Error(), NamespaceWildcardCertSelectorKey+": ") {
		t.Fatalf("err = %v, want one naming %s", err, NamespaceWildcardCertSelectorKey)
	}
}

// From Knative's pkg/reconciler/route/route.go wildcardCertMatches (used by
// findMatchingWildcardCert, exercised by table_test.go TestReconcileEnableExternalDomainTLS
// "check that existing wildcard cert is used when creating a Route").
func TestWildcardCovers(t *testing.T) {
	cases := []struct {
		dns   string
		hosts []string
		want  bool
	}{
		{"*.default.example.com", []string{"becomes-ready.default.example.com"}, true},
		{"*.default.example.com", []string{"a.default.example.com", "tag-a.default.example.com"}, true},
		{"*.default.example.com", []string{"a.b.default.example.com"}, false},
		{"*.default.example.com", []string{"a.other.example.com"}, false},
		{"*.default.example.com", []string{"a.default.example.com", "a.other.example.com"}, false},
		{"default.example.com", []string{"a.default.example.com"}, false},
		{"*.default.example.com", nil, false},
	}
	for _, tc := range cases {
		if got := WildcardCovers(tc.dns, tc.hosts); got != tc.want {
			t.Errorf("WildcardCovers(%s, %v) = %v, want %v", tc.dns, tc.hosts, got, tc.want)
		}
	}
}
