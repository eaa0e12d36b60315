package reconciler

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	networkingv1alpha1 "github.com/skiff-dev/skiff/api/networking/v1alpha1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	servingv1beta1 "github.com/skiff-dev/skiff/api/serving/v1beta1"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
	"github.com/skiff-dev/skiff/controlplane/xds"
	k8scorev1 "k8s.io/api/core/v1"
)

// domainMappingProxyName is the xDS route name of a DomainMapping, apart from Routes'.
func domainMappingProxyName(name string) string { return "domainmapping:" + name }

// reconcileDomainMapping does what Knative's DomainMapping reconciler does: it claims the
// domain (a ClusterDomainClaim, created when autocreate-cluster-domain-claims is on), resolves
// spec.ref to a Route in the same namespace, gets the certificate (spec.tls's Secret, or one
// issued with external-domain-tls), and serves the domain on the external listeners with the
// Route's traffic, the Host rewritten to the target's, reporting Knative's conditions.
func (c *Controller) reconcileDomainMapping(ctx context.Context, key store.Key) error {
	var dm servingv1beta1.DomainMapping
	if err := c.cfg.Store.Get(ctx, key, &dm); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		c.cfg.Proxy.DeleteRoute(key.Namespace, domainMappingProxyName(key.Name))
		c.waitForAck(key, false, "")
		c.releaseCertificates(ctx, key)
		return c.releaseDomainClaim(ctx, key)
	}
	now := c.now()
	net := c.settings()
	st := &dm.Status
	if st.ObservedGeneration != dm.Generation {
		st.MarkIngressNotConfigured(now)
	}
	st.ObservedGeneration = dm.Generation
	scheme := net.cfg.Network.DefaultExternalScheme
	update := func() error {
		u := scheme + "://" + dm.Name
		st.URL, st.Address = u, &duck.Addressable{URL: u}
		summarize(&st.Status, now, servingv1beta1.DomainMappingConditions...)
		return c.cfg.Store.UpdateStatus(ctx, &dm)
	}
	fail := func() error {
		c.cfg.Proxy.DeleteRoute(dm.Namespace, domainMappingProxyName(dm.Name))
		c.waitForAck(key, false, "")
		for _, t := range servingv1beta1.DomainMappingConditions {
			if st.GetCondition(t) == nil {
				st.MarkUnknown(t, "Uninitialized", "", now)
			}
		}
		return update()
	}

	// To keep two namespaces from taking one domain, this namespace must hold its claim.
	claimed, err := c.reconcileDomainClaim(ctx, &dm, net, now)
	if err != nil {
		return err
	}
	if !claimed {
		return fail()
	}

	route, targetHost, ok, err := c.resolveMappingRef(ctx, &dm, now)
	if err != nil {
		return err
	}
	if !ok {
		return fail()
	}

	tls, err := c.domainMappingTLS(ctx, &dm, key, now)
	if err != nil {
		return err
	}
	scheme = tls.schemeOf(dm.Name, scheme)

	httpOption, err := net.cfg.HTTPOption(dm.Annotations)
	if err != nil {
		st.MarkFalse(servingv1beta1.DomainMappingConditionIngressReady, "InvalidHTTPProtocol",
			fmt.Sprintf("metadata.annotations[%s]: %v (want Enabled or Redirected)", domains.HTTPProtocolAnnotation, err), now)
		return update()
	}
	clusters, timeouts, ready, err := c.routeClusters(ctx, route)
	if err != nil {
		return err
	}
	if !ready {
		st.MarkUnknown(servingv1beta1.DomainMappingConditionIngressReady, "RouteNotReady",
			fmt.Sprintf("Route %q has no traffic assigned yet.", route.Name), now)
		return update()
	}
	vh := xds.VirtualHost{
		Name: dm.Namespace + "/" + domainMappingProxyName(dm.Name), Domains: []string{dm.Name},
		Clusters: clusters, HostRewrite: targetHost,
		Metadata:   map[string]string{"namespace": dm.Namespace, "route": route.Name, "domainmapping": dm.Name},
		Visibility: xds.VisibilityExternal, RedirectHTTP: httpOption == domains.HTTPRedirected, Challenges: tls.challenges[dm.Name],
	}
	timeouts.Apply(&vh)
	if err := c.cfg.Proxy.SetRoute(xds.Route{Namespace: dm.Namespace, Name: domainMappingProxyName(dm.Name), VirtualHosts: []xds.VirtualHost{vh}}); err != nil {
		st.MarkFalse(servingv1beta1.DomainMappingConditionIngressReady, "ProxyRejected", err.Error(), now)
		return update()
	}
	c.markProxyAck(key, &st.Status, servingv1beta1.DomainMappingConditionIngressReady, dm.Namespace, domainMappingProxyName(dm.Name), now,
		func() { st.MarkIngressNotConfigured(now) })
	return update()
}

