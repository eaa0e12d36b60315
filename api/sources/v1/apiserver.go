package v1

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
)

// Kinds of the sources added with the rest of Knative's core sources.
const (
	KindApiServerSource = "ApiServerSource"
	KindContainerSource = "ContainerSource"
)

// ApiServerSource event modes (spec.mode).
const (
	// ReferenceMode sends a reference to the changed object (dev.knative.apiserver.ref.*).
	ReferenceMode = "Reference"
	// ResourceMode sends the changed object itself (dev.knative.apiserver.resource.*).
	ResourceMode = "Resource"
)

// Conditions of ApiServerSource (Knative's apiserverCondSet) and ContainerSource.
const (
	ApiServerConditionSinkProvided          duck.ConditionType = "SinkProvided"
	ApiServerConditionDeployed              duck.ConditionType = "Deployed"
	ApiServerConditionSufficientPermissions duck.ConditionType = "SufficientPermissions"
	ApiServerConditionOIDCIdentityCreated   duck.ConditionType = "OIDCIdentityCreated"

	ContainerSourceConditionSinkBindingReady    duck.ConditionType = "SinkBindingReady"
	ContainerSourceConditionReceiveAdapterReady duck.ConditionType = "ReceiveAdapterReady"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;sources
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=".status.sinkUri"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// ApiServerSource sends an event for every change to the resources it watches.
type ApiServerSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApiServerSourceSpec   `json:"spec,omitempty"`
	Status            ApiServerSourceStatus `json:"status,omitempty"`
}

// ApiServerSourceSpec says what to watch, how to tell it, with whose permissions.
type ApiServerSourceSpec struct {
	SourceSpec `json:",inline"`
	// Resources are the kinds to watch, each with an optional label selector.
	Resources []APIVersionKindSelector `json:"resources,omitempty"`
	// ResourceOwner limits the events to objects controlled by an owner of this kind.
	ResourceOwner *APIVersionKind `json:"owner,omitempty"`
	// EventMode is Reference (default) or Resource.
	EventMode string `json:"mode,omitempty"`
	// ServiceAccountName is whose permissions the watches use (default "default").
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// NamespaceSelector selects the namespaces watched; none means the source's own.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Filters are Knative's new filters, behind the new-apiserversource-filters feature
	// (off, as by default in Knative).
	Filters []eventingv1.SubscriptionsAPIFilter `json:"filters,omitempty"`
}

// APIVersionKind names a kind.
type APIVersionKind struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// APIVersionKindSelector names a kind and selects objects of it by label.
type APIVersionKindSelector struct {
	APIVersion    string                `json:"apiVersion"`
	Kind          string                `json:"kind"`
	LabelSelector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ApiServerSourceStatus is a source's status plus the namespaces it watches.
type ApiServerSourceStatus struct {
	SourceStatus `json:",inline"`
	// Namespaces are the namespaces the source watches.
	Namespaces []string `json:"namespaces,omitempty"`
}

// SetDefaults fills in what Knative's webhook fills in (apiserver_defaults.go).
func (s *ApiServerSource) SetDefaults() {
	s.APIVersion, s.Kind = GroupVersion, KindApiServerSource
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if s.Spec.EventMode == "" {
		s.Spec.EventMode = ReferenceMode
	}
	if s.Spec.ServiceAccountName == "" {
		s.Spec.ServiceAccountName = "default"
	}
	if r := s.Spec.Sink.Ref; r != nil && r.Namespace == "" {
		r.Namespace = s.Namespace
	}
}

// Validate checks a defaulted ApiServerSource (apiserver_validation.go).
func (s *ApiServerSource) Validate() field.ErrorList {
	errs := validateMeta(&s.ObjectMeta)
	p := field.NewPath("spec")
	switch s.Spec.EventMode {
	case ReferenceMode, ResourceMode:
	default:
		errs = append(errs, field.NotSupported(p.Child("mode"), s.Spec.EventMode, []string{ReferenceMode, ResourceMode}))
	}
	errs = append(errs, s.Spec.Sink.Validate(p.Child("sink"))...)
	if len(s.Spec.Resources) == 0 {
		errs = append(errs, field.Required(p.Child("resources"), "list at least one apiVersion and kind to watch"))
	}
	for i, r := range s.Spec.Resources {
		rp := p.Child("resources").Index(i)
		if _, err := schema.ParseGroupVersion(r.APIVersion); err != nil || r.APIVersion == "" {
			errs = append(errs, field.Invalid(rp.Child("apiVersion"), r.APIVersion, "not a group/version"))
		}
		if strings.TrimSpace(r.Kind) == "" {
			errs = append(errs, field.Required(rp.Child("kind"), ""))
		}
		if r.LabelSelector != nil {
			if _, err := metav1.LabelSelectorAsSelector(r.LabelSelector); err != nil {
				errs = append(errs, field.Invalid(rp.Child("selector"), r.LabelSelector, err.Error()))
			}
		}
	}
	if o := s.Spec.ResourceOwner; o != nil {
		if _, err := schema.ParseGroupVersion(o.APIVersion); err != nil || o.APIVersion == "" {
			errs = append(errs, field.Invalid(p.Child("owner", "apiVersion"), o.APIVersion, "not a group/version"))
		}
		if strings.TrimSpace(o.Kind) == "" {
			errs = append(errs, field.Required(p.Child("owner", "kind"), ""))
		}
	}
	if s.Spec.NamespaceSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(s.Spec.NamespaceSelector); err != nil {
			errs = append(errs, field.Invalid(p.Child("namespaceSelector"), s.Spec.NamespaceSelector, err.Error()))
		}
	}
	errs = append(errs, validateCEOverrides(s.Spec.CEOverrides, p.Child("ceOverrides"))...)
	if len(s.Spec.Filters) > 0 {
		errs = append(errs, field.Forbidden(p.Child("filters"), "Filters is not empty but the NewAPIServerFilters feature is disabled."))
	}
	return errs
}

