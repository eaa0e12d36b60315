// Package v1alpha1 holds Knative's networking.internal.knative.dev/v1alpha1 ClusterDomainClaim:
// the cluster-wide reservation of a domain name for one namespace's DomainMapping.
package v1alpha1

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-dev/skiff/api/fielderr"
)

// GroupVersion is the apiVersion of ClusterDomainClaim.
const GroupVersion = "networking.internal.knative.dev/v1alpha1"

// KindClusterDomainClaim is ClusterDomainClaim's kind.
const KindClusterDomainClaim = "ClusterDomainClaim"

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cdc,categories=knative-internal;networking
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
func (c *ClusterDomainClaim) SetDefaults(context.Context) {}

// Validate checks the claim names a namespace and has none itself (it is cluster-scoped).
func (c *ClusterDomainClaim) Validate(context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if c.Name == "" {
		errs = errs.Also(fielderr.Missing("metadata.name"))
	}
	if c.Namespace != "" {
		errs = errs.Also(fielderr.Disallowed("metadata.namespace"))
	}
	if c.Spec.Namespace == "" {
		errs = errs.Also(fielderr.Missing("spec.namespace"))
	}
	for _, msg := range validation.IsDNS1123Label(c.Spec.Namespace) {
		if c.Spec.Namespace != "" {
			errs = errs.Also(fielderr.Invalid(c.Spec.Namespace, "spec.namespace", msg))
		}
	}
	return errs
}
