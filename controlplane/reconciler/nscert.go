package reconciler

import (
	"context"
	"errors"
	"fmt"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/certs"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// kindNamespace is the Kubernetes Namespace kind (cluster-scoped).
const kindNamespace = "Namespace"

// Namespace wildcard certificates (Knative's nscert reconciler and the route reconciler's
// findMatchingWildcardCert): when config-network's namespace-wildcard-cert-selector selects a
// Namespace's labels, the namespace gets one certificate for *.{namespace}.{domain} (the domain
// template with Name "*") per config-domain domain of type wildcard, named as Knative names it
// ({namespace}.{domain}), owned by the Namespace and labelled networking.knative.dev/wildcardDomain.
// A Route with external-domain-tls serves that certificate for each of its hosts it covers
// (same domain, host directly under *.) instead of asking for its own route-{uid} one. When the
// namespace stops being selected its certificates are released and its Routes go back to
// their own.
//
// How it maps onto Skiff's certificate machinery: Knative creates a networking Certificate
// that its certificate reconciler hands to cert-manager; Skiff asks its certs.Provider
// directly, with the Namespace as owner: in a cluster a cert-manager Certificate owned by the
// Namespace (removed with it), in `skiff up` a certificate from the local CA. Knative's Routes
// only look up existing wildcard certificates; Skiff's Routes ask the provider for the
// namespace's certificate with the very request the namespace's reconcile makes (the same
// name, hosts and owner), which finds the one issued or issues it, so a Route never waits for
// the Namespace to be reconciled first. The certificate reaches proxies as one SDS secret,
// ns/{name}, whose filter chain matches *.{namespace}.{domain} by SNI; it is served while any
// Route uses it. In `skiff up` a namespace need not exist as an object: one that does not is
// taken as a namespace without labels.

// namespaceWildcardRequests returns the certificate requests of namespace's wildcard
// certificates under the settings in force (none unless the selector selects it).
func (c *Controller) namespaceWildcardRequests(ctx context.Context, namespace string) ([]certs.Request, error) {
	cfg := c.settings().cfg
	if cfg.Network.NamespaceWildcardCertSelector == nil {
		return nil, nil
	}
	key := store.Key{Kind: kindNamespace, Name: namespace}
	var ns api.Namespace
	if err := c.cfg.Store.Get(ctx, key, &ns); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	wildcards, err := cfg.NamespaceWildcards(namespace, ns.Labels)
	if err != nil {
		return nil, err
	}
	reqs := make([]certs.Request, 0, len(wildcards))
	for _, w := range wildcards {
		reqs = append(reqs, certs.Request{
			Owner: key.String(), Namespace: namespace, Name: w.Name, Hosts: []string{w.DNSName},
			OwnerUID: string(ns.UID), OwnerKind: kindNamespace, OwnerAPIVersion: "v1", OwnerName: namespace,
			Issuer: c.settings().certManager.IssuerRef,
			Labels: map[string]string{domains.WildcardCertDomainLabel: w.Domain},
		})
	}
	return reqs, nil
}

// useNamespaceWildcards points each of reqs whose host a wildcard certificate of namespace
// for routeDomain covers at that certificate, as Knative's route reconciler looks for a
// matching wildcard certificate (labelled with the Route's domain) before making its own.
func (c *Controller) useNamespaceWildcards(ctx context.Context, namespace, routeDomain string, reqs []certRequest) {
	wildcards, err := c.namespaceWildcardRequests(ctx, namespace)
	if err != nil {
		c.log.Warn("namespace wildcard certificates; routes ask for their own", "namespace", namespace, "err", err)
		return
	}
	for i := range reqs {
		for j := range wildcards {
			w := &wildcards[j]
			if w.Labels[domains.WildcardCertDomainLabel] == routeDomain && domains.WildcardCovers(w.Hosts[0], []string{reqs[i].host}) {
				reqs[i].wildcard = w
				break
			}
		}
	}
}

// reconcileNamespace keeps the namespace's wildcard certificates (Knative's nscert
// ReconcileKind): it asks for those the selector gives it, releases the others (all of them
// when it is no longer selected or is gone) and re-renders its Routes, which then serve the
// wildcard or go back to their own certificates. A domain template that cannot make a
// wildcard keeps what the namespace has, as Knative's reconcile fails before deleting.
func (c *Controller) reconcileNamespace(ctx context.Context, key store.Key) error {
	if c.cfg.Certificates == nil {
		return nil
	}
	reqs, err := c.namespaceWildcardRequests(ctx, key.Name)
	if err != nil {
		c.log.Error("namespace wildcard certificates; keeping those it has", "namespace", key.Name, "err", err)
		return nil
	}
	if c.settings().cfg.Network.NamespaceWildcardCertSelector != nil {
		// Unset, the settings change that unset it re-rendered every Route already.
		defer c.enqueueAll(servingv1.KindRoute, key.Name)
	}
	keep := make([]string, 0, len(reqs))
	for _, r := range reqs {
		st, err := c.cfg.Certificates.Certificate(ctx, r)
		if err != nil {
			return fmt.Errorf("namespace %s: wildcard certificate %s: %w", key.Name, r.Name, err)
		}
		if st.State == certs.Failed {
			c.log.Warn("namespace wildcard certificate failed", "namespace", key.Name, "certificate", r.Name, "reason", st.Reason, "message", st.Message)
		}
		keep = append(keep, r.Name)
	}
	c.cfg.Certificates.Release(ctx, key.String(), keep)
	return nil
}
