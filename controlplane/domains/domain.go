package domains

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// ClusterDomain is the cluster's DNS suffix; ClusterLocalDomain is the domain of cluster-local
// names ({name}.{namespace}.svc.cluster.local).
const (
	ClusterDomain      = "cluster.local"
	ClusterLocalDomain = "svc." + ClusterDomain
)

// VisibilityLabel marks a Service, Route (or a tag's placeholder) reachable only inside the
// cluster, with the value VisibilityClusterLocal.
const (
	VisibilityLabel        = "networking.knative.dev/visibility"
	VisibilityClusterLocal = "cluster-local"
)

// DomainTypeWildcard is config-domain's type for domains that get namespace wildcard
// certificates; Knative gives it to the default domain.
const DomainTypeWildcard = "wildcard"

// exampleKey is the documentation key of every Knative ConfigMap, which is never a setting.
const exampleKey = "_example"

// Domain is config-domain: the domains Routes live under, each selected by route labels.
type Domain struct {
	Domains map[string]DomainConfig
}

// DomainConfig is one config-domain entry.
type DomainConfig struct {
	// Selector is ANDed label equalities; empty selects every Route (the default domain).
	Selector map[string]string
	// Type is "wildcard" or empty.
	Type string
}

// DefaultDomain is config-domain with no data: everything under def.
func DefaultDomain(def string) *Domain {
	return &Domain{Domains: map[string]DomainConfig{def: {Selector: map[string]string{}, Type: DomainTypeWildcard}}}
}

// ParseDomain reads config-domain's data as Knative's NewDomainFromConfigMap does. With no
// entry without a selector, the default domain is def: Knative falls back to svc.cluster.local,
// which makes every unselected Route cluster-local; Skiff falls back to its --domain setting
// (give "svc.cluster.local" an empty entry to get Knative's behaviour). An error names the key.
func ParseDomain(data map[string]string, def string) (*Domain, error) {
	d := &Domain{Domains: map[string]DomainConfig{}}
	hasDefault := false
	for _, k := range slices.Sorted(maps.Keys(data)) {
		if k == exampleKey {
			continue
		}
		var entry struct {
			Selector map[string]string `json:"selector,omitempty"`
			Type     string            `json:"type"`
		}
		if err := yaml.Unmarshal([]byte(data[k]), &entry); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if len(entry.Selector) == 0 {
			hasDefault = true
			entry.Type = DomainTypeWildcard
		}
		if entry.Selector == nil {
			entry.Selector = map[string]string{}
		}
		d.Domains[k] = DomainConfig{Selector: entry.Selector, Type: entry.Type}
	}
	if !hasDefault {
		d.Domains[def] = DomainConfig{Selector: map[string]string{}, Type: DomainTypeWildcard}
	}
	return d, nil
}

// selectorMatches reports whether every label of sel is in labels with the same value.
func selectorMatches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if have, ok := labels[k]; !ok || have != v {
			return false
		}
	}
	return true
}

// LookupDomainForLabels returns the domain of a Route with these labels: svc.cluster.local for a
// cluster-local Route, else the entry with the most specific matching selector (ties go to the
// alphabetically first domain), as Knative's LookupDomainForLabels.
func (d *Domain) LookupDomainForLabels(labels map[string]string) string {
	if labels[VisibilityLabel] == VisibilityClusterLocal {
		return ClusterLocalDomain
	}
	domain, specificity := "", -1
	for k, v := range d.Domains {
		if !selectorMatches(v.Selector, labels) || len(v.Selector) < specificity {
			continue
		}
		if len(v.Selector) > specificity || strings.Compare(k, domain) < 0 {
			domain, specificity = k, len(v.Selector)
		}
	}
	return domain
}
