package v1

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	"github.com/skiff-dev/skiff/api/fielderr"
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
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
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

// SetDefaults fills in what Knative's webhook fills in (apiserver_defaults.go): the mode and
// the ServiceAccount. A sink ref with no namespace stays so, meaning the source's.
func (s *ApiServerSource) SetDefaults(context.Context) {
	s.APIVersion, s.Kind = GroupVersion, KindApiServerSource
	if s.Spec.EventMode == "" {
		s.Spec.EventMode = ReferenceMode
	}
	if s.Spec.ServiceAccountName == "" {
		s.Spec.ServiceAccountName = "default"
	}
}

// Validate checks an ApiServerSource as Knative's webhook does (apiserver_validation.go).
// Skiff also checks the label selectors (spec.resources[].selector, spec.namespaceSelector),
// which Knative leaves to its adapter, failing at run time.
func (s *ApiServerSource) Validate(ctx context.Context) *fielderr.Error {
	return s.Spec.Validate(ctx).ViaField("spec")
}

// Validate checks the mode, sink, resources, owner, overrides and filters.
func (cs *ApiServerSourceSpec) Validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	switch cs.EventMode {
	case ReferenceMode, ResourceMode:
	default:
		errs = errs.Also(fielderr.Invalid(cs.EventMode, "mode"))
	}
	errs = errs.Also(cs.Sink.Validate(ctx).ViaField("sink"))
	if len(cs.Resources) == 0 {
		errs = errs.Also(fielderr.Missing("resources"))
	}
	for i, r := range cs.Resources {
		if _, err := schema.ParseGroupVersion(r.APIVersion); err != nil {
			errs = errs.Also(fielderr.Invalid(r.APIVersion, "apiVersion").ViaFieldIndex("resources", i))
		}
		if strings.TrimSpace(r.Kind) == "" {
			errs = errs.Also(fielderr.Missing("kind").ViaFieldIndex("resources", i))
		}
		errs = errs.Also(validateSelector(r.LabelSelector, "selector").ViaFieldIndex("resources", i))
	}
	if o := cs.ResourceOwner; o != nil {
		if _, err := schema.ParseGroupVersion(o.APIVersion); err != nil {
			errs = errs.Also(fielderr.Invalid(o.APIVersion, "apiVersion").ViaField("owner"))
		}
		if strings.TrimSpace(o.Kind) == "" {
			errs = errs.Also(fielderr.Missing("kind").ViaField("owner"))
		}
	}
	errs = errs.Also(validateSelector(cs.NamespaceSelector, "namespaceSelector"))
	errs = errs.Also(cs.SourceSpec.Validate(ctx))
	if len(cs.Filters) > 0 {
		// Knative's new-apiserversource-filters feature, off by default (Skiff has no such setting).
		errs = errs.Also(fielderr.Generic("Filters is not empty but the NewAPIServerFilters feature is disabled.", "filters"))
	}
	return errs
}

// validateSelector checks a label selector converts to a selector (nil is valid).
func validateSelector(sel *metav1.LabelSelector, path string) *fielderr.Error {
	if sel == nil {
		return nil
	}
	if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		return fielderr.Invalid(err.Error(), path)
	}
	return nil
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;sources
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=".status.sinkUri"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
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
func (s *ContainerSource) SetDefaults(context.Context) {
	s.APIVersion, s.Kind = GroupVersion, KindContainerSource
	for i := range s.Spec.Template.Spec.Containers {
		if c := &s.Spec.Template.Spec.Containers[i]; c.Name == "" {
			c.Name = fmt.Sprintf("%s-%d", s.Name, i)
		}
	}
}

// Validate checks a ContainerSource as Knative's webhook does (container_validation.go): a
// sink, at least one container, each with a name and an image, and the overrides. (Knative
// names the containers spec.containers, not spec.template.spec.containers.)
func (s *ContainerSource) Validate(ctx context.Context) *fielderr.Error {
	return s.Spec.Validate(ctx).ViaField("spec")
}

// Validate checks the sink, the containers and the overrides.
func (cs *ContainerSourceSpec) Validate(ctx context.Context) *fielderr.Error {
	errs := cs.Sink.Validate(ctx).ViaField("sink")
	if len(cs.Template.Spec.Containers) == 0 {
		errs = errs.Also(fielderr.Missing("containers"))
	}
	for i, c := range cs.Template.Spec.Containers {
		var ce *fielderr.Error
		if c.Name == "" {
			ce = ce.Also(fielderr.Missing("name"))
		}
		if c.Image == "" {
			ce = ce.Also(fielderr.Missing("image"))
		}
		errs = errs.Also(ce.ViaFieldIndex("containers", i))
	}
	return errs.Also(cs.SourceSpec.Validate(ctx))
}
