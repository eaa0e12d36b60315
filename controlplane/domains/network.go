// Package domains decides the names Knative Services answer to and how they are served, from
// Knative's own ConfigMaps (config-network, config-domain, config-certmanager): the domain and
// tag templates, the domain a Route's labels select, a traffic target's visibility, the
// cluster-local names, and whether plain HTTP is served or redirected. It is pure (no I/O), so
// `skiff up` and Kubernetes mode make the same decisions; it follows knative.dev/networking's
// pkg/config and knative.dev/serving's route/config, route/domains and route/visibility, whose
// test cases its tests port.
package domains

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/template"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Names of the ConfigMaps this package reads, as Knative names them.
const (
	NetworkConfigName     = "config-network"
	DomainConfigName      = "config-domain"
	CertManagerConfigName = "config-certmanager"
)

// Default templates, as Knative's.
const (
	DefaultDomainTemplate = "{{.Name}}.{{.Namespace}}.{{.Domain}}"
	DefaultTagTemplate    = "{{.Tag}}-{{.Name}}"
)

// config-network keys Skiff reads (Knative's names; the legacy camelCase spellings are read too,
// the new key winning).
const (
	DomainTemplateKey                = "domain-template"
	TagTemplateKey                   = "tag-template"
	HTTPProtocolKey                  = "http-protocol"
	ExternalDomainTLSKey             = "external-domain-tls"
	AutoTLSKey                       = "auto-tls" // deprecated spelling of external-domain-tls
	ClusterLocalDomainTLSKey         = "cluster-local-domain-tls"
	SystemInternalTLSKey             = "system-internal-tls"
	InternalEncryptionKey            = "internal-encryption" // deprecated spelling of system-internal-tls
	DefaultExternalSchemeKey         = "default-external-scheme"
	AutocreateClusterDomainClaimsKey = "autocreate-cluster-domain-claims"
	DefaultIngressClassKey           = "ingress-class"
	DefaultCertificateClassKey       = "certificate-class"
	RolloutDurationKey               = "rollout-duration"
	EnableMeshPodAddressabilityKey   = "enable-mesh-pod-addressability"
	MeshCompatibilityModeKey         = "mesh-compatibility-mode"
	NamespaceWildcardCertSelectorKey = "namespace-wildcard-cert-selector"
)

// HTTPProtocol is config-network's http-protocol: what the plain HTTP listener does.
type HTTPProtocol string

// The http-protocol values.
const (
	HTTPEnabled    HTTPProtocol = "enabled"
	HTTPRedirected HTTPProtocol = "redirected"
	HTTPDisabled   HTTPProtocol = "disabled"
)

// Encryption is the value of the *-tls keys that are not external-domain-tls.
type Encryption string

// The encryption values.
const (
	EncryptionDisabled Encryption = "disabled"
	EncryptionEnabled  Encryption = "enabled"
)

// Knative's default ingress and certificate classes (kept for parity; Skiff has one of each).
const (
	IstioIngressClassName           = "istio.ingress.networking.knative.dev"
	CertManagerCertificateClassName = "cert-manager.certificate.networking.knative.dev"
)

// Network is config-network as Skiff reads it.
type Network struct {
	DefaultIngressClass     string
	DefaultCertificateClass string
	// DomainTemplate builds a Route's host from DomainTemplateValues.
	DomainTemplate string
	// TagTemplate builds a tagged target's host name from TagTemplateValues.
	TagTemplate string
	// AutoTLS mirrors ExternalDomainTLS (Knative keeps both for compatibility).
	AutoTLS bool
	// ExternalDomainTLS issues a certificate per external host and makes status URLs https.
	ExternalDomainTLS bool
	// HTTPProtocol says whether plain HTTP is served (enabled), redirected to https, or
	// (deprecated) disabled.
	HTTPProtocol                  HTTPProtocol
	NamespaceWildcardCertSelector *metav1.LabelSelector
	RolloutDurationSecs           int
	// AutocreateClusterDomainClaims makes DomainMappings claim their domain themselves.
	AutocreateClusterDomainClaims bool
	EnableMeshPodAddressability   bool
	MeshCompatibilityMode         string
	// DefaultExternalScheme is the scheme of external URLs without a certificate.
	DefaultExternalScheme string
	InternalEncryption    bool
	SystemInternalTLS     Encryption
	ClusterLocalDomainTLS Encryption

	domainTmpl, tagTmpl *template.Template
}

// DomainTemplateValues are what a domain-template may use.
type DomainTemplateValues struct {
	Name        string
	Namespace   string
	Domain      string
	Annotations map[string]string
	Labels      map[string]string
}

