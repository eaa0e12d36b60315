package api

import (
	"os"
	"path/filepath"
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
					Kind, Plural string
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
		if len(s.Versions) != 1 || s.Versions[0].Name != k.Version || !s.Versions[0].Served || !s.Versions[0].Storage ||
			s.Versions[0].Subresources["status"] == nil || s.Versions[0].Schema.OpenAPIV3Schema == nil {
			t.Errorf("%s: version %s must be served, stored, with a schema and the status subresource", path, k.Version)
		}
	}
}
