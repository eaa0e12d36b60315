package api

import (
	"strings"
	"testing"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

func TestDecodeStrictNamesUnknownField(t *testing.T) {
	doc := `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  replicas: 3
  template:
    spec:
      containers:
        - image: ko://example.com/app
          imagePullPolicy: Always
          colour: blue
`
	var s servingv1.Service
	err := DecodeStrict([]byte(doc), &s)
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.replicas"`) ||
		!strings.Contains(err.Error(), `unknown field "spec.template.spec.containers[0].colour"`) {
		t.Fatalf("got %v, want both unknown fields named by path", err)
	}
}

func TestLookupKind(t *testing.T) {
	for _, name := range []string{"ksvc", "services", "Service", "services.serving.knative.dev", "rev", "routes", "config"} {
		if LookupKind(name) == nil {
			t.Errorf("LookupKind(%q) = nil", name)
		}
	}
	if LookupKind("pods") != nil {
		t.Error("pods should not be a kind")
	}
}

// TestDecodeDuplicateKeys: duplicate keys are refused by path, as the Kubernetes API server's
// strict decoding does, in YAML and in JSON; the rest of the document is still decoded.
func TestDecodeDuplicateKeys(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: a\n  name: b\nspec:\n  template:\n    spec:\n      containers:\n        - image: x\n          image: z\n",
		`{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"a","name":"b"},"spec":{"template":{"spec":{"containers":[{"image":"x","image":"z"}]}}}}`,
	} {
		var s servingv1.Service
		fields, err := Decode([]byte(doc), &s)
		if err != nil {
			t.Fatal(err)
		}
		got := fields.Error()
		if !strings.Contains(got, "duplicate field: metadata.name, spec.template.spec.containers[0].image") {
			t.Errorf("%s\n%q: want both duplicates named", doc, got)
		}
		if s.Kind != "Service" {
			t.Errorf("the rest was not decoded: %+v", s.TypeMeta)
		}
		if err := DecodeStrict([]byte(doc), &s); err == nil || !strings.Contains(err.Error(), `duplicate field "metadata.name"`) {
			t.Errorf("DecodeStrict: %v", err)
		}
	}
	var s servingv1.Service
	if _, err := Decode([]byte("spec: [unclosed"), &s); err == nil {
		t.Error("a document that does not parse must be an error")
	}
}
