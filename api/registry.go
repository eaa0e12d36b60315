// Package api is Skiff's resource vocabulary: the Knative kinds it accepts, how each is
// named over HTTP, defaulted and validated. Subpackages hold the types themselves.
package api

import (
	"context"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	eventingv1beta3 "github.com/skiff-dev/skiff/api/eventing/v1beta3"
	"github.com/skiff-dev/skiff/api/fielderr"
	flowsv1 "github.com/skiff-dev/skiff/api/flows/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
	networkingv1alpha1 "github.com/skiff-dev/skiff/api/networking/v1alpha1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	servingv1beta1 "github.com/skiff-dev/skiff/api/serving/v1beta1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// Object is any resource Skiff stores: Kubernetes metadata, plus Knative's webhook's
// defaulting and validation (ctx carries the admission and config settings).
type Object interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
	SetDefaults(ctx context.Context)
	Validate(ctx context.Context) *fielderr.Error
}

// Kind describes one resource kind: its names and how to make one.
type Kind struct {
	Group, Version, Kind string
	// Plural is the path segment, e.g. "services"; Aliases are what the CLI also accepts.
	Plural  string
	Aliases []string
	// ShortNames and Categories are what API discovery reports (kubectl get ksvc, kubectl get
	// knative), as Knative's CRDs declare them (serving's config/core/300-resources, eventing's
	// config/core/resources) and as deploy/crds repeats them.
	ShortNames []string
	Categories []string
	// ClusterScoped kinds (Namespace, ClusterDomainClaim) have no namespace.
	ClusterScoped bool
	// StatusSubresource says status is written through /status only, as with every Knative
	// CRD; a write of the object itself keeps the stored status.
	StatusSubresource bool
	// New returns an empty object of this kind.
	New func() Object
}

// Singular is the kind's singular resource name, e.g. "service".
func (k *Kind) Singular() string { return strings.ToLower(k.Kind) }

// GroupResource is "plural.group" ("services.serving.knative.dev"), or the plural alone in
// the core group: how the Kubernetes API names the resource in its messages.
func (k *Kind) GroupResource() string {
	if k.Group == "" {
		return k.Plural
	}
	return k.Plural + "." + k.Group
}

// APIVersion is group/version, or the version alone for the core group.
func (k *Kind) APIVersion() string {
	if k.Group == "" {
		return k.Version
	}
	return k.Group + "/" + k.Version
}

// CollectionPath is the API path of the kind's objects in ns ("" = every namespace), as in
// Kubernetes: /api/v1/... for the core group, /apis/{group}/{version}/... for the others.
func (k *Kind) CollectionPath(ns string) string {
	if ns == "" || k.ClusterScoped {
		return k.Path() + "/" + k.Plural
	}
	return k.Path() + "/namespaces/" + ns + "/" + k.Plural
}

// ObjectPath is the API path of one object.
func (k *Kind) ObjectPath(ns, name string) string {
	if k.ClusterScoped {
		ns = ""
	} else if ns == "" {
		ns = "default"
	}
	return k.CollectionPath(ns) + "/" + name
}

