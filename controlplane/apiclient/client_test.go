package apiclient

import (
	"strings"
	"testing"
)

// TestReadManifestsRefusesDuplicateKeys: converting YAML to JSON would keep the last of two
// equal keys silently; they are refused by path, as the Kubernetes API server's strict
// decoding does.
func TestReadManifestsRefusesDuplicateKeys(t *testing.T) {
	doc := "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: a\n  name: b\n---\nkind: Other\n"
	if _, err := ReadManifests("-", strings.NewReader(doc)); err == nil || !strings.Contains(err.Error(), "duplicate field: metadata.name") {
		t.Fatalf("got %v, want the duplicate named", err)
	}
	docs, err := ReadManifests("-", strings.NewReader(strings.Replace(doc, "  name: b\n", "", 1)))
	if err != nil || len(docs) != 2 {
		t.Fatalf("%d docs, %v", len(docs), err)
	}
}
