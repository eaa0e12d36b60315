package reconciler

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// TestApiServerWatches tests the resolve step of the ApiServerSource reconcile: the watches
// its resources need in the namespaces it selects, as Knative's receive adapter configures
// them (one per resource and namespace; one cluster-wide per resource for an empty
// namespaceSelector), with each resource's label selector.
func TestApiServerWatches(t *testing.T) {
	pods := sourcesv1.APIVersionKindSelector{APIVersion: "v1", Kind: "Pod"}
	labelled := sourcesv1.APIVersionKindSelector{APIVersion: "v1", Kind: "Event",
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}}
	bad := sourcesv1.APIVersionKindSelector{APIVersion: "v1", Kind: "Pod",
		LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}}
	for _, tc := range []struct {
		name       string
		resources  []sourcesv1.APIVersionKindSelector
		namespaces []string
		all        bool
		want       string
		wantErr    string
	}{
		{name: "the source's namespace", resources: []sourcesv1.APIVersionKindSelector{pods}, namespaces: []string{"ns"},
			want: "[v1/Pod@ns{}]"},
		{name: "selected namespaces", resources: []sourcesv1.APIVersionKindSelector{pods, labelled}, namespaces: []string{"a", "b"},
			want: "[v1/Pod@a{} v1/Pod@b{} v1/Event@a{app=x} v1/Event@b{app=x}]"},
		{name: "every namespace, one watch", resources: []sourcesv1.APIVersionKindSelector{pods}, namespaces: []string{"a", "b"}, all: true,
			want: "[v1/Pod@{}]"},
		{name: "a bad label selector", resources: []sourcesv1.APIVersionKindSelector{bad}, namespaces: []string{"ns"},
			wantErr: `spec.resources selector: "Near" is not a valid label selector operator`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := apiServerWatches(tc.resources, tc.namespaces, tc.all)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range ws {
				got = append(got, fmt.Sprintf("%s/%s@%s{%s}", w.APIVersion, w.Kind, w.Namespace, w.LabelSelector))
			}
			if s := fmt.Sprint(got); s != tc.want {
				t.Fatalf("watches %s, want %s", s, tc.want)
			}
		})
	}
}