// reconcileDomainClaim makes sure dm's namespace holds the ClusterDomainClaim of its domain,
// creating it with autocreate-cluster-domain-claims, and reports DomainClaimed.
func (c *Controller) reconcileDomainClaim(ctx context.Context, dm *servingv1beta1.DomainMapping, net *netSettings, now time.Time) (bool, error) {
	var cdc networkingv1alpha1.ClusterDomainClaim
	err := c.cfg.Store.Get(ctx, store.Key{Kind: networkingv1alpha1.KindClusterDomainClaim, Name: dm.Name}, &cdc)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !net.cfg.Network.AutocreateClusterDomainClaims {
			dm.Status.MarkDomainClaimNotOwned(now)
			if c := dm.Status.GetCondition(servingv1beta1.DomainMappingConditionDomainClaimed); c != nil {
				c.Message = fmt.Sprintf("no ClusterDomainClaim found for domain %q (and autocreate-cluster-domain-claims property is not true)", dm.Name)
			}
			return false, nil
		}
		cdc = networkingv1alpha1.ClusterDomainClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1alpha1.GroupVersion, Kind: networkingv1alpha1.KindClusterDomainClaim},
			ObjectMeta: metav1.ObjectMeta{Name: dm.Name},
			Spec:       networkingv1alpha1.ClusterDomainClaimSpec{Namespace: dm.Namespace},
		}
		if err := c.cfg.Store.Create(ctx, &cdc); err != nil {
			if errors.Is(err, store.ErrExists) {
				return false, store.ErrConflict // another namespace's mapping was faster: read again
			}
			dm.Status.MarkDomainClaimFailed(fmt.Sprintf("failed to create ClusterDomainClaim: %v", err), now)
			return false, nil
		}
	case err != nil:
		return false, fmt.Errorf("get ClusterDomainClaim %s: %w", dm.Name, err)
	case cdc.Spec.Namespace != dm.Namespace:
		dm.Status.MarkDomainClaimNotOwned(now)
		return false, nil
	}
	dm.Status.MarkDomainClaimed(now)
	return true, nil
}

// releaseDomainClaim deletes the claim a deleted DomainMapping made, if its namespace holds it
// and claims are created automatically (Knative's FinalizeKind).
func (c *Controller) releaseDomainClaim(ctx context.Context, key store.Key) error {
	if !c.settings().cfg.Network.AutocreateClusterDomainClaims {
		return nil
	}
	ck := store.Key{Kind: networkingv1alpha1.KindClusterDomainClaim, Name: key.Name}
	var cdc networkingv1alpha1.ClusterDomainClaim
	if err := c.cfg.Store.Get(ctx, ck, &cdc); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if cdc.Spec.Namespace != key.Namespace {
		return nil
	}
	if err := c.cfg.Store.Delete(ctx, ck); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("release ClusterDomainClaim %s: %w", key.Name, err)
	}
	return nil
}

