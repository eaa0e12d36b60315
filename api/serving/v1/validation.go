package v1

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/autoscaling"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// Annotations Knative's webhook checks on serving resources.
const (
	GroupName = "serving.knative.dev"
	// CreatorAnnotation and UpdaterAnnotation name who created and last changed the spec.
	CreatorAnnotation = GroupName + "/creator"
	UpdaterAnnotation = GroupName + "/lastModifier"
	// RolloutDurationKey spreads a traffic shift over time (Service and Route).
	RolloutDurationKey = GroupName + "/rollout-duration"
	// ProgressDeadlineAnnotationKey bounds how long a revision may take to become ready.
	ProgressDeadlineAnnotationKey = GroupName + "/progress-deadline"
	// QueueSidecarResourcePercentageAnnotationKey and the keys below size Knative's
	// queue-proxy; Skiff has none but checks them as Knative does so that the YAML is portable.
	QueueSidecarResourcePercentageAnnotationKey = "queue.sidecar." + GroupName + "/resource-percentage"
)

var (
	rolloutDurationAnnotation  = autoscaling.Key{RolloutDurationKey, GroupName + "/rolloutDuration"}
	progressDeadlineAnnotation = autoscaling.Key{ProgressDeadlineAnnotationKey}
	queueResourcePercentage    = autoscaling.Key{QueueSidecarResourcePercentageAnnotationKey, "queue.sidecar." + GroupName + "/resourcePercentage"}
	queueResourceQuantities    = []string{
		"queue.sidecar." + GroupName + "/cpu-resource-request",
		"queue.sidecar." + GroupName + "/cpu-resource-limit",
		"queue.sidecar." + GroupName + "/memory-resource-request",
		"queue.sidecar." + GroupName + "/memory-resource-limit",
		"queue.sidecar." + GroupName + "/ephemeral-storage-resource-request",
		"queue.sidecar." + GroupName + "/ephemeral-storage-resource-limit",
	}
	// networkingAnnotations are the networking.knative.dev annotations a revision template may carry.
	networkingAnnotations = []string{
		"networking.knative.dev/ingress.class", "networking.knative.dev/certificate.class",
		"networking.knative.dev/disableAutoTLS", "networking.knative.dev/disable-external-domain-tls",
		"networking.knative.dev/httpOption", "networking.knative.dev/ingress-class",
		"networking.knative.dev/certificate-class", "networking.knative.dev/disable-auto-tls",
		"networking.knative.dev/http-protocol",
	}
)

// Validate checks a Service as Knative's webhook does; ctx says whether it is created or
// updated (admission) and with which settings (config).
func (s *Service) Validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if !admission.IsInStatusUpdate(ctx) {
		errs = ValidateObjectMetadata(ctx, &s.ObjectMeta, false)
		errs = errs.Also(validateRolloutDuration(s.Annotations).ViaField("annotations"))
		errs = errs.ViaField("metadata")
		ctx = admission.WithinParent(ctx, s.ObjectMeta)
		errs = errs.Also(s.Spec.Validate(admission.WithinSpec(ctx)).ViaField("spec"))
	}
	if old, ok := admission.Baseline(ctx).(*Service); ok && admission.IsInUpdate(ctx) {
		errs = errs.Also(ValidateCreatorAndModifier(old.Spec, s.Spec, old.Annotations, s.Annotations).ViaField("metadata.annotations"))
		errs = errs.Also(s.Spec.Template.VerifyNameChange(ctx, &old.Spec.Template).ViaField("spec.template"))
	}
	return errs
}

// Validate checks a Service's spec: its template and its traffic, which may not name a
// configuration (the Service's own is implied).
func (ss *ServiceSpec) Validate(ctx context.Context) *fielderr.Error {
	return ss.ConfigurationSpec.Validate(ctx).Also(ss.RouteSpec.Validate(WithDefaultConfigurationName(ctx)))
}

