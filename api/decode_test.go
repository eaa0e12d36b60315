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