// resolveMappingRef resolves spec.ref to the Route serving it and the host the mapped requests
// are rewritten to: a Knative Service (its Route) or a Route, in the DomainMapping's namespace,
// whose address is {name}.{namespace}.svc.cluster.local, as Knative requires. ok is false with
// ReferenceResolved=False when it does not resolve.
func (c *Controller) resolveMappingRef(ctx context.Context, dm *servingv1beta1.DomainMapping, now time.Time) (*servingv1.Route, string, bool, error) {
	ref := dm.Spec.Ref
	fail := func(format string, a ...any) (*servingv1.Route, string, bool, error) {
		dm.Status.MarkReferenceNotResolved(fmt.Sprintf(format, a...), now)
		return nil, "", false, nil
	}
	ns := ref.Namespace
	if ns == "" {
		ns = dm.Namespace
	}
	if ns != dm.Namespace {
		return fail("resolved URI must be in same namespace as DomainMapping")
	}
	var address string
	var route servingv1.Route
	switch {
	case ref.Kind == servingv1.KindService && ref.APIVersion == servingv1.GroupVersion:
		var svc servingv1.Service
		if err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindService, Namespace: ns, Name: ref.Name}, &svc); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fail("services.serving.knative.dev %q not found", ref.Name)
			}
			return nil, "", false, err
		}
		if svc.Status.Address != nil {
			address = svc.Status.Address.URL
		}
	case ref.Kind == servingv1.KindRoute && ref.APIVersion == servingv1.GroupVersion:
	default:
		return fail("%s %q (%s) is not addressable here: use a Knative Service or Route", ref.Kind, ref.Name, ref.APIVersion)
	}
	if err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRoute, Namespace: ns, Name: ref.Name}, &route); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			if ref.Kind == servingv1.KindRoute {
				return fail("routes.serving.knative.dev %q not found", ref.Name)
			}
			return fail("%s %q does not have an address yet", ref.Kind, ref.Name)
		}
		return nil, "", false, err
	}
	if ref.Kind == servingv1.KindRoute && route.Status.Address != nil {
		address = route.Status.Address.URL
	}
	if address == "" {
		return fail("%s %q does not have an address yet", ref.Kind, ref.Name)
	}
	u, err := url.Parse(address)
	if err != nil {
		return fail("resolved URI %q: %v", address, err)
	}
	if strings.TrimSuffix(u.Path, "/") != "" {
		return fail("resolved URI %q contains a path", address)
	}
	suffix := "." + domains.ClusterLocalDomain
	parts := strings.Split(strings.TrimSuffix(u.Host, suffix), ".")
	if !strings.HasSuffix(u.Host, suffix) || len(parts) != 2 {
		return fail("resolved URI %q must be of the form {name}.{namespace}%s", address, suffix)
	}
	if parts[1] != dm.Namespace {
		return fail("resolved URI %q must be in same namespace as DomainMapping", address)
	}
	dm.Status.MarkReferenceResolved(now)
	return &route, u.Host, true, nil
}

// routeClusters is the weighted revision clusters of a Route's default target, from its
// status.traffic, as the Route's own virtual host sends them; ready is false until the Route
// has traffic assigned.
func (c *Controller) routeClusters(ctx context.Context, route *servingv1.Route) ([]xds.WeightedCluster, traffic.Timeouts, bool, error) {
	if a := route.Status.GetCondition(servingv1.RouteConditionAllTrafficAssigned); a == nil || a.Status != duck.True {
		return nil, traffic.Timeouts{}, false, nil
	}
	weights := traffic.Split(route.Status.Traffic)
	revs := map[string]*servingv1.Revision{}
	for _, w := range weights {
		rev, err := getOrNil[servingv1.Revision](ctx, c.cfg.Store, store.Key{Kind: servingv1.KindRevision, Namespace: route.Namespace, Name: w.Revision})
		if err != nil {
			return nil, traffic.Timeouts{}, false, err
		}
		revs[w.Revision] = rev
	}
	clusters, timeouts := traffic.Clusters(route.Namespace, weights, func(n string) *servingv1.Revision { return revs[n] })
	return clusters, timeouts, len(clusters) > 0, nil
}

