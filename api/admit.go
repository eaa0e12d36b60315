package api

import (
	"context"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// Admit defaults and validates obj as Knative's two webhooks would for a create (old nil) or
// an update of old, with the settings attached to ctx (config.ToContext). It returns every
// diagnostic; Errors(d) are the ones that refuse the write, Warnings(d) are reported with it.
// obj is changed in place: on success it is what gets stored.
func Admit(ctx context.Context, obj, old Object) *fielderr.Error {
	if old == nil {
		ctx = admission.WithinCreate(ctx)
	} else {
		ctx = admission.WithinUpdate(ctx, old)
	}
	obj.SetDefaults(ctx)
	return obj.Validate(ctx)
}

// Errors keeps the diagnostics that refuse a write; nil when there are none.
func Errors(d *fielderr.Error) *fielderr.Error { return d.Filter(fielderr.ErrorLevel) }

// Warnings lists the diagnostics reported alongside an accepted write, one line each.
func Warnings(d *fielderr.Error) []string {
	var out []string
	for _, w := range d.Filter(fielderr.WarningLevel).Flatten() {
		line := w.Message + ": " + strings.Join(w.Paths, ", ")
		if w.Details != "" {
			line += ": " + w.Details
		}
		out = append(out, line)
	}
	return out
}

// MaxAnnotationsBytes is the most metadata.annotations may hold, keys and values together:
// Kubernetes' TotalAnnotationSizeLimitB.
const MaxAnnotationsBytes = apivalidation.TotalAnnotationSizeLimitB

// ValidateObjectMeta applies the checks the Kubernetes API server makes on every object's
// metadata before any webhook sees it: name and namespace syntax, label and annotation keys
// and values, annotations at most 256 KiB in total, owner references. In a cluster the API
// server does this itself; `skiff up`'s API does it here so that the same objects are refused.
func ValidateObjectMeta(obj Object) *fielderr.Error {
	k := LookupGVK(obj.GetObjectKind().GroupVersionKind().GroupVersion().String(), obj.GetObjectKind().GroupVersionKind().Kind)
	namespaced, names := k == nil || !k.ClusterScoped, apivalidation.NameIsDNSSubdomain
	if _, ok := obj.(*Namespace); ok {
		names = apivalidation.ValidateNamespaceName
	}
	errs := apivalidation.ValidateObjectMetaAccessor(obj, namespaced, names, field.NewPath("metadata"))
	var out *fielderr.Error
	for _, e := range errs {
		out = out.Also(fielderr.Generic(e.ErrorBody(), e.Field))
	}
	return out
}