// Validate checks a Configuration.
func (c *Configuration) Validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if !admission.IsInStatusUpdate(ctx) {
		errs = ValidateObjectMetadata(ctx, &c.ObjectMeta, false)
		errs = errs.Also(verifyLabelOwner(c.Labels, ServiceLabel, KindService, c.OwnerReferences).ViaField("labels"))
		errs = errs.ViaField("metadata")
		ctx = admission.WithinParent(ctx, c.ObjectMeta)
		errs = errs.Also(c.Spec.Validate(admission.WithinSpec(ctx)).ViaField("spec"))
	}
	if old, ok := admission.Baseline(ctx).(*Configuration); ok && admission.IsInUpdate(ctx) {
		if c.OwnerReferences == nil {
			errs = errs.Also(ValidateCreatorAndModifier(old.Spec, c.Spec, old.Annotations, c.Annotations).ViaField("metadata.annotations"))
		}
		errs = errs.Also(c.Spec.Template.VerifyNameChange(ctx, &old.Spec.Template).ViaField("spec.template"))
	}
	return errs
}

// Validate checks a Configuration's spec: its template.
func (cs *ConfigurationSpec) Validate(ctx context.Context) *fielderr.Error {
	return cs.Template.Validate(ctx).ViaField("template")
}

// Validate checks a revision template: its spec, its annotations and its name.
func (rts *RevisionTemplateSpec) Validate(ctx context.Context) *fielderr.Error {
	cfg := config.FromContextOrDefaults(ctx)
	errs := rts.Spec.Validate(admission.WithinSpec(ctx)).ViaField("spec")
	errs = errs.Also(autoscaling.ValidateAnnotations(cfg.Autoscaler, rts.Annotations).ViaField("metadata.annotations"))
	errs = errs.Also(validateNetworkingAnnotations(rts.Annotations).ViaField("metadata.annotations"))
	errs = errs.Also(validateRevisionName(ctx, rts.Name, rts.GenerateName))
	errs = errs.Also(validateQueueSidecarAnnotations(rts.Annotations).ViaField("metadata.annotations"))
	return errs.Also(validateProgressDeadline(rts.Annotations).ViaField("metadata.annotations"))
}

// VerifyNameChange refuses a changed template that keeps the name the user gave it: each
// revision a user names must be new.
func (rts *RevisionTemplateSpec) VerifyNameChange(_ context.Context, old *RevisionTemplateSpec) *fielderr.Error {
	if rts.Name == "" || rts.Name != old.Name {
		return nil
	}
	if diff := shortDiff(old, rts); diff != "" {
		return &fielderr.Error{Message: "Saw the following changes without a name change (-old +new)",
			Paths: []string{"metadata.name"}, Details: diff}
	}
	return nil
}

// Validate checks a revision's spec: pod spec, timeout and concurrency.
func (rs *RevisionSpec) Validate(ctx context.Context) *fielderr.Error {
	errs := ValidatePodSpec(ctx, rs.PodSpec)
	if rs.TimeoutSeconds != nil {
		errs = errs.Also(validateTimeoutSeconds(ctx, *rs.TimeoutSeconds))
	}
	if rs.ContainerConcurrency != nil {
		errs = errs.Also(ValidateContainerConcurrency(ctx, rs.ContainerConcurrency).ViaField("containerConcurrency"))
	}
	return errs
}

// Validate checks a Revision; an update may not change its spec.
func (r *Revision) Validate(ctx context.Context) *fielderr.Error {
	errs := ValidateObjectMetadata(ctx, &r.ObjectMeta, true).
		Also(verifyLabelOwner(r.Labels, ConfigurationLabel, KindConfiguration, r.OwnerReferences).ViaField("labels")).
		ViaField("metadata")
	if old, ok := admission.Baseline(ctx).(*Revision); ok && admission.IsInUpdate(ctx) {
		if diff := shortDiff(old.Spec, r.Spec); diff != "" {
			return &fielderr.Error{Message: "Immutable fields changed (-old +new)", Paths: []string{"spec"}, Details: diff}
		}
		return errs
	}
	return errs.Also(r.Spec.Validate(admission.WithinSpec(ctx)).ViaField("spec"))
}

