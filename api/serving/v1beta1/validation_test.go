package v1beta1

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Ported from knative.dev/serving pkg/apis/serving/v1beta1/domainmapping_validation_test.go
// TestDomainMappingValidation: each case's errors name Knative's field path.
func TestDomainMappingValidation(t *testing.T) {
	ref := func(name, ns string) KReference {
		return KReference{Name: name, APIVersion: "serving.knative.dev/v1", Kind: "Service", Namespace: ns}
	}
	cases := []struct {
		name string
		dm   DomainMapping
		want []string // field: message fragments, all of which must appear
	}{{
		name: "invalid name",
		dm:   DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "invalid", Namespace: "ns"}, Spec: DomainMappingSpec{Ref: ref("some-name.example.com", "ns")}},
		want: []string{"metadata.name", `invalid name "invalid"`, "should be a domain with at least two segments separated by dots"},
	}, {
		name: "uses GenerateName rather than Name",
		dm:   DomainMapping{ObjectMeta: metav1.ObjectMeta{GenerateName: "cant-use-this", Namespace: "ns"}, Spec: DomainMappingSpec{Ref: ref("some-name.example.com", "ns")}},
		want: []string{"metadata.generateName", "metadata.name", `invalid name ""`},
	}, {
		name: "ref in wrong namespace",
		dm:   DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "wrong-ref-ns.example.com", Namespace: "good-namespace"}, Spec: DomainMappingSpec{Ref: ref("some-name", "bad-namespace")}},
		want: []string{"spec.ref.namespace", "mismatched namespaces", `parent namespace: "good-namespace" does not match ref: "bad-namespace"`},
	}, {
		name: "ref missing Kind",
		dm: DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "wrong-kind.example.com", Namespace: "ns"},
			Spec: DomainMappingSpec{Ref: KReference{Name: "some-name", Namespace: "ns", APIVersion: "serving.knative.dev/v1"}}},
		want: []string{"spec.ref.kind"},
	}, {
		name: "ref missing ApiVersion",
		dm: DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "wrong-version.example.com", Namespace: "ns"},
			Spec: DomainMappingSpec{Ref: KReference{Name: "some-name", Namespace: "ns", Kind: "Service"}}},
		want: []string{"spec.ref.apiVersion"},
	}, {
		name: "cluster local domain name",
		dm:   DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "notallowed.svc.cluster.local", Namespace: "ns"}, Spec: DomainMappingSpec{Ref: ref("some-name", "ns")}},
		want: []string{"metadata.name", `invalid name "notallowed.svc.cluster.local": must not be a subdomain of cluster local domain "cluster.local"`},
	}, {
		// knative.dev/pkg KReference.Validate: group needs the kreference-group feature, off in
		// Serving.
		name: "ref with a group",
		dm: DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "group.example.com", Namespace: "ns"},
			Spec: DomainMappingSpec{Ref: KReference{Name: "some-name", Namespace: "ns", APIVersion: "serving.knative.dev/v1", Kind: "Service", Group: "serving.knative.dev"}}},
		want: []string{"spec.ref.group", "must not set the field(s)"},
	}, {
		name: "valid",
		dm:   DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "hello.example.com", Namespace: "ns"}, Spec: DomainMappingSpec{Ref: ref("hello", "ns"), TLS: &SecretTLS{SecretName: "hello-tls"}}},
	}, {
		// Knative does not check spec.tls.secretName (a DomainMapping waits for its Secret).
		name: "valid with a secret name that is no object name",
		dm:   DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "hello.example.com", Namespace: "ns"}, Spec: DomainMappingSpec{Ref: ref("hello", "ns"), TLS: &SecretTLS{SecretName: "Not_A_Name"}}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.dm.Validate(context.Background())
			if len(tc.want) == 0 {
				if got != nil && got.Error() != "" {
					t.Fatalf("Validate() = %v, want no error", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("Validate() = nil, want errors naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", got, w)
				}
			}
		})
	}
}

func TestDomainMappingDefaults(t *testing.T) {
	dm := DomainMapping{ObjectMeta: metav1.ObjectMeta{Name: "a.example.com"}, Spec: DomainMappingSpec{Ref: KReference{Name: "x", Kind: "Service", APIVersion: "serving.knative.dev/v1"}}}
	dm.SetDefaults(context.Background())
	if dm.Namespace != "default" || dm.Spec.Ref.Namespace != "default" {
		t.Errorf("SetDefaults: namespace %q, ref namespace %q; want default for both", dm.Namespace, dm.Spec.Ref.Namespace)
	}
}
