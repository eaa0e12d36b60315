package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/skiff-dev/skiff/api"
)

// manifests reads every object of deploy/skiff.yaml.
func manifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile("skiff.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("deploy/skiff.yaml: %v", err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// find returns the manifest of that kind and name, decoded into T.
func find[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string) *T {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			v := new(T)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, v, true); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return v
		}
	}
	t.Fatalf("deploy/skiff.yaml has no %s %s", kind, name)
	return nil
}

// ownerKinds are the kinds the controller creates children of with blockOwnerDeletion (the
// reconcilers' and deployruntime's ownerRef, certmanager's Certificates).
var ownerKinds = []string{"services", "configurations", "revisions", "routes", "domainmappings", "channels", "sequences", "parallels", "containersources"}

// TestClusterRoleNamesExactlyTheRegisteredKinds: each Knative group's rules name exactly the
// kinds api.Kinds() registers in that group (no rule pairs several groups with a list of
// resources, which would grant names a group does not have), status is written through the
// subresource of the kinds that have one, and the owners of what the controller creates get
// */finalizers update (OwnerReferencesPermissionEnforcement).
func TestClusterRoleNamesExactlyTheRegisteredKinds(t *testing.T) {
	role := find[rbacv1.ClusterRole](t, manifests(t), "ClusterRole", "skiff-controller")
	want := map[string][]string{} // group → plurals
	status := map[string]bool{}   // plural.group with a status subresource
	for _, k := range api.Kinds() {
		want[k.Group] = append(want[k.Group], k.Plural)
		if k.StatusSubresource {
			status[k.Plural+"."+k.Group] = true
		}
	}
	have := map[string][]string{}
	var finalizers []string
	for i, r := range role.Rules {
		for _, g := range r.APIGroups {
			if g == "*" || slices.Contains(r.Resources, "*") || slices.Contains(r.Verbs, "*") {
				t.Errorf("rule %d %v: wildcards grant more than Skiff uses", i, r)
			}
		}
		var knative []string
		for _, g := range r.APIGroups {
			if _, ok := want[g]; ok {
				knative = append(knative, g)
			}
		}
		if len(knative) == 0 {
			continue
		}
		if len(r.APIGroups) != 1 {
			t.Errorf("rule %d pairs the groups %v with the resources %v: each group's kinds need their own rule", i, r.APIGroups, r.Resources)
			continue
		}
		g := knative[0]
		for _, res := range r.Resources {
			base, sub, _ := strings.Cut(res, "/")
			if !slices.Contains(want[g], base) {
				t.Errorf("rule %d grants %s in %s, which has no such kind (it has %v)", i, res, g, want[g])
				continue
			}
			switch sub {
			case "":
				have[g] = append(have[g], base)
			case "status":
				if !status[base+"."+g] {
					t.Errorf("rule %d grants %s: %s.%s has no status subresource", i, res, base, g)
				}
				if !slices.Equal(r.Verbs, []string{"update"}) {
					t.Errorf("rule %d grants %v on %s, want update only", i, r.Verbs, res)
				}
			case "finalizers":
				finalizers = append(finalizers, base)
				if !slices.Equal(r.Verbs, []string{"update"}) {
					t.Errorf("rule %d grants %v on %s, want update only", i, r.Verbs, res)
				}
			default:
				t.Errorf("rule %d grants the subresource %s, not one Skiff writes", i, res)
			}
		}
	}
	for g, kinds := range want {
		if g == "networking.internal.knative.dev" {
			continue // ClusterDomainClaims: their own rule, checked with the rest below
		}
		w, h := slices.Clone(kinds), slices.Compact(slices.Sorted(slices.Values(have[g])))
		sort.Strings(w)
		if !slices.Equal(w, h) {
			t.Errorf("group %s: the ClusterRole reads %v, want exactly its kinds %v", g, h, w)
		}
	}
	slices.Sort(finalizers)
	if w := slices.Sorted(slices.Values(ownerKinds)); !slices.Equal(finalizers, w) {
		t.Errorf("*/finalizers update granted on %v, want the owning kinds %v", finalizers, w)
	}
}