// Validate checks a Route.
func (r *Route) Validate(ctx context.Context) *fielderr.Error {
	errs := ValidateObjectMetadata(ctx, &r.ObjectMeta, false).
		Also(verifyLabelOwner(r.Labels, ServiceLabel, KindService, r.OwnerReferences).ViaField("labels"))
	errs = errs.Also(validateRolloutDuration(r.Annotations).ViaField("annotations"))
	errs = errs.ViaField("metadata")
	errs = errs.Also(r.Spec.Validate(admission.WithinSpec(ctx)).ViaField("spec"))
	if old, ok := admission.Baseline(ctx).(*Route); ok && admission.IsInUpdate(ctx) && r.OwnerReferences == nil {
		errs = errs.Also(ValidateCreatorAndModifier(old.Spec, r.Spec, old.Annotations, r.Annotations).ViaField("metadata.annotations"))
	}
	return errs
}

// Validate checks a route spec's traffic.
func (rs *RouteSpec) Validate(ctx context.Context) *fielderr.Error {
	return validateTrafficList(ctx, rs.Traffic).ViaField("traffic")
}

func validateTrafficList(ctx context.Context, traffic []TrafficTarget) *fielderr.Error {
	var errs *fielderr.Error
	tags := map[string]int{}
	var sum int64
	for i := range traffic {
		tt := &traffic[i]
		errs = errs.Also(tt.Validate(ctx).ViaIndex(i))
		if tt.Percent != nil {
			sum += *tt.Percent
		}
		if tt.Tag == "" {
			continue
		}
		if msgs := validation.IsDNS1035Label(tt.Tag); len(msgs) > 0 {
			errs = errs.Also(fielderr.InvalidArrayValue(fmt.Sprint("not a DNS 1035 label: ", msgs), "tag", i))
		}
		if j, dup := tags[tt.Tag]; dup {
			errs = errs.Also(fielderr.Generic(fmt.Sprintf("Multiple definitions for %q", tt.Tag),
				fmt.Sprintf("[%d].tag", i), fmt.Sprintf("[%d].tag", j)))
		} else {
			tags[tt.Tag] = i
		}
	}
	if sum != 100 {
		errs = errs.Also(fielderr.Generic(fmt.Sprintf("Traffic targets sum to %d, want 100", sum), fielderr.Current))
	}
	return errs
}

// Validate checks one traffic target.
func (tt *TrafficTarget) Validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if admission.IsInSpec(ctx) && tt.LatestRevision != nil {
		pinned := tt.RevisionName != ""
		if pinned == *tt.LatestRevision {
			errs = fielderr.Generic(fmt.Sprintf("may not set revisionName %q when latestRevision is %t", tt.RevisionName, *tt.LatestRevision), "latestRevision")
		}
	}
	switch {
	case HasDefaultConfigurationName(ctx) && tt.ConfigurationName != "":
		errs = errs.Also(fielderr.Disallowed("configurationName"))
	case tt.RevisionName != "" && tt.ConfigurationName != "":
		errs = errs.Also(fielderr.MultipleOneOf("revisionName", "configurationName"))
	case tt.RevisionName != "":
		if msgs := validation.IsQualifiedName(tt.RevisionName); len(msgs) > 0 {
			errs = errs.Also(fielderr.InvalidKeyName(tt.RevisionName, "revisionName", msgs...))
		}
	case admission.IsInStatus(ctx):
		errs = errs.Also(fielderr.Missing("revisionName"))
	case tt.ConfigurationName != "":
		if msgs := validation.IsQualifiedName(tt.ConfigurationName); len(msgs) > 0 {
			errs = errs.Also(fielderr.InvalidKeyName(tt.ConfigurationName, "configurationName", msgs...))
		}
	case HasDefaultConfigurationName(ctx):
	default:
		errs = errs.Also(fielderr.MissingOneOf("revisionName", "configurationName"))
	}
	if tt.Percent != nil && (*tt.Percent < 0 || *tt.Percent > 100) {
		errs = errs.Also(fielderr.OutOfBounds(*tt.Percent, 0, 100, "percent"))
	}
	if tt.URL != "" {
		if admission.IsInSpec(ctx) {
			errs = errs.Also(fielderr.Disallowed("url"))
		}
		if tt.Tag == "" {
			errs = errs.Also(fielderr.Disallowed("url"))
		}
	} else if tt.Tag != "" && admission.IsInStatus(ctx) {
		errs = errs.Also(fielderr.Missing("url"))
	}
	return errs
}