// Kinds lists every kind Skiff serves.
func Kinds() []*Kind {
	return []*Kind{
		{
			Group: "serving.knative.dev", Version: "v1", Kind: servingv1.KindService, Plural: "services",
			Aliases:    []string{"service", "ksvc", "ksvcs", "kservice", "kservices", "svc"},
			ShortNames: []string{"kservice", "ksvc"}, Categories: []string{"all", "knative", "serving"}, StatusSubresource: true,
			New: func() Object { return &servingv1.Service{} },
		},
		{
			Group: "serving.knative.dev", Version: "v1", Kind: servingv1.KindConfiguration, Plural: "configurations",
			Aliases:    []string{"configuration", "config", "configs", "cfg"},
			ShortNames: []string{"config", "cfg"}, Categories: []string{"all", "knative", "serving"}, StatusSubresource: true,
			New: func() Object { return &servingv1.Configuration{} },
		},
		{
			Group: "serving.knative.dev", Version: "v1", Kind: servingv1.KindRevision, Plural: "revisions",
			Aliases:    []string{"revision", "rev", "revs"},
			ShortNames: []string{"rev"}, Categories: []string{"all", "knative", "serving"}, StatusSubresource: true,
			New: func() Object { return &servingv1.Revision{} },
		},
		{
			Group: "serving.knative.dev", Version: "v1", Kind: servingv1.KindRoute, Plural: "routes",
			Aliases:    []string{"route", "rt"},
			ShortNames: []string{"rt"}, Categories: []string{"all", "knative", "serving"}, StatusSubresource: true,
			New: func() Object { return &servingv1.Route{} },
		},
		{
			Group: "eventing.knative.dev", Version: "v1", Kind: eventingv1.KindBroker, Plural: "brokers",
			Aliases:    []string{"broker"},
			Categories: []string{"all", "knative", "eventing"}, StatusSubresource: true,
			New: func() Object { return &eventingv1.Broker{} },
		},
		{
			Group: "eventing.knative.dev", Version: "v1", Kind: eventingv1.KindTrigger, Plural: "triggers",
			Aliases:    []string{"trigger"},
			Categories: []string{"all", "knative", "eventing"}, StatusSubresource: true,
			New: func() Object { return &eventingv1.Trigger{} },
		},
		{
			// Knative serves EventType as v1beta3, v1beta2 and v1beta1 (converted by its webhook);
			// Skiff serves one version of each kind, and this is the newest.
			Group: "eventing.knative.dev", Version: "v1beta3", Kind: eventingv1beta3.KindEventType, Plural: "eventtypes",
			Aliases:    []string{"eventtype"},
			Categories: []string{"all", "knative", "eventing"}, StatusSubresource: true,
			New: func() Object { return &eventingv1beta3.EventType{} },
		},
		{
			Group: "sources.knative.dev", Version: "v1", Kind: sourcesv1.KindPingSource, Plural: "pingsources",
			Aliases:    []string{"pingsource", "ping"},
			Categories: []string{"all", "knative", "sources"}, StatusSubresource: true,
			New: func() Object { return &sourcesv1.PingSource{} },
		},
		{
			Group: "sources.knative.dev", Version: "v1", Kind: sourcesv1.KindSinkBinding, Plural: "sinkbindings",
			Aliases:    []string{"sinkbinding"},
			Categories: []string{"all", "knative", "sources", "bindings"}, StatusSubresource: true,
			New: func() Object { return &sourcesv1.SinkBinding{} },
		},
		{
			Group: "serving.knative.dev", Version: "v1beta1", Kind: servingv1beta1.KindDomainMapping, Plural: "domainmappings",
			Aliases:    []string{"domainmapping", "dm"},
			ShortNames: []string{"dm"}, Categories: []string{"all", "knative", "serving"}, StatusSubresource: true,
			New: func() Object { return &servingv1beta1.DomainMapping{} },
		},
		{
			Group: "networking.internal.knative.dev", Version: "v1alpha1", Kind: networkingv1alpha1.KindClusterDomainClaim,
			Plural: "clusterdomainclaims", Aliases: []string{"clusterdomainclaim", "cdc"}, ClusterScoped: true,
			ShortNames: []string{"cdc"}, Categories: []string{"knative-internal", "networking"}, StatusSubresource: true,
			New: func() Object { return &networkingv1alpha1.ClusterDomainClaim{} },
		},
		{
			Group: "messaging.knative.dev", Version: "v1", Kind: messagingv1.KindChannel, Plural: "channels",
			Aliases:    []string{"channel"},
			ShortNames: []string{"ch"}, Categories: []string{"all", "knative", "messaging", "channel"}, StatusSubresource: true,
			New: func() Object { return &messagingv1.Channel{} },
		},
		{
			Group: "messaging.knative.dev", Version: "v1", Kind: messagingv1.KindInMemoryChannel, Plural: "inmemorychannels",
			Aliases:    []string{"inmemorychannel"},
			ShortNames: []string{"imc"}, Categories: []string{"all", "knative", "messaging", "channel"}, StatusSubresource: true,
			New: func() Object { return &messagingv1.InMemoryChannel{} },
		},
		{
			Group: "messaging.knative.dev", Version: "v1", Kind: messagingv1.KindSubscription, Plural: "subscriptions",
			Aliases:    []string{"subscription"},
			ShortNames: []string{"sub"}, Categories: []string{"all", "knative", "messaging"}, StatusSubresource: true,
			New: func() Object { return &messagingv1.Subscription{} },
		},
		{
			Group: "flows.knative.dev", Version: "v1", Kind: flowsv1.KindSequence, Plural: "sequences",
			Aliases:    []string{"sequence", "seq"},
			Categories: []string{"all", "knative", "flows"}, StatusSubresource: true,
			New: func() Object { return &flowsv1.Sequence{} },
		},
		{
			Group: "flows.knative.dev", Version: "v1", Kind: flowsv1.KindParallel, Plural: "parallels",
			Aliases:    []string{"parallel"},
			Categories: []string{"all", "knative", "flows"}, StatusSubresource: true,
			New: func() Object { return &flowsv1.Parallel{} },
		},
		{
			Group: "sources.knative.dev", Version: "v1", Kind: sourcesv1.KindApiServerSource, Plural: "apiserversources",
			Aliases:    []string{"apiserversource"},
			Categories: []string{"all", "knative", "sources"}, StatusSubresource: true,
			New: func() Object { return &sourcesv1.ApiServerSource{} },
		},
		{
			Group: "sources.knative.dev", Version: "v1", Kind: sourcesv1.KindContainerSource, Plural: "containersources",
			Aliases:    []string{"containersource"},
			Categories: []string{"all", "knative", "sources"}, StatusSubresource: true,
			New: func() Object { return &sourcesv1.ContainerSource{} },
		},
	}
}

// LookupKind finds a kind by its Kind, plural, alias or "plural.group" name, case-insensitively.
func LookupKind(name string) *Kind {
	name = strings.ToLower(name)
	for _, k := range ServedKinds() {
		if name == strings.ToLower(k.Kind) || name == k.Plural || name == k.Plural+"."+k.Group {
			return k
		}
		if slices.Contains(k.Aliases, name) || slices.Contains(k.ShortNames, name) {
			return k
		}
	}
	return nil
}

// LookupGVK finds a kind by apiVersion and kind, as written in YAML.
func LookupGVK(apiVersion, kind string) *Kind {
	for _, k := range ServedKinds() {
		if k.APIVersion() == apiVersion && k.Kind == kind {
			return k
		}
	}
	return nil
}
