package config

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestFeaturesFromMap ports features_test.go TestFeaturesConfiguration: Knative's keys, any case
// of Enabled/Disabled/Allowed, defaults for the rest.
func TestFeaturesFromMap(t *testing.T) {
	f, err := NewFeaturesFromMap(map[string]string{FeaturePodSpecAffinity: "enabled", "multi-container": "Disabled",
		FeaturePodSpecFieldRef: "ALLOWED", "secure-pod-defaults": "AllowRootBounded"})
	if err != nil {
		t.Fatal(err)
	}
	if f.PodSpecAffinity != Enabled || f.MultiContainer != Disabled || f.PodSpecFieldRef != Allowed ||
		f.SecurePodDefaults != AllowRootBounded || f.PodSpecVolumesEmptyDir != Enabled || f.PodSpecInitContainers != Disabled {
		t.Errorf("%+v", f)
	}
	if _, err := NewFeaturesFromMap(map[string]string{FeaturePodSpecAffinity: "yes"}); err == nil || !strings.Contains(err.Error(), FeaturePodSpecAffinity) {
		t.Errorf("bad value: %v, want an error naming the key", err)
	}
}

// TestDefaultsFromMap ports defaults_test.go TestDefaultsConfiguration's cases.
func TestDefaultsFromMap(t *testing.T) {
	d, err := NewDefaultsFromMap(map[string]string{"revision-timeout-seconds": "123", "max-revision-timeout-seconds": "456",
		"container-name-template": "{{.Name}}", "enable-service-links": "true", "revision-cpu-request": "100m"})
	if err != nil {
		t.Fatal(err)
	}
	if d.RevisionTimeoutSeconds != 123 || d.MaxRevisionTimeoutSeconds != 456 || d.RevisionResponseStartTimeoutSeconds != 123 ||
		!*d.EnableServiceLinks || d.RevisionCPURequest.String() != "100m" {
		t.Errorf("%+v", d)
	}
	for want, data := range map[string]map[string]string{
		"revision-timeout-seconds (700) cannot be greater than max-revision-timeout-seconds (600)": {"revision-timeout-seconds": "700"},
		"revision-response-start-timeout-seconds (400) cannot be greater":                          {"revision-response-start-timeout-seconds": "400"},
		"expected 0 <= 2000 <= 1000: container-concurrency":                                        {"container-concurrency": "2000"},
		"container-name-template": {"container-name-template": "{{.Name"},
	} {
		if _, err := NewDefaultsFromMap(data); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want %q", data, err, want)
		}
	}
}

// config-br-defaults: default-br-config replaces the shipped defaults whole (Knative's
// NewDefaultsConfigFromMap); a bad document or an unknown key is refused naming the key.
func TestBrokersFromMap(t *testing.T) {
	b := DefaultBrokers()
	if c := b.Config("any", ""); c == nil || c.Delivery == nil || *c.Delivery.Retry != 10 || b.Class("any") != "MTChannelBasedBroker" {
		t.Fatalf("shipped defaults: %+v, class %q", c, b.Class("any"))
	}
	err := b.Apply(map[string]string{"default-br-config": "clusterDefault:\n  brokerClass: Kafka\nnamespaceDefaults:\n  ns1:\n    brokerClass: Other\n    delivery: {retry: 2}\n"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Class("x") != "Kafka" || b.Class("ns1") != "Other" {
		t.Errorf("classes %q, %q", b.Class("x"), b.Class("ns1"))
	}
	if c := b.Config("x", ""); c != nil {
		t.Errorf("no cluster config set, got %+v", c) // as Knative: an error, so nothing is defaulted
	}
	if c := b.Config("ns1", ""); c == nil || *c.Delivery.Retry != 2 {
		t.Errorf("ns1: %+v", c)
	}
	for data, want := range map[string]string{
		"default-br-config: '[unclosed'": "config-br-defaults: default-br-config",
		"default-br-config: \"\"":        "config-br-defaults: default-br-config",
		"colour: blue":                   "unknown key(s) colour",
		"default-br-config: 'clusterDefault: {delivery: {retry: many}}'": "config-br-defaults: default-br-config",
	} {
		var m map[string]string
		if err := yaml.Unmarshal([]byte(data), &m); err != nil {
			t.Fatal(err)
		}
		if err := DefaultBrokers().Apply(m); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", data, err, want)
		}
	}
}
