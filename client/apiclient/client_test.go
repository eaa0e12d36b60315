package apiclient

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/controlplane/apiserver"
	"github.com/skiff-dev/skiff/controlplane/store"
)

const okService = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: ok-name
spec:
  template:
    spec:
      containers:
        - image: ko://example.com/app
`

// newTestClient serves the local API over a real store and returns a client of it
// holding the Service ok-name.
func newTestClient(t *testing.T) *Client {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, err := apiserver.New(st, nil, nil, apiserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := New(strings.TrimPrefix(srv.URL, "http://"))
	docs, err := ReadManifests("-", strings.NewReader(okService))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(context.Background(), docs[0], "default"); err != nil {
		t.Fatal(err)
	}
	return c
}

// A name or namespace that is not a valid object name never reaches a URL: `skiff
// delete ksvc 'x/../ok-name'` used to delete ok-name. (Issue 13, item 10.)
func TestNamesAreValidatedBeforeTheyReachAURL(t *testing.T) {
	c := newTestClient(t)
	ctx := context.Background()
	ksvc := api.LookupKind("ksvc")
	for _, tc := range []struct{ ns, name, want string }{
		{"default", "x/../ok-name", `invalid name "x/../ok-name"`},
		{"default", "../services/ok-name", `invalid name "../services/ok-name"`},
		{"default", "ok-name/", `invalid name "ok-name/"`},
		{"default", "ok-name%2F..", `invalid name "ok-name%2F.."`},
		{"default", "..", `invalid name ".."`},
		{"default", "OK-NAME", `invalid name "OK-NAME"`},
		{"default", "", `invalid name "": a name is required`},
		{"x/../default", "ok-name", `invalid namespace "x/../default"`},
		{"..", "ok-name", `invalid namespace ".."`},
	} {
		if err := c.Delete(ctx, ksvc, tc.ns, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Delete(%q, %q) = %v, want an error containing %s", tc.ns, tc.name, err, tc.want)
		}
		if _, err := c.Get(ctx, ksvc, tc.ns, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Get(%q, %q) = %v, want an error containing %s", tc.ns, tc.name, err, tc.want)
		}
	}
	if _, err := c.List(ctx, ksvc, "a/b"); err == nil || !strings.Contains(err.Error(), `invalid namespace "a/b"`) {
		t.Errorf("List in namespace a/b: %v", err)
	}
	// A manifest naming a path is refused before anything is sent.
	docs, err := ReadManifests("-", strings.NewReader(strings.Replace(okService, "name: ok-name", "name: x/../ok-name", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, docs[0], "default"); err == nil || !strings.Contains(err.Error(), `metadata.name: Invalid value: "x/../ok-name"`) {
		t.Errorf("apply of a manifest named x/../ok-name: %v", err)
	}
	if _, err := c.Get(ctx, ksvc, "default", "ok-name"); err != nil {
		t.Fatalf("ok-name is gone: %v", err)
	}
	if err := c.Delete(ctx, ksvc, "default", "ok-name"); err != nil {
		t.Fatalf("deleting ok-name by its name: %v", err)
	}
}

// Names are escaped as path segments even where validation allows more than a DNS name.
func TestObjectPathEscapesSegments(t *testing.T) {
	p := objectPath(api.LookupKind("ksvc"), "a b", "c/d")
	if want := "/apis/serving.knative.dev/v1/namespaces/a%20b/services/c%2Fd"; p != want {
		t.Errorf("objectPath = %q, want %q", p, want)
	}
	// Core kinds (Secrets, ConfigMaps) live under /api/v1 and are escaped the same way.
	p = objectPath(api.LookupKind("secret"), "a b", "c/d")
	if want := "/api/v1/namespaces/a%20b/secrets/c%2Fd"; p != want {
		t.Errorf("objectPath = %q, want %q", p, want)
	}
}

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
