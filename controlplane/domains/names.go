package domains

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Annotations Knative reads on a Service, Route or DomainMapping.
const (
	// HTTPProtocolAnnotation overrides config-network's http-protocol ("Enabled" or
	// "Redirected"); HTTPOptionAnnotation is its older spelling, read first.
	HTTPProtocolAnnotation = "networking.knative.dev/http-protocol"
	HTTPOptionAnnotation   = "networking.knative.dev/httpOption"
	// DisableExternalDomainTLSAnnotation ("true") opts one object out of external-domain-tls;
	// the two older spellings are read first.
	DisableExternalDomainTLSAnnotation = "networking.knative.dev/disable-external-domain-tls"
	disableAutoTLSAnnotation           = "networking.knative.dev/disableAutoTLS"
	disableAutoTLSAltAnnotation        = "networking.knative.dev/disable-auto-tls"
)

// ErrDomainName marks a host name the templates could not make; Knative reports it on the
// Route's AllTrafficAssigned condition.
var ErrDomainName = errors.New("domain name error")

// Config is what the naming decisions read.
type Config struct {
	Network *Network
	Domain  *Domain
}

// Meta is the metadata of the object whose names are made (a Route's).
type Meta struct {
	Name, Namespace     string
	Labels, Annotations map[string]string
}

// withVisibility returns m with the visibility label set (cluster-local) or removed.
func (m Meta) withVisibility(clusterLocal bool) Meta {
	labels := maps.Clone(m.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if clusterLocal {
		labels[VisibilityLabel] = VisibilityClusterLocal
	} else {
		delete(labels, VisibilityLabel)
	}
	m.Labels = labels
	return m
}

// DomainNameFromTemplate is the host of name (a route name, or a tag's host name from
// HostnameFromTemplate) for an object with meta: the domain-template filled with the domain
// meta's labels select, or, for a cluster-local object, {name}.{namespace}.svc.cluster.local
// whatever the template (Knative's DomainNameFromTemplate).
func (c *Config) DomainNameFromTemplate(meta Meta, name string) (string, error) {
	data := DomainTemplateValues{
		Name: name, Namespace: meta.Namespace, Domain: c.Domain.LookupDomainForLabels(meta.Labels),
		Annotations: meta.Annotations, Labels: meta.Labels,
	}
	var host string
	var err error
	if meta.Labels[VisibilityLabel] == VisibilityClusterLocal {
		local := &Network{DomainTemplate: DefaultDomainTemplate}
		host, err = local.ExecuteDomainTemplate(data)
	} else {
		host, err = c.Network.ExecuteDomainTemplate(data)
	}
	if err != nil {
		return "", fmt.Errorf("%w: error executing the DomainTemplate: %w", ErrDomainName, err)
	}
	if errs := validation.IsFullyQualifiedDomainName(field.NewPath("url"), host); len(errs) > 0 {
		return "", fmt.Errorf("%w: invalid domain name %q: %w", ErrDomainName, host, errs.ToAggregate())
	}
	return host, nil
}

// HostnameFromTemplate is the name of tag's target of route name: name itself for the default
// target (tag ""), else the tag-template's result.
func (c *Config) HostnameFromTemplate(name, tag string) (string, error) {
	if tag == "" {
		return name, nil
	}
	h, err := c.Network.ExecuteTagTemplate(TagTemplateValues{Name: name, Tag: tag})
	if err != nil {
		return "", fmt.Errorf("%w: error executing the TagTemplate: %w", ErrDomainName, err)
	}
	return h, nil
}

// Visibility says where a traffic target is served.
type Visibility string

// The two visibilities, as Knative's IngressVisibility.
const (
	// ExternalIP targets are served on the external listeners (and, by their cluster-local
	// names, on the local one).
	ExternalIP Visibility = "ExternalIP"
	// ClusterLocal targets are served only by their cluster-local names on the local listener.
	ClusterLocal Visibility = "ClusterLocal"
)

// Domains are a target's names for one visibility: Primary is its URL's host.
type Domains struct {
	Primary  string
	Expanded []string
}

// DomainsForVisibility returns the names of tag's target of the route with meta, for vis:
// the templated external host, or the cluster-local host and its short forms
// ({name}.{namespace}.svc and {name}.{namespace}), as Knative's GetDomainsForVisibility.
func (c *Config) DomainsForVisibility(meta Meta, tag string, vis Visibility) (Domains, error) {
	hostname, err := c.HostnameFromTemplate(meta.Name, tag)
	if err != nil {
		return Domains{}, err
	}
	local := vis == ClusterLocal
	host, err := c.DomainNameFromTemplate(meta.withVisibility(local), hostname)
	if err != nil {
		return Domains{}, err
	}
	d := Domains{Primary: host, Expanded: []string{host}}
	if local {
		d.Expanded = ExpandedHosts(d.Expanded)
	}
	return d, nil
}

// AllDomainsAndTags maps every host of the named targets ("" is the default target) to its
// tag, each with its visibility, as Knative's GetAllDomainsAndTags.
func (c *Config) AllDomainsAndTags(meta Meta, names []string, visibility map[string]Visibility) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, name := range names {
		hostname, err := c.HostnameFromTemplate(meta.Name, name)
		if err != nil {
			return nil, err
		}
		host, err := c.DomainNameFromTemplate(meta.withVisibility(visibility[name] == ClusterLocal), hostname)
		if err != nil {
			return nil, err
		}
		out[host] = name
	}
	return out, nil
}

