package v1

import (
	"fmt"
	"net/url"
	"regexp"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api/duck"
)

// DefaultBrokerClass is the broker.class Knative's webhook writes when none is given.
const DefaultBrokerClass = "MTChannelBasedBroker"

// SetDefaults fills in what Knative's webhook fills in on a Broker.
func (b *Broker) SetDefaults() {
	b.APIVersion, b.Kind = GroupVersion, KindBroker
	if b.Namespace == "" {
		b.Namespace = "default"
	}
	if b.Annotations[BrokerClassAnnotation] == "" {
		if b.Annotations == nil {
			b.Annotations = map[string]string{}
		}
		b.Annotations[BrokerClassAnnotation] = DefaultBrokerClass
	}
}

// SetDefaults fills in what Knative's webhook fills in on a Trigger.
func (t *Trigger) SetDefaults() {
	t.APIVersion, t.Kind = GroupVersion, KindTrigger
	if t.Namespace == "" {
		t.Namespace = "default"
	}
	if t.Spec.Broker == "" {
		t.Spec.Broker = "default"
	}
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[BrokerLabel] = t.Spec.Broker
	if r := t.Spec.Subscriber.Ref; r != nil && r.Namespace == "" {
		r.Namespace = t.Namespace
	}
}

// Validate checks a defaulted Broker; each error names its field path.
func (b *Broker) Validate() field.ErrorList {
	errs := validateName(b.Name, b.Namespace, field.NewPath("metadata"))
	return append(errs, b.Spec.Delivery.Validate(field.NewPath("spec", "delivery"))...)
}

// Validate checks a defaulted Trigger; each error names its field path. CESQL expressions
// are only checked for being non-empty here; their syntax is checked where the evaluator is.
func (t *Trigger) Validate() field.ErrorList {
	errs := validateName(t.Name, t.Namespace, field.NewPath("metadata"))
	spec := field.NewPath("spec")
	for _, msg := range validation.IsDNS1123Subdomain(t.Spec.Broker) {
		errs = append(errs, field.Invalid(spec.Child("broker"), t.Spec.Broker, msg))
	}
	if t.Spec.Filter != nil {
		for k := range t.Spec.Filter.Attributes {
			if !attributeName.MatchString(k) {
				errs = append(errs, field.Invalid(spec.Child("filter", "attributes").Key(k), k,
					"a CloudEvents attribute name is lower-case letters and digits"))
			}
		}
	}
	for i := range t.Spec.Filters {
		errs = append(errs, t.Spec.Filters[i].validate(spec.Child("filters").Index(i))...)
	}
	errs = append(errs, t.Spec.Subscriber.Validate(spec.Child("subscriber"))...)
	return append(errs, t.Spec.Delivery.Validate(spec.Child("delivery"))...)
}

// attributeName is the CloudEvents rule for attribute (and extension) names.
var attributeName = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

func (f *SubscriptionsAPIFilter) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	set := 0
	for _, on := range []bool{len(f.All) > 0, len(f.Any) > 0, f.Not != nil, len(f.Exact) > 0, len(f.Prefix) > 0, len(f.Suffix) > 0, f.CESQL != ""} {
		if on {
			set++
		}
	}
	if set != 1 {
		return append(errs, field.Invalid(p, set, "exactly one of all, any, not, exact, prefix, suffix, cesql must be set"))
	}
	for name, m := range map[string]map[string]string{"exact": f.Exact, "prefix": f.Prefix, "suffix": f.Suffix} {
		if m == nil {
			continue
		}
		if len(m) != 1 {
			errs = append(errs, field.Invalid(p.Child(name), len(m), "must name exactly one attribute"))
		}
		for k, v := range m {
			if !attributeName.MatchString(k) {
				errs = append(errs, field.Invalid(p.Child(name).Key(k), k, "a CloudEvents attribute name is lower-case letters and digits"))
			}
			if name != "exact" && v == "" {
				errs = append(errs, field.Invalid(p.Child(name).Key(k), v, "must not be empty"))
			}
		}
	}
	for i := range f.All {
		errs = append(errs, f.All[i].validate(p.Child("all").Index(i))...)
	}
	for i := range f.Any {
		errs = append(errs, f.Any[i].validate(p.Child("any").Index(i))...)
	}
	if f.Not != nil {
		errs = append(errs, f.Not.validate(p.Child("not"))...)
	}
	return errs
}

// Validate checks a destination: a ref with kind and name, or an absolute URI, or a ref
// with a relative URI.
func (d *Destination) Validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d.Ref == nil && d.URI == "" {
		return append(errs, field.Required(p, "set ref or uri"))
	}
	if d.Ref != nil {
		if d.Ref.Kind == "" {
			errs = append(errs, field.Required(p.Child("ref", "kind"), ""))
		}
		if d.Ref.Name == "" {
			errs = append(errs, field.Required(p.Child("ref", "name"), ""))
		}
	}
	if d.URI != "" {
		u, err := url.Parse(d.URI)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(p.Child("uri"), d.URI, err.Error()))
		case d.Ref == nil && (!u.IsAbs() || u.Host == ""):
			errs = append(errs, field.Invalid(p.Child("uri"), d.URI, "must be an absolute URL when there is no ref"))
		}
	}
	return errs
}

// Validate checks a delivery spec (nil is valid).
func (d *DeliverySpec) Validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d == nil {
		return nil
	}
	if d.DeadLetterSink != nil {
		errs = append(errs, d.DeadLetterSink.Validate(p.Child("deadLetterSink"))...)
	}
	if d.Retry != nil && *d.Retry < 0 {
		errs = append(errs, field.Invalid(p.Child("retry"), *d.Retry, "must be >= 0"))
	}
	if d.BackoffPolicy != nil && *d.BackoffPolicy != "linear" && *d.BackoffPolicy != "exponential" {
		errs = append(errs, field.NotSupported(p.Child("backoffPolicy"), *d.BackoffPolicy, []string{"linear", "exponential"}))
	}
	for name, v := range map[string]*string{"backoffDelay": d.BackoffDelay, "timeout": d.Timeout, "retryAfterMax": d.RetryAfterMax} {
		if v == nil {
			continue
		}
		if dur, err := duck.ParseISO8601Duration(*v); err != nil {
			errs = append(errs, field.Invalid(p.Child(name), *v, err.Error()))
		} else if dur <= 0 && name == "timeout" {
			errs = append(errs, field.Invalid(p.Child(name), *v, "must be positive"))
		}
	}
	return errs
}

func validateName(name, namespace string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		return append(errs, field.Required(p.Child("name"), "a name is required"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p.Child("name"), name, msg))
	}
	for _, msg := range validation.IsDNS1123Label(namespace) {
		errs = append(errs, field.Invalid(p.Child("namespace"), namespace, msg))
	}
	return errs
}

// String is for messages.
func (r *KReference) String() string { return fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name) }
