package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/kube"
)

// clusterAdmission is what skiff controller's webhooks validate with, read from the cluster.
func clusterAdmission(t *testing.T, r *kube.SettingsReader) (*config.Config, error) {
	t.Helper()
	data, err := r.Read(context.Background())
	if err != nil {
		return nil, err
	}
	f := pflag.NewFlagSet("test", pflag.ContinueOnError)
	addAutoscalerFlags(f)
	addAdmissionFlags(f, false)
	s, err := settingsLoader(f, nil, autoscaler.Config{}, false)(data)
	return s.Admission, err
}

func configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
}

// TestClusterSettingsReadEventingFeatures: skiff controller reads Eventing's config-features
// from knative-eventing (--eventing-system-namespace) as Eventing's, not as Serving's
// config-features of skiff-system, which it reads too.
func TestClusterSettingsReadEventingFeatures(t *testing.T) {
	kc := fake.NewClientset(
		configMap("skiff-system", "config-features", map[string]string{"kubernetes.podspec-affinity": "enabled"}),
		configMap("knative-eventing", "config-features", map[string]string{"delivery-retryafter": "enabled", "delivery-timeout": "disabled"}),
		configMap("other-eventing", "config-features", map[string]string{"delivery-retryafter": "enabled"}),
	)
	cfg, err := clusterAdmission(t, &kube.SettingsReader{Client: kc, SystemNamespace: "skiff-system", EventingNamespace: "knative-eventing"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.EventingFeatures.IsEnabled(config.EventingDeliveryRetryAfter) || cfg.EventingFeatures.IsEnabled(config.EventingDeliveryTimeout) {
		t.Errorf("Eventing features %v, want knative-eventing's (delivery-retryafter on, delivery-timeout off)", cfg.EventingFeatures.Flags)
	}
	if cfg.Features.PodSpecAffinity != config.Enabled {
		t.Errorf("Serving's podspec-affinity %q, want skiff-system's config-features (Enabled)", cfg.Features.PodSpecAffinity)
	}

	// Another Eventing namespace: its config-features is Eventing's.
	cfg, err = clusterAdmission(t, &kube.SettingsReader{Client: kc, SystemNamespace: "skiff-system", EventingNamespace: "other-eventing"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.EventingFeatures.IsEnabled(config.EventingDeliveryRetryAfter) || !cfg.EventingFeatures.IsEnabled(config.EventingDeliveryTimeout) {
		t.Errorf("Eventing features %v, want other-eventing's over Knative's defaults", cfg.EventingFeatures.Flags)
	}

	// No namespace knative-eventing at all: Knative's defaults.
	cfg, err = clusterAdmission(t, &kube.SettingsReader{Client: fake.NewClientset(), SystemNamespace: "skiff-system"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EventingFeatures.IsEnabled(config.EventingDeliveryRetryAfter) || !cfg.EventingFeatures.IsEnabled(config.EventingDeliveryTimeout) {
		t.Errorf("Eventing features %v, want Knative's defaults", cfg.EventingFeatures.Flags)
	}
}

// TestClusterSettingsEventingForbidden: RBAC that does not allow reading knative-eventing
// does not fail the controller (nor the webhooks' reload): Knative's defaults, logged once.
// Another error is the read's error, so the webhooks keep the settings in force.
func TestClusterSettingsEventingForbidden(t *testing.T) {
	kc := fake.NewClientset(configMap("skiff-system", "config-defaults", map[string]string{"revision-timeout-seconds": "120"}))
	var answer error
	kc.PrependReactor("get", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() != "knative-eventing" {
			return false, nil, nil
		}
		return true, nil, answer
	})
	var logs bytes.Buffer
	r := &kube.SettingsReader{Client: kc, SystemNamespace: "skiff-system", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	answer = apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "config-features", nil)
	for range 3 {
		cfg, err := clusterAdmission(t, r)
		if err != nil {
			t.Fatalf("a Forbidden knative-eventing failed the read: %v", err)
		}
		if cfg.Defaults.RevisionTimeoutSeconds != 120 || cfg.EventingFeatures.IsEnabled(config.EventingDeliveryRetryAfter) {
			t.Errorf("settings %+v, want skiff-system's config-defaults and Knative's Eventing defaults", cfg.Defaults)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("Forbidden logged %d times, want once:\n%s", n, logs.String())
	}
	answer = apierrors.NewServiceUnavailable("etcd is down")
	if _, err := clusterAdmission(t, r); err == nil || !strings.Contains(err.Error(), "knative-eventing/config-features") {
		t.Errorf("read with the API server unavailable: %v, want an error naming knative-eventing/config-features", err)
	}
}
