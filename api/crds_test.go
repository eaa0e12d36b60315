package api

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// Every kind Skiff serves has a CRD under deploy/crds (make crds) with its group, plural,
// kind, scope, the status subresource and a schema, so a cluster accepts the same YAML. The
// core kinds (ConfigMap, Secret) are the API server's own.
func TestCRDsCoverEveryKind(t *testing.T) {
	for _, k := range Kinds() {
		if k.Group == "" {
			continue
		}
		path := filepath.Join("..", "deploy", "crds", k.Group+"_"+k.Plural+".yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run make crds)", k.Kind, err)
			continue
		}
		var crd struct {
			Kind string `json:"kind"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind, Plural           string
					ShortNames, Categories []string
				} `json:"names"`
				Scope    string `json:"scope"`
				Versions []struct {
					Name         string         `json:"name"`
					Served       bool           `json:"served"`
					Storage      bool           `json:"storage"`
					Subresources map[string]any `json:"subresources"`
					Schema       struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		s := crd.Spec
		scope := "Namespaced"
		if k.ClusterScoped {
			scope = "Cluster"
		}
		if crd.Kind != "CustomResourceDefinition" || s.Group != k.Group || s.Names.Kind != k.Kind || s.Names.Plural != k.Plural || s.Scope != scope {
			t.Errorf("%s: wrong CRD identity: %+v", path, s)
			continue
		}
		if !slices.Equal(s.Names.ShortNames, k.ShortNames) || !slices.Equal(s.Names.Categories, k.Categories) {
			t.Errorf("%s: CRD short names %v, categories %v; the registry says %v, %v", path, s.Names.ShortNames, s.Names.Categories, k.ShortNames, k.Categories)
		}
		if len(s.Versions) != 1 || s.Versions[0].Name != k.Version || !s.Versions[0].Served || !s.Versions[0].Storage ||
			s.Versions[0].Subresources["status"] == nil || s.Versions[0].Schema.OpenAPIV3Schema == nil {
			t.Errorf("%s: version %s must be served, stored, with a schema and the status subresource", path, k.Version)
		}
	}
}

// Discovery names Skiff's kinds as Knative's CRDs do, so that `kubectl get ksvc` and
// `kubectl get knative` work as against Knative: serving's config/core/300-resources/*.yaml
// and eventing's config/core/resources/*.yaml.
func TestNamesAsKnativeDeclares(t *testing.T) {
	knative := map[string]struct{ short, categories []string }{
		"Service":       {[]string{"kservice", "ksvc"}, []string{"all", "knative", "serving"}},
		"Configuration": {[]string{"config", "cfg"}, []string{"all", "knative", "serving"}},
		"Revision":      {[]string{"rev"}, []string{"all", "knative", "serving"}},
		"Route":         {[]string{"rt"}, []string{"all", "knative", "serving"}},
		"Broker":        {nil, []string{"all", "knative", "eventing"}},
		"Trigger":       {nil, []string{"all", "knative", "eventing"}},
		"EventType":     {nil, []string{"all", "knative", "eventing"}}, // eventtype.yaml
		"PingSource":    {nil, []string{"all", "knative", "sources"}},
		"SinkBinding":   {nil, []string{"all", "knative", "sources", "bindings"}},
		// eventing's config/core/resources/{channel,subscription,sequence,parallel,
		// apiserversource,containersource}.yaml, config/channels/in-memory-channel.
		"Channel":         {[]string{"ch"}, []string{"all", "knative", "messaging", "channel"}},
		"InMemoryChannel": {[]string{"imc"}, []string{"all", "knative", "messaging", "channel"}},
		"Subscription":    {[]string{"sub"}, []string{"all", "knative", "messaging"}},
		"Sequence":        {nil, []string{"all", "knative", "flows"}},
		"Parallel":        {nil, []string{"all", "knative", "flows"}},
		"ApiServerSource": {nil, []string{"all", "knative", "sources"}},
		"ContainerSource": {nil, []string{"all", "knative", "sources"}},
	}
	for _, k := range Kinds() {
		want, ok := knative[k.Kind]
		if !ok {
			continue // a kind this test does not know yet
		}
		if !slices.Equal(k.ShortNames, want.short) || !slices.Equal(k.Categories, want.categories) {
			t.Errorf("%s: short names %v, categories %v; Knative declares %v, %v", k.Kind, k.ShortNames, k.Categories, want.short, want.categories)
		}
		if got := LookupKind(k.Plural); got == nil || got.Kind != k.Kind {
			t.Errorf("LookupKind(%q) = %v", k.Plural, got)
		}
		for _, short := range k.ShortNames {
			if got := LookupKind(short); got == nil || got.Kind != k.Kind {
				t.Errorf("LookupKind(%q) = %v, want %s", short, got, k.Kind)
			}
		}
	}
}
