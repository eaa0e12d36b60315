package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// EventingNamespace is where Knative Eventing keeps its ConfigMaps (knative-eventing); Skiff
// reads Eventing's config-features there, so that it is not Serving's config-features, which
// has the same name.
const EventingNamespace = "knative-eventing"

// EventingFeaturesKey is how Skiff keys Eventing's config-features among the ConfigMaps it
// reads (Config.Apply, ConfigMap.Key): "knative-eventing/config-features".
const EventingFeaturesKey = EventingNamespace + "/" + FeaturesConfigName

// Knative Eventing's feature flags (pkg/apis/feature/flag_names.go).
const (
	EventingKReferenceGroup     = "kreference-group"
	EventingDeliveryRetryAfter  = "delivery-retryafter"
	EventingDeliveryTimeout     = "delivery-timeout"
	EventingKReferenceMapping   = "kreference-mapping"
	EventingTransportEncryption = "transport-encryption"
	EventingEventTypeAutoCreate = "eventtype-auto-create"
	EventingOIDCAuthentication  = "authentication-oidc"
	EventingCrossNamespaceLinks = "cross-namespace-event-links"
	EventingNewAPIServerFilters = "new-apiserversource-filters"
	EventingAuthorizationMode   = "default-authorization-mode"
	EventingOIDCDiscoveryURL    = "oidc-discovery-base-url"
	EventingRequestReplyTimeout = "requestreply-default-timeout"
	// EventingNodeSelectorPrefix starts the keys that give ApiServerSources' adapters a node
	// selector label.
	EventingNodeSelectorPrefix = "apiserversources-nodeselector-"
)

// EventingImplemented are the Eventing features whose Enabled setting Skiff acts on. The
// others are read and kept, as Knative keeps every key, but Skiff behaves as if they were
// disabled (README, the differences table): a ConfigMap enabling one gets a warning.
var EventingImplemented = []string{EventingDeliveryRetryAfter, EventingDeliveryTimeout}

// EventingFeatures is Knative Eventing's config-features (pkg/apis/feature): a flag per key,
// Enabled, Disabled or Allowed (any case), plus the few keys with values of their own.
type EventingFeatures struct {
	Flags map[string]Flag
}

// DefaultEventingFeatures is Eventing's config-features as Knative ships it.
func DefaultEventingFeatures() *EventingFeatures {
	return &EventingFeatures{Flags: map[string]Flag{
		EventingKReferenceGroup:     Disabled,
		EventingDeliveryRetryAfter:  Disabled,
		EventingDeliveryTimeout:     Enabled,
		EventingKReferenceMapping:   Disabled,
		EventingTransportEncryption: Disabled,
		EventingOIDCAuthentication:  Disabled,
		EventingEventTypeAutoCreate: Disabled,
		EventingNewAPIServerFilters: Disabled,
		EventingAuthorizationMode:   "Allow-Same-Namespace",
		EventingOIDCDiscoveryURL:    "https://kubernetes.default.svc",
		EventingRequestReplyTimeout: "PT30S",
	}}
}

// IsEnabled reports whether the feature is Enabled.
func (e *EventingFeatures) IsEnabled(name string) bool {
	return e != nil && e.Flags[name] == Enabled
}

// Apply reads config-features' data over e as Knative's NewFlagsConfigFromMap does: keys
// starting with "_" are skipped, Enabled/Disabled/Allowed are matched in any case (and
// transport-encryption's Permissive/Strict, default-authorization-mode's three modes), and
// any other key or value is kept as written: Knative never refuses this ConfigMap. The
// warnings name what Knative would only log (an unknown value) and the features Skiff does
// not act on that the data enables.
func (e *EventingFeatures) Apply(data map[string]string) (warnings []string) {
	if e.Flags == nil {
		e.Flags = DefaultEventingFeatures().Flags
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := data[k]
		if strings.HasPrefix(k, "_") {
			continue
		}
		key := strings.TrimSpace(k)
		choices := []Flag{Enabled, Disabled, Allowed}
		switch key {
		case EventingTransportEncryption:
			choices = append(choices, "Permissive", "Strict")
		case EventingAuthorizationMode:
			choices = append(choices, "Allow-All", "Deny-All", "Allow-Same-Namespace")
		}
		switch f := matchFlag(v, choices...); {
		case f != "":
			e.Flags[key] = f
		case strings.Contains(k, EventingNodeSelectorPrefix) || key == EventingOIDCDiscoveryURL:
			e.Flags[key] = Flag(v)
		default:
			e.Flags[k] = Flag(v)
			warnings = append(warnings, fmt.Sprintf("%s: unknown feature flag value %q", k, v))
			continue
		}
		if turnsOnUnimplemented(key, e.Flags[key]) {
			warnings = append(warnings, fmt.Sprintf("%s: %s is not implemented by Skiff, which behaves as if it were at Knative's default", key, e.Flags[key]))
		}
	}
	return warnings
}

// turnsOnUnimplemented reports whether v, read for key, turns on one of Knative's Eventing
// features that Skiff does not act on.
func turnsOnUnimplemented(key string, v Flag) bool {
	switch key {
	case EventingOIDCDiscoveryURL, EventingRequestReplyTimeout:
		return false // values, not features
	}
	def, known := DefaultEventingFeatures().Flags[key]
	if !known || slices.Contains(EventingImplemented, key) {
		return false
	}
	// Allowed lets fields through without turning a feature on; for the authorization mode
	// it is no mode at all.
	return v != Disabled && v != def && (v != Allowed || key == EventingAuthorizationMode)
}

func matchFlag(v string, flags ...Flag) Flag {
	for _, f := range flags {
		if strings.EqualFold(v, string(f)) {
			return f
		}
	}
	return ""
}
