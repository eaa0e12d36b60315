package reconciler

import (
	"context"
	"errors"
	"fmt"
	"hash/adler32"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	"github.com/skiff-dev/skiff/api/fielderr"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	servingv1beta1 "github.com/skiff-dev/skiff/api/serving/v1beta1"
	"github.com/skiff-dev/skiff/controlplane/certs"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/revisiongc"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// DefaultSystemNamespace is where `skiff up` reads Knative's config-network, config-domain and
// config-certmanager from, as Knative reads them from knative-serving.
const DefaultSystemNamespace = "knative-serving"

// ClusterLocalTagsAnnotation lists the tags of a Service or Route ("blue,green") served only
// on their cluster-local names. It stands in for Knative's per-tag switch, the visibility label
// on a tag's placeholder Kubernetes Service ({tag}-{route}), which `skiff up` does not have.
const ClusterLocalTagsAnnotation = "networking.skiff.dev/cluster-local-tags"

// RouteConditionCertificateProvisioned is Knative's Route condition for its certificates.
const RouteConditionCertificateProvisioned duck.ConditionType = "CertificateProvisioned"

// Knative's CertificateProvisioned messages.
const (
	externalDomainTLSNotEnabledMessage  = "external-domain-tls is not enabled"
	tlsNotEnabledForClusterLocalMessage = "TLS is not enabled for cluster-local"
)

// netSettings are the parsed networking ConfigMaps in force.
type netSettings struct {
	cfg         *domains.Config
	certManager *domains.CertManager
}

// settings returns the networking settings in force (Knative's defaults until loaded).
func (c *Controller) settings() *netSettings {
	if s := c.net.Load(); s != nil {
		return s
	}
	return c.defaultSettings()
}

func (c *Controller) defaultSettings() *netSettings {
	cm, _ := domains.ParseCertManager(nil)
	return &netSettings{
		cfg:         &domains.Config{Network: domains.DefaultNetwork(c.cfg.NetworkDefaults), Domain: domains.DefaultDomain(c.cfg.Domain)},
		certManager: cm,
	}
}

// networkConfigMaps are the ConfigMaps of the system namespace the controller reads.
var networkConfigMaps = []string{domains.NetworkConfigName, domains.DomainConfigName, domains.CertManagerConfigName}

// ParseNetworkConfigMap checks one of Knative's networking ConfigMaps as the controller reads
// it, returning the error that names the bad key (nil for other ConfigMaps).
func ParseNetworkConfigMap(name string, data map[string]string, d domains.NetworkDefaults, defaultDomain string) error {
	var err error
	switch name {
	case domains.NetworkConfigName:
		_, err = domains.ParseNetwork(data, d)
	case domains.DomainConfigName:
		_, err = domains.ParseDomain(data, defaultDomain)
	case domains.CertManagerConfigName:
		_, err = domains.ParseCertManager(data)
	}
	return err
}

// loadSettings reads the networking ConfigMaps and, when they parse and differ from those in
// force, puts them in force and re-renders every Route and DomainMapping. A ConfigMap that
// does not parse leaves the previous settings in force (and is logged): `skiff up` refuses it
// when applied, and in a cluster the controller keeps going with what worked.
func (c *Controller) loadSettings(ctx context.Context) error {
	data := map[string]map[string]string{}
	for _, name := range networkConfigMaps {
		var cm api.ConfigMap
		err := c.cfg.Store.Get(ctx, store.Key{Kind: api.KindConfigMap, Namespace: c.cfg.SystemNamespace, Name: name}, &cm)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			c.log.Warn("cannot read a networking ConfigMap; using its defaults", "namespace", c.cfg.SystemNamespace, "name", name, "err", err)
		default:
			data[name] = cm.Data
		}
	}
	network, err := domains.ParseNetwork(data[domains.NetworkConfigName], c.cfg.NetworkDefaults)
	if err != nil {
		c.log.Error("config-network is invalid; keeping the settings in force", "namespace", c.cfg.SystemNamespace, "err", err)
		return nil
	}
	domain, err := domains.ParseDomain(data[domains.DomainConfigName], c.cfg.Domain)
	if err != nil {
		c.log.Error("config-domain is invalid; keeping the settings in force", "namespace", c.cfg.SystemNamespace, "err", err)
		return nil
	}
	cm, err := domains.ParseCertManager(data[domains.CertManagerConfigName])
	if err != nil {
		c.log.Error("config-certmanager is invalid; keeping the settings in force", "namespace", c.cfg.SystemNamespace, "err", err)
		return nil
	}
	next := &netSettings{cfg: &domains.Config{Network: network, Domain: domain}, certManager: cm}
	prev := c.net.Swap(next)
	if prev != nil && sameSettings(prev, next) {
		return nil
	}
	if prev != nil {
		c.log.Info("networking settings changed; re-rendering every route")
	}
	c.enqueueAll(kindNamespace, "")
	c.enqueueAll(servingv1.KindRoute, "")
	c.enqueueAll(servingv1beta1.KindDomainMapping, "")
	return nil
}