// IsClusterLocal reports whether a host is a cluster-local name.
func IsClusterLocal(host string) bool {
	return strings.HasSuffix(host, ClusterDomain)
}

// ExpandedHosts adds to hosts their forms without ".cluster.local" and ".svc.cluster.local",
// keeping only names whose last label is a valid top-level domain (Knative's ExpandedHosts).
func ExpandedHosts(hosts []string) []string {
	seen := map[string]bool{}
	for _, h := range hosts {
		for _, suffix := range []string{"", "." + ClusterDomain, "." + ClusterLocalDomain} {
			if th := strings.TrimSuffix(h, suffix); suffix == "" || len(th) < len(h) {
				if validTopLevelDomain(th) {
					seen[th] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// validTopLevelDomain rejects all-digit and over-long last labels.
func validTopLevelDomain(domain string) bool {
	parts := strings.Split(domain, ".")
	tld := parts[len(parts)-1]
	if len(tld) > 63 {
		return false
	}
	_, err := strconv.Atoi(tld)
	return err != nil
}

// RouteVisibility is the visibility of a whole Route: cluster-local when its labels say so or
// its domain is the cluster-local domain.
func (c *Config) RouteVisibility(labels map[string]string) Visibility {
	if c.Domain.LookupDomainForLabels(labels) == ClusterLocalDomain {
		return ClusterLocal
	}
	return ExternalIP
}

// TargetVisibility resolves the visibility of each traffic target name ("" and every tag) of the
// route with meta, as Knative's visibility.Resolver: the Route's own visibility, lowered to
// cluster-local for a target whose placeholder (keyed by the target's host name, e.g.
// "blue-hello") carries any visibility label. Skiff has no placeholder Kubernetes Services in
// `skiff up`; callers pass the labels they hold for those names (see package reconciler).
func (c *Config) TargetVisibility(meta Meta, tags []string, placeholders map[string]map[string]string) (map[string]Visibility, error) {
	def := c.RouteVisibility(meta.Labels)
	out := make(map[string]Visibility, len(tags)+1)
	for _, tag := range append([]string{""}, tags...) {
		hostname, err := c.HostnameFromTemplate(meta.Name, tag)
		if err != nil {
			return nil, err
		}
		v := ExternalIP
		if placeholders[hostname][VisibilityLabel] != "" {
			v = ClusterLocal
		}
		if def == ClusterLocal {
			v = ClusterLocal
		}
		out[tag] = v
	}
	return out, nil
}

// HTTPOption is how plain HTTP is answered for one object: the http-protocol annotation if
// set (Enabled or Redirected), else config-network's http-protocol (Disabled, deprecated in
// Knative, serves plain HTTP as Enabled does). An invalid annotation is an error naming it.
func (c *Config) HTTPOption(annotations map[string]string) (HTTPProtocol, error) {
	for _, k := range []string{HTTPOptionAnnotation, HTTPProtocolAnnotation} {
		v, ok := annotations[k]
		if !ok || v == "" {
			continue
		}
		switch p := HTTPProtocol(strings.ToLower(v)); p {
		case HTTPEnabled, HTTPRedirected:
			return p, nil
		default:
			return "", fmt.Errorf("incorrect http-protocol annotation: %s", strings.ToLower(v))
		}
	}
	if c.Network.HTTPProtocol == HTTPRedirected {
		return HTTPRedirected, nil
	}
	return HTTPEnabled, nil
}

// ExternalDomainTLS reports whether an object with these annotations gets certificates for its
// external hosts: config-network's external-domain-tls, unless the object opts out with
// networking.knative.dev/disable-external-domain-tls: "true".
func (c *Config) ExternalDomainTLS(annotations map[string]string) bool {
	if !c.Network.ExternalDomainTLS {
		return false
	}
	for _, k := range []string{disableAutoTLSAnnotation, disableAutoTLSAltAnnotation, DisableExternalDomainTLSAnnotation} {
		if v, ok := annotations[k]; ok {
			disabled, err := strconv.ParseBool(v)
			return err != nil || !disabled
		}
	}
	return true
}
