package v1beta1

import (
	"fmt"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
)

// Messages Knative sets on CertificateProvisioned.
const (
	// ExternalDomainTLSNotEnabledMessage: True because external-domain-tls is off.
	ExternalDomainTLSNotEnabledMessage = "external-domain-tls is not enabled"
	// TLSCertificateProvidedExternally: True because spec.tls names the user's Secret.
	TLSCertificateProvidedExternally = "TLS certificate was provided externally"
)

// The Mark methods set one condition with Knative's reason and message
// (domainmapping_lifecycle.go); Summarize then sets Ready.

// MarkTLSNotEnabled: no certificate is needed because TLS is off.
func (s *DomainMappingStatus) MarkTLSNotEnabled(msg string, now time.Time) {
	s.SetCondition(duck.Condition{Type: DomainMappingConditionCertificateProvisioned, Status: duck.True, Reason: "TLSNotEnabled", Message: msg}, now)
}

// MarkCertificateNotRequired: the certificate comes from the user (spec.tls).
func (s *DomainMappingStatus) MarkCertificateNotRequired(msg string, now time.Time) {
	s.SetCondition(duck.Condition{Type: DomainMappingConditionCertificateProvisioned, Status: duck.True, Reason: "CertificateExternallyProvided", Message: msg}, now)
}

// MarkCertificateReady: the certificate is issued and served.
func (s *DomainMappingStatus) MarkCertificateReady(now time.Time) {
	s.MarkTrue(DomainMappingConditionCertificateProvisioned, now)
}

// MarkCertificateNotReady: the certificate is being issued.
func (s *DomainMappingStatus) MarkCertificateNotReady(name string, now time.Time) {
	s.MarkUnknown(DomainMappingConditionCertificateProvisioned, "CertificateNotReady", fmt.Sprintf("Certificate %s is not ready.", name), now)
}

// MarkCertificateProvisionFailed: the certificate cannot be issued or loaded; detail says why.
func (s *DomainMappingStatus) MarkCertificateProvisionFailed(name, detail string, now time.Time) {
	msg := fmt.Sprintf("Certificate %s failed to be provisioned.", name)
	if detail != "" {
		msg = fmt.Sprintf("Certificate %s failed to be provisioned: %s", name, detail)
	}
	s.MarkFalse(DomainMappingConditionCertificateProvisioned, "CertificateProvisionFailed", msg, now)
}

// MarkHTTPDowngrade: plain HTTP is served while the certificate is not ready.
func (s *DomainMappingStatus) MarkHTTPDowngrade(name string, now time.Time) {
	s.SetCondition(duck.Condition{Type: DomainMappingConditionCertificateProvisioned, Status: duck.True, Reason: "HTTPDowngrade",
		Message: fmt.Sprintf("Certificate %s is not ready downgrade HTTP.", name)}, now)
}

// MarkIngressNotConfigured: the proxy has not taken the mapping yet.
func (s *DomainMappingStatus) MarkIngressNotConfigured(now time.Time) {
	s.MarkUnknown(DomainMappingConditionIngressReady, "IngressNotConfigured", "Ingress has not yet been reconciled.", now)
}

// MarkDomainClaimed: this namespace holds the domain's ClusterDomainClaim.
func (s *DomainMappingStatus) MarkDomainClaimed(now time.Time) {
	s.MarkTrue(DomainMappingConditionDomainClaimed, now)
}

// MarkDomainClaimNotOwned: another namespace holds the domain, or no claim exists.
func (s *DomainMappingStatus) MarkDomainClaimNotOwned(now time.Time) {
	s.MarkFalse(DomainMappingConditionDomainClaimed, "DomainAlreadyClaimed", "The domain name is already in use by another DomainMapping", now)
}

// MarkDomainClaimFailed: creating the ClusterDomainClaim failed.
func (s *DomainMappingStatus) MarkDomainClaimFailed(reason string, now time.Time) {
	s.MarkFalse(DomainMappingConditionDomainClaimed, "DomainClaimFailed", reason, now)
}

// MarkReferenceResolved: spec.ref resolved to an address the proxy can route to.
func (s *DomainMappingStatus) MarkReferenceResolved(now time.Time) {
	s.MarkTrue(DomainMappingConditionReferenceResolved, now)
}

// MarkReferenceNotResolved: spec.ref did not resolve; reason says why.
func (s *DomainMappingStatus) MarkReferenceNotResolved(reason string, now time.Time) {
	s.MarkFalse(DomainMappingConditionReferenceResolved, "ResolveFailed", reason, now)
}