func sameSettings(a, b *netSettings) bool {
	na, nb := *a.cfg.Network, *b.cfg.Network
	return fmt.Sprintf("%+v", withoutTemplates(na)) == fmt.Sprintf("%+v", withoutTemplates(nb)) &&
		fmt.Sprintf("%v", a.cfg.Domain.Domains) == fmt.Sprintf("%v", b.cfg.Domain.Domains) &&
		*a.certManager == *b.certManager &&
		reflect.DeepEqual(na.NamespaceWildcardCertSelector, nb.NamespaceWildcardCertSelector)
}

// withoutTemplates drops what is derived from the templates, for comparing settings.
func withoutTemplates(n domains.Network) domains.Network {
	return domains.Network{
		DomainTemplate: n.DomainTemplate, TagTemplate: n.TagTemplate, AutoTLS: n.AutoTLS, ExternalDomainTLS: n.ExternalDomainTLS,
		HTTPProtocol: n.HTTPProtocol, AutocreateClusterDomainClaims: n.AutocreateClusterDomainClaims,
		DefaultExternalScheme: n.DefaultExternalScheme, ClusterLocalDomainTLS: n.ClusterLocalDomainTLS,
		DefaultCertificateClass: n.DefaultCertificateClass, DefaultIngressClass: n.DefaultIngressClass,
	}
}

// targetNames are one traffic target's names.
type targetNames struct {
	visibility domains.Visibility
	// external are the target's external names (empty when it is cluster-local).
	external domains.Domains
	// local are its cluster-local names.
	local domains.Domains
}

// routeNames makes the names of every traffic target ("" and each tag) of route from the
// templates and visibility in force, as Knative's route reconciler does.
func routeNames(cfg *domains.Config, route *servingv1.Route, traffic []servingv1.TrafficTarget) (map[string]targetNames, error) {
	meta := domains.Meta{Name: route.Name, Namespace: route.Namespace, Labels: route.Labels, Annotations: route.Annotations}
	var tags []string
	for _, t := range traffic {
		if t.Tag != "" && !slices.Contains(tags, t.Tag) {
			tags = append(tags, t.Tag)
		}
	}
	placeholders := map[string]map[string]string{}
	for _, tag := range strings.Split(route.Annotations[ClusterLocalTagsAnnotation], ",") {
		if tag = strings.TrimSpace(tag); tag == "" {
			continue
		}
		h, err := cfg.HostnameFromTemplate(route.Name, tag)
		if err != nil {
			return nil, err
		}
		placeholders[h] = map[string]string{domains.VisibilityLabel: domains.VisibilityClusterLocal}
	}
	vis, err := cfg.TargetVisibility(meta, tags, placeholders)
	if err != nil {
		return nil, err
	}
	out := make(map[string]targetNames, len(vis))
	for tag, v := range vis {
		n := targetNames{visibility: v}
		if n.local, err = cfg.DomainsForVisibility(meta, tag, domains.ClusterLocal); err != nil {
			return nil, err
		}
		if v == domains.ExternalIP {
			if n.external, err = cfg.DomainsForVisibility(meta, tag, domains.ExternalIP); err != nil {
				return nil, err
			}
		}
		out[tag] = n
	}
	return out, nil
}

// primary is the host of a target's URL: its external name, or its cluster-local one.
func (n targetNames) primary() string {
	if n.visibility == domains.ExternalIP {
		return n.external.Primary
	}
	return n.local.Primary
}

// hostTLS is what the certificates of an object's external hosts decided.
type hostTLS struct {
	// scheme is each external host's URL scheme ("https" with a certificate, or pending
	// one without HTTP downgrade).
	scheme map[string]string
	// challenges are the ACME challenges to route per host.
	challenges map[string][]xds.Challenge
}

func (h *hostTLS) schemeOf(host, def string) string {
	if s := h.scheme[host]; s != "" {
		return s
	}
	return def
}

// certRequest is one certificate an object needs.
type certRequest struct {
	name string // Knative's certificate (and Secret) name
	host string
	// wildcard, when set, is the namespace wildcard certificate that covers host: the object
	// serves it instead of asking for its own (Knative's findMatchingWildcardCert).
	wildcard *certs.Request
}

// certOwner is the object certificates are asked for.
type certOwner struct {
	key                         store.Key
	uid, kind, apiVersion, name string
}

