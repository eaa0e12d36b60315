package domains

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// testConfig is knative.dev/serving route/domains' testConfig: example.com by default,
// another-example.com for app=prod.
func testConfig(domainTemplate, tagTemplate string) *Config {
	n := knativeDefaults()
	if domainTemplate != "" {
		n.DomainTemplate, n.domainTmpl = domainTemplate, nil
	}
	if tagTemplate != "" {
		n.TagTemplate, n.tagTmpl = tagTemplate, nil
	}
	return &Config{Network: n, Domain: &Domain{Domains: map[string]DomainConfig{
		"example.com":         {Selector: map[string]string{}},
		"another-example.com": {Selector: map[string]string{"app": "prod"}},
	}}}
}

// Ported from knative.dev/serving pkg/reconciler/route/domains/domains_test.go
// TestDomainNameFromTemplate.
func TestDomainNameFromTemplate(t *testing.T) {
	cases := []struct {
		name, template, want string
		wantErr, local       bool
	}{
		{name: "Default", template: "{{.Name}}.{{.Namespace}}.{{.Domain}}", want: "test-name.default.example.com"},
		{name: "Dash", template: "{{.Name}}-{{.Namespace}}.{{.Domain}}", want: "test-name-default.example.com"},
		{name: "LocalDash", template: "{{.Name}}-{{.Namespace}}.{{.Domain}}", want: "test-name.default.svc.cluster.local", local: true},
		{name: "Short", template: "{{.Name}}.{{.Domain}}", want: "test-name.example.com"},
		{name: "Too Short", template: "{{.Name}}", wantErr: true}, // at least two labels
		{name: "Annotations", template: `{{.Name}}.{{ index .Annotations "sub"}}.{{.Domain}}`, want: "test-name.mysub.example.com"},
		{name: "Labels", template: `{{.Name}}.{{ index .Labels "bus"}}.{{.Domain}}`, want: "test-name.mybus.example.com"},
		{name: "BadVarName", template: "{{.Name}}.{{.NNNamespace}}.{{.Domain}}", wantErr: true},
		{name: "Invalid domain name", template: "{{.Name}}.{{.Namespace}}.{{.Domain}}.Foo", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			meta := Meta{Name: "myroute", Namespace: "default",
				Labels: map[string]string{"route": "myapp", "bus": "mybus"}, Annotations: map[string]string{"sub": "mysub"}}
			if tc.local {
				meta.Labels[VisibilityLabel] = VisibilityClusterLocal
			}
			got, err := testConfig(tc.template, "").DomainNameFromTemplate(meta, "test-name")
			if (err != nil) != tc.wantErr {
				t.Fatalf("DomainNameFromTemplate() error = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrDomainName) {
				t.Errorf("error %v is not ErrDomainName", err)
			}
			if got != tc.want {
				t.Errorf("DomainNameFromTemplate() = %q, want %q", got, tc.want)
			}
		})
	}
}

// Skiff: config-domain selects a domain by the Route's labels.
func TestDomainNameSelectedByLabel(t *testing.T) {
	c := testConfig("", "")
	got, err := c.DomainNameFromTemplate(Meta{Name: "hello", Namespace: "ns", Labels: map[string]string{"app": "prod"}}, "hello")
	if err != nil || got != "hello.ns.another-example.com" {
		t.Errorf("app=prod: host = %q, %v; want hello.ns.another-example.com", got, err)
	}
}

