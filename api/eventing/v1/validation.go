package v1

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/duck"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// Knative Eventing's webhook rules for Broker and Trigger (knative.dev/eventing
// pkg/apis/eventing/v1 *_defaults.go, *_validation.go, pkg/apis/duck/v1 delivery, and
// knative.dev/pkg's Destination and KReference), with Knative's paths and messages.

// DefaultBrokerClass is the broker.class Knative's webhook writes when none is given and
// config-br-defaults is as Knative ships it.
const DefaultBrokerClass = "MTChannelBasedBroker"

// Trigger annotations Knative checks.
const (
	DependencyAnnotation = "knative.dev/dependency"
	InjectionAnnotation  = "eventing.knative.dev/injection"
)

// SetDefaults fills in what Knative's webhook fills in on a Broker (broker_defaults.go), from
// config-br-defaults: spec.config and spec.delivery when unset (as Knative ships it, a
// ConfigMap reference and 10 retries with exponential backoff from PT0.2S), the config's
// namespace, and the class annotation.
func (b *Broker) SetDefaults(ctx context.Context) {
	b.APIVersion, b.Kind = GroupVersion, KindBroker
	ctx = admission.WithinParent(ctx, b.ObjectMeta)
	brokers := config.FromContextOrDefaults(ctx).Brokers
	class := b.Annotations[BrokerClassAnnotation]
	if b.Spec.Config != nil {
		class = b.Spec.Config.Kind // Knative looks the defaults up by the config's kind then
	}
	if c := brokers.Config(b.Namespace, class); c != nil {
		if b.Spec.Config == nil && c.HasRef() {
			b.Spec.Config = &KReference{APIVersion: c.APIVersion, Kind: c.Kind, Name: c.Name, Namespace: c.Namespace}
		}
		if b.Spec.Delivery == nil && c.Delivery != nil {
			b.Spec.Delivery = defaultDelivery(c.Delivery)
		}
	}
	if b.Spec.Config != nil && b.Spec.Config.Namespace == "" {
		b.Spec.Config.Namespace = b.Namespace
	}
	b.Spec.Delivery.SetDefaults(ctx)
	if _, ok := b.Annotations[BrokerClassAnnotation]; !ok {
		if c := brokers.Class(b.Namespace); c != "" {
			if b.Annotations == nil {
				b.Annotations = map[string]string{}
			}
			b.Annotations[BrokerClassAnnotation] = c
		}
	}
}

// defaultDelivery is a Broker's delivery from config-br-defaults: Knative copies the dead
// letter sink, retry and backoff.
func defaultDelivery(d *config.BrokerDelivery) *DeliverySpec {
	out := &DeliverySpec{Retry: d.Retry, BackoffPolicy: d.BackoffPolicy, BackoffDelay: d.BackoffDelay}
	if len(d.DeadLetterSink) > 0 {
		var dls Destination
		if json.Unmarshal(d.DeadLetterSink, &dls) == nil {
			out.DeadLetterSink = &dls
		}
	}
	return out
}

// SetDefaults fills in what Knative's webhook fills in on a Trigger: an empty filter, the
// subscriber's and dead letter sink's namespace, and the broker label.
func (t *Trigger) SetDefaults(ctx context.Context) {
	t.APIVersion, t.Kind = GroupVersion, KindTrigger
	ctx = admission.WithinParent(ctx, t.ObjectMeta)
	if t.Spec.Filter == nil {
		t.Spec.Filter = &TriggerFilter{}
	}
	t.Spec.Subscriber.SetDefaults(ctx)
	t.Spec.Delivery.SetDefaults(ctx)
	if t.Spec.Broker != "" {
		if len(t.Labels) == 0 {
			t.Labels = map[string]string{}
		}
		t.Labels[BrokerLabel] = t.Spec.Broker
	}
}

// SetDefaults gives a ref the namespace of the object it is in.
func (d *Destination) SetDefaults(ctx context.Context) {
	if d != nil && d.Ref != nil && d.Ref.Namespace == "" {
		d.Ref.Namespace = admission.ParentMeta(ctx).Namespace
	}
}

// SetDefaults defaults the dead letter sink.
func (d *DeliverySpec) SetDefaults(ctx context.Context) {
	if d != nil && d.DeadLetterSink != nil {
		d.DeadLetterSink.SetDefaults(ctx)
	}
}

