// Package certs provides the certificates of external hosts (Knative's external-domain-tls):
// in `skiff up` a local CA kept under --data-dir/tls issues one per host on demand and renews
// it before it expires (Local); in a cluster cert-manager issues them (package certmanager).
// Either way the certificate reaches proxies only as an SDS secret over ADS.
package certs

import (
	"context"
	"slices"

	"github.com/skiff-dev/skiff/controlplane/domains"
)

// State is where a certificate is in its life.
type State string

// The states of a certificate.
const (
	// Ready: CertPEM and KeyPEM hold a valid certificate for the hosts.
	Ready State = "Ready"
	// Pending: it is being issued (an ACME challenge may be in progress).
	Pending State = "Pending"
	// Failed: it cannot be issued; Reason and Message say why.
	Failed State = "Failed"
)

// Request asks for a certificate.
type Request struct {
	// Owner names who asks (a Route's or DomainMapping's store key): renewals are reported
	// for it and Release drops its certificates.
	Owner string
	// Namespace and Name name the certificate and the Secret that holds it (Knative's
	// certificate names: route-{uid}[-{tag hash}], or the DomainMapping's name).
	Namespace, Name string
	// Hosts are the DNS names it must cover.
	Hosts []string
	// OwnerUID, OwnerKind, OwnerAPIVersion and OwnerName make the owner reference of the
	// objects a cluster provider creates, so they go with their owner.
	OwnerUID, OwnerKind, OwnerAPIVersion, OwnerName string
	// Issuer is the issuer a cluster provider asks (config-certmanager's issuerRef).
	Issuer domains.IssuerRef
	// Labels go on the objects a cluster provider creates (a namespace wildcard certificate
	// carries Knative's networking.knative.dev/wildcardDomain).
	Labels map[string]string
}

// Challenge is an ACME HTTP01 challenge the proxy must route while a certificate is pending.
type Challenge struct {
	// Host and Path are the challenge URL's (http://{Host}{Path}).
	Host, Path string
	// ServiceNamespace, ServiceName and ServicePort are the solver's Kubernetes Service.
	ServiceNamespace, ServiceName string
	ServicePort                   uint32
}

// Status is a certificate's state, with its PEMs once Ready.
type Status struct {
	State           State
	Reason, Message string
	CertPEM, KeyPEM []byte
	// Challenges are the HTTP01 challenges to route while Pending (or renewing).
	Challenges []Challenge
}

// Provider issues certificates.
type Provider interface {
	// Certificate returns the certificate req asks for, asking for it (or renewing it) when
	// needed. An error is a failure to ask (the caller retries), not a certificate's failure.
	Certificate(ctx context.Context, req Request) (Status, error)
	// Release forgets owner's certificates except those named in keep.
	Release(ctx context.Context, owner string, keep []string)
}

// sameHosts reports whether two host lists hold the same names.
func sameHosts(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
