package kube

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/api/config"
)

// SettingsReader reads the ConfigMaps Skiff's settings come from, as the webhooks reload
// them (Config.ReloadAdmission): config.Names from the system namespace, as Knative reads
// its own from knative-serving, and Eventing's config-features from Eventing's namespace.
type SettingsReader struct {
	// Client reads the ConfigMaps.
	Client kubernetes.Interface
	// SystemNamespace holds config.Names' ConfigMaps; EventingNamespace Eventing's
	// config-features (default config.EventingNamespace).
	SystemNamespace, EventingNamespace string
	// Logger hears, once, that Eventing's config-features may not be read.
	Logger *slog.Logger

	mu     sync.Mutex
	warned bool
}

// Read returns the data of the ConfigMaps found, by config.SettingsKey (Eventing's
// config-features by config.EventingFeaturesKey, whatever its namespace); a missing one is
// absent, meaning Knative's defaults. An error fails the read, but for a Forbidden answer
// about Eventing's config-features: its namespace belongs to another install, which Skiff
// may not be allowed to read, so that is logged once and the Eventing features are
// Knative's defaults.
func (r *SettingsReader) Read(ctx context.Context) (map[string]map[string]string, error) {
	data := map[string]map[string]string{}
	for _, src := range config.SettingsConfigMaps(r.SystemNamespace, r.EventingNamespace) {
		cm, err := r.Client.CoreV1().ConfigMaps(src.Namespace).Get(ctx, src.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case src.Eventing && apierrors.IsForbidden(err):
			r.warnOnce(src.Namespace, err)
		case err != nil:
			return nil, fmt.Errorf("read ConfigMap %s/%s: %w", src.Namespace, src.Name, err)
		default:
			data[src.Key(cm.Labels)] = cm.Data
		}
	}
	return data, nil
}

// warnOnce logs the first failure to read Eventing's config-features.
func (r *SettingsReader) warnOnce(ns string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.warned || r.Logger == nil {
		return
	}
	r.warned = true
	r.Logger.Warn("cannot read Knative Eventing's config-features; Knative's defaults for the Eventing features (deploy/skiff.yaml's RBAC allows reading it)",
		"namespace", ns, "name", config.FeaturesConfigName, "err", err)
}