// Validate checks a Broker: a class, a valid config and delivery, and (on update) an
// unchanged spec but for delivery, and an unchanged class.
func (b *Broker) Validate(ctx context.Context) *fielderr.Error {
	ctx = admission.WithinParent(ctx, b.ObjectMeta)
	var errs *fielderr.Error
	if b.Annotations[BrokerClassAnnotation] == "" {
		errs = errs.Also(fielderr.Missing(BrokerClassAnnotation))
	}
	var spec *fielderr.Error
	// As Knative (determineNamespaceAllowance): spec.config and the dead letter sink may name
	// objects in other namespaces unless config-br-defaults disallows it.
	withNS := ctx
	if !config.FromContextOrDefaults(ctx).Brokers.DisallowOtherNamespace(b.Namespace) {
		withNS = admission.AllowDifferentNamespace(ctx)
	}
	if b.Spec.Config != nil {
		spec = spec.Also(b.Spec.Config.Validate(withNS, false).ViaField("config"))
	}
	if b.Spec.Delivery != nil {
		spec = spec.Also(b.Spec.Delivery.Validate(withNS).ViaField("delivery"))
	}
	errs = errs.Also(spec.ViaField("spec"))
	if old, ok := admission.Baseline(ctx).(*Broker); ok && admission.IsInUpdate(ctx) {
		a, b2 := old.Spec, b.Spec
		a.Delivery, b2.Delivery = nil, nil // only delivery may change
		if !equality.Semantic.DeepEqual(a, b2) {
			return errs.Also(&fielderr.Error{Message: "Immutable fields changed (-old +new)", Paths: []string{"spec"}, Details: diff(a, b2)})
		}
		if o, n := old.Annotations[BrokerClassAnnotation], b.Annotations[BrokerClassAnnotation]; o != n {
			return errs.Also(&fielderr.Error{Message: "Immutable annotations changed (-old +new)", Paths: []string{"annotations"}, Details: diff(o, n)})
		}
	}
	return errs
}

// Validate checks a Trigger. (As in Knative, a subscriber may name another namespace: the
// Trigger's metadata is not the parent of what it validates.)
func (t *Trigger) Validate(ctx context.Context) *fielderr.Error {
	errs := t.Spec.Validate(admission.WithinSpec(ctx)).ViaField("spec")
	if v, ok := t.Annotations[DependencyAnnotation]; ok {
		errs = errs.Also(t.validateDependencyAnnotation(v).ViaField(fmt.Sprintf("metadata.annotations[%s]", DependencyAnnotation)))
	}
	if v, ok := t.Annotations[InjectionAnnotation]; ok {
		errs = errs.Also(t.validateInjectionAnnotation(v).ViaField(fmt.Sprintf("metadata.annotations[%s]", InjectionAnnotation)))
	}
	if old, ok := admission.Baseline(ctx).(*Trigger); ok && admission.IsInUpdate(ctx) && old.Spec.Broker != t.Spec.Broker {
		errs = errs.Also(&fielderr.Error{Message: "Immutable fields changed (-old +new)", Paths: []string{"spec", "broker"},
			Details: diff(old.Spec.Broker, t.Spec.Broker)})
	}
	return errs
}

// Validate checks a Trigger's spec.
func (ts *TriggerSpec) Validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	if ts.Broker == "" {
		errs = errs.Also(fielderr.Missing("broker"))
	}
	if ts.Filter != nil {
		errs = errs.Also(validateAttributeNames(ts.Filter.Attributes).ViaField("attributes").ViaField("filter"))
	}
	return errs.Also(validateFiltersList(ctx, ts.Filters).ViaField("filters")).
		Also(ts.Subscriber.Validate(ctx).ViaField("subscriber")).
		Also(ts.Delivery.Validate(ctx).ViaField("delivery"))
}

func (t *Trigger) validateDependencyAnnotation(v string) *fielderr.Error {
	var ref corev1.ObjectReference
	if err := json.Unmarshal([]byte(v), &ref); err != nil {
		return &fielderr.Error{Message: fmt.Sprintf("The provided annotation was not a corev1.ObjectReference: %q", v), Details: err.Error(), Paths: []string{""}}
	}
	var errs *fielderr.Error
	if ref.Namespace != "" && ref.Namespace != t.Namespace {
		errs = errs.Also(fielderr.Generic(fmt.Sprintf("Namespace must be empty or equal to the trigger namespace %q", t.Namespace), "namespace"))
	}
	if ref.Kind == "" {
		errs = errs.Also(fielderr.Missing("kind"))
	}
	if ref.Name == "" {
		errs = errs.Also(fielderr.Missing("name"))
	}
	if ref.APIVersion == "" {
		errs = errs.Also(fielderr.Missing("apiVersion"))
	}
	return errs
}