// Ported from domains_test.go TestGetAllDomainsAndTags.
func TestAllDomainsAndTags(t *testing.T) {
	cases := []struct {
		name, domainTemplate, tagTemplate string
		want                              map[string]string
		wantErr                           bool
	}{{
		name: "happy case", domainTemplate: "{{.Name}}.{{.Namespace}}.{{.Domain}}", tagTemplate: "{{.Name}}-{{.Tag}}",
		want: map[string]string{"myroute-target-1.default.example.com": "target-1", "myroute-target-2.default.example.com": "target-2", "myroute.default.example.com": ""},
	}, {
		name: "another happy case", domainTemplate: "{{.Name}}.{{.Namespace}}.{{.Domain}}", tagTemplate: "{{.Tag}}-{{.Name}}",
		want: map[string]string{"target-1-myroute.default.example.com": "target-1", "target-2-myroute.default.example.com": "target-2", "myroute.default.example.com": ""},
	}, {
		name: "or appengine style", domainTemplate: "{{.Name}}.{{.Namespace}}.{{.Domain}}", tagTemplate: "{{.Tag}}-dot-{{.Name}}",
		want: map[string]string{"target-1-dot-myroute.default.example.com": "target-1", "target-2-dot-myroute.default.example.com": "target-2", "myroute.default.example.com": ""},
	}, {
		name: "bad template in domain template", domainTemplate: "{{.NNName}}.{{.Namespace}}.{{.Domain}}", tagTemplate: "{{.Name}}-{{.Tag}}", wantErr: true,
	}, {
		name: "bad template in tag template", domainTemplate: "{{.Name}}.{{.Namespace}}.{{.Domain}}", tagTemplate: "{{.NNName}}-{{.Tag}}", wantErr: true,
	}, {
		name: "bad domain name", domainTemplate: "{{.Name}}.{{.Namespace}}.{{.Domain}}", tagTemplate: "Foo.{{.Name}}-{{.Tag}}", wantErr: true,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			meta := Meta{Name: "myroute", Namespace: "default", Labels: map[string]string{"route": "myapp"}}
			got, err := testConfig(tc.domainTemplate, tc.tagTemplate).AllDomainsAndTags(meta, []string{"", "target-1", "target-2"}, nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("AllDomainsAndTags() error = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("AllDomainsAndTags() = %v, want %v", got, tc.want)
			}
		})
	}
}

// Ported from domains_test.go TestGetDomainsForVisibility.
func TestDomainsForVisibility(t *testing.T) {
	cases := []struct {
		name, tag, tagTemplate, primary string
		visibility                      Visibility
		want                            []string
	}{
		{"default template - no tag - cluster-local", "", "{{.Name}}-{{.Tag}}", "myroute.default.svc.cluster.local", ClusterLocal,
			[]string{"myroute.default", "myroute.default.svc", "myroute.default.svc.cluster.local"}},
		{"default template - no tag - external-IP", "", "{{.Name}}-{{.Tag}}", "myroute.default.example.com", ExternalIP,
			[]string{"myroute.default.example.com"}},
		{"default template - with tag - cluster-local", "test", "{{.Name}}-{{.Tag}}", "myroute-test.default.svc.cluster.local", ClusterLocal,
			[]string{"myroute-test.default", "myroute-test.default.svc", "myroute-test.default.svc.cluster.local"}},
		{"default template - with tag - external-IP", "test", "{{.Name}}-{{.Tag}}", "myroute-test.default.example.com", ExternalIP,
			[]string{"myroute-test.default.example.com"}},
		{"alternative template - no tag - cluster-local", "", "{{.Tag}}-{{.Name}}", "myroute.default.svc.cluster.local", ClusterLocal,
			[]string{"myroute.default", "myroute.default.svc", "myroute.default.svc.cluster.local"}},
		{"alternative template - no tag - external-IP", "", "{{.Tag}}-{{.Name}}", "myroute.default.example.com", ExternalIP,
			[]string{"myroute.default.example.com"}},
		{"alternative template - with tag - cluster-local", "test", "{{.Tag}}-{{.Name}}", "test-myroute.default.svc.cluster.local", ClusterLocal,
			[]string{"test-myroute.default", "test-myroute.default.svc", "test-myroute.default.svc.cluster.local"}},
		{"alternative template - with tag - external-IP", "test", "{{.Tag}}-{{.Name}}", "test-myroute.default.example.com", ExternalIP,
			[]string{"test-myroute.default.example.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			meta := Meta{Name: "myroute", Namespace: "default", Labels: map[string]string{"route": "myapp"}}
			got, err := testConfig("{{.Name}}.{{.Namespace}}.{{.Domain}}", tc.tagTemplate).DomainsForVisibility(meta, tc.tag, tc.visibility)
			if err != nil {
				t.Fatal(err)
			}
			if want := (Domains{Primary: tc.primary, Expanded: tc.want}); !reflect.DeepEqual(got, want) {
				t.Errorf("DomainsForVisibility() = %+v, want %+v", got, want)
			}
		})
	}
}

