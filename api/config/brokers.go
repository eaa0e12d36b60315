package config

import (
	"encoding/json"
	"errors"
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/configmap"
)

// BrokersConfigName is the name of Knative Eventing's ConfigMap holding the defaults its
// webhook gives a Broker: its class, its spec.config and its spec.delivery.
const BrokersConfigName = "config-br-defaults"

// brokersKey is config-br-defaults' one key, a YAML document.
const brokersKey = "default-br-config"

// Brokers is Knative Eventing's config-br-defaults (pkg/apis/config/defaults.go): default
// Broker settings for the cluster, per namespace, and per broker class.
type Brokers struct {
	// Namespaces are the defaults of Brokers in one namespace, by namespace.
	Namespaces map[string]*BrokerDefaults `json:"namespaceDefaults,omitempty"`
	// Cluster are the defaults of Brokers in every other namespace.
	Cluster *BrokerDefaults `json:"clusterDefault,omitempty"`
}

// BrokerDefaults are the defaults of the cluster or of one namespace.
type BrokerDefaults struct {
	// Class is the broker class a Broker without one gets.
	Class string `json:"brokerClass,omitempty"`
	// BrokerConfig is the config and delivery of Brokers of the default class (Knative keeps
	// it, deprecated, next to Classes).
	*BrokerConfig `json:",inline"`
	// Classes are the config and delivery per broker class.
	Classes map[string]*BrokerConfig `json:"brokerClasses,omitempty"`
	// DisallowDifferentNamespaceConfig refuses a Broker whose spec.config is in another
	// namespace.
	DisallowDifferentNamespaceConfig *bool `json:"disallowDifferentNamespaceConfig,omitempty"`
}

// BrokerConfig is what a Broker without spec.config or spec.delivery gets.
type BrokerConfig struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	// Delivery is a DeliverySpec; Knative copies its deadLetterSink, retry, backoffPolicy and
	// backoffDelay.
	Delivery *BrokerDelivery `json:"delivery,omitempty"`
}

// BrokerDelivery is the part of a default DeliverySpec Knative copies into a Broker.
type BrokerDelivery struct {
	DeadLetterSink json.RawMessage `json:"deadLetterSink,omitempty"`
	Retry          *int32          `json:"retry,omitempty"`
	BackoffPolicy  *string         `json:"backoffPolicy,omitempty"`
	BackoffDelay   *string         `json:"backoffDelay,omitempty"`
}

// HasRef reports whether the config names an object (Knative's inline KReference is set).
func (c *BrokerConfig) HasRef() bool {
	return c != nil && (c.APIVersion != "" || c.Kind != "" || c.Name != "" || c.Namespace != "")
}

// DefaultBrokers is config-br-defaults as Knative Eventing ships it
// (config/core/configmaps/default-broker.yaml).
func DefaultBrokers() *Brokers {
	retry, policy, delay := int32(10), "exponential", "PT0.2S"
	return &Brokers{Cluster: &BrokerDefaults{
		Class: "MTChannelBasedBroker",
		BrokerConfig: &BrokerConfig{
			APIVersion: "v1", Kind: "ConfigMap", Name: "config-br-default-channel", Namespace: "knative-eventing",
			Delivery: &BrokerDelivery{Retry: &retry, BackoffPolicy: &policy, BackoffDelay: &delay},
		},
	}}
}

// Apply reads config-br-defaults' data: its default-br-config key replaces the defaults
// whole, as Knative's store does.
func (b *Brokers) Apply(data map[string]string) error {
	return configmap.Parse(BrokersConfigName, data, configmap.Custom(brokersKey, func(raw string) error {
		if raw == "" {
			return errors.New("must not be empty")
		}
		js, err := yaml.YAMLToJSON([]byte(raw))
		if err != nil {
			return fmt.Errorf("not YAML: %w", err)
		}
		var next Brokers
		if err := json.Unmarshal(js, &next); err != nil {
			return err
		}
		*b = next
		return nil
	}))
}

// Config is the config and delivery a Broker of class in namespace ns gets (Knative's
// Defaults.GetBrokerConfig, class "" meaning none given); nil when none is set up.
func (b *Brokers) Config(ns, class string) *BrokerConfig {
	if b == nil {
		return nil
	}
	if class == "" {
		if n := b.Namespaces[ns]; n != nil && n.Class != "" {
			class = n.Class
		} else {
			return b.cluster("")
		}
	}
	if n := b.Namespaces[ns]; n != nil {
		if n.Class == class {
			if c := n.Classes[class]; c != nil {
				return c
			}
			if n.BrokerConfig != nil {
				return n.BrokerConfig
			}
			return b.cluster(class)
		}
		if c := n.Classes[class]; c != nil {
			return c
		}
	}
	return b.cluster(class)
}

// cluster is Knative's getClusterDefaultBrokerConfig.
func (b *Brokers) cluster(class string) *BrokerConfig {
	c := b.Cluster
	if c == nil || c.BrokerConfig == nil {
		return nil
	}
	if cc := c.Classes[class]; cc != nil {
		return cc
	}
	return c.BrokerConfig
}

// Class is the broker class a Broker in namespace ns without one gets (Knative's
// GetBrokerClass); "" when none is set up.
func (b *Brokers) Class(ns string) string {
	if b == nil {
		return ""
	}
	if n := b.Namespaces[ns]; n != nil && n.Class != "" {
		return n.Class
	}
	if b.Cluster != nil {
		return b.Cluster.Class
	}
	return ""
}

// DisallowOtherNamespace reports whether a Broker in ns must keep its spec.config in ns
// (disallowDifferentNamespaceConfig, the namespace's setting first).
func (b *Brokers) DisallowOtherNamespace(ns string) bool {
	if b == nil {
		return false
	}
	if n := b.Namespaces[ns]; n != nil && n.DisallowDifferentNamespaceConfig != nil && *n.DisallowDifferentNamespaceConfig {
		return true
	}
	return b.Cluster != nil && b.Cluster.DisallowDifferentNamespaceConfig != nil && *b.Cluster.DisallowDifferentNamespaceConfig
}
