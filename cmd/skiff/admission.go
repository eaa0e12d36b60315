package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/skiff-dev/skiff/api/autoscaling"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
)

// localMaxScalePerCPU is how many instances of one revision `skiff up` lets a revision ask
// for per CPU of the machine (its default max-scale-limit): each instance is a process here.
const localMaxScalePerCPU = 50

// localMaxScaleLimit is `skiff up`'s default max-scale-limit on this machine.
func localMaxScaleLimit() int32 { return int32(localMaxScalePerCPU * runtime.NumCPU()) }

// addAdmissionFlags registers Knative's config-features, config-defaults and config-autoscaler
// settings as flags; local says the revisions run on this machine (skiff up, controlplane).
func addAdmissionFlags(f *pflag.FlagSet, local bool) {
	f.StringArray("config-features", nil, "a config-features setting, KEY=VALUE, e.g. kubernetes.podspec-affinity=Enabled (repeatable; Knative's keys and defaults)")
	f.StringArray("config-defaults", nil, "a config-defaults setting, KEY=VALUE, e.g. revision-timeout-seconds=600 (repeatable)")
	f.StringArray("config-autoscaler", nil, "a config-autoscaler setting, KEY=VALUE, e.g. max-scale=10 (repeatable; the autoscaler flags above override it)")
	if local {
		f.Int32("max-scale-limit", -1, fmt.Sprintf("the highest max-scale, min-scale or initial-scale a revision may ask for (config-autoscaler's max-scale-limit); default %d per CPU (%d here), 0 for none", localMaxScalePerCPU, localMaxScaleLimit()))
	} else {
		f.Int32("max-scale-limit", 0, "the highest max-scale, min-scale or initial-scale a revision may ask for (config-autoscaler's max-scale-limit); 0 for none")
	}
}

// settingsConfigMap is one of the ConfigMaps the settings are made from: its data, keyed as
// config.Config.Apply keys it (config.SettingsKey), and where it came from, for errors.
type settingsConfigMap struct {
	key, source string
	data        map[string]string
}

// settingsConfigMaps are the ConfigMaps among manifests that configure Skiff (skiff up -f).
func settingsConfigMaps(docs []apiclient.Document) []settingsConfigMap {
	var out []settingsConfigMap
	for _, d := range docs {
		if cm, ok, err := config.ParseConfigMap(d.Data); err == nil && ok {
			out = append(out, settingsConfigMap{key: cm.Key(), source: d.Source, data: cm.Data})
		}
	}
	return out
}

// foundConfigMaps are the ConfigMaps found in the store or the cluster (data by
// config.SettingsKey), in the order they are applied.
func foundConfigMaps(data map[string]map[string]string) []settingsConfigMap {
	var out []settingsConfigMap
	for _, key := range config.Keys() {
		if d, ok := data[key]; ok {
			out = append(out, settingsConfigMap{key: key, source: "ConfigMap " + key, data: d})
		}
	}
	return out
}

