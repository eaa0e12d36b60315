package v1

import (
	"context"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// messages are the error-level diagnostics as "message: paths", as Knative's tests
// compare them (details left out).
func messages(err *fielderr.Error) []string {
	var out []string
	for _, e := range err.Filter(fielderr.ErrorLevel).Flatten() {
		out = append(out, e.Message+": "+strings.Join(e.Paths, ", "))
	}
	return out
}

const sink = "  sink:\n    ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}\n"

// Cases from Knative's apiserver_validation_test.go (TestAPIServerValidation,
// TestAPIServerFiltersValidation), with its messages, and apiserver_defaults_test.go.
func TestApiServerSourceValidation(t *testing.T) {
	const resources = "  resources:\n    - {apiVersion: v1, kind: Service}\n"
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid spec", "  mode: Resource\n" + sink + resources, nil},
		{"empty sink", "  sink: {}\n" + resources, []string{"expected at least one, got none: spec.sink.ref, spec.sink.uri"}},
		{"invalid mode", "  mode: Test\n" + sink + resources, []string{"invalid value: Test: spec.mode"}},
		{"invalid apiVersion", sink + "  resources:\n    - {apiVersion: v1/v2/v3, kind: Service}\n", []string{"invalid value: v1/v2/v3: spec.resources[0].apiVersion"}},
		{"missing kind", sink + "  resources:\n    - {apiVersion: v1}\n", []string{"missing field(s): spec.resources[0].kind"}},
		{"owner - invalid apiVersion", sink + resources + "  owner: {apiVersion: v1/v2/v3, kind: Foo}\n", []string{"invalid value: v1/v2/v3: spec.owner.apiVersion"}},
		{"owner - missing kind", sink + resources + "  owner: {apiVersion: v1}\n", []string{"missing field(s): spec.owner.kind"}},
		{"empty resources", sink + "  resources: []\n", []string{"missing field(s): spec.resources"}},
		{"nil resources", sink, []string{"missing field(s): spec.resources"}},
		{"invalid spec ceOverrides validation", sink + resources + "  ceOverrides:\n    extensions:\n      Invalid_type: x\n", []string{`invalid key name "Invalid_type": spec.ceOverrides.extensions`}},
		{"filters while the feature is disabled", sink + resources + "  filters:\n    - exact: {type: a}\n", []string{"Filters is not empty but the NewAPIServerFilters feature is disabled.: spec.filters"}},
		// Skiff's: selectors are checked at admission.
		{"bad label selector", sink + "  resources:\n    - apiVersion: v1\n      kind: Service\n      selector:\n        matchExpressions:\n          - {key: a, operator: Bogus}\n", []string{`invalid value: "Bogus" is not a valid label selector operator: spec.resources[0].selector`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s ApiServerSource
			if err := yaml.UnmarshalStrict([]byte("metadata: {name: src}\nspec:\n"+tc.spec), &s); err != nil {
				t.Fatal(err)
			}
			ctx := admission.WithinCreate(context.Background())
			s.SetDefaults(ctx)
			if got := messages(s.Validate(ctx)); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// TestAPIServerSourceDefaults: "no EventMode", "no ServiceAccountName".
	var s ApiServerSource
	s.SetDefaults(context.Background())
	if s.Spec.EventMode != ReferenceMode || s.Spec.ServiceAccountName != "default" {
		t.Errorf("defaults: mode %q serviceAccountName %q", s.Spec.EventMode, s.Spec.ServiceAccountName)
	}
	s.Spec.EventMode, s.Spec.ServiceAccountName = ResourceMode, "watcher"
	s.SetDefaults(context.Background())
	if s.Spec.EventMode != ResourceMode || s.Spec.ServiceAccountName != "watcher" {
		t.Errorf("defaults overwrote the spec: %+v", s.Spec)
	}
}

// Cases from Knative's container_validation_test.go (TestContainerSourceValidation), with its
// messages (its containers' paths leave out template.spec), and container_defaults_test.go
// (TestContainerSourceDefaults).
func TestContainerSourceValidation(t *testing.T) {
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"valid", sink + "  template:\n    spec:\n      containers:\n        - image: ko://example.com/heartbeats\n", nil},
		{"missing container", sink + "  template:\n    spec:\n      containers: []\n", []string{"missing field(s): spec.containers"}},
		{"missing container image", sink + "  template:\n    spec:\n      containers:\n        - name: test\n", []string{"missing field(s): spec.containers[0].image"}},
		{"empty sink", "  sink: {}\n  template:\n    spec:\n      containers:\n        - image: x\n", []string{"expected at least one, got none: spec.sink.ref, spec.sink.uri"}},
		{"invalid spec ceOverrides validation", sink + "  ceOverrides:\n    extensions:\n      Invalid_type: x\n  template:\n    spec:\n      containers:\n        - image: x\n", []string{`invalid key name "Invalid_type": spec.ceOverrides.extensions`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s ContainerSource
			if err := yaml.UnmarshalStrict([]byte("metadata: {name: src}\nspec:\n"+tc.spec), &s); err != nil {
				t.Fatal(err)
			}
			ctx := admission.WithinCreate(context.Background())
			s.SetDefaults(ctx)
			if got := messages(s.Validate(ctx)); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	var s ContainerSource
	_ = yaml.Unmarshal([]byte("metadata: {name: test-name}\nspec:\n  template:\n    spec:\n      containers:\n        - image: a\n        - {name: test-container, image: b}\n        - image: c\n"), &s)
	s.SetDefaults(context.Background())
	got := []string{s.Spec.Template.Spec.Containers[0].Name, s.Spec.Template.Spec.Containers[1].Name, s.Spec.Template.Spec.Containers[2].Name}
	if !slices.Equal(got, []string{"test-name-0", "test-container", "test-name-2"}) {
		t.Errorf("container names %v", got)
	}
}
