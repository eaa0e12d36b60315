package domains

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func knativeDefaults() *Network { return DefaultNetwork(NetworkDefaults{}) }

// Ported from knative.dev/networking pkg/config/config_test.go TestConfiguration. Skiff differs
// in one named way: default-external-scheme must be http or https (the "legacy keys" cases use
// https where Knative's use "6" and "12").
func TestParseNetwork(t *testing.T) {
	const nonDefaultDomainTemplate = "{{.Namespace}}.{{.Name}}.{{.Domain}}"
	with := func(f func(*Network)) *Network {
		n := knativeDefaults()
		f(n)
		n.domainTmpl, n.tagTmpl = nil, nil
		return n
	}
	cases := []struct {
		name    string
		data    map[string]string
		want    *Network
		wantErr string // a substring of the error; "" means no error
	}{{
		name: "network configuration with no network input",
		want: knativeDefaults(),
	}, {
		name: "network configuration with non-default ingress type",
		data: map[string]string{DefaultIngressClassKey: "foo-ingress"},
		want: with(func(n *Network) { n.DefaultIngressClass = "foo-ingress" }),
	}, {
		name: "network configuration with non-default rollout duration",
		data: map[string]string{RolloutDurationKey: "211"},
		want: with(func(n *Network) { n.RolloutDurationSecs = 211 }),
	}, {
		name:    "network configuration with bad rollout duration",
		data:    map[string]string{RolloutDurationKey: "mil novecientos ochenta y dos"},
		wantErr: "rollout-duration",
	}, {
		name:    "network configuration with negative rollout duration",
		data:    map[string]string{RolloutDurationKey: "-444"},
		wantErr: "rollout-duration",
	}, {
		name: "network configuration with non-default autocreateClusterDomainClaim value",
		data: map[string]string{AutocreateClusterDomainClaimsKey: "false"},
		want: knativeDefaults(),
	}, {
		name:    "network configuration with invalid autocreateClusterDomainClaim value",
		data:    map[string]string{AutocreateClusterDomainClaimsKey: "salad"},
		wantErr: "autocreate-cluster-domain-claims",
	}, {
		name: "network configuration with non-Cert-Manager Certificate type",
		data: map[string]string{DefaultCertificateClassKey: "foo-cert"},
		want: with(func(n *Network) { n.DefaultCertificateClass = "foo-cert" }),
	}, {
		name: "network configuration with configured wildcard cert label selector",
		data: map[string]string{NamespaceWildcardCertSelectorKey: "matchExpressions:\n- key: networking.knative.dev/disableWildcardCert\n  operator: NotIn\n  values: [\"true\"]"},
		want: with(func(n *Network) {
			n.NamespaceWildcardCertSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "networking.knative.dev/disableWildcardCert", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"},
			}}}
		}),
	}, {
		name: "network configuration with diff domain template",
		data: map[string]string{DefaultIngressClassKey: "foo-ingress", DomainTemplateKey: nonDefaultDomainTemplate},
		want: with(func(n *Network) { n.DefaultIngressClass = "foo-ingress"; n.DomainTemplate = nonDefaultDomainTemplate }),
	}, {
		name:    "network configuration with blank domain template",
		data:    map[string]string{DefaultIngressClassKey: "foo-ingress", DomainTemplateKey: ""},
		wantErr: "domain-template",
	}, {
		name:    "network configuration with bad domain template",
		data:    map[string]string{DomainTemplateKey: "{{.Namespace}.{{.Name}}.{{.Domain}}"}, // a closing brace is missing
		wantErr: "domain-template",
	}, {
		name:    "network configuration with bad url",
		data:    map[string]string{DomainTemplateKey: "{{.Domain}}/{{.Namespace}}/{{.Name}}."}, // paths are disallowed
		wantErr: "domain-template",
	}, {
		name:    "network configuration with bad variable",
		data:    map[string]string{DomainTemplateKey: "{{.Name}}.{{.NAmespace}}.{{.Domain}}"},
		wantErr: "domain-template",
	}, {
		name:    "Skiff: bad tag template names its key",
		data:    map[string]string{TagTemplateKey: "{{.Tag}-{{.Name}}"},
		wantErr: "tag-template",
	}, {
		name:    "Skiff: tag template with a bad variable",
		data:    map[string]string{TagTemplateKey: "{{.Tags}}-{{.Name}}"},
		wantErr: "tag-template",
	}, {
		name: "network configuration with external-domain-tls enabled",
		data: map[string]string{ExternalDomainTLSKey: "enabled"},
		want: with(func(n *Network) { n.AutoTLS, n.ExternalDomainTLS = true, true }),
	}, {
		name: "network configuration with external-domain-tls disabled",
		data: map[string]string{ExternalDomainTLSKey: "disabled"},
		want: knativeDefaults(),
	}, {
		name: "network configuration with Auto TLS enabled (deprecated)",
		data: map[string]string{AutoTLSKey: "enabled"},
		want: with(func(n *Network) { n.AutoTLS, n.ExternalDomainTLS = true, true }),
	}, {
		name: "network configuration with Auto TLS disabled (deprecated)",
		data: map[string]string{AutoTLSKey: "disabled"},
		want: knativeDefaults(),
	}, {
		name: "network configuration with external-domain-tls enabled and Auto TLS disabled",
		data: map[string]string{ExternalDomainTLSKey: "enabled", AutoTLSKey: "disabled"},
		want: with(func(n *Network) { n.AutoTLS, n.ExternalDomainTLS = true, true }),
	}, {
		name: "network configuration with HTTPProtocol disabled",
		data: map[string]string{AutoTLSKey: "enabled", HTTPProtocolKey: "Disabled"},
		want: with(func(n *Network) { n.AutoTLS, n.ExternalDomainTLS, n.HTTPProtocol = true, true, HTTPDisabled }),
	}, {
		name: "network configuration with HTTPProtocol redirected",
		data: map[string]string{AutoTLSKey: "enabled", HTTPProtocolKey: "Redirected"},
		want: with(func(n *Network) { n.AutoTLS, n.ExternalDomainTLS, n.HTTPProtocol = true, true, HTTPRedirected }),
	}, {
		name:    "network configuration with HTTPProtocol bad",
		data:    map[string]string{AutoTLSKey: "enabled", HTTPProtocolKey: "under-the-bridge"},
		wantErr: "http-protocol",
	}, {
		name: "network configuration with enabled pod-addressability",
		data: map[string]string{EnableMeshPodAddressabilityKey: "true"},
		want: with(func(n *Network) { n.EnableMeshPodAddressability = true }),
	}, {
		name: "network configuration with enabled mesh compatibility mode",
		data: map[string]string{MeshCompatibilityModeKey: "enabled"},
		want: with(func(n *Network) { n.MeshCompatibilityMode = "enabled" }),
	}, {
		name: "network configuration with disabled mesh compatibility mode",
		data: map[string]string{MeshCompatibilityModeKey: "disabled"},
		want: with(func(n *Network) { n.MeshCompatibilityMode = "disabled" }),
	}, {
		name: "network configuration with overridden external and internal scheme",
		data: map[string]string{DefaultExternalSchemeKey: "https"},
		want: with(func(n *Network) { n.DefaultExternalScheme = "https" }),
	}, {
		name:    "Skiff: an external scheme that is not http or https",
		data:    map[string]string{DefaultExternalSchemeKey: "gopher"},
		wantErr: "default-external-scheme",
	}, {
		name: "internal-encryption disabled (deprecated)",
		data: map[string]string{InternalEncryptionKey: "false"},
		want: knativeDefaults(),
	}, {
		name: "internal-encryption enabled (deprecated)",
		data: map[string]string{InternalEncryptionKey: "true"},
		want: with(func(n *Network) { n.InternalEncryption, n.SystemInternalTLS = true, EncryptionEnabled }),
	}, {
		name:    "system-internal-tls with invalid configuration value",
		data:    map[string]string{SystemInternalTLSKey: "wrong"},
		wantErr: "system-internal-tls",
	}, {
		name: "system-internal-tls with encryption disabled",
		data: map[string]string{SystemInternalTLSKey: "disabled"},
		want: knativeDefaults(),
	}, {
		name: "system-internal-tls with encryption enabled",
		data: map[string]string{SystemInternalTLSKey: "enabled"},
		want: with(func(n *Network) { n.InternalEncryption, n.SystemInternalTLS = true, EncryptionEnabled }),
	}, {
		name:    "cluster-local-domain-tls with invalid configuration value",
		data:    map[string]string{ClusterLocalDomainTLSKey: "wrong"},
		wantErr: "cluster-local-domain-tls",
	}, {
		name: "cluster-local-domain-tls with encryption disabled",
		data: map[string]string{ClusterLocalDomainTLSKey: "disabled"},
		want: knativeDefaults(),
	}, {
		name: "cluster-local-domain-tls with encryption enabled",
		data: map[string]string{ClusterLocalDomainTLSKey: "enabled"},
		want: with(func(n *Network) { n.ClusterLocalDomainTLS = EncryptionEnabled }),
	}, {
		name: "legacy keys",
		data: map[string]string{
			"ingress.class": "1", "certificate.class": "2", "domainTemplate": "3", "tagTemplate": "4",
			"rolloutDuration": "5", "defaultExternalScheme": "https",
			"autocreateClusterDomainClaims": "true", "httpProtocol": "redirected", "autoTLS": "enabled",
		},
		want: with(func(n *Network) {
			n.DefaultIngressClass, n.DefaultCertificateClass, n.DomainTemplate, n.TagTemplate = "1", "2", "3", "4"
			n.RolloutDurationSecs, n.DefaultExternalScheme = 5, "https"
			n.AutocreateClusterDomainClaims, n.HTTPProtocol, n.AutoTLS, n.ExternalDomainTLS = true, HTTPRedirected, true, true
		}),
	}, {
		name: "newer keys take precedence over legacy keys",
		data: map[string]string{
			"ingress.class": "1", "certificate.class": "2", "domainTemplate": "3", "tagTemplate": "4",
			"rolloutDuration": "5", "defaultExternalScheme": "https",
			"autocreateClusterDomainClaims": "true", "httpProtocol": "redirected", "autoTLS": "enabled",
			DefaultIngressClassKey: "7", DefaultCertificateClassKey: "8", DomainTemplateKey: "9", TagTemplateKey: "10",
			RolloutDurationKey: "11", DefaultExternalSchemeKey: "http",
			AutocreateClusterDomainClaimsKey: "false", HTTPProtocolKey: "enabled", AutoTLSKey: "disabled",
		},
		want: with(func(n *Network) {
			n.DefaultIngressClass, n.DefaultCertificateClass, n.DomainTemplate, n.TagTemplate = "7", "8", "9", "10"
			n.RolloutDurationSecs = 11
		}),
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNetwork(tc.data, NetworkDefaults{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseNetwork() error = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNetwork() = %v", err)
			}
			if w, g := withoutTemplates(tc.want), withoutTemplates(got); !reflect.DeepEqual(w, g) {
				t.Errorf("ParseNetwork() = %+v\nwant %+v", g, w)
			}
			data := DomainTemplateValues{Name: "foo", Namespace: "bar", Domain: "baz.com"}
			want, _ := tc.want.ExecuteDomainTemplate(data)
			if h, err := got.ExecuteDomainTemplate(data); err != nil || h != want {
				t.Errorf("domain template(%v) = %q, %v; want %q", data, h, err, want)
			}
		})
	}
}