// admissionSettings builds the settings writes are defaulted and validated with: Knative's
// defaults, then cms (config-features, config-defaults, config-autoscaler,
// config-br-defaults, Eventing's config-features), then the --config-* flags, then
// --max-scale-limit and the autoscaler flags given on the command line. It also carries
// config-autoscaler into a, the autoscaler's own settings. local (skiff up, controlplane)
// gives max-scale-limit its per-CPU default.
func admissionSettings(f *pflag.FlagSet, cms []settingsConfigMap, a *autoscaler.Config, local bool) (*config.Config, error) {
	cfg := config.Default()
	given := map[string]bool{} // config-autoscaler keys set by a ConfigMap or flag
	for _, cm := range cms {
		if err := cfg.Apply(cm.key, cm.data); err != nil {
			return nil, fmt.Errorf("%s: %w", cm.source, err)
		}
		if cm.key == autoscaling.ConfigName {
			for k := range cm.data {
				given[k] = true
			}
		}
	}
	for flag, name := range map[string]string{"config-features": config.FeaturesConfigName, "config-defaults": config.DefaultsConfigName, "config-autoscaler": autoscaling.ConfigName} {
		kvs, _ := f.GetStringArray(flag)
		data := map[string]string{}
		for _, kv := range kvs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, kv)
			}
			data[strings.TrimSpace(k)] = v
		}
		if len(data) == 0 {
			continue
		}
		if name == autoscaling.ConfigName {
			for k := range data {
				given[k] = true
			}
		}
		if err := cfg.Apply(name, data); err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
	}
	as := cfg.Autoscaler
	if f.Changed("max-scale-limit") {
		as.MaxScaleLimit, _ = f.GetInt32("max-scale-limit")
		given["max-scale-limit"] = true
	}
	if local && !given["max-scale-limit"] {
		as.MaxScaleLimit = localMaxScaleLimit()
	}
	if as.MaxScaleLimit > 0 && as.MaxScale == 0 {
		// Knative wants a default max-scale when there is a limit: the limit itself.
		as.MaxScale = as.MaxScaleLimit
	}
	// The autoscaler flags are config-autoscaler's keys too; given explicitly, they win.
	for flag, set := range map[string]func(){
		"enable-scale-to-zero":       func() { as.EnableScaleToZero = a.EnableScaleToZero },
		"scale-to-zero-grace-period": func() { as.ScaleToZeroGracePeriod = a.ScaleToZeroGracePeriod },
		"scale-to-zero-pod-retention-period": func() {
			as.ScaleToZeroPodRetentionPeriod = a.ScaleToZeroPodRetentionPeriod
		},
		"stable-window": func() { as.StableWindow = a.StableWindow },
	} {
		if f.Changed(flag) {
			set()
			given[flag] = false // already in a
		}
	}
	if err := as.Validate(); err != nil {
		return nil, fmt.Errorf("config-autoscaler: %w", err)
	}
	// The autoscaler runs with what was given; the rest stays its own default.
	for key, apply := range map[string]func(){
		"enable-scale-to-zero":                    func() { a.EnableScaleToZero = as.EnableScaleToZero },
		"scale-to-zero-grace-period":              func() { a.ScaleToZeroGracePeriod = as.ScaleToZeroGracePeriod },
		"scale-to-zero-pod-retention-period":      func() { a.ScaleToZeroPodRetentionPeriod = as.ScaleToZeroPodRetentionPeriod },
		"stable-window":                           func() { a.StableWindow = as.StableWindow },
		"max-scale-up-rate":                       func() { a.MaxScaleUpRate = as.MaxScaleUpRate },
		"max-scale-down-rate":                     func() { a.MaxScaleDownRate = as.MaxScaleDownRate },
		"panic-window-percentage":                 func() { a.PanicWindowPercentage = as.PanicWindowPercentage },
		"panic-threshold-percentage":              func() { a.PanicThresholdPercentage = as.PanicThresholdPercentage },
		"container-concurrency-target-percentage": func() { a.TargetUtilizationPercentage = as.ContainerConcurrencyTargetFraction * 100 },
		"container-concurrency-target-default":    func() { a.ContainerConcurrencyTargetDefault = as.ContainerConcurrencyTargetDefault },
		"requests-per-second-target-default":      func() { a.RPSTargetDefault = as.RPSTargetDefault },
		"target-burst-capacity":                   func() { a.TargetBurstCapacity = as.TargetBurstCapacity },
		"initial-scale":                           func() { a.InitialScale = int(as.InitialScale) },
		"allow-zero-initial-scale":                func() { a.AllowZeroInitialScale = as.AllowZeroInitialScale },
		"min-scale":                               func() { a.MinScale = int(as.MinScale) },
		"scale-down-delay":                        func() { a.ScaleDownDelay = as.ScaleDownDelay },
	} {
		if given[key] {
			apply()
		}
	}
	a.MaxScale, a.MaxScaleLimit = int(as.MaxScale), int(as.MaxScaleLimit)
	return cfg, nil
}

// settingsLoader makes the settings from the ConfigMaps of config.Names (and Eventing's
// config-features) found while running: each replaces the one of the same key given at start
// (start, from skiff up -f), and the flags still win. base is the autoscaler's configuration
// from its flags alone. Called with no data, it makes the settings of the start.
func settingsLoader(f *pflag.FlagSet, start []settingsConfigMap, base autoscaler.Config, local bool) reconciler.SettingsLoader {
	return func(data map[string]map[string]string) (reconciler.Settings, error) {
		cms := slices.DeleteFunc(slices.Clone(start), func(cm settingsConfigMap) bool {
			_, found := data[cm.key]
			return found
		})
		cms = append(cms, foundConfigMaps(data)...)
		engine := base
		adm, err := admissionSettings(f, cms, &engine, local)
		if err != nil {
			return reconciler.Settings{}, err
		}
		return reconciler.Settings{Admission: adm, Autoscaler: engine}, nil
	}
}

// settingsDocs splits manifests into the ConfigMaps Skiff reads at start and the rest.
func settingsDocs(docs []apiclient.Document) (settings, rest []apiclient.Document) {
	for _, d := range docs {
		if _, ok, _ := config.ParseConfigMap(d.Data); ok || isObservabilityDoc(d.Data) {
			settings = append(settings, d)
		} else {
			rest = append(rest, d)
		}
	}
	return settings, rest
}
