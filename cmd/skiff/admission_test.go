package main

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
)

func settingsFor(t *testing.T, local bool, args []string, docs ...string) (*config.Config, autoscaler.Config, error) {
	t.Helper()
	f := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addAutoscalerFlags(f)
	addAdmissionFlags(f, local)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	a, _, err := autoscalerFlags(f)
	if err != nil {
		t.Fatal(err)
	}
	var ds []apiclient.Document
	for i, d := range docs {
		ds = append(ds, apiclient.Document{Source: "doc" + string(rune('0'+i)), Data: []byte(d)})
	}
	cfg, err := admissionSettings(f, settingsConfigMaps(ds), &a, local)
	return cfg, a, err
}

func TestAdmissionSettings(t *testing.T) {
	// skiff up: max-scale-limit defaults to 50 per CPU, and revisions' max-scale to it.
	cfg, a, err := settingsFor(t, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := int32(50 * runtime.NumCPU())
	if cfg.Autoscaler.MaxScaleLimit != want || cfg.Autoscaler.MaxScale != want || a.MaxScaleLimit != int(want) || a.MaxScale != int(want) {
		t.Errorf("local limit %d/%d (autoscaler %d/%d), want %d", cfg.Autoscaler.MaxScaleLimit, cfg.Autoscaler.MaxScale, a.MaxScaleLimit, a.MaxScale, want)
	}
	if cfg.Features.PodSpecAffinity != config.Disabled || cfg.Defaults.RevisionTimeoutSeconds != 300 {
		t.Errorf("not Knative's defaults: %+v %+v", cfg.Features, cfg.Defaults)
	}

	// skiff controller: Knative's default, no limit.
	if cfg, _, err := settingsFor(t, false, nil); err != nil || cfg.Autoscaler.MaxScaleLimit != 0 {
		t.Errorf("controller limit %d, %v; want 0", cfg.Autoscaler.MaxScaleLimit, err)
	}

	// ConfigMaps (skiff up -f), then flags.
	cfg, a, err = settingsFor(t, true,
		[]string{"--config-features", "kubernetes.podspec-nodeselector=enabled", "--config-autoscaler", "max-scale=5", "--stable-window", "30s"},
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-features","namespace":"knative-serving"},"data":{"kubernetes.podspec-affinity":"Enabled"}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-autoscaler"},"data":{"max-scale-limit":"20","max-scale":"10","stable-window":"90s","scale-to-zero-pod-retention-period":"1m5s","scale-down-delay":"15s"}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-defaults"},"data":{"revision-timeout-seconds":"100"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Features.PodSpecAffinity != config.Enabled || cfg.Features.PodSpecNodeSelector != config.Enabled ||
		cfg.Autoscaler.MaxScaleLimit != 20 || cfg.Autoscaler.MaxScale != 5 || cfg.Defaults.RevisionTimeoutSeconds != 100 {
		t.Errorf("settings %+v %+v %+v", cfg.Features, cfg.Autoscaler, cfg.Defaults)
	}
	if a.MaxScaleLimit != 20 || a.MaxScale != 5 || a.StableWindow.Seconds() != 30 || a.ScaleToZeroPodRetentionPeriod.Seconds() != 65 || a.ScaleDownDelay.Seconds() != 15 {
		t.Errorf("autoscaler %+v: want limit 20, max 5, --stable-window over the ConfigMap, pod retention 65 s and scale-down delay 15 s", a)
	}

	for _, tc := range []struct {
		args []string
		doc  string
		want string
	}{
		{[]string{"--config-features", "kubernetes.podspec-affinity=maybe"}, "", "kubernetes.podspec-affinity"},
		{[]string{"--config-defaults", "revision-timeout-seconds"}, "", "want KEY=VALUE"},
		{[]string{"--config-autoscaler", "max-scale=50", "--max-scale-limit", "10"}, "", "max-scale = 50"},
		{nil, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-defaults"},"data":{"revision-timeout-secs":"1"}}`, "unknown key(s) revision-timeout-secs"},
	} {
		var docs []string
		if tc.doc != "" {
			docs = append(docs, tc.doc)
		}
		if _, _, err := settingsFor(t, true, tc.args, docs...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %s: %v, want an error saying %q", tc.args, tc.doc, err, tc.want)
		}
	}
}

// TestSettingsLoader: a ConfigMap written while running replaces the one of the same name
// given at start (skiff up -f), the others given at start stay, and the flags still win.
func TestSettingsLoader(t *testing.T) {
	f := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addAutoscalerFlags(f)
	addAdmissionFlags(f, true)
	if err := f.Parse([]string{"--stable-window", "30s", "--config-features", "kubernetes.podspec-nodeselector=enabled"}); err != nil {
		t.Fatal(err)
	}
	base, _, err := autoscalerFlags(f)
	if err != nil {
		t.Fatal(err)
	}
	start := []apiclient.Document{
		{Source: "a", Data: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-features"},"data":{"kubernetes.podspec-affinity":"Enabled"}}`)},
		{Source: "b", Data: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-defaults"},"data":{"revision-timeout-seconds":"100"}}`)},
	}
	load := settingsLoader(f, settingsConfigMaps(start), base, true)

	s, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Admission.Features.PodSpecAffinity != config.Enabled || s.Admission.Defaults.RevisionTimeoutSeconds != 100 || s.Autoscaler.StableWindow != 30*time.Second {
		t.Errorf("nothing written yet: affinity %s, timeout %d, stable window %v; want the start's Enabled, 100 and the flag's 30s",
			s.Admission.Features.PodSpecAffinity, s.Admission.Defaults.RevisionTimeoutSeconds, s.Autoscaler.StableWindow)
	}

	s, err = load(map[string]map[string]string{
		config.FeaturesConfigName: {"tag-header-based-routing": "Enabled"},
		"config-autoscaler":       {"stable-window": "90s", "enable-scale-to-zero": "false"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Admission.Features.PodSpecAffinity != config.Disabled || s.Admission.Features.TagHeaderBasedRouting != config.Enabled {
		t.Errorf("config-features written: affinity %s, tag-header-based-routing %s; want Disabled (the start's ConfigMap replaced) and Enabled",
			s.Admission.Features.PodSpecAffinity, s.Admission.Features.TagHeaderBasedRouting)
	}
	if s.Admission.Features.PodSpecNodeSelector != config.Enabled {
		t.Errorf("--config-features kubernetes.podspec-nodeselector=enabled lost: %s", s.Admission.Features.PodSpecNodeSelector)
	}
	if s.Admission.Defaults.RevisionTimeoutSeconds != 100 {
		t.Errorf("config-defaults given at start and not written since: timeout %d, want 100", s.Admission.Defaults.RevisionTimeoutSeconds)
	}
	if s.Autoscaler.StableWindow != 30*time.Second || s.Autoscaler.EnableScaleToZero {
		t.Errorf("config-autoscaler written: stable window %v (want the flag's 30s), scale to zero %v (want false)", s.Autoscaler.StableWindow, s.Autoscaler.EnableScaleToZero)
	}

	if _, err := load(map[string]map[string]string{"config-autoscaler": {"stable-window": "forever"}}); err == nil || !strings.Contains(err.Error(), "stable-window") {
		t.Errorf("stable-window: forever: %v, want an error naming the key", err)
	}
}

// TestEventingConfigFeatures: Knative Eventing's config-features (eventing-core.yaml puts it
// in knative-eventing, with keys Serving's does not have) given to `skiff up -f` is read as
// Eventing's, not refused as a misspelt Serving config-features.
func TestEventingConfigFeatures(t *testing.T) {
	cfg, _, err := settingsFor(t, true, nil,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-features","namespace":"knative-eventing"},"data":{"kreference-group":"disabled","delivery-retryafter":"enabled","delivery-timeout":"enabled","transport-encryption":"disabled","default-authorization-mode":"allow-same-namespace"}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config-features","namespace":"knative-serving"},"data":{"tag-header-based-routing":"enabled"}}`)
	if err != nil {
		t.Fatalf("Knative Eventing's config-features: %v", err)
	}
	if !cfg.EventingFeatures.IsEnabled(config.EventingDeliveryRetryAfter) || cfg.Features.TagHeaderBasedRouting != config.Enabled {
		t.Errorf("delivery-retryafter %q, tag-header-based-routing %q; want both Enabled",
			cfg.EventingFeatures.Flags[config.EventingDeliveryRetryAfter], cfg.Features.TagHeaderBasedRouting)
	}
}
