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
	for _, name := range config.Names {
		cm, err := r.Client.CoreV1().ConfigMaps(r.SystemNamespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("read ConfigMap %s/%s: %w", r.SystemNamespace, name, err)
		}
		data[config.SettingsKey(r.SystemNamespace, name, cm.Labels)] = cm.Data
	}
	ns := r.EventingNamespace
	if ns == "" {
		ns = config.EventingNamespace
	}
	if ns == r.SystemNamespace {
		return data, nil // read above, keyed by its label
	}
	cm, err := r.Client.CoreV1().ConfigMaps(ns).Get(ctx, config.FeaturesConfigName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case apierrors.IsForbidden(err):
		r.warnOnce(ns, err)
	case err != nil:
		return nil, fmt.Errorf("read ConfigMap %s/%s: %w", ns, config.FeaturesConfigName, err)
	default:
		data[config.EventingFeaturesKey] = cm.Data
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