// TagTemplateValues are what a tag-template may use.
type TagTemplateValues struct {
	Name string
	Tag  string
}

// NetworkDefaults are the values keys absent from config-network take where the running mode
// differs from Knative's defaults.
type NetworkDefaults struct {
	// AutocreateClusterDomainClaims is true in `skiff up` (one user, one machine) and false, as
	// in Knative, in a cluster.
	AutocreateClusterDomainClaims bool
}

// DefaultNetwork is config-network with no data: Knative's defaults, changed by d.
func DefaultNetwork(d NetworkDefaults) *Network {
	n, err := ParseNetwork(nil, d)
	if err != nil {
		panic(err) // the default templates parse
	}
	return n
}

// ParseNetwork reads config-network's data as Knative's NewConfigFromMap does. An error names
// the key and the reason.
func ParseNetwork(data map[string]string, d NetworkDefaults) (*Network, error) {
	n := &Network{
		DefaultIngressClass:           IstioIngressClassName,
		DefaultCertificateClass:       CertManagerCertificateClassName,
		DomainTemplate:                DefaultDomainTemplate,
		TagTemplate:                   DefaultTagTemplate,
		HTTPProtocol:                  HTTPEnabled,
		AutocreateClusterDomainClaims: d.AutocreateClusterDomainClaims,
		DefaultExternalScheme:         "http",
		MeshCompatibilityMode:         "auto",
		SystemInternalTLS:             EncryptionDisabled,
		ClusterLocalDomainTLS:         EncryptionDisabled,
	}
	// Each setting is read from its legacy key, then from its current key, which wins.
	str := func(target *string, keys ...string) {
		for _, k := range keys {
			if v, ok := data[k]; ok {
				*target = v
			}
		}
	}
	boolean := func(target *bool, keys ...string) error {
		for _, k := range keys {
			if v, ok := data[k]; ok {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%s: %q is not a boolean", k, v)
				}
				*target = b
			}
		}
		return nil
	}
	str(&n.DefaultIngressClass, "ingress.class", DefaultIngressClassKey)
	str(&n.DefaultCertificateClass, "certificate.class", DefaultCertificateClassKey)
	str(&n.DomainTemplate, "domainTemplate", DomainTemplateKey)
	str(&n.TagTemplate, "tagTemplate", TagTemplateKey)
	str(&n.DefaultExternalScheme, "defaultExternalScheme", DefaultExternalSchemeKey)
	for _, k := range []string{"rolloutDuration", RolloutDurationKey} {
		if v, ok := data[k]; ok {
			i, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not an integer", k, v)
			}
			n.RolloutDurationSecs = i
		}
	}
	if n.RolloutDurationSecs < 0 {
		return nil, fmt.Errorf("%s must be a positive integer, but was %d", RolloutDurationKey, n.RolloutDurationSecs)
	}
	if err := boolean(&n.AutocreateClusterDomainClaims, "autocreateClusterDomainClaims", AutocreateClusterDomainClaimsKey); err != nil {
		return nil, err
	}
	if err := boolean(&n.EnableMeshPodAddressability, EnableMeshPodAddressabilityKey); err != nil {
		return nil, err
	}
	if err := boolean(&n.InternalEncryption, InternalEncryptionKey); err != nil {
		return nil, err
	}
	if v, ok := data[MeshCompatibilityModeKey]; ok {
		for _, m := range []string{"enabled", "disabled", "auto"} {
			if strings.EqualFold(v, m) {
				n.MeshCompatibilityMode = m
			}
		}
	}
	if v := data[NamespaceWildcardCertSelectorKey]; v != "" {
		var sel metav1.LabelSelector
		if err := yaml.Unmarshal([]byte(v), &sel); err != nil {
			return nil, fmt.Errorf("%s: %w", NamespaceWildcardCertSelectorKey, err)
		}
		// Knative's nscert reconciler fails each namespace on a selector that does not
		// convert; refusing it here names the key instead.
		if _, err := metav1.LabelSelectorAsSelector(&sel); err != nil {
			return nil, fmt.Errorf("%s: %w", NamespaceWildcardCertSelectorKey, err)
		}
		n.NamespaceWildcardCertSelector = &sel
	}

	var err error
	if n.domainTmpl, err = parseDomainTemplate(n.DomainTemplate); err != nil {
		return nil, fmt.Errorf("%s %q: %w", DomainTemplateKey, n.DomainTemplate, err)
	}
	if n.tagTmpl, err = parseTagTemplate(n.TagTemplate); err != nil {
		return nil, fmt.Errorf("%s %q: %w", TagTemplateKey, n.TagTemplate, err)
	}

	for _, k := range []string{"autoTLS", AutoTLSKey} {
		if v, ok := data[k]; ok {
			n.AutoTLS = strings.EqualFold(v, "enabled")
		}
	}
	if v, ok := data[ExternalDomainTLSKey]; ok {
		n.ExternalDomainTLS = strings.EqualFold(v, "enabled")
		n.AutoTLS = n.ExternalDomainTLS
	} else {
		n.ExternalDomainTLS = n.AutoTLS
	}

	protocol, protocolKey := "", HTTPProtocolKey
	if v, ok := data["httpProtocol"]; ok {
		protocol, protocolKey = v, "httpProtocol"
	}
	if v, ok := data[HTTPProtocolKey]; ok {
		protocol, protocolKey = v, HTTPProtocolKey
	}
	switch HTTPProtocol(strings.ToLower(protocol)) {
	case "", HTTPEnabled:
	case HTTPDisabled:
		n.HTTPProtocol = HTTPDisabled
	case HTTPRedirected:
		n.HTTPProtocol = HTTPRedirected
	default:
		return nil, fmt.Errorf("%s: %q is not supported (want Enabled, Redirected or Disabled)", protocolKey, protocol)
	}

	switch Encryption(strings.ToLower(data[SystemInternalTLSKey])) {
	case "", EncryptionDisabled:
		if n.InternalEncryption {
			n.SystemInternalTLS = EncryptionEnabled
		}
	case EncryptionEnabled:
		n.SystemInternalTLS = EncryptionEnabled
		n.InternalEncryption = true
	default:
		return nil, fmt.Errorf("%s: %q is not supported (want enabled or disabled)", SystemInternalTLSKey, data[SystemInternalTLSKey])
	}
	switch Encryption(strings.ToLower(data[ClusterLocalDomainTLSKey])) {
	case "", EncryptionDisabled:
	case EncryptionEnabled:
		n.ClusterLocalDomainTLS = EncryptionEnabled
	default:
		return nil, fmt.Errorf("%s: %q is not supported (want enabled or disabled)", ClusterLocalDomainTLSKey, data[ClusterLocalDomainTLSKey])
	}
	switch n.DefaultExternalScheme {
	case "http", "https":
	default:
		// Knative takes any string and writes it into URLs; a URL scheme Skiff does not serve
		// would only make status lie.
		return nil, fmt.Errorf("%s: %q is not supported (want http or https)", DefaultExternalSchemeKey, n.DefaultExternalScheme)
	}
	return n, nil
}

