package config

import (
	"strings"
	"testing"
)

// TestEventingFeatures ports Knative Eventing's pkg/apis/feature/features_test.go
// (TestGetFlags with its testdata/config-features.yaml example, TestShouldNotOverrideDefaults)
// and adds what Skiff says about the flags it does not act on.
func TestEventingFeatures(t *testing.T) {
	f := DefaultEventingFeatures()
	warnings := f.Apply(map[string]string{
		"_example":                              "ignored",
		"my-enabled-flag":                       "enabled",
		"my-disabled-flag":                      "disabled",
		"my-allowed-flag":                       "allowed",
		"default-authorization-mode":            "allow-same-namespace",
		"apiserversources-nodeselector-testkey": "testvalue",
		"oidc-discovery-base-url":               "https://oidc.eks.eu-west-1.amazonaws.com/id/1",
	})
	if len(warnings) != 0 {
		t.Errorf("warnings %q, want none", warnings)
	}
	for flag, want := range map[string]Flag{
		"my-enabled-flag": Enabled, "my-disabled-flag": Disabled, "my-allowed-flag": Allowed,
		EventingAuthorizationMode:               "Allow-Same-Namespace",
		"apiserversources-nodeselector-testkey": "testvalue",
		EventingOIDCDiscoveryURL:                "https://oidc.eks.eu-west-1.amazonaws.com/id/1",
		EventingKReferenceGroup:                 Disabled, // TestShouldNotOverrideDefaults
		EventingDeliveryTimeout:                 Enabled,
		EventingDeliveryRetryAfter:              Disabled,
	} {
		if got := f.Flags[flag]; got != want {
			t.Errorf("%s = %q, want %q", flag, got, want)
		}
	}
	if _, ok := f.Flags["_example"]; ok {
		t.Error("a key starting with _ was read")
	}
	if !f.IsEnabled("my-enabled-flag") || f.IsEnabled("my-allowed-flag") || (*EventingFeatures)(nil).IsEnabled("my-enabled-flag") {
		t.Error("IsEnabled: only Enabled is enabled")
	}

	// Knative keeps any value and only logs it; Skiff says so, and warns about enabled
	// features it does not act on. Neither is refused.
	warnings = DefaultEventingFeatures().Apply(map[string]string{
		"delivery-retryafter":   "ENABLED",
		"eventtype-auto-create": "enabled",
		"transport-encryption":  "strict",
		"kreference-group":      "sometimes",
	})
	want := []string{
		`eventtype-auto-create: Enabled is not implemented by Skiff`,
		`kreference-group: unknown feature flag value "sometimes"`,
		`transport-encryption: Strict is not implemented by Skiff`,
	}
	if len(warnings) != len(want) {
		t.Fatalf("warnings %q, want %d", warnings, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(warnings[i], w) {
			t.Errorf("warning %d = %q, want it to start with %q", i, warnings[i], w)
		}
	}
}

// TestEventingFeaturesKey: Knative Eventing's config-features is told apart from Serving's
// of the same name by its namespace or its config-category label.
func TestEventingFeaturesKey(t *testing.T) {
	for _, c := range []struct {
		ns, name string
		labels   map[string]string
		want     string
	}{
		{"knative-eventing", "config-features", nil, EventingFeaturesKey},
		{"skiff-system", "config-features", map[string]string{"knative.dev/config-category": "eventing"}, EventingFeaturesKey},
		{"knative-serving", "config-features", map[string]string{"knative.dev/config-category": "serving"}, FeaturesConfigName},
		{"knative-eventing", "config-br-defaults", nil, BrokersConfigName},
	} {
		if got := SettingsKey(c.ns, c.name, c.labels); got != c.want {
			t.Errorf("SettingsKey(%s, %s, %v) = %s, want %s", c.ns, c.name, c.labels, got, c.want)
		}
	}
}

// TestFromConfigMaps: every ConfigMap Skiff reads, by its key, over Knative's defaults; a bad
// value names the ConfigMap and the key.
func TestFromConfigMaps(t *testing.T) {
	c, err := FromConfigMaps(map[string]map[string]string{
		FeaturesConfigName:  {"tag-header-based-routing": "Enabled"},
		EventingFeaturesKey: {"delivery-retryafter": "enabled"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Features.TagHeaderBasedRouting != Enabled || !c.EventingFeatures.IsEnabled(EventingDeliveryRetryAfter) || c.Defaults.RevisionTimeoutSeconds != 300 {
		t.Errorf("settings %+v %+v %+v", c.Features, c.EventingFeatures, c.Defaults)
	}
	if _, err := FromConfigMaps(map[string]map[string]string{DefaultsConfigName: {"revision-timeout-seconds": "soon"}}); err == nil ||
		!strings.Contains(err.Error(), "config-defaults") || !strings.Contains(err.Error(), "revision-timeout-seconds") {
		t.Errorf("a bad revision-timeout-seconds: %v, want an error naming config-defaults and the key", err)
	}
}

// TestEventingFeaturesWarnings pins which values warn that Skiff does not act on a feature:
// those that turn it on, for each kind of flag.
func TestEventingFeaturesWarnings(t *testing.T) {
	for _, c := range []struct {
		key, value string
		warn       bool
	}{
		{"eventtype-auto-create", "enabled", true},
		{"eventtype-auto-create", "allowed", false},
		{"eventtype-auto-create", "disabled", false},
		{"transport-encryption", "permissive", true},
		{"transport-encryption", "allowed", false},
		{"default-authorization-mode", "allow-all", true},
		{"default-authorization-mode", "deny-all", true},
		{"default-authorization-mode", "allow-same-namespace", false},
		{"default-authorization-mode", "disabled", false},
		{"default-authorization-mode", "allowed", true},
		{"delivery-retryafter", "enabled", false}, // implemented
		{"oidc-discovery-base-url", "https://example.com", false},
		{"my-own-flag", "enabled", false}, // not Knative's
	} {
		got := DefaultEventingFeatures().Apply(map[string]string{c.key: c.value})
		if warned := len(got) == 1 && strings.Contains(got[0], "not implemented"); warned != c.warn || (!c.warn && len(got) != 0) {
			t.Errorf("%s: %s warned %q, want a not-implemented warning: %v", c.key, c.value, got, c.warn)
		}
	}
}
