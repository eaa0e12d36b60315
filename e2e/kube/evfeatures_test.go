package kube

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
)

const retryAfterTrigger = `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: %s, namespace: default}
spec:
  broker: default
  subscriber: {uri: http://example.com/}
  delivery:
    retry: 3
    retryAfterMax: PT30S
`

// TestEventingConfigFeaturesInCluster: skiff controller reads Knative Eventing's own
// config-features from knative-eventing, as Knative Eventing's webhook and controllers do.
// With no such namespace the controller starts with Knative's defaults (delivery-retryafter
// disabled), so the webhooks refuse a Trigger's delivery.retryAfterMax naming the field; once
// knative-eventing/config-features enables delivery-retryafter, the webhooks accept it at
// their next reload, and the leader (which watches that ConfigMap only) puts it in force.
// The e2e/settings_test.go TestSettingsConfigMaps case of `skiff up`, in a cluster.
func TestEventingConfigFeaturesInCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver")
	}
	c := startCluster(t)
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "skiff-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(c.rest)
	if err != nil {
		t.Fatal(err)
	}
	hookPort := freePort(t)
	c.installWebhooks(t, fmt.Sprintf("https://127.0.0.1:%d", hookPort))
	// What the leader last put in force: Eventing's features, from LoadSettings.
	var leaderRetryAfter atomic.Bool
	var leaderLoads atomic.Int32
	runControllerWith(t, c, "evfeatures", func(cfg *kube.Config) {
		cfg.WebhookAddress = fmt.Sprintf("127.0.0.1:%d", hookPort)
		cfg.WebhookHosts = []string{"127.0.0.1"}
		cfg.SystemNamespace = "skiff-system"
		// skiff controller's reload (cmd/skiff settingsLoader over SettingsReader.Read), over the same reader,
		// every 200ms instead of every minute.
		reader := &kube.SettingsReader{Client: kc, SystemNamespace: "skiff-system", Logger: cfg.Logger}
		cfg.ReloadAdmissionInterval = 200 * time.Millisecond
		cfg.ReloadAdmission = func(ctx context.Context) (*config.Config, error) {
			data, err := reader.Read(ctx)
			if err != nil {
				return nil, err
			}
			return config.FromConfigMaps(data)
		}
		cfg.LoadSettings = func(data map[string]map[string]string) (reconciler.Settings, error) {
			adm, err := config.FromConfigMaps(data)
			if err != nil {
				return reconciler.Settings{}, err
			}
			leaderRetryAfter.Store(adm.EventingFeatures.IsEnabled(config.EventingDeliveryRetryAfter))
			leaderLoads.Add(1)
			return reconciler.Settings{Admission: adm, Autoscaler: autoscaler.DefaultConfig()}, nil
		}
	})

	triggers := c.dyn.Resource(triggersGVR).Namespace("default")
	create := func(name string) error {
		_, err := triggers.Create(ctx, decodeObjects(t, []byte(fmt.Sprintf(retryAfterTrigger, name)))[0], metav1.CreateOptions{})
		return err
	}
	// The API server may call the webhook before the replica serves its certificate: retry
	// until the refusal is the webhook's own.
	eventually(t, 30*time.Second, "the Trigger with retryAfterMax refused by the validation webhook", func() bool {
		err = create("retry-after")
		return err != nil && strings.Contains(err.Error(), "validation failed")
	})
	if want := "must not set the field(s): spec.delivery.retryAfterMax"; !strings.Contains(err.Error(), want) {
		t.Errorf("refusal %q lacks %q", err, want)
	}
	eventually(t, 10*time.Second, "the leader's settings loaded", func() bool { return leaderLoads.Load() > 0 })
	if leaderRetryAfter.Load() {
		t.Error("the leader has delivery-retryafter enabled with no knative-eventing/config-features")
	}

	// kubectl apply of Knative's namespace and its config-features (eventing-core.yaml's,
	// with delivery-retryafter enabled).
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "knative-eventing"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	features := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config-features", Namespace: "knative-eventing",
		Labels: map[string]string{"knative.dev/config-category": "eventing"}}, Data: map[string]string{"delivery-retryafter": "enabled"}}
	if _, err := c.kube.CoreV1().ConfigMaps("knative-eventing").Create(ctx, features, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the Trigger with retryAfterMax accepted once Eventing's config-features enables delivery-retryafter", func() bool {
		err = create("retry-after")
		return err == nil
	})
	eventually(t, 10*time.Second, "the leader putting delivery-retryafter in force", leaderRetryAfter.Load)

	// Disabled again: refused again, and the leader follows.
	cm, err := c.kube.CoreV1().ConfigMaps("knative-eventing").Get(ctx, "config-features", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["delivery-retryafter"] = "disabled"
	if _, err := c.kube.CoreV1().ConfigMaps("knative-eventing").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the Trigger with retryAfterMax refused once delivery-retryafter is disabled again", func() bool {
		err = create("retry-after-again")
		return err != nil && strings.Contains(err.Error(), "spec.delivery.retryAfterMax")
	})
	eventually(t, 10*time.Second, "the leader putting delivery-retryafter out of force", func() bool { return !leaderRetryAfter.Load() })
}