// provisionCertificates gets the certificates of reqs for owner, serves the ready ones on the
// TLS listener, stops serving the ones no longer wanted, and sets cond on st as Knative's
// route reconciler does: True when all are served, Unknown (CertificateNotReady) while one is
// pending, or True with HTTPDowngrade when pending ones are served over plain HTTP meanwhile,
// False (CertificateProvisionFailed, naming why) when one cannot be had. A failing certificate
// fails its host alone.
func (c *Controller) provisionCertificates(ctx context.Context, owner certOwner, reqs []certRequest, st *duck.Status, cond duck.ConditionType, now time.Time) (*hostTLS, error) {
	out := &hostTLS{scheme: map[string]string{}, challenges: map[string][]xds.Challenge{}}
	var served, names []string
	var failed, pending, downgraded []string
	if c.cfg.Certificates == nil {
		if len(reqs) > 0 {
			st.MarkFalse(cond, "CertificateProvisionFailed", "external-domain-tls is enabled but Skiff has no certificate issuer configured here", now)
		}
		c.setServedCerts(owner.key, nil)
		return out, nil
	}
	downgrade := c.settings().cfg.Network.HTTPProtocol == domains.HTTPEnabled
	for _, r := range reqs {
		req := certs.Request{
			Owner: owner.key.String(), Namespace: owner.key.Namespace, Name: r.name, Hosts: []string{r.host},
			OwnerUID: owner.uid, OwnerKind: owner.kind, OwnerAPIVersion: owner.apiVersion, OwnerName: owner.name,
			Issuer: c.settings().certManager.IssuerRef,
		}
		if r.wildcard != nil {
			// The namespace's certificate, asked for as the namespace would: the same
			// request from every Route and from the namespace's own reconcile.
			req = *r.wildcard
			r.name = req.Name
		} else {
			names = append(names, r.name)
		}
		s, err := c.cfg.Certificates.Certificate(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", r.name, err)
		}
		for _, ch := range s.Challenges {
			out.challenges[ch.Host] = append(out.challenges[ch.Host], xds.Challenge{Path: ch.Path, Cluster: c.challengeCluster(ch)})
		}
		switch s.State {
		case certs.Ready:
			sds := owner.key.Namespace + "/" + r.name
			c.claimCert(owner.key, sds)
			if err := c.cfg.Proxy.SetCertificate(xds.TLSCertificate{Name: sds, Hosts: req.Hosts, CertPEM: s.CertPEM, KeyPEM: s.KeyPEM}); err != nil {
				failed = append(failed, fmt.Sprintf("Certificate %s failed to be provisioned: %v", r.name, err))
				continue
			}
			served = append(served, sds)
			out.scheme[r.host] = "https"
		case certs.Pending:
			if downgrade {
				out.scheme[r.host] = "http"
				downgraded = append(downgraded, r.name)
			} else {
				out.scheme[r.host] = "https"
				pending = append(pending, fmt.Sprintf("Certificate %s is not ready: %s", r.name, s.Reason))
			}
		default:
			failed = append(failed, fmt.Sprintf("Certificate %s fails to be provisioned: %s: %s", r.name, s.Reason, s.Message))
		}
	}
	c.setServedCerts(owner.key, served)
	c.cfg.Certificates.Release(ctx, owner.key.String(), names)
	switch {
	case len(failed) > 0:
		st.MarkFalse(cond, "CertificateProvisionFailed", strings.Join(failed, "; "), now)
	case len(pending) > 0:
		st.MarkUnknown(cond, "CertificateNotReady", strings.Join(pending, "; "), now)
	case len(downgraded) > 0:
		st.SetCondition(duck.Condition{Type: cond, Status: duck.True, Reason: "HTTPDowngrade",
			Message: fmt.Sprintf("Certificate %s is not ready downgrade HTTP.", strings.Join(downgraded, ", "))}, now)
	default:
		st.MarkTrue(cond, now)
	}
	return out, nil
}

// claimCert records that the object at key serves the SDS certificate name before it is set
// on the proxy, so that another object that stops serving a shared one (a namespace wildcard
// certificate) does not remove it meanwhile.
func (c *Controller) claimCert(key store.Key, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.servedCerts[key], name) {
		c.servedCerts[key] = append(c.servedCerts[key], name)
	}
}

// setServedCerts records the SDS certificates an object serves and removes from the proxy
// those it no longer does and no other object serves either. The removal happens under the
// lock claimCert takes, so a certificate claimed meanwhile is set again after it.
func (c *Controller) setServedCerts(key store.Key, served []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.servedCerts[key]
	if served == nil {
		delete(c.servedCerts, key)
	} else {
		c.servedCerts[key] = served
	}
	for _, name := range prev {
		if !slices.Contains(served, name) && !c.certServedLocked(name) {
			c.cfg.Proxy.DeleteCertificate(name)
		}
	}
}

// certServedLocked reports whether any object serves the SDS certificate name.
func (c *Controller) certServedLocked(name string) bool {
	for _, names := range c.servedCerts {
		if slices.Contains(names, name) {
			return true
		}
	}
	return false
}