// Ported from domains_test.go TestIsClusterLocal.
func TestIsClusterLocal(t *testing.T) {
	if IsClusterLocal("k8s.io") {
		t.Error("k8s.io is cluster local")
	}
	if !IsClusterLocal("my-app.cluster.local") {
		t.Error("my-app.cluster.local is not cluster local")
	}
}

// Ported from knative.dev/serving pkg/reconciler/route/visibility/visibility_test.go
// TestVisibility. Knative reads placeholder Kubernetes Services named after each target's
// host name; the cases give those Services' labels (only the Route's own are listed, as the
// lister selects by route label).
func TestTargetVisibility(t *testing.T) {
	local := map[string]string{VisibilityLabel: VisibilityClusterLocal}
	plain := map[string]string{}
	cases := []struct {
		name         string
		domainSuffix string
		routeLabels  map[string]string
		tags         []string
		placeholders map[string]map[string]string
		want         map[string]Visibility
	}{
		{name: "default", want: map[string]Visibility{"": ExternalIP}},
		{name: "no tag, route marked local", routeLabels: local, want: map[string]Visibility{"": ClusterLocal}},
		{name: "no tag, svc marked local", placeholders: map[string]map[string]string{"foo": local}, want: map[string]Visibility{"": ClusterLocal}},
		{name: "one tag, tag marked local", tags: []string{"blue"},
			placeholders: map[string]map[string]string{"blue-foo": local, "foo": plain},
			want:         map[string]Visibility{"": ExternalIP, "blue": ClusterLocal}},
		{name: "one tag initial default", tags: []string{"blue"}, want: map[string]Visibility{"": ExternalIP, "blue": ExternalIP}},
		{name: "one tag svc not marked", tags: []string{"blue"},
			placeholders: map[string]map[string]string{"blue-foo": plain, "foo": plain},
			want:         map[string]Visibility{"": ExternalIP, "blue": ExternalIP}},
		{name: "two tags initial default", tags: []string{"blue", "green"},
			want: map[string]Visibility{"": ExternalIP, "blue": ExternalIP, "green": ExternalIP}},
		{name: "two tags initial default with cluster domain suffix", tags: []string{"blue", "green"}, domainSuffix: ClusterLocalDomain,
			want: map[string]Visibility{"": ClusterLocal, "blue": ClusterLocal, "green": ClusterLocal}},
		{name: "two tags, svc not marked", tags: []string{"blue", "green"},
			placeholders: map[string]map[string]string{"blue-foo": plain, "green-foo": plain, "foo": plain},
			want:         map[string]Visibility{"": ExternalIP, "blue": ExternalIP, "green": ExternalIP}},
		{name: "two tags, route marked local", tags: []string{"blue", "green"}, routeLabels: local,
			placeholders: map[string]map[string]string{"blue-foo": plain, "green-foo": plain, "foo": plain},
			want:         map[string]Visibility{"": ClusterLocal, "blue": ClusterLocal, "green": ClusterLocal}},
		{name: "two tags blue marked local", tags: []string{"blue", "green"},
			placeholders: map[string]map[string]string{"blue-foo": local},
			want:         map[string]Visibility{"": ExternalIP, "blue": ClusterLocal, "green": ExternalIP}},
		{name: "two tags, both marked local", tags: []string{"blue", "green"},
			placeholders: map[string]map[string]string{"blue-foo": local, "green-foo": local},
			want:         map[string]Visibility{"": ExternalIP, "blue": ClusterLocal, "green": ClusterLocal}},
		{name: "two tags, all marked local", tags: []string{"blue", "green"},
			placeholders: map[string]map[string]string{"blue-foo": local, "green-foo": local, "foo": local},
			want:         map[string]Visibility{"": ClusterLocal, "blue": ClusterLocal, "green": ClusterLocal}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			suffix := tc.domainSuffix
			if suffix == "" {
				suffix = "example.com"
			}
			c := &Config{Network: knativeDefaults(), Domain: DefaultDomain(suffix)}
			got, err := c.TargetVisibility(Meta{Name: "foo", Labels: tc.routeLabels}, tc.tags, tc.placeholders)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("TargetVisibility() = %v, want %v", got, tc.want)
			}
		})
	}
}