// ValidateObjectMetadata checks a serving resource's name and annotations as Knative does:
// a DNS-1035 name (or generateName), and autoscaling annotations only where they take effect
// (a Revision's or template's metadata, never a Service's, Configuration's or Route's own).
func ValidateObjectMetadata(ctx context.Context, m *metav1.ObjectMeta, allowAutoscaling bool) *fielderr.Error {
	errs := validateName(m.Name, m.GenerateName)
	if allowAutoscaling {
		cfg := config.FromContextOrDefaults(ctx)
		errs = errs.Also(autoscaling.ValidateAnnotations(cfg.Autoscaler, m.Annotations).ViaField("annotations"))
	} else {
		errs = errs.Also(validateHasNoAutoscalingAnnotation(m.Annotations).ViaField("annotations"))
	}
	return errs
}

// validateName is knative.dev/pkg's ValidateObjectMetadata: the first problem only.
func validateName(name, generateName string) *fielderr.Error {
	if generateName != "" {
		if msgs := apivalidation.NameIsDNS1035Label(generateName, true); len(msgs) > 0 {
			return fielderr.Generic(fmt.Sprintf("not a DNS 1035 label prefix: %v", msgs), "generateName")
		}
	}
	if name != "" {
		if msgs := apivalidation.NameIsDNS1035Label(name, false); len(msgs) > 0 {
			return fielderr.Generic(fmt.Sprintf("not a DNS 1035 label: %v", msgs), "name")
		}
	}
	if name == "" && generateName == "" {
		return fielderr.Generic("name or generateName is required", "name")
	}
	return nil
}

func validateHasNoAutoscalingAnnotation(anns map[string]string) *fielderr.Error {
	var errs *fielderr.Error
	for k := range anns {
		if strings.HasPrefix(k, autoscaling.GroupName) {
			errs = errs.Also(fielderr.InvalidKeyName(k, fielderr.Current,
				`autoscaling annotations must be put under "spec.template.metadata.annotations" to work`))
		}
	}
	return errs
}

func validateNetworkingAnnotations(anns map[string]string) *fielderr.Error {
	var errs *fielderr.Error
	for k := range anns {
		if strings.HasPrefix(k, "networking.knative.dev") && !contains(networkingAnnotations, k) {
			errs = errs.Also(fielderr.InvalidKeyName(k, fielderr.Current))
		}
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func validateRolloutDuration(anns map[string]string) *fielderr.Error {
	k, v, _ := rolloutDurationAnnotation.Get(anns)
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return fielderr.Invalid(v, k)
	case d.Round(time.Second) != d:
		return fielderr.Generic(fmt.Sprintf("rollout-duration=%s is not at second precision", v), k)
	case d < 0:
		return fielderr.Generic(fmt.Sprintf("rollout-duration=%s must be positive", v), k)
	}
	return nil
}

func validateProgressDeadline(anns map[string]string) *fielderr.Error {
	k, v, _ := progressDeadlineAnnotation.Get(anns)
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return fielderr.Invalid(v, k)
	case d.Round(time.Second) != d:
		return fielderr.Generic(fmt.Sprintf("progress-deadline=%s is not at second precision", v), k)
	case d < 0:
		return fielderr.Generic(fmt.Sprintf("progress-deadline=%s must be positive", v), k)
	}
	return nil
}

func validateQueueSidecarAnnotations(anns map[string]string) *fielderr.Error {
	if len(anns) == 0 {
		return nil
	}
	var errs *fielderr.Error
	if k, v, ok := queueResourcePercentage.Get(anns); ok {
		errs = fielderr.Generic("Queue proxy resource percentage annotation is deprecated. Please use the available annotations to explicitly set resource values per service").
			ViaKey(k).At(fielderr.WarningLevel)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = errs.Also(fielderr.Invalid(v, fielderr.Current).ViaKey(k))
		} else if f < 0.1 || f > 100 {
			errs = errs.Also(fielderr.OutOfBounds(f, 0.1, 100.0, fielderr.Current).ViaKey(k))
		}
	}
	for _, k := range queueResourceQuantities {
		if v, ok := anns[k]; ok {
			if _, err := resource.ParseQuantity(v); err != nil {
				errs = errs.Also(fielderr.Invalid(v, fielderr.Current).ViaKey(k))
			}
		}
	}
	return errs
}