// releaseCertificates drops everything a deleted object's certificates held.
func (c *Controller) releaseCertificates(ctx context.Context, key store.Key) {
	c.setServedCerts(key, nil)
	if c.cfg.Certificates != nil {
		c.cfg.Certificates.Release(ctx, key.String(), nil)
	}
}

// challengeCluster is the proxy cluster of an ACME solver Service (see Proxy.SetServiceCluster).
func (c *Controller) challengeCluster(ch certs.Challenge) string {
	name := "acme/" + ch.ServiceNamespace + "/" + ch.ServiceName
	host := ch.ServiceName + "." + ch.ServiceNamespace + "." + domains.ClusterLocalDomain
	if err := c.cfg.Proxy.SetServiceCluster(name, host, ch.ServicePort); err != nil {
		c.log.Warn("route an ACME challenge", "service", ch.ServiceNamespace+"/"+ch.ServiceName, "err", err)
	}
	return name
}

// routeCertName is Knative's certificate name for a Route's target: route-{uid}, and for a
// tag route-{uid}-{adler32 of the tag}.
func routeCertName(route *servingv1.Route, tag string) string {
	name := "route-" + string(route.UID)
	if tag != "" {
		name += fmt.Sprint("-", adler32.Checksum([]byte(tag)))
	}
	return name
}

// routeTLS decides a Route's certificates: with external-domain-tls (and no opt-out
// annotation) one per external host, else none, setting CertificateProvisioned.
func (c *Controller) routeTLS(ctx context.Context, route *servingv1.Route, key store.Key, names map[string]targetNames, now time.Time) (*hostTLS, error) {
	st := &route.Status.Status
	owner := certOwner{key: key, uid: string(route.UID), kind: servingv1.KindRoute, apiVersion: servingv1.GroupVersion, name: route.Name}
	if !c.settings().cfg.ExternalDomainTLS(route.Annotations) {
		st.SetCondition(duck.Condition{Type: RouteConditionCertificateProvisioned, Status: duck.True, Reason: "TLSNotEnabled", Message: externalDomainTLSNotEnabledMessage}, now)
		c.releaseCertificates(ctx, key)
		return &hostTLS{}, nil
	}
	var reqs []certRequest
	for _, tag := range slices.Sorted(maps.Keys(names)) {
		n := names[tag]
		if n.visibility != domains.ExternalIP || domains.IsClusterLocal(n.external.Primary) {
			continue
		}
		reqs = append(reqs, certRequest{name: routeCertName(route, tag), host: n.external.Primary})
	}
	c.useNamespaceWildcards(ctx, route.Namespace, c.settings().cfg.Domain.LookupDomainForLabels(route.Labels), reqs)
	if len(reqs) == 0 {
		st.SetCondition(duck.Condition{Type: RouteConditionCertificateProvisioned, Status: duck.True, Reason: "TLSNotEnabled", Message: tlsNotEnabledForClusterLocalMessage}, now)
		c.releaseCertificates(ctx, key)
		return &hostTLS{}, nil
	}
	return c.provisionCertificates(ctx, owner, reqs, st, RouteConditionCertificateProvisioned, now)
}

// ConfigMapCheck returns the admission check of the local API for the Knative ConfigMaps in
// ns the controller reads (the networking ones and config-gc): one that does not parse is
// refused with the bad key's field path (data[domain-template]), so the settings in force stay.
func ConfigMapCheck(ns string, d domains.NetworkDefaults, defaultDomain string) func(cm *api.ConfigMap) *fielderr.Error {
	return func(cm *api.ConfigMap) *fielderr.Error {
		if cm.Namespace != ns || !slices.Contains(networkConfigMaps, cm.Name) && cm.Name != revisiongc.ConfigName {
			return nil
		}
		err := ParseNetworkConfigMap(cm.Name, cm.Data, d, defaultDomain)
		if cm.Name == revisiongc.ConfigName {
			_, err = revisiongc.Parse(cm.Data)
		}
		return configMapError(cm, err)
	}
}

// configMapError is err, which a ConfigMap's parser returned, at the path of the key it is
// about (data[domain-template]); nil when err is.
func configMapError(cm *api.ConfigMap, err error) *fielderr.Error {
	if err == nil {
		return nil
	}
	// The parsers' errors start with the key they are about, or name it quoted.
	msg := err.Error()
	for k := range cm.Data {
		if strings.HasPrefix(msg, k+":") || strings.HasPrefix(msg, k+" ") || strings.Contains(msg, ": "+k+":") || strings.Contains(msg, `"`+k+`"`) {
			return fielderr.Invalid(cm.Data[k], "data["+k+"]", msg)
		}
	}
	return fielderr.Invalid(cm.Name, "data", msg)
}
