// Package v1alpha1 holds Knative's networking.internal.knative.dev/v1alpha1 ClusterDomainClaim:
// the cluster-wide reservation of a domain name for one namespace's DomainMapping.
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GroupVersion is the apiVersion of ClusterDomainClaim.
const GroupVersion = "networking.internal.knative.dev/v1alpha1"

// KindClusterDomainClaim is ClusterDomainClaim's kind.
const KindClusterDomainClaim = "ClusterDomainClaim"

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cdc,categories=knative-internal;networking
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=".spec.namespace"
// ClusterDomainClaim reserves a domain name (its metadata.name) for the DomainMappings of one
// namespace. It is cluster-scoped.
type ClusterDomainClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ClusterDomainClaimSpec `json:"spec,omitempty"`
}

// ClusterDomainClaimSpec names the namespace the domain is delegated to.
type ClusterDomainClaimSpec struct {
	// Namespace may create DomainMappings for this domain.
	Namespace string `json:"namespace"`
}

// SetDefaults does nothing: a ClusterDomainClaim has no defaults.
func (c *ClusterDomainClaim) SetDefaults() {}

// Validate checks the claim names a namespace and has no namespace itself.
func (c *ClusterDomainClaim) Validate() field.ErrorList {
	var errs field.ErrorList
	if c.Name == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "the claimed domain is required"))
	}
	if c.Namespace != "" {
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "namespace"), "a ClusterDomainClaim is cluster-scoped"))
	}
	if c.Spec.Namespace == "" {
		errs = append(errs, field.Required(field.NewPath("spec", "namespace"), ""))
	}
	for _, msg := range validation.IsDNS1123Label(c.Spec.Namespace) {
		if c.Spec.Namespace != "" {
			errs = append(errs, field.Invalid(field.NewPath("spec", "namespace"), c.Spec.Namespace, msg))
		}
	}
	return errs
}