func (t *Trigger) validateInjectionAnnotation(v string) *fielderr.Error {
	if v != "enabled" && v != "disabled" {
		return fielderr.Generic(fmt.Sprintf(`The provided injection annotation value can only be "enabled" or "disabled", not %q`, v), "")
	}
	if t.Spec.Broker != "default" {
		return fielderr.Generic(fmt.Sprintf("The provided injection annotation is only used for default broker, but non-default broker specified here: %q", t.Spec.Broker), "")
	}
	return nil
}

// validAttributeName is Knative's rule for attribute names in filters.
var validAttributeName = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

func validateAttributeNames(attrs map[string]string) *fielderr.Error {
	var errs *fielderr.Error
	for a := range attrs {
		if !validAttributeName.MatchString(a) {
			errs = errs.Also(fielderr.InvalidKeyName(a, fielderr.Current, "Attribute name must start with a letter and can only contain lowercase alphanumeric").ViaKey(a))
		}
	}
	return errs
}

func validateFiltersList(ctx context.Context, filters []SubscriptionsAPIFilter) *fielderr.Error {
	var errs *fielderr.Error
	for i := range filters {
		// Knative indexes everything gathered so far, not just this filter's errors.
		errs = errs.Also(filters[i].validate(ctx)).ViaIndex(i)
	}
	return errs
}

// validate checks one Subscriptions API filter expression as Knative's webhook does
// (ValidateSubscriptionAPIFilter): several dialects in one expression, attribute names, nested
// expressions, and a CESQL expression that does not parse (with the check ctx carries). What
// it lets through (no dialect, an empty value or list, several attributes) is run as Knative's
// broker runs it: see eventfilter.Compile.
func (f *SubscriptionsAPIFilter) validate(ctx context.Context) *fielderr.Error {
	var errs *fielderr.Error
	set := 0
	for _, on := range []bool{len(f.Exact) > 0, len(f.Prefix) > 0, len(f.Suffix) > 0, len(f.All) > 0, len(f.Any) > 0, f.Not != nil, f.CESQL != ""} {
		if on {
			set++
		}
	}
	// Knative gives this error no path; Skiff names the filter.
	if set > 1 {
		errs = errs.Also(fielderr.Generic("multiple dialects found, filters can have only one dialect set", fielderr.Current))
	}
	for name, m := range map[string]map[string]string{"exact": f.Exact, "prefix": f.Prefix, "suffix": f.Suffix} {
		errs = errs.Also(validateAttributeNames(m).ViaField(name))
	}
	errs = errs.Also(validateFiltersList(ctx, f.All).ViaField("all")).Also(validateFiltersList(ctx, f.Any).ViaField("any"))
	if f.Not != nil {
		errs = errs.Also(f.Not.validate(ctx).ViaField("not"))
	}
	if check := admission.CESQLCheck(ctx); f.CESQL != "" && check != nil {
		if err := check(f.CESQL); err != nil {
			errs = errs.Also(fielderr.Invalid(f.CESQL, fielderr.Current, err.Error()).ViaField("cesql"))
		}
	}
	return errs
}

// Validate checks a destination as knative.dev/pkg's ValidateDestination does: a ref, or an
// absolute URI with a host, or a ref with a relative URI (the ref is then not checked, as
// there); `uri: ""` is a relative URI.
func (d *Destination) Validate(ctx context.Context) *fielderr.Error {
	if d == nil {
		return nil
	}
	if d.Ref == nil && d.URI == nil {
		return fielderr.Generic("expected at least one, got none", "ref", "uri")
	}
	var u *url.URL
	if d.URI != nil {
		var err error
		if u, err = url.Parse(*d.URI); err != nil {
			return fielderr.Invalid(*d.URI, "uri", err.Error())
		}
	}
	switch {
	case d.Ref != nil && u != nil && u.IsAbs():
		return fielderr.Generic("Absolute URI is not allowed when Ref or [apiVersion, kind, name] is present", "[apiVersion, kind, name]", "ref", "uri")
	case d.Ref == nil && u != nil && (!u.IsAbs() || u.Host == ""):
		return fielderr.Invalid("Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent", "uri")
	case d.Ref != nil && u == nil:
		return d.Ref.Validate(ctx, false).ViaField("ref")
	case d.CACerts != "":
		return validateCACerts(d.CACerts)
	}
	return nil
}

