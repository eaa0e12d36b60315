// Package v1beta1 holds Knative's serving.knative.dev/v1beta1 DomainMapping as Skiff accepts it:
// Knative's fields, defaults, validation and conditions.
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
)

// GroupVersion is the apiVersion of DomainMapping.
const GroupVersion = "serving.knative.dev/v1beta1"

// KindDomainMapping is DomainMapping's kind.
const KindDomainMapping = "DomainMapping"

// Condition types of a DomainMapping, as Knative's.
const (
	DomainMappingConditionReferenceResolved      duck.ConditionType = "ReferenceResolved"
	DomainMappingConditionIngressReady           duck.ConditionType = "IngressReady"
	DomainMappingConditionDomainClaimed          duck.ConditionType = "DomainClaimed"
	DomainMappingConditionCertificateProvisioned duck.ConditionType = "CertificateProvisioned"
)

// DomainMappingConditions are the conditions Ready summarises.
var DomainMappingConditions = []duck.ConditionType{
	DomainMappingConditionDomainClaimed, DomainMappingConditionReferenceResolved,
	DomainMappingConditionIngressReady, DomainMappingConditionCertificateProvisioned,
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dm,categories=all;knative;serving
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.url"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// DomainMapping maps a domain name (its metadata.name) to an Addressable, usually a Knative
// Service.
type DomainMapping struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              DomainMappingSpec   `json:"spec,omitempty"`
	Status            DomainMappingStatus `json:"status,omitempty"`
}

// DomainMappingSpec is the target of a DomainMapping and its optional certificate.
type DomainMappingSpec struct {
	// Ref is the Addressable the domain maps to; it must be in the DomainMapping's namespace.
	Ref KReference `json:"ref"`
	// TLS names a kubernetes.io/tls Secret, in the DomainMapping's namespace, holding the
	// certificate for the domain.
	TLS *SecretTLS `json:"tls,omitempty"`
}

// KReference points at an object by kind, apiVersion and name (Knative's duckv1.KReference).
type KReference struct {
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	APIVersion string `json:"apiVersion,omitempty"`
	Group      string `json:"group,omitempty"`
}

// SecretTLS names the Secret holding a DomainMapping's certificate and key.
type SecretTLS struct {
	SecretName string `json:"secretName"`
}

// DomainMappingStatus is what Knative reports for a DomainMapping.
type DomainMappingStatus struct {
	duck.Status `json:",inline"`
	// URL is the mapped URL, http(s)://{metadata.name}.
	URL     string            `json:"url,omitempty"`
	Address *duck.Addressable `json:"address,omitempty"`
}