// ceExtensionName is the CloudEvents rule for extension attribute names.
var ceExtensionName = regexp.MustCompile(`^[a-z0-9]+$`)

// validateCEOverrides checks that every override is a valid extension name that is not
// a context attribute (duckv1.CloudEventOverrides.Validate).
func validateCEOverrides(o *CloudEventOverrides, p *field.Path) field.ErrorList {
	if o == nil {
		return nil
	}
	var errs field.ErrorList
	for k := range o.Extensions {
		switch {
		case !ceExtensionName.MatchString(k):
			errs = append(errs, field.Invalid(p.Child("extensions").Key(k), k, "CloudEvents extension names are lower-case letters and digits"))
		case k == "specversion" || k == "id" || k == "source" || k == "type" || k == "subject" || k == "time" ||
			k == "datacontenttype" || k == "dataschema" || k == "data":
			errs = append(errs, field.Invalid(p.Child("extensions").Key(k), k, "is a CloudEvents context attribute, not an extension"))
		}
	}
	return errs
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;sources
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=".status.sinkUri"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// ContainerSource runs a container that sends events to K_SINK.
type ContainerSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ContainerSourceSpec `json:"spec,omitempty"`
	Status            SourceStatus        `json:"status,omitempty"`
}

// ContainerSourceSpec is the sink and the pod template to run.
type ContainerSourceSpec struct {
	SourceSpec `json:",inline"`
	// Template is the pod to run, with K_SINK and K_CE_OVERRIDES added to its containers.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Template corev1.PodTemplateSpec `json:"template"`
}

// SetDefaults names unnamed containers {name}-{index} (container_defaults.go).
func (s *ContainerSource) SetDefaults() {
	s.APIVersion, s.Kind = GroupVersion, KindContainerSource
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	for i := range s.Spec.Template.Spec.Containers {
		if c := &s.Spec.Template.Spec.Containers[i]; c.Name == "" {
			c.Name = fmt.Sprintf("%s-%d", s.Name, i)
		}
	}
	if r := s.Spec.Sink.Ref; r != nil && r.Namespace == "" {
		r.Namespace = s.Namespace
	}
}

// Validate checks a defaulted ContainerSource (container_validation.go): a sink, at least
// one container, each with a name and an image.
func (s *ContainerSource) Validate() field.ErrorList {
	errs := validateMeta(&s.ObjectMeta)
	p := field.NewPath("spec")
	errs = append(errs, s.Spec.Sink.Validate(p.Child("sink"))...)
	cp := p.Child("template", "spec", "containers")
	if len(s.Spec.Template.Spec.Containers) == 0 {
		errs = append(errs, field.Required(cp, "a ContainerSource runs at least one container"))
	}
	for i, c := range s.Spec.Template.Spec.Containers {
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Index(i).Child("name"), ""))
		}
		if c.Image == "" {
			errs = append(errs, field.Required(cp.Index(i).Child("image"), ""))
		}
	}
	return append(errs, validateCEOverrides(s.Spec.CEOverrides, p.Child("ceOverrides"))...)
}
