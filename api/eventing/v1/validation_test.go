package v1

import (
	"context"
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/config"
)

func TestTriggerValidation(t *testing.T) {
	const base = `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: t1
spec:
  broker: default
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: display
`
	cases := []struct{ name, extra, want string }{
		{"ok legacy filter", "  filter:\n    attributes:\n      type: dev.example\n", ""},
		{"ok filters", "  filters:\n    - any:\n        - prefix: {type: dev.}\n        - cesql: \"source LIKE '%x'\"\n", ""},
		{"two keys in one expression", "  filters:\n    - exact: {type: a}\n      prefix: {source: b}\n", "spec.filters[0]"},
		// trigger_validation_test.go "valid exact filter containing more than one attribute":
		// Knative's webhook takes these (its broker needs every
		// attribute of exact to match, and skips an expression with no dialect).
		{"two attributes in exact", "  filters:\n    - exact: {type: a, source: b}\n", ""},
		{"no dialect", "  filters:\n    - {}\n", ""},
		{"empty prefix value", "  filters:\n    - prefix: {type: ''}\n", ""},
		{"nested bad", "  filters:\n    - not:\n        all:\n          - suffix: {Type: x}\n", "spec.filters[0].not.all[0].suffix[Type]"},
		{"bad attribute name", "  filter:\n    attributes:\n      Bad-Name: x\n", "spec.filter.attributes[Bad-Name]"},
		{"bad backoff", "  delivery:\n    backoffDelay: 2s\n", "spec.delivery.backoffDelay"},
		{"bad policy", "  delivery:\n    backoffPolicy: random\n", "spec.delivery.backoffPolicy"},
		{"negative retry", "  delivery:\n    retry: -1\n", "spec.delivery.retry"},
		{"relative dls", "  delivery:\n    deadLetterSink:\n      uri: /dead\n", "spec.delivery.deadLetterSink.uri"},
		// knative.dev/pkg apis/duck/v1 ValidateDestination (its tests have no empty uri): an empty uri is set, and
		// relative; with a ref beside it, the ref is not checked.
		{"empty dls uri", "  delivery:\n    deadLetterSink:\n      uri: \"\"\n", "Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: spec.delivery.deadLetterSink.uri"},
		{"empty dls uri beside a ref", "  delivery:\n    deadLetterSink:\n      uri: \"\"\n      ref: {kind: Service}\n", ""},
		// trigger_validation_test.go TestTriggerSpecValidation "invalid CESQL": Knative parses it.
		{"bad cesql", "  filters:\n    - cesql: \"type = \"\n", "invalid value: type = : spec.filters[0].cesql"},
		// delivery_types_test.go: retryAfterMax needs Knative's delivery-retryafter feature, off by default.
		{"retryAfterMax", "  delivery:\n    retryAfterMax: PT1S\n", "must not set the field(s): spec.delivery.retryAfterMax"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tr Trigger
			if err := yaml.UnmarshalStrict([]byte(base+tc.extra), &tr); err != nil {
				t.Fatal(err)
			}
			tr.Namespace = "default"
			ctx := admission.WithCESQLCheck(admission.WithinCreate(context.Background()), func(e string) error {
				if strings.HasSuffix(strings.TrimSpace(e), "=") {
					return errors.New("expected a value")
				}
				return nil
			})
			tr.SetDefaults(ctx)
			err := tr.Validate(ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid trigger refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error at %s", err, tc.want)
			}
		})
	}
	var tr Trigger
	_ = yaml.Unmarshal([]byte(base), &tr)
	tr.Namespace = "default"
	tr.SetDefaults(context.Background())
	if tr.Labels[BrokerLabel] != "default" || tr.Spec.Subscriber.Ref.Namespace != "default" {
		t.Errorf("defaults: labels %v ref %+v", tr.Labels, tr.Spec.Subscriber.Ref)
	}
}

