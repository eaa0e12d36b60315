// Package api is Skiff's resource vocabulary: the Knative kinds it accepts, how each is
// named over HTTP, defaulted and validated. Subpackages hold the types themselves.
package api

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// Object is any resource Skiff stores.
type Object interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
}

// Kind describes one resource kind: its names and how to make, default and validate it.
type Kind struct {
	Group, Version, Kind string
	// Plural is the path segment, e.g. "services"; Aliases are what the CLI also accepts.
	Plural  string
	Aliases []string
	// New returns an empty object of this kind.
	New func() Object
	// Prepare defaults obj and validates it, returning errors that name field paths.
	Prepare func(obj Object) field.ErrorList
}

// APIVersion is group/version, or the version alone for the core group.
func (k *Kind) APIVersion() string {
	if k.Group == "" {
		return k.Version
	}
	return k.Group + "/" + k.Version
}

// Kinds lists every kind Skiff serves.
func Kinds() []*Kind {
	return []*Kind{
		{
			Group: "serving.knative.dev", Version: "v1", Kind: servingv1.KindService, Plural: "services",
			Aliases: []string{"service", "ksvc", "ksvcs", "kservice", "kservices", "svc"},
			New:     func() Object { return &servingv1.Service{} },
			Prepare: func(o Object) field.ErrorList { s := o.(*servingv1.Service); s.SetDefaults(); return s.Validate() },
		},
		{
			Group: "serving.knative.dev", Version: "v1", Kind: servingv1.KindConfiguration, Plural: "configurations",
			Aliases: []string{"configuration", "config", "configs", "cfg"},
			New:     func() Object { return &servingv1.Configuration{} },
			Prepare: func(o Object) field.ErrorList {
				c := o.(*servingv1.Configuration)
				c.SetDefaults()
				return c.Validate()
			},
		},
		{
			Group: "serving.knative.dev", Version: "v1", Kind: servingv1.KindRevision, Plural: "revisions",
			Aliases: []string{"revision", "rev", "revs"},
			New:     func() Object { return &servingv1.Revision{} },
			Prepare: func(o Object) field.ErrorList {
				r := o.(*servingv1.Revision)
				if r.Namespace == "" {
					r.Namespace = "default"
				}
				r.Spec.SetDefaults()
				return r.Validate()
			},
		},
		{
			Group: "serving.knative.dev", Version: "v1", Kind: servingv1.KindRoute, Plural: "routes",
			Aliases: []string{"route", "rt"},
			New:     func() Object { return &servingv1.Route{} },
			Prepare: func(o Object) field.ErrorList { r := o.(*servingv1.Route); r.SetDefaults(); return r.Validate() },
		},
		{
			Group: "eventing.knative.dev", Version: "v1", Kind: eventingv1.KindBroker, Plural: "brokers",
			Aliases: []string{"broker"},
			New:     func() Object { return &eventingv1.Broker{} },
			Prepare: func(o Object) field.ErrorList { b := o.(*eventingv1.Broker); b.SetDefaults(); return b.Validate() },
		},
		{
			Group: "eventing.knative.dev", Version: "v1", Kind: eventingv1.KindTrigger, Plural: "triggers",
			Aliases: []string{"trigger"},
			New:     func() Object { return &eventingv1.Trigger{} },
			Prepare: func(o Object) field.ErrorList { t := o.(*eventingv1.Trigger); t.SetDefaults(); return t.Validate() },
		},
		{
			Group: "sources.knative.dev", Version: "v1", Kind: sourcesv1.KindPingSource, Plural: "pingsources",
			Aliases: []string{"pingsource", "ping"},
			New:     func() Object { return &sourcesv1.PingSource{} },
			Prepare: func(o Object) field.ErrorList { s := o.(*sourcesv1.PingSource); s.SetDefaults(); return s.Validate() },
		},
		{
			Group: "sources.knative.dev", Version: "v1", Kind: sourcesv1.KindSinkBinding, Plural: "sinkbindings",
			Aliases: []string{"sinkbinding"},
			New:     func() Object { return &sourcesv1.SinkBinding{} },
			Prepare: func(o Object) field.ErrorList { b := o.(*sourcesv1.SinkBinding); b.SetDefaults(); return b.Validate() },
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
		for _, a := range k.Aliases {
			if name == a {
				return k
			}
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
