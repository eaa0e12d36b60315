package v1

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

func fields(errs field.ErrorList) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Field
	}
	return out
}

func sameFields(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const sink = "  sink:\n    ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}\n"

// Cases from Knative's apiserver_validation_test.go (TestAPIServerValidation,
// TestAPIServerFiltersValidation) and apiserver_defaults_test.go.
func TestApiServerSourceValidation(t *testing.T) {
	const resources = "  resources:\n    - {apiVersion: v1, kind: Service}\n"
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid spec", "  mode: Resource\n" + sink + resources, nil},
		{"empty sink", "  sink: {}\n" + resources, []string{"spec.sink"}},
		{"invalid mode", "  mode: Test\n" + sink + resources, []string{"spec.mode"}},
		{"invalid apiVersion", sink + "  resources:\n    - {apiVersion: v1/v2/v3, kind: Service}\n", []string{"spec.resources[0].apiVersion"}},
		{"missing kind", sink + "  resources:\n    - {apiVersion: v1}\n", []string{"spec.resources[0].kind"}},
		{"owner - invalid apiVersion", sink + resources + "  owner: {apiVersion: v1/v2/v3, kind: Foo}\n", []string{"spec.owner.apiVersion"}},
		{"owner - missing kind", sink + resources + "  owner: {apiVersion: v1}\n", []string{"spec.owner.kind"}},
		{"empty resources", sink + "  resources: []\n", []string{"spec.resources"}},
		{"nil resources", sink, []string{"spec.resources"}},
		{"invalid spec ceOverrides validation", sink + resources + "  ceOverrides:\n    extensions:\n      Invalid_Name: x\n", []string{"spec.ceOverrides.extensions[Invalid_Name]"}},
		{"filters while the feature is disabled", sink + resources + "  filters:\n    - exact: {type: a}\n", []string{"spec.filters"}},
		{"bad label selector", sink + "  resources:\n    - apiVersion: v1\n      kind: Service\n      selector:\n        matchExpressions:\n          - {key: a, operator: Bogus}\n", []string{"spec.resources[0].selector"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s ApiServerSource
			if err := yaml.UnmarshalStrict([]byte("metadata: {name: src}\nspec:\n"+tc.spec), &s); err != nil {
				t.Fatal(err)
			}
			s.SetDefaults()
			if got := fields(s.Validate()); !sameFields(got, tc.want) {
				t.Errorf("errors at %v (%v), want %v", got, s.Validate().ToAggregate(), tc.want)
			}
		})
	}
	// TestAPIServerSourceDefaults: "no EventMode", "no ServiceAccountName".
	var s ApiServerSource
	s.SetDefaults()
	if s.Spec.EventMode != ReferenceMode || s.Spec.ServiceAccountName != "default" {
		t.Errorf("defaults: mode %q serviceAccountName %q", s.Spec.EventMode, s.Spec.ServiceAccountName)
	}
	s.Spec.EventMode, s.Spec.ServiceAccountName = ResourceMode, "watcher"
	s.SetDefaults()
	if s.Spec.EventMode != ResourceMode || s.Spec.ServiceAccountName != "watcher" {
		t.Errorf("defaults overwrote the spec: %+v", s.Spec)
	}
}

// Cases from Knative's container_validation_test.go (TestContainerSourceValidation) and
// container_defaults_test.go (TestContainerSourceDefaults).
func TestContainerSourceValidation(t *testing.T) {
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid", sink + "  template:\n    spec:\n      containers:\n        - image: ko://example.com/heartbeats\n", nil},
		{"missing container", sink + "  template:\n    spec:\n      containers: []\n", []string{"spec.template.spec.containers"}},
		{"missing container image", sink + "  template:\n    spec:\n      containers:\n        - name: test\n", []string{"spec.template.spec.containers[0].image"}},
		{"empty sink", "  sink: {}\n  template:\n    spec:\n      containers:\n        - image: x\n", []string{"spec.sink"}},
		{"invalid spec ceOverrides validation", sink + "  ceOverrides:\n    extensions:\n      type: x\n  template:\n    spec:\n      containers:\n        - image: x\n", []string{"spec.ceOverrides.extensions[type]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s ContainerSource
			if err := yaml.UnmarshalStrict([]byte("metadata: {name: src}\nspec:\n"+tc.spec), &s); err != nil {
				t.Fatal(err)
			}
			s.SetDefaults()
			if got := fields(s.Validate()); !sameFields(got, tc.want) {
				t.Errorf("errors at %v (%v), want %v", got, s.Validate().ToAggregate(), tc.want)
			}
		})
	}
	var s ContainerSource
	_ = yaml.Unmarshal([]byte("metadata: {name: test-name}\nspec:\n  template:\n    spec:\n      containers:\n        - image: a\n        - {name: test-container, image: b}\n        - image: c\n"), &s)
	s.SetDefaults()
	got := []string{s.Spec.Template.Spec.Containers[0].Name, s.Spec.Template.Spec.Containers[1].Name, s.Spec.Template.Spec.Containers[2].Name}
	if !sameFields(got, []string{"test-name-0", "test-container", "test-name-2"}) {
		t.Errorf("container names %v", got)
	}
}
