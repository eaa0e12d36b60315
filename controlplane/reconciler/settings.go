package reconciler

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// Settings are the cluster-wide settings made from Knative's config-features,
// config-defaults, config-autoscaler and config-br-defaults (config.Names).
type Settings struct {
	// Admission is what writes are defaulted and validated with.
	Admission *config.Config
	// Autoscaler is what revisions' autoscaling annotations are read against, and what the
	// autoscaler decides scale to zero with.
	Autoscaler autoscaler.Config
}

// SettingsLoader makes the settings in force from the config.Names ConfigMaps found in the
// system namespace and Eventing's config-features (their data by config.SettingsKey: the
// name, or config.EventingFeaturesKey; a missing one is absent from the map), layered as
// the process was started (its flags win). An error names the bad key; the settings in force
// then stay.
type SettingsLoader func(data map[string]map[string]string) (Settings, error)

// tagHeaderRouting reports config-features' tag-header-based-routing in force.
func (c *Controller) tagHeaderRouting() bool {
	if s := c.knative.Load(); s != nil {
		return s.Admission != nil && s.Admission.Features.TagHeaderBasedRouting == config.Enabled
	}
	return c.cfg.TagHeaderBasedRouting
}

// autoscalerDefaults returns the autoscaling settings in force.
func (c *Controller) autoscalerDefaults() autoscaler.Config {
	if s := c.knative.Load(); s != nil {
		return s.Autoscaler
	}
	return c.cfg.AutoscalerDefaults
}

// loadKnativeSettings reads config.Names' ConfigMaps from the system namespace and, when the
// settings they make differ from those in force, puts them in force as Knative's controllers
// do on a ConfigMap change: OnSettings hears of them (the API's admission, the autoscaler),
// and every Revision (its autoscaling spec) and Route (tag-header-based-routing) is
// reconciled again. Without Config.LoadSettings the settings stay those of the start.
func (c *Controller) loadKnativeSettings(ctx context.Context) error {
	if c.cfg.LoadSettings == nil {
		return nil
	}
	data := map[string]map[string]string{}
	for _, src := range config.SettingsConfigMaps(c.cfg.SystemNamespace, c.cfg.EventingNamespace) {
		var cm api.ConfigMap
		err := c.cfg.Store.Get(ctx, store.Key{Kind: api.KindConfigMap, Namespace: src.Namespace, Name: src.Name}, &cm)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			data[src.Key(cm.Labels)] = cm.Data
		}
	}
	next, err := c.cfg.LoadSettings(data)
	if err != nil {
		c.log.Error("Knative settings are invalid; keeping the settings in force", "namespace", c.cfg.SystemNamespace, "err", err)
		return nil
	}
	prev := c.knative.Swap(&next)
	if prev != nil && sameKnativeSettings(*prev, next) {
		return nil
	}
	for _, fn := range c.cfg.OnSettings {
		fn(next)
	}
	if prev == nil {
		return nil // Run loads them before its first resync, which reconciles everything
	}
	c.log.Info("Knative settings changed; reconciling every revision and route", "namespace", c.cfg.SystemNamespace)
	c.enqueueAll(servingv1.KindRevision, "")
	c.enqueueAll(servingv1.KindRoute, "")
	return nil
}

// sameKnativeSettings compares two settings' values (the autoscaler's hooks are not settings).
func sameKnativeSettings(a, b Settings) bool {
	a.Autoscaler.OnChange, a.Autoscaler.Now, a.Autoscaler.Resources = nil, nil, nil
	b.Autoscaler.OnChange, b.Autoscaler.Now, b.Autoscaler.Resources = nil, nil, nil
	return reflect.DeepEqual(a, b)
}

// isKnativeSettings reports whether key is one of the ConfigMaps loadKnativeSettings reads.
func (c *Controller) isKnativeSettings(key store.Key) bool {
	return key.Kind == api.KindConfigMap && slices.ContainsFunc(config.SettingsConfigMaps(c.cfg.SystemNamespace, c.cfg.EventingNamespace),
		func(src config.SettingsConfigMap) bool { return src.Namespace == key.Namespace && src.Name == key.Name })
}

// SettingsConfigMapCheck returns the admission check of the local API for config.Names'
// ConfigMaps: in ns, one that load refuses is refused with the bad key's path
// (data[stable-window]), so the settings in force stay; elsewhere one is stored with a
// warning that nothing reads it there.
func SettingsConfigMapCheck(ns string, load SettingsLoader) func(cm *api.ConfigMap) *fielderr.Error {
	return func(cm *api.ConfigMap) *fielderr.Error {
		if config.SettingsKey(cm.Namespace, cm.Name, cm.Labels) == config.EventingFeaturesKey {
			// Knative never refuses Eventing's flags; what it would only log is a warning.
			var errs *fielderr.Error
			for _, w := range config.DefaultEventingFeatures().Apply(cm.Data) {
				errs = errs.Also(fielderr.Generic(w, "data").At(fielderr.WarningLevel))
			}
			return errs
		}
		if !slices.Contains(config.Names, cm.Name) {
			return nil
		}
		if cm.Namespace != ns {
			return fielderr.Generic(fmt.Sprintf("ConfigMap %s is read from namespace %s only; this one configures nothing", cm.Name, ns), "metadata.namespace").At(fielderr.WarningLevel)
		}
		if load == nil {
			return fielderr.Generic(fmt.Sprintf("ConfigMap %s is read when Skiff starts only (skiff up -f)", cm.Name), "metadata.name").At(fielderr.WarningLevel)
		}
		_, err := load(map[string]map[string]string{cm.Name: cm.Data})
		return configMapError(cm, err)
	}
}
