package domains

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// WildcardCertDomainLabel is Knative's label on a namespace wildcard certificate: the
// config-domain domain it is for (networking.WildcardCertDomainLabelKey).
const WildcardCertDomainLabel = "networking.knative.dev/wildcardDomain"

// NamespaceWildcard is the wildcard certificate a namespace gets for one domain when
// config-network's namespace-wildcard-cert-selector selects it (Knative's nscert reconciler).
type NamespaceWildcard struct {
	// Domain is the config-domain domain (the value of WildcardCertDomainLabel).
	Domain string
	// DNSName is the certificate's one name: the domain template with Name "*",
	// *.{namespace}.{domain} by default.
	DNSName string
	// Name is the certificate's and its Secret's name: DNSName without its first label, as
	// Knative's names.WildcardCertificate.
	Name string
}

// WildcardCertName is Knative's name of the wildcard certificate for dnsName: everything after
// its first dot ("*.ns.example.com" is named "ns.example.com").
func WildcardCertName(dnsName string) string {
	parts := strings.SplitAfterN(dnsName, ".", 2)
	return parts[len(parts)-1]
}

// NamespaceWildcards returns the wildcard certificates the namespace with these labels gets, as
// Knative's nscert reconciler decides them: none unless namespace-wildcard-cert-selector is set
// and matches the labels, else one per config-domain domain of type wildcard (the entries
// without a selector, or the default domain), named by the domain template with Name "*". A
// template that does not put the name first ("{{.Namespace}}.{{.Name}}.{{.Domain}}") cannot
// have a wildcard and is an error naming it. The result is sorted by domain.
func (c *Config) NamespaceWildcards(namespace string, nsLabels map[string]string) ([]NamespaceWildcard, error) {
	sel := c.Network.NamespaceWildcardCertSelector
	if sel == nil {
		return nil, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", NamespaceWildcardCertSelectorKey, err)
	}
	if !s.Matches(labels.Set(nsLabels)) {
		return nil, nil
	}
	var out []NamespaceWildcard
	for _, domain := range slices.Sorted(maps.Keys(c.Domain.Domains)) {
		if c.Domain.Domains[domain].Type != DomainTypeWildcard {
			continue
		}
		dns, err := c.Network.ExecuteDomainTemplate(DomainTemplateValues{Name: "*", Namespace: namespace, Domain: domain})
		if err != nil {
			return nil, fmt.Errorf("apply %s %q to domain %s and namespace %s: %w", DomainTemplateKey, c.Network.DomainTemplate, domain, namespace, err)
		}
		if !strings.HasPrefix(dns, "*.") || len(dns) == 2 {
			return nil, fmt.Errorf("invalid %s for a wildcard certificate: %s", DomainTemplateKey, dns)
		}
		out = append(out, NamespaceWildcard{Domain: domain, DNSName: dns, Name: WildcardCertName(dns)})
	}
	return out, nil
}

// WildcardCovers reports whether the wildcard certificate name dnsName covers every host, as
// Knative's route reconciler matches one (wildcardCertMatches): each host's parent domain (all
// after its first label) is the wildcard's.
func WildcardCovers(dnsName string, hosts []string) bool {
	parent, ok := strings.CutPrefix(dnsName, "*.")
	if !ok || parent == "" || len(hosts) == 0 {
		return false
	}
	for _, h := range hosts {
		_, hp, found := strings.Cut(h, ".")
		if !found || hp != parent {
			return false
		}
	}
	return true
}