func validateCACerts(pemText string) *fielderr.Error {
	block, _ := pem.Decode([]byte(pemText))
	switch {
	case block == nil:
		return fielderr.Invalid("CA Cert provided is invalid", "caCert")
	case block.Type != "CERTIFICATE":
		return fielderr.Invalid("CA Cert provided is not a certificate", "caCert")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return fielderr.Invalid("CA Cert provided is invalid", "caCert")
	}
	return nil
}

// Validate checks a reference: name, kind and apiVersion; a namespace other than the parent's
// only where allowed (a Broker's config may name another namespace).
func (r *KReference) Validate(ctx context.Context, otherNamespace bool) *fielderr.Error {
	var errs *fielderr.Error
	if r == nil {
		return errs.Also(fielderr.Missing("name")).Also(fielderr.Missing("apiVersion")).Also(fielderr.Missing("kind"))
	}
	if r.Name == "" {
		errs = errs.Also(fielderr.Missing("name"))
	}
	if r.Group != "" {
		errs = errs.Also(fielderr.Disallowed("group"))
	}
	if r.APIVersion == "" {
		errs = errs.Also(fielderr.Missing("apiVersion"))
	}
	if r.Kind == "" {
		errs = errs.Also(fielderr.Missing("kind"))
	}
	otherNamespace = otherNamespace || admission.IsDifferentNamespaceAllowed(ctx)
	if parent := admission.ParentMeta(ctx).Namespace; r.Namespace != "" && !otherNamespace && parent != "" && r.Namespace != parent {
		errs = errs.Also(&fielderr.Error{Message: "mismatched namespaces", Paths: []string{"namespace"},
			Details: fmt.Sprintf("parent namespace: %q does not match ref: %q", parent, r.Namespace)})
	}
	return errs
}

// Validate checks a delivery spec (nil is valid).
func (d *DeliverySpec) Validate(ctx context.Context) *fielderr.Error {
	if d == nil {
		return nil
	}
	var errs *fielderr.Error
	if e := d.DeadLetterSink.Validate(ctx); e != nil {
		errs = errs.Also(e).ViaField("deadLetterSink")
	}
	if d.Retry != nil && *d.Retry < 0 {
		errs = errs.Also(fielderr.Invalid(*d.Retry, "retry"))
	}
	features := config.FromContextOrDefaults(ctx).EventingFeatures
	if features == nil {
		features = config.DefaultEventingFeatures()
	}
	if d.Timeout != nil {
		// As Knative: a period that does not parse or is zero; a negative one is taken. The
		// field itself needs Eventing's delivery-timeout (on by default).
		if !features.IsEnabled(config.EventingDeliveryTimeout) {
			errs = errs.Also(fielderr.Disallowed("timeout"))
		} else if _, zero, err := duck.ParseISO8601Duration(*d.Timeout); err != nil || zero {
			errs = errs.Also(fielderr.Invalid(*d.Timeout, "timeout"))
		}
	}
	if d.BackoffPolicy != nil && *d.BackoffPolicy != "linear" && *d.BackoffPolicy != "exponential" {
		errs = errs.Also(fielderr.Invalid(*d.BackoffPolicy, "backoffPolicy"))
	}
	if d.BackoffDelay != nil {
		if _, _, err := duck.ParseISO8601Duration(*d.BackoffDelay); err != nil {
			errs = errs.Also(fielderr.Invalid(*d.BackoffDelay, "backoffDelay"))
		}
	}
	if d.Format != nil && *d.Format != DeliveryFormatJSON && *d.Format != DeliveryFormatBinary {
		errs = errs.Also(fielderr.Invalid(*d.Format, "format"))
	}
	if d.RetryAfterMax != nil {
		// Knative's delivery-retryafter feature, off by default: with it, a period that does
		// not parse or is negative is refused.
		if !features.IsEnabled(config.EventingDeliveryRetryAfter) {
			errs = errs.Also(fielderr.Disallowed("retryAfterMax"))
		} else if p, _, err := duck.ParseISO8601Duration(*d.RetryAfterMax); err != nil || p < 0 {
			errs = errs.Also(fielderr.Invalid(*d.RetryAfterMax, "retryAfterMax"))
		}
	}
	return errs
}

func diff(a, b any) string {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return fmt.Sprintf("-: %s\n+: %s\n", x, y)
}

// String is for messages.
func (r *KReference) String() string {
	return strings.TrimSpace(fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name))
}
