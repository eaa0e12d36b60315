package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api/config"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
)

// knativeSettings makes settings from the ConfigMaps alone, over Knative's defaults (what
// `skiff up` does with no flags; cmd/skiff's loader adds the flags and -f documents).
func knativeSettings(data map[string]map[string]string) (reconciler.Settings, error) {
	adm, err := config.FromConfigMaps(data)
	if err != nil {
		return reconciler.Settings{}, err
	}
	as := autoscaler.DefaultConfig()
	as.EnableScaleToZero = adm.Autoscaler.EnableScaleToZero
	return reconciler.Settings{Admission: adm, Autoscaler: as}, nil
}

// TestSettingsFollowConfigMaps: as Knative's webhook and controllers follow edits of their
// ConfigMaps (kubectl edit cm config-features -n knative-serving), so does `skiff up`: a
// config-features or config-defaults written to knative-serving while it runs is in force
// for the writes and routes that follow, and one that does not parse is refused naming the
// key, the settings in force staying.
func TestSettingsFollowConfigMaps(t *testing.T) {
	s := startSkiff(t, t.TempDir(), func(cfg *controlplane.Config) { cfg.LoadSettings = knativeSettings })

	err := s.tryApply(configMap("config-features", map[string]string{"tag-header-based-routing": "sometimes"}))
	if err == nil || !strings.Contains(err.Error(), "data[tag-header-based-routing]") {
		t.Fatalf("config-features with tag-header-based-routing: sometimes: %v; want it refused naming data[tag-header-based-routing]", err)
	}

	var svc servingv1.Service
	s.apply(serviceYAML("hello", "one", ""))
	s.waitReady("ksvc", "hello", &svc)
	s.apply(taggedHelloYAML())
	s.waitReady("ksvc", "hello", &svc)
	tagged := func() echoReply { return s.echo(helloHost, map[string]string{"Knative-Serving-Tag": "rev1"}) }
	if r := tagged(); r.Revision != "hello-00002" {
		t.Fatalf("tag-header-based-routing off (Knative's default): Knative-Serving-Tag: rev1 answered by %s, want the default split's hello-00002", r.Revision)
	}

	// Settings follow their ConfigMaps asynchronously, as Knative's informers do: the route
	// switching shows config-features was read, and config-defaults, written before it, with it.
	s.apply(configMap("config-defaults", map[string]string{"revision-timeout-seconds": "120"}))
	s.apply(configMap("config-features", map[string]string{"tag-header-based-routing": "Enabled"}))
	eventually(t, 30*time.Second, "Knative-Serving-Tag: rev1 routed to hello-00001 once config-features enables tag-header-based-routing", func() bool {
		return tagged().Revision == "hello-00001"
	})

	s.apply(serviceYAML("later", "three", ""))
	var later servingv1.Service
	s.getObj("ksvc", "default", "later", &later)
	if got := later.Spec.Template.Spec.TimeoutSeconds; got == nil || *got != 120 {
		t.Errorf("a Service created after config-defaults revision-timeout-seconds: 120 has timeoutSeconds %v, want 120", got)
	}
	// Knative Eventing's config-features, in knative-eventing: delivery-retryafter lets a
	// Trigger's delivery.retryAfterMax through, once read.
	trigger := `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: patient
spec:
  broker: default
  subscriber:
    uri: http://example.com/
  delivery:
    retry: 3
    retryAfterMax: PT30S
`
	if err := s.tryApply(trigger); err == nil || !strings.Contains(err.Error(), "retryAfterMax") {
		t.Fatalf("a Trigger with retryAfterMax while delivery-retryafter is off: %v; want it refused naming retryAfterMax", err)
	}
	s.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-eventing\ndata:\n  delivery-retryafter: enabled\n  kreference-group: disabled\n")
	eventually(t, 30*time.Second, "the Trigger with retryAfterMax accepted once Eventing's config-features enables delivery-retryafter", func() bool {
		return s.tryApply(trigger) == nil
	})

	// The refused edit changed nothing: the feature stays on.
	if r := tagged(); r.Revision != "hello-00001" {
		t.Errorf("after the refused edit, Knative-Serving-Tag: rev1 answered by %s, want hello-00001", r.Revision)
	}
}
