// Package v1 holds Knative's sources.knative.dev/v1 PingSource and SinkBinding as Skiff
// accepts them.
package v1

import (
	"encoding/base64"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
)

// GroupVersion is the apiVersion of the sources.
const GroupVersion = "sources.knative.dev/v1"

// Kinds of this API group.
const (
	KindPingSource  = "PingSource"
	KindSinkBinding = "SinkBinding"
)

// PingEventType is the type of the events a PingSource sends.
const PingEventType = "dev.knative.sources.ping"

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;sources
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=".status.sinkUri"
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=".spec.schedule"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// PingSource sends an event on a cron schedule.
type PingSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PingSourceSpec `json:"spec,omitempty"`
	Status            SourceStatus   `json:"status,omitempty"`
}

// PingSourceSpec is the schedule, the payload and the sink.
type PingSourceSpec struct {
	SourceSpec `json:",inline"`
	// Schedule is a five-field cron expression, e.g. "*/2 * * * *".
	Schedule string `json:"schedule,omitempty"`
	// Timezone is an IANA name the schedule is read in (default UTC).
	Timezone    string `json:"timezone,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	Data        string `json:"data,omitempty"`
	DataBase64  string `json:"dataBase64,omitempty"`
}

// SourceSpec is what every source has: a sink and CloudEvent overrides.
type SourceSpec struct {
	Sink        eventingv1.Destination `json:"sink,omitempty"`
	CEOverrides *CloudEventOverrides   `json:"ceOverrides,omitempty"`
}

// CloudEventOverrides are extensions added to every event a source sends.
type CloudEventOverrides struct {
	Extensions map[string]string `json:"extensions,omitempty"`
}

// SourceStatus is what Knative reports for a source.
type SourceStatus struct {
	duck.Status `json:",inline"`
	SinkURI     string `json:"sinkUri,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=all;knative;sources;bindings
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=".status.sinkUri"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// SinkBinding injects K_SINK (and K_CE_OVERRIDES) into the subject's containers.
type SinkBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SinkBindingSpec `json:"spec,omitempty"`
	Status            SourceStatus    `json:"status,omitempty"`
}

// SinkBindingSpec names the subject and the sink.
type SinkBindingSpec struct {
	SourceSpec `json:",inline"`
	Subject    Reference `json:"subject"`
}

// Reference points at the bound workload by name or label selector.
type Reference struct {
	APIVersion string                `json:"apiVersion"`
	Kind       string                `json:"kind"`
	Namespace  string                `json:"namespace,omitempty"`
	Name       string                `json:"name,omitempty"`
	Selector   *metav1.LabelSelector `json:"selector,omitempty"`
}

// SetDefaults fills in the namespace, kind and timezone.
func (s *PingSource) SetDefaults() {
	s.APIVersion, s.Kind = GroupVersion, KindPingSource
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if s.Spec.Schedule == "" {
		s.Spec.Schedule = "* * * * *"
	}
	if s.Spec.Sink.Ref != nil && s.Spec.Sink.Ref.Namespace == "" {
		s.Spec.Sink.Ref.Namespace = s.Namespace
	}
}

// Validate checks a defaulted PingSource; errors name the field.
func (s *PingSource) Validate() field.ErrorList {
	errs := validateMeta(&s.ObjectMeta)
	p := field.NewPath("spec")
	if _, err := cron.ParseStandard(s.Spec.Schedule); err != nil {
		errs = append(errs, field.Invalid(p.Child("schedule"), s.Spec.Schedule, err.Error()))
	}
	if s.Spec.Timezone != "" {
		if _, err := time.LoadLocation(s.Spec.Timezone); err != nil {
			errs = append(errs, field.Invalid(p.Child("timezone"), s.Spec.Timezone, "not an IANA time zone name"))
		}
	}
	if s.Spec.Data != "" && s.Spec.DataBase64 != "" {
		errs = append(errs, field.Forbidden(p.Child("dataBase64"), "set data or dataBase64, not both"))
	}
	if s.Spec.DataBase64 != "" {
		if _, err := base64.StdEncoding.DecodeString(s.Spec.DataBase64); err != nil {
			errs = append(errs, field.Invalid(p.Child("dataBase64"), s.Spec.DataBase64, "not base64"))
		}
	}
	return append(errs, s.Spec.Sink.Validate(p.Child("sink"))...)
}

// SetDefaults fills in the namespace and kind.
func (b *SinkBinding) SetDefaults() {
	b.APIVersion, b.Kind = GroupVersion, KindSinkBinding
	if b.Namespace == "" {
		b.Namespace = "default"
	}
	if b.Spec.Subject.Namespace == "" {
		b.Spec.Subject.Namespace = b.Namespace
	}
	if b.Spec.Sink.Ref != nil && b.Spec.Sink.Ref.Namespace == "" {
		b.Spec.Sink.Ref.Namespace = b.Namespace
	}
}

// Validate checks a defaulted SinkBinding; errors name the field.
func (b *SinkBinding) Validate() field.ErrorList {
	errs := validateMeta(&b.ObjectMeta)
	p := field.NewPath("spec", "subject")
	if b.Spec.Subject.Kind == "" {
		errs = append(errs, field.Required(p.Child("kind"), ""))
	}
	if b.Spec.Subject.APIVersion == "" {
		errs = append(errs, field.Required(p.Child("apiVersion"), ""))
	}
	if (b.Spec.Subject.Name == "") == (b.Spec.Subject.Selector == nil) {
		errs = append(errs, field.Invalid(p, b.Spec.Subject.Name, "set exactly one of name and selector"))
	}
	return append(errs, b.Spec.Sink.Validate(field.NewPath("spec", "sink"))...)
}

func validateMeta(m *metav1.ObjectMeta) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	if m.Name == "" {
		return append(errs, field.Required(p.Child("name"), "a name is required"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(m.Name) {
		errs = append(errs, field.Invalid(p.Child("name"), m.Name, msg))
	}
	return errs
}