// domainMappingTLS decides a DomainMapping's certificate: spec.tls's Secret, else one issued
// with external-domain-tls, else none, setting CertificateProvisioned.
func (c *Controller) domainMappingTLS(ctx context.Context, dm *servingv1beta1.DomainMapping, key store.Key, now time.Time) (*hostTLS, error) {
	st := &dm.Status
	out := &hostTLS{scheme: map[string]string{}, challenges: map[string][]xds.Challenge{}}
	if dm.Spec.TLS != nil {
		if c.cfg.Certificates != nil {
			c.cfg.Certificates.Release(ctx, key.String(), nil)
		}
		// The user's certificate: served as given, or the mapping's host alone fails.
		out.scheme[dm.Name] = "https"
		sds := dm.Namespace + "/" + dm.Spec.TLS.SecretName + "@" + dm.Name
		var sec api.Secret
		err := c.cfg.Store.Get(ctx, store.Key{Kind: api.KindSecret, Namespace: dm.Namespace, Name: dm.Spec.TLS.SecretName}, &sec)
		switch {
		case errors.Is(err, store.ErrNotFound):
			c.setServedCerts(key, nil)
			st.MarkFalse(servingv1beta1.DomainMappingConditionCertificateProvisioned, "SecretMissing",
				fmt.Sprintf("spec.tls.secretName: Secret %q not found in namespace %q", dm.Spec.TLS.SecretName, dm.Namespace), now)
			return out, nil
		case err != nil:
			return nil, fmt.Errorf("get Secret %s: %w", dm.Spec.TLS.SecretName, err)
		}
		err = c.cfg.Proxy.SetCertificate(xds.TLSCertificate{Name: sds, Hosts: []string{dm.Name},
			CertPEM: sec.Data[k8scorev1.TLSCertKey], KeyPEM: sec.Data[k8scorev1.TLSPrivateKeyKey]})
		if err != nil {
			c.setServedCerts(key, nil)
			st.MarkFalse(servingv1beta1.DomainMappingConditionCertificateProvisioned, "SecretInvalid",
				fmt.Sprintf("spec.tls.secretName: Secret %q cannot be served: %v", dm.Spec.TLS.SecretName, err), now)
			return out, nil
		}
		c.setServedCerts(key, []string{sds})
		st.MarkCertificateNotRequired(servingv1beta1.TLSCertificateProvidedExternally, now)
		return out, nil
	}
	if !c.settings().cfg.ExternalDomainTLS(dm.Annotations) {
		c.releaseCertificates(ctx, key)
		st.MarkTLSNotEnabled(servingv1beta1.ExternalDomainTLSNotEnabledMessage, now)
		return out, nil
	}
	owner := certOwner{key: key, uid: string(dm.UID), kind: servingv1beta1.KindDomainMapping, apiVersion: servingv1beta1.GroupVersion, name: dm.Name}
	return c.provisionCertificates(ctx, owner, []certRequest{{name: dm.Name, host: dm.Name}}, &st.Status, servingv1beta1.DomainMappingConditionCertificateProvisioned, now)
}

// enqueueMappingsUsingSecret enqueues the DomainMappings of namespace whose spec.tls names secret.
func (c *Controller) enqueueMappingsUsingSecret(namespace, secret string) {
	dms, err := store.ListAs[servingv1beta1.DomainMapping](context.Background(), c.cfg.Store, servingv1beta1.KindDomainMapping, namespace)
	if err != nil {
		c.log.Warn("listing DomainMappings", "namespace", namespace, "err", err)
		return
	}
	for _, dm := range dms {
		if dm.Spec.TLS != nil && dm.Spec.TLS.SecretName == secret {
			c.queue.Add(store.Key{Kind: servingv1beta1.KindDomainMapping, Namespace: dm.Namespace, Name: dm.Name})
		}
	}
}

// enqueueMappingsNamed enqueues the DomainMappings of a domain, in every namespace.
func (c *Controller) enqueueMappingsNamed(name string) {
	dms, err := store.ListAs[metaOnly](context.Background(), c.cfg.Store, servingv1beta1.KindDomainMapping, "")
	if err != nil {
		c.log.Warn("listing DomainMappings", "err", err)
		return
	}
	for _, dm := range dms {
		if dm.Metadata.Name == name {
			c.queue.Add(store.Key{Kind: servingv1beta1.KindDomainMapping, Namespace: dm.Metadata.Namespace, Name: name})
		}
	}
}

// enqueueMappingsTo enqueues the DomainMappings of namespace whose ref names route (a Knative
// Service's Route has the Service's name).
func (c *Controller) enqueueMappingsTo(namespace, route string) {
	dms, err := store.ListAs[servingv1beta1.DomainMapping](context.Background(), c.cfg.Store, servingv1beta1.KindDomainMapping, namespace)
	if err != nil {
		c.log.Warn("listing DomainMappings", "namespace", namespace, "err", err)
		return
	}
	for _, dm := range dms {
		if dm.Spec.Ref.Name == route {
			c.queue.Add(store.Key{Kind: servingv1beta1.KindDomainMapping, Namespace: dm.Namespace, Name: dm.Name})
		}
	}
}
