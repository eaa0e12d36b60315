package v1beta1

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// clusterDomain is the cluster's DNS suffix; no DomainMapping may be under it.
const clusterDomain = "cluster.local"

// SetDefaults fills in the ref's namespace, as Knative's KReference defaulting does.
func (dm *DomainMapping) SetDefaults() {
	if dm.Namespace == "" {
		dm.Namespace = "default"
	}
	if dm.Spec.Ref.Namespace == "" {
		dm.Spec.Ref.Namespace = dm.Namespace
	}
}

// Validate checks a DomainMapping as Knative's webhook does (domainmapping_validation.go):
// the name is a fully qualified domain name outside the cluster domain, generateName is not
// allowed, and the ref names a kind, apiVersion and name in the DomainMapping's namespace.
func (dm *DomainMapping) Validate() field.ErrorList {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	if dm.GenerateName != "" {
		errs = append(errs, field.Forbidden(meta.Child("generateName"), "must not be set: a DomainMapping is named after its domain"))
	}
	if e := validation.IsFullyQualifiedDomainName(field.NewPath("name"), dm.Name); len(e) > 0 {
		errs = append(errs, field.Invalid(meta.Child("name"), dm.Name, fmt.Sprintf("invalid name %q: %s", dm.Name, e.ToAggregate())))
	} else if strings.HasSuffix(dm.Name, "."+clusterDomain) {
		errs = append(errs, field.Invalid(meta.Child("name"), dm.Name,
			fmt.Sprintf("invalid name %q: must not be a subdomain of cluster local domain %q", dm.Name, clusterDomain)))
	}
	for _, msg := range validation.IsDNS1123Label(dm.Namespace) {
		errs = append(errs, field.Invalid(meta.Child("namespace"), dm.Namespace, msg))
	}
	ref := field.NewPath("spec", "ref")
	r := dm.Spec.Ref
	if r.Name == "" {
		errs = append(errs, field.Required(ref.Child("name"), ""))
	}
	if r.Kind == "" {
		errs = append(errs, field.Required(ref.Child("kind"), ""))
	}
	if r.APIVersion == "" {
		errs = append(errs, field.Required(ref.Child("apiVersion"), ""))
	}
	if r.Namespace != "" && r.Namespace != dm.Namespace {
		errs = append(errs, field.Invalid(ref.Child("namespace"), r.Namespace,
			fmt.Sprintf("mismatched namespaces: parent namespace: %q does not match ref: %q", dm.Namespace, r.Namespace)))
	}
	if dm.Spec.TLS != nil {
		for _, msg := range validation.IsDNS1123Subdomain(dm.Spec.TLS.SecretName) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "tls", "secretName"), dm.Spec.TLS.SecretName, msg))
		}
	}
	return errs
}
