package v1beta1

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/fielderr"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// clusterDomain is the cluster's DNS suffix; no DomainMapping may be under it.
const clusterDomain = "cluster.local"

// SetDefaults fills in the namespace and the ref's namespace, as Knative's KReference
// defaulting does.
func (dm *DomainMapping) SetDefaults(context.Context) {
	if dm.Namespace == "" {
		dm.Namespace = "default"
	}
	if dm.Spec.Ref.Namespace == "" {
		dm.Spec.Ref.Namespace = dm.Namespace
	}
}

// Validate checks a DomainMapping as Knative's webhook does (domainmapping_validation.go),
// with its messages: the name is a fully qualified domain name outside the cluster domain,
// generateName is not allowed, the ref names a kind, apiVersion and name in the
// DomainMapping's namespace (no group: Knative's kreference-group is off), and on update the
// creator and last-modifier annotations follow Knative's rules. spec.tls.secretName is not
// checked, as in Knative.
func (dm *DomainMapping) Validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if dm.GenerateName != "" {
		errs = errs.Also(fielderr.Disallowed("metadata.generateName"))
	}
	if e := validation.IsFullyQualifiedDomainName(field.NewPath("name"), dm.Name); len(e) > 0 {
		errs = errs.Also(fielderr.Generic(fmt.Sprintf("invalid name %q: %s", dm.Name, e.ToAggregate()), "metadata.name"))
	} else if strings.HasSuffix(dm.Name, "."+clusterDomain) {
		errs = errs.Also(fielderr.Generic(
			fmt.Sprintf("invalid name %q: must not be a subdomain of cluster local domain %q", dm.Name, clusterDomain), "metadata.name"))
	}
	r := dm.Spec.Ref
	var ref *fielderr.Error
	if r.Name == "" {
		ref = ref.Also(fielderr.Missing("name"))
	}
	if r.APIVersion == "" {
		ref = ref.Also(fielderr.Missing("apiVersion"))
	}
	if r.Group != "" {
		ref = ref.Also(fielderr.Disallowed("group"))
	}
	if r.Kind == "" {
		ref = ref.Also(fielderr.Missing("kind"))
	}
	if r.Namespace != "" && r.Namespace != dm.Namespace {
		ref = ref.Also(&fielderr.Error{Message: "mismatched namespaces", Paths: []string{"namespace"},
			Details: fmt.Sprintf("parent namespace: %q does not match ref: %q", dm.Namespace, r.Namespace)})
	}
	errs = errs.Also(ref.ViaField("spec", "ref"))
	if old, ok := admission.Baseline(ctx).(*DomainMapping); ok && admission.IsInUpdate(ctx) {
		errs = errs.Also(servingv1.ValidateCreatorAndModifier(old.Spec, dm.Spec, old.Annotations, dm.Annotations).ViaField("metadata.annotations"))
	}
	return errs
}
