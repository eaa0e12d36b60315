// Package v1 holds Knative's sources.knative.dev/v1 PingSource and SinkBinding as Skiff
// accepts them.
package v1

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-dev/skiff/api/duck"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	"github.com/skiff-dev/skiff/api/fielderr"
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
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
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
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
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

// SetDefaults fills in the schedule (every minute), as Knative does; a sink ref with no
// namespace stays so, meaning the source's.
func (s *PingSource) SetDefaults(context.Context) {
	s.APIVersion, s.Kind = GroupVersion, KindPingSource
	if s.Spec.Schedule == "" {
		s.Spec.Schedule = "* * * * *"
	}
}

// Validate checks a PingSource as Knative's webhook does (knative.dev/eventing
// pkg/apis/sources/v1 ping_validation.go).
func (s *PingSource) Validate(ctx context.Context) *fielderr.Error {
	return s.Spec.Validate(ctx).ViaField("spec")
}

// Validate checks the schedule (five cron fields, or six with seconds; no @every), the time
// zone, the payload and the sink.
func (ps *PingSourceSpec) Validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	schedule := ps.Schedule
	if strings.Contains(schedule, "@every") {
		errs = fielderr.Invalid(errors.New("unsupported descriptor @every"), "schedule")
	}
	if ps.Timezone != "" {
		schedule = "CRON_TZ=" + ps.Timezone + " " + schedule
	}
	parser := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	if _, err := parser.Parse(schedule); err != nil {
		if strings.HasPrefix(err.Error(), "provided bad location") {
			errs = errs.Also(fielderr.Invalid(err, "timezone"))
		} else {
			errs = errs.Also(fielderr.Invalid(err, "schedule"))
		}
	}
	errs = errs.Also(ps.Sink.Validate(ctx).ViaField("sink"))
	switch {
	case ps.Data != "" && ps.DataBase64 != "":
		errs = errs.Also(fielderr.MultipleOneOf("data", "dataBase64"))
	case ps.DataBase64 != "":
		decoded, err := base64.StdEncoding.DecodeString(ps.DataBase64)
		if err != nil {
			errs = errs.Also(fielderr.Invalid(err, "dataBase64"))
		} else if ps.ContentType == "application/json" {
			if err := validJSON(decoded); err != nil {
				errs = errs.Also(fielderr.Invalid(err, "dataBase64"))
			}
		}
	case ps.Data != "" && ps.ContentType == "application/json":
		if err := validJSON([]byte(ps.Data)); err != nil {
			errs = errs.Also(fielderr.Invalid(err, "data"))
		}
	}
	return errs.Also(ps.SourceSpec.Validate(ctx))
}

func validJSON(b []byte) error {
	var m map[string]any
	return json.Unmarshal(b, &m)
}

// Validate checks the sink and the CloudEvent overrides.
func (ss *SourceSpec) Validate(ctx context.Context) *fielderr.Error {
	errs := ss.Sink.Validate(ctx).ViaField("sink")
	if ss.CEOverrides != nil {
		for k := range ss.CEOverrides.Extensions {
			if e := validateExtensionName(k); e != nil {
				errs = errs.Also(e.ViaField("extensions").ViaField("ceOverrides"))
				break
			}
		}
	}
	return errs
}

func validateExtensionName(k string) *fielderr.Error {
	if k == "" {
		return fielderr.InvalidKeyName(k, "", "keys MUST NOT be empty")
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fielderr.InvalidKeyName(k, "", "keys are expected to be alphanumeric")
		}
	}
	return nil
}

// SetDefaults fills in the subject's namespace and the sink's.
func (b *SinkBinding) SetDefaults(ctx context.Context) {
	b.APIVersion, b.Kind = GroupVersion, KindSinkBinding
	if b.Spec.Subject.Namespace == "" {
		b.Spec.Subject.Namespace = b.Namespace
	}
	if b.Spec.Sink.Ref != nil && b.Spec.Sink.Ref.Namespace == "" {
		b.Spec.Sink.Ref.Namespace = b.Namespace
	}
}

// Validate checks a SinkBinding as Knative's webhook does (sinkbinding_validation.go and
// knative.dev/pkg's tracker.Reference).
func (b *SinkBinding) Validate(ctx context.Context) *fielderr.Error {
	errs := b.Spec.Subject.Validate().ViaField("subject").
		Also(b.Spec.Sink.Validate(ctx).ViaField("sink")).
		Also(b.Spec.SourceSpec.Validate(ctx)).ViaField("spec")
	if b.Spec.Subject.Namespace != "" && b.Namespace != b.Spec.Subject.Namespace {
		errs = errs.Also(fielderr.Invalid(b.Spec.Subject.Namespace, "spec.subject.namespace"))
	}
	return errs
}

// Validate checks a subject reference: apiVersion, kind, namespace and exactly one of name
// and selector.
func (r *Reference) Validate() *fielderr.Error {
	var errs *fielderr.Error
	if r.APIVersion == "" {
		errs = errs.Also(fielderr.Missing("apiVersion"))
	} else if msgs := validation.IsQualifiedName(r.APIVersion); len(msgs) != 0 {
		errs = errs.Also(fielderr.Invalid(strings.Join(msgs, ", "), "apiVersion"))
	}
	if r.Kind == "" {
		errs = errs.Also(fielderr.Missing("kind"))
	} else if msgs := validation.IsCIdentifier(r.Kind); len(msgs) != 0 {
		errs = errs.Also(fielderr.Invalid(strings.Join(msgs, ", "), "kind"))
	}
	if r.Namespace == "" {
		errs = errs.Also(fielderr.Missing("namespace"))
	} else if msgs := validation.IsDNS1123Label(r.Namespace); len(msgs) != 0 {
		errs = errs.Also(fielderr.Invalid(strings.Join(msgs, ", "), "namespace"))
	}
	switch {
	case r.Selector != nil && r.Name != "":
		errs = errs.Also(fielderr.MultipleOneOf("selector", "name"))
	case r.Selector != nil:
		if _, err := metav1.LabelSelectorAsSelector(r.Selector); err != nil {
			errs = errs.Also(fielderr.Invalid(err.Error(), "selector"))
		}
	case r.Name != "":
		if msgs := validation.IsDNS1123Label(r.Name); len(msgs) != 0 {
			errs = errs.Also(fielderr.Invalid(strings.Join(msgs, ", "), "name"))
		}
	default:
		errs = errs.Also(fielderr.MissingOneOf("selector", "name"))
	}
	return errs
}