// validateRevisionName checks a template's name (or generateName): a DNS-1035 label starting
// with its parent's name and a dash.
func validateRevisionName(ctx context.Context, name, generateName string) *fielderr.Error {
	if generateName != "" {
		if msgs := apivalidation.NameIsDNS1035Label(generateName, true); len(msgs) > 0 {
			return fielderr.Invalid(fmt.Sprint("not a DNS 1035 label prefix: ", msgs), "metadata.generateName")
		}
	}
	if name == "" {
		return nil
	}
	if msgs := apivalidation.NameIsDNS1035Label(name, false); len(msgs) > 0 {
		return fielderr.Invalid(fmt.Sprint("not a DNS 1035 label: ", msgs), "metadata.name")
	}
	parent := admission.ParentMeta(ctx)
	if parent.Name == "" && parent.GenerateName != "" {
		// A parent named by the server cannot have children named by the user.
		return fielderr.Disallowed("metadata.name")
	}
	if prefix := parent.Name + "-"; !strings.HasPrefix(name, prefix) {
		return fielderr.Invalid(fmt.Sprintf("%q must have prefix %q", name, prefix), "metadata.name")
	}
	return nil
}

func validateTimeoutSeconds(ctx context.Context, t int64) *fielderr.Error {
	if t == 0 {
		return nil
	}
	maxT := config.FromContextOrDefaults(ctx).Defaults.MaxRevisionTimeoutSeconds
	if t > maxT || t < 0 {
		return fielderr.OutOfBounds(t, 0, maxT, "timeoutSeconds")
	}
	return nil
}

// ValidateContainerConcurrency checks containerConcurrency against config-defaults.
func ValidateContainerConcurrency(ctx context.Context, cc *int64) *fielderr.Error {
	if cc == nil {
		return nil
	}
	d := config.FromContextOrDefaults(ctx).Defaults
	var lo int64
	if !d.AllowContainerConcurrencyZero {
		lo = 1
	}
	if *cc < lo || *cc > d.ContainerConcurrencyMaxLimit {
		return fielderr.OutOfBounds(*cc, lo, d.ContainerConcurrencyMaxLimit, fielderr.Current)
	}
	return nil
}

// verifyLabelOwner refuses a label naming a parent (serving.knative.dev/service: x) on an
// object that parent does not own: Knative reserves those labels for the objects it derives.
func verifyLabelOwner(labels map[string]string, label, kind string, owners []metav1.OwnerReference) *fielderr.Error {
	val, ok := labels[label]
	if !ok {
		return nil
	}
	for _, o := range owners {
		if o.Kind == kind && o.Name == val {
			return nil
		}
	}
	return fielderr.Missing(label)
}

// ValidateCreatorAndModifier is Knative's apis.ValidateCreatorAndModifier for serving objects
// on update: the creator annotation never changes, and the last modifier only with the spec.
func ValidateCreatorAndModifier(oldSpec, newSpec any, oldAnns, newAnns map[string]string) *fielderr.Error {
	var errs *fielderr.Error
	if oldAnns[CreatorAnnotation] != newAnns[CreatorAnnotation] {
		errs = errs.Also(fielderr.Generic("annotation value is immutable", CreatorAnnotation))
	}
	if equality.Semantic.DeepEqual(oldSpec, newSpec) && oldAnns[UpdaterAnnotation] != newAnns[UpdaterAnnotation] {
		errs = errs.Also(fielderr.Invalid(newAnns[UpdaterAnnotation], UpdaterAnnotation))
	}
	return errs
}

// shortDiff describes how b differs from a, or "" when they are equal.
func shortDiff(a, b any) string {
	if equality.Semantic.DeepEqual(a, b) {
		return ""
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	if string(x) == string(y) {
		return ""
	}
	return fmt.Sprintf("-: %s\n+: %s\n", x, y)
}