// TestDeliverySpecValidation ports knative/eventing pkg/apis/duck/v1/delivery_types_test.go
// TestDeliverySpecValidation (delivery-timeout on, as Knative ships it, unless a case sets
// Eventing's config-features otherwise, as Knative's context does), and adds what its
// period parser (github.com/rickb777/date/period) makes of other durations.
func TestDeliverySpecValidation(t *testing.T) {
	str := func(s string) *string { return &s }
	i32 := func(v int32) *int32 { return &v }
	cases := []struct {
		name string
		spec DeliverySpec
		want string // the error, "" for valid
	}{
		{"invalid time format", DeliverySpec{BackoffDelay: str("invalid time")}, "invalid value: invalid time: backoffDelay"},
		{"valid timeout", DeliverySpec{Timeout: str("PT2S")}, ""},
		{"invalid timeout", DeliverySpec{Timeout: str("1985-04-12T23:20:50.52Z")}, "invalid value: 1985-04-12T23:20:50.52Z: timeout"},
		{"zero timeout", DeliverySpec{Timeout: str("PT0S")}, "invalid value: PT0S: timeout"},
		{"valid backoffDelay", DeliverySpec{BackoffDelay: str("PT2S")}, ""},
		{"invalid backoffDelay", DeliverySpec{BackoffDelay: str("1985-04-12T23:20:50.52Z")}, "invalid value: 1985-04-12T23:20:50.52Z: backoffDelay"},
		{"negative retry", DeliverySpec{Retry: i32(-1)}, "invalid value: -1: retry"},
		{"valid retry 0", DeliverySpec{Retry: i32(0)}, ""},
		{"valid retry 1", DeliverySpec{Retry: i32(1)}, ""},
		// The period parser keeps tenths of a second, takes months and a sign.
		{"a timeout below a tenth of a second is zero", DeliverySpec{Timeout: str("PT0.05S")}, "invalid value: PT0.05S: timeout"},
		{"negative timeout", DeliverySpec{Timeout: str("-PT1S")}, ""},
		{"months", DeliverySpec{BackoffDelay: str("P1M")}, ""},
		// The rest of Knative's cases, with Eventing's config-features as each names it.
		{"disabled timeout", DeliverySpec{Timeout: str("PT2S")}, "must not set the field(s): timeout"},
		{"valid retryAfterMax", DeliverySpec{RetryAfterMax: str("PT2S")}, ""},
		{"zero retryAfterMax", DeliverySpec{RetryAfterMax: str("PT0S")}, ""},
		{"empty retryAfterMax", DeliverySpec{RetryAfterMax: str("")}, "invalid value: : retryAfterMax"},
		{"invalid retryAfterMax", DeliverySpec{RetryAfterMax: str("1985-04-12T23:20:50.52Z")}, "invalid value: 1985-04-12T23:20:50.52Z: retryAfterMax"},
		{"disabled feature with retryAfterMax", DeliverySpec{RetryAfterMax: str("PT2S")}, "must not set the field(s): retryAfterMax"},
		{"valid format JSON", DeliverySpec{Format: str("json")}, ""},
		{"valid format binary", DeliverySpec{Format: str("binary")}, ""},
		{"invalid format", DeliverySpec{Format: str("invalid")}, "invalid value: invalid: format"},
	}
	features := map[string]map[string]string{
		"disabled timeout":      {"delivery-timeout": "disabled"},
		"valid retryAfterMax":   {"delivery-retryafter": "enabled"},
		"zero retryAfterMax":    {"delivery-retryafter": "enabled"},
		"empty retryAfterMax":   {"delivery-retryafter": "enabled"},
		"invalid retryAfterMax": {"delivery-retryafter": "enabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			if err := cfg.Apply(config.EventingFeaturesKey, features[c.name]); err != nil {
				t.Fatal(err)
			}
			got := c.spec.Validate(config.ToContext(admission.WithinCreate(context.Background()), cfg))
			switch {
			case c.want == "" && got != nil:
				t.Errorf("Validate() = %v, want valid", got)
			case c.want != "" && (got == nil || got.Error() != c.want):
				t.Errorf("Validate() = %v, want %q", got, c.want)
			}
		})
	}
}