// Ported from knative.dev/serving pkg/networking/util_test.go TestGetHTTPOption.
func TestHTTPOption(t *testing.T) {
	cases := []struct {
		name       string
		config     HTTPProtocol
		annotation string
		want       HTTPProtocol
		wantErr    string
	}{
		{"enabled by config, enabled by annotation", HTTPEnabled, "enabled", HTTPEnabled, ""},
		{"enabled by config, redirected by annotation", HTTPEnabled, "redirected", HTTPRedirected, ""},
		{"enabled by config, invalid by annotation", HTTPEnabled, "foo", "", "incorrect http-protocol annotation: foo"},
		{"redirected by config, enabled by annotation", HTTPRedirected, "enabled", HTTPEnabled, ""},
		{"redirected by config, redirected by annotation", HTTPRedirected, "redirected", HTTPRedirected, ""},
		{"redirected by config, invalid by annotation", HTTPRedirected, "foo", "", "incorrect http-protocol annotation: foo"},
		{"enabled by config, nil annotations", HTTPEnabled, "", HTTPEnabled, ""},
		{"redirected by config, nil annotations", HTTPRedirected, "", HTTPRedirected, ""},
		// Knative gives the ingress no option for Disabled, which its ingresses serve as Enabled.
		{"disabled by config, nil annotations", HTTPDisabled, "", HTTPEnabled, ""},
		{"Skiff: annotation values are case-insensitive", HTTPEnabled, "Redirected", HTTPRedirected, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var annotations map[string]string
			if tc.annotation != "" {
				annotations = map[string]string{HTTPProtocolAnnotation: tc.annotation}
			}
			c := &Config{Network: &Network{HTTPProtocol: tc.config}}
			got, err := c.HTTPOption(annotations)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("HTTPOption() error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("HTTPOption() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestExternalDomainTLS(t *testing.T) {
	on := &Config{Network: &Network{ExternalDomainTLS: true}}
	off := &Config{Network: &Network{}}
	for _, tc := range []struct {
		c           *Config
		annotations map[string]string
		want        bool
	}{
		{off, nil, false},
		{on, nil, true},
		{on, map[string]string{DisableExternalDomainTLSAnnotation: "true"}, false},
		{on, map[string]string{"networking.knative.dev/disableAutoTLS": "true"}, false},
		{on, map[string]string{DisableExternalDomainTLSAnnotation: "false"}, true},
		{on, map[string]string{DisableExternalDomainTLSAnnotation: "nonsense"}, true}, // Knative: assume not disabled
	} {
		if got := tc.c.ExternalDomainTLS(tc.annotations); got != tc.want {
			t.Errorf("ExternalDomainTLS(enabled=%v, %v) = %v, want %v", tc.c.Network.ExternalDomainTLS, tc.annotations, got, tc.want)
		}
	}
}
