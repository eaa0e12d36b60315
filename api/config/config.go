// Package config holds the cluster-wide settings defaulting and validation read, as Knative's
// webhooks read them from their ConfigMaps: config-features (which optional pod-spec fields are
// let through), config-defaults (revision defaults and bounds), config-autoscaler (the
// autoscaling annotations' defaults and limits) and Eventing's config-br-defaults (a Broker's
// default class, config and delivery). Skiff takes them as ConfigMap YAML or flags;
// every value left unset is Knative's default.
package config

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/skiff-dev/skiff/api/autoscaling"
)

// Config is the settings one admission reads.
type Config struct {
	Features   *Features
	Defaults   *Defaults
	Autoscaler *autoscaling.Config
	Brokers    *Brokers
	// EventingFeatures is Knative Eventing's config-features (in knative-eventing).
	EventingFeatures *EventingFeatures
}

// Default is every setting at Knative's default.
func Default() *Config {
	return &Config{Features: DefaultFeatures(), Defaults: DefaultDefaults(), Autoscaler: autoscaling.DefaultConfig(),
		Brokers: DefaultBrokers(), EventingFeatures: DefaultEventingFeatures()}
}

// Names are the ConfigMaps Skiff reads from its system namespace, in the order they are
// applied; Eventing's config-features (EventingFeaturesKey) is read from EventingNamespace.
var Names = []string{FeaturesConfigName, DefaultsConfigName, autoscaling.ConfigName, BrokersConfigName}

// Keys are how Skiff keys the ConfigMaps it reads (SettingsKey: config.Names, then Eventing's
// config-features), in the order they are applied.
func Keys() []string { return append(slices.Clone(Names), EventingFeaturesKey) }

// FromConfigMaps is Knative's defaults with each ConfigMap's data (by SettingsKey) applied
// over them, in Keys' order; the error names the ConfigMap and its bad key.
func FromConfigMaps(data map[string]map[string]string) (*Config, error) {
	c := Default()
	for _, key := range Keys() {
		if d, ok := data[key]; ok {
			if err := c.Apply(key, d); err != nil {
				return nil, fmt.Errorf("ConfigMap %s: %w", key, err)
			}
		}
	}
	return c, nil
}

// IsConfigMap reports whether name is one of the ConfigMaps Skiff reads.
func IsConfigMap(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}

// Apply reads the data of the ConfigMap called name over c's settings (EventingFeaturesKey
// for Eventing's config-features, which is never refused).
func (c *Config) Apply(name string, data map[string]string) error {
	switch name {
	case EventingFeaturesKey:
		if c.EventingFeatures == nil {
			c.EventingFeatures = DefaultEventingFeatures()
		}
		c.EventingFeatures.Apply(data)
		return nil
	case FeaturesConfigName:
		return c.Features.Apply(data)
	case DefaultsConfigName:
		return c.Defaults.Apply(data)
	case autoscaling.ConfigName:
		return c.Autoscaler.Apply(data)
	case BrokersConfigName:
		return c.Brokers.Apply(data)
	}
	return fmt.Errorf("ConfigMap %q: Skiff reads only %v", name, Names)
}

// Clone returns a copy of c that can be changed without changing c.
func (c *Config) Clone() *Config {
	f, d, a, b := *c.Features, *c.Defaults, *c.Autoscaler, *c.Brokers
	ef := DefaultEventingFeatures()
	if c.EventingFeatures != nil {
		ef = &EventingFeatures{Flags: maps.Clone(c.EventingFeatures.Flags)}
	}
	return &Config{Features: &f, Defaults: &d, Autoscaler: &a, Brokers: &b, EventingFeatures: ef}
}

type cfgKey struct{}

// ToContext attaches c to ctx.
func ToContext(ctx context.Context, c *Config) context.Context {
	return context.WithValue(ctx, cfgKey{}, c)
}

// FromContextOrDefaults is the Config attached to ctx, or Default.
func FromContextOrDefaults(ctx context.Context) *Config {
	if c, ok := ctx.Value(cfgKey{}).(*Config); ok && c != nil {
		return c
	}
	return Default()
}

// ConfigMap is the part of a Kubernetes ConfigMap document Skiff reads.
type ConfigMap struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

// Key is how Config.Apply knows the ConfigMap: its name, but EventingFeaturesKey for a
// config-features in EventingNamespace or labelled knative.dev/config-category: eventing
// (Knative Eventing's own, which Knative's release YAML puts in knative-eventing).
func (cm ConfigMap) Key() string {
	return SettingsKey(cm.Metadata.Namespace, cm.Metadata.Name, cm.Metadata.Labels)
}

// SettingsKey is ConfigMap.Key for a ConfigMap's namespace, name and labels.
func SettingsKey(namespace, name string, labels map[string]string) string {
	if name == FeaturesConfigName && (namespace == EventingNamespace || labels["knative.dev/config-category"] == "eventing") {
		return EventingFeaturesKey
	}
	return name
}

// SettingsConfigMap is one ConfigMap a running Skiff reads its settings from, and the key
// its data goes by (SettingsKey).
type SettingsConfigMap struct {
	Namespace, Name string
	// Eventing marks Eventing's config-features, keyed EventingFeaturesKey whatever its
	// namespace.
	Eventing bool
}

// Key is the key of the ConfigMap's data, which has labels.
func (s SettingsConfigMap) Key(labels map[string]string) string {
	if s.Eventing {
		return EventingFeaturesKey
	}
	return SettingsKey(s.Namespace, s.Name, labels)
}

// SettingsConfigMaps are the ConfigMaps a running Skiff reads its settings from: Names in
// systemNS, as Knative reads its own from knative-serving, and Eventing's config-features
// in eventingNS (default EventingNamespace) when that is another namespace (in systemNS, its
// label tells it apart).
func SettingsConfigMaps(systemNS, eventingNS string) []SettingsConfigMap {
	out := make([]SettingsConfigMap, 0, len(Names)+1)
	for _, name := range Names {
		out = append(out, SettingsConfigMap{Namespace: systemNS, Name: name})
	}
	if eventingNS == "" {
		eventingNS = EventingNamespace
	}
	if eventingNS != systemNS {
		out = append(out, SettingsConfigMap{Namespace: eventingNS, Name: FeaturesConfigName, Eventing: true})
	}
	return out
}

// ParseConfigMap reads a JSON document as one of the ConfigMaps Skiff reads; ok is false for
// any other document (a ConfigMap by another name included).
func ParseConfigMap(doc []byte) (cm ConfigMap, ok bool, err error) {
	if err := json.Unmarshal(doc, &cm); err != nil {
		return cm, false, err
	}
	return cm, cm.APIVersion == "v1" && cm.Kind == "ConfigMap" && IsConfigMap(cm.Metadata.Name), nil // Key tells Eventing's config-features apart
}
