package apiserver

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/controlplane/apiserver/openapi"
)

// fieldManagers makes, for every kind and its status subresource, the field manager
// kube-apiserver uses for a CRD (k8s.io/apimachinery's managedfields): it records who set
// which field (metadata.managedFields) on every write and merges server-side applies, with
// the types of the OpenAPI schemas served. Writing the object resets status, writing status
// resets spec, as for a CRD with the status subresource.
func fieldManagers(kinds []*api.Kind, docs *openapi.Documents) (map[fieldsKey]*managedfields.FieldManager, error) {
	tc, err := managedfields.NewTypeConverter(docs.Schemas(), false)
	if err != nil {
		return nil, fmt.Errorf("field managers: %w", err)
	}
	out := map[fieldsKey]*managedfields.FieldManager{}
	for _, k := range kinds {
		gvk := schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
		version := fieldpath.APIVersion(gvk.GroupVersion().String())
		var mainReset, statusReset map[fieldpath.APIVersion]fieldpath.Filter
		if k.StatusSubresource {
			mainReset = map[fieldpath.APIVersion]fieldpath.Filter{version: fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie("status")))}
			statusReset = map[fieldpath.APIVersion]fieldpath.Filter{version: fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie("spec")))}
		}
		fm, err := managedfields.NewDefaultCRDFieldManager(tc, unstructuredConverter{}, noDefaults{}, unstructuredCreater{}, gvk, gvk.GroupVersion(), "", mainReset)
		if err != nil {
			return nil, fmt.Errorf("field manager for %s: %w", k.Kind, err)
		}
		out[fieldsKey{kind: k}] = fm
		if k.StatusSubresource {
			if fm, err = managedfields.NewDefaultCRDFieldManager(tc, unstructuredConverter{}, noDefaults{}, unstructuredCreater{}, gvk, gvk.GroupVersion(), "status", statusReset); err != nil {
				return nil, fmt.Errorf("field manager for %s/status: %w", k.Kind, err)
			}
			out[fieldsKey{kind: k, subresource: "status"}] = fm
		}
	}
	return out, nil
}

// unstructuredConverter converts nothing: every kind is served in one version.
type unstructuredConverter struct{}

func (unstructuredConverter) Convert(in, out, context any) error {
	return fmt.Errorf("conversion between objects is not supported")
}

func (unstructuredConverter) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	gvk := in.GetObjectKind().GroupVersionKind()
	target, ok := gv.KindForGroupVersionKinds([]schema.GroupVersionKind{gvk})
	if !ok || target != gvk {
		return nil, fmt.Errorf("%s cannot be converted to another version", gvk)
	}
	return in.DeepCopyObject(), nil
}

func (unstructuredConverter) ConvertFieldLabel(_ schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

// noDefaults defaults nothing here: Knative's defaulting runs in admission, after the merge,
// as its webhook runs after kube-apiserver's.
type noDefaults struct{}

func (noDefaults) Default(runtime.Object) {}

type unstructuredCreater struct{}

func (unstructuredCreater) New(kind schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(kind)
	return u, nil
}