// Skiff's skiff-up default: autocreate-cluster-domain-claims is true unless the key says.
func TestParseNetworkDefaults(t *testing.T) {
	d := NetworkDefaults{AutocreateClusterDomainClaims: true}
	if n, _ := ParseNetwork(nil, d); !n.AutocreateClusterDomainClaims {
		t.Error("no key: AutocreateClusterDomainClaims = false, want the mode's default true")
	}
	if n, _ := ParseNetwork(map[string]string{AutocreateClusterDomainClaimsKey: "false"}, d); n.AutocreateClusterDomainClaims {
		t.Error("key false: AutocreateClusterDomainClaims = true")
	}
}

// Ported from knative.dev/networking pkg/config/config_test.go TestAnnotationsInDomainTemplate
// and TestLabelsInDomainTemplate.
func TestDomainTemplateAnnotationsAndLabels(t *testing.T) {
	cases := []struct {
		name, template, want string
		data                 DomainTemplateValues
	}{{
		name: "annotations in template", template: `{{.Name}}.{{ index .Annotations "sub"}}.{{.Domain}}`, want: "foo.sub1.baz.com",
		data: DomainTemplateValues{Name: "foo", Namespace: "bar", Annotations: map[string]string{"sub": "sub1"}, Domain: "baz.com"},
	}, {
		name: "without annotations in template", template: `{{.Name}}.{{.Namespace}}.{{.Domain}}`, want: "foo.bar.baz.com",
		data: DomainTemplateValues{Name: "foo", Namespace: "bar", Domain: "baz.com"},
	}, {
		name: "labels in template", template: `{{.Name}}.{{ index .Labels "sub"}}.{{.Domain}}`, want: "foo.sub1.baz.com",
		data: DomainTemplateValues{Name: "foo", Namespace: "bar", Labels: map[string]string{"sub": "sub1"}, Domain: "baz.com"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNetwork(map[string]string{DefaultIngressClassKey: "foo-ingress", DomainTemplateKey: tc.template}, NetworkDefaults{})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := n.ExecuteDomainTemplate(tc.data); err != nil || got != tc.want {
				t.Errorf("domain template = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// Ported from knative.dev/serving pkg/reconciler/certificate/config/cert_manager_test.go
// TestIssuerRef.
func TestParseCertManager(t *testing.T) {
	if _, err := ParseCertManager(map[string]string{IssuerRefKey: "wrong format"}); err == nil || !strings.Contains(err.Error(), IssuerRefKey) {
		t.Errorf("invalid format: err = %v, want one naming %s", err, IssuerRefKey)
	}
	got, err := ParseCertManager(map[string]string{IssuerRefKey: "kind: ClusterIssuer\nname: letsencrypt-issuer\n"})
	if err != nil {
		t.Fatal(err)
	}
	want := &CertManager{
		IssuerRef:               IssuerRef{Kind: "ClusterIssuer", Name: "letsencrypt-issuer"},
		ClusterLocalIssuerRef:   KnativeSelfSignedIssuer,
		SystemInternalIssuerRef: KnativeSelfSignedIssuer,
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("valid IssuerRef = %+v, want %+v", got, want)
	}
	if got, _ := ParseCertManager(nil); got.IssuerRef != KnativeSelfSignedIssuer {
		t.Errorf("no data: issuerRef = %v, want %v", got.IssuerRef, KnativeSelfSignedIssuer)
	}
}

// withoutTemplates is n without its parsed templates, for comparing.
func withoutTemplates(n *Network) Network {
	c := *n
	c.domainTmpl, c.tagTmpl = nil, nil
	return c
}