// parseDomainTemplate parses a domain-template and tries it, as Knative's checkDomainTemplate:
// it must execute and give a host name with no path.
func parseDomainTemplate(s string) (*template.Template, error) {
	t, err := template.New(DomainTemplateKey).Parse(s)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, DomainTemplateValues{Name: "foo", Namespace: "bar", Domain: "baz.com"}); err != nil {
		return nil, err
	}
	u, err := url.Parse("https://" + buf.String())
	if err != nil {
		return nil, err
	}
	if u.Hostname() == "" {
		return nil, errors.New("empty hostname")
	}
	if u.RequestURI() != "/" {
		return nil, fmt.Errorf("domain template has url path: %s", u.RequestURI())
	}
	return t, nil
}

// parseTagTemplate parses a tag-template and tries it, as Knative's checkTagTemplate.
func parseTagTemplate(s string) (*template.Template, error) {
	t, err := template.New(TagTemplateKey).Parse(s)
	if err != nil {
		return nil, err
	}
	if err := t.Execute(io.Discard, TagTemplateValues{Name: "foo", Tag: "v2"}); err != nil {
		return nil, err
	}
	return t, nil
}

// ExecuteDomainTemplate runs the domain-template.
func (n *Network) ExecuteDomainTemplate(v DomainTemplateValues) (string, error) {
	t := n.domainTmpl
	if t == nil {
		var err error
		if t, err = parseDomainTemplate(n.DomainTemplate); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	err := t.Execute(&buf, v)
	return buf.String(), err
}

// ExecuteTagTemplate runs the tag-template.
func (n *Network) ExecuteTagTemplate(v TagTemplateValues) (string, error) {
	t := n.tagTmpl
	if t == nil {
		var err error
		if t, err = parseTagTemplate(n.TagTemplate); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	err := t.Execute(&buf, v)
	return buf.String(), err
}
