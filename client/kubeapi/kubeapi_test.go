package kubeapi

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/client/apiclient"
)

func newClient() *Client {
	lists := map[schema.GroupVersionResource]string{}
	for _, k := range api.Kinds() {
		lists[schema.GroupVersionResource{Group: k.Group, Version: k.Version, Resource: k.Plural}] = k.Kind + "List"
	}
	return New(dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists))
}

const service = `{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello","labels":{"a":"b"}},
"spec":{"template":{"spec":{"containers":[{"image":"example.com/hello@sha256:0123456789012345678901234567890123456789012345678901234567890123"}]}}}}`

func TestApplyGetListDelete(t *testing.T) {
	ctx := context.Background()
	c := newClient()
	ksvc := api.LookupKind("ksvc")
	if _, err := c.Get(ctx, ksvc, "team", "hello"); !apiclient.IsNotFound(err) {
		t.Fatalf("Get of a missing Service: %v, want an error apiclient.IsNotFound recognises", err)
	}
	res, err := c.Apply(ctx, apiclient.Document{Source: "test", Data: []byte(service)}, "team")
	if err != nil || res.Action != "created" || res.Name != "hello" {
		t.Fatalf("Apply: %+v, %v; want hello created", res, err)
	}
	if res, err = c.Apply(ctx, apiclient.Document{Source: "test", Data: []byte(strings.Replace(service, `"a":"b"`, `"a":"c"`, 1))}, "team"); err != nil || res.Action == "created" {
		t.Fatalf("second Apply: %+v, %v; want the Service updated", res, err)
	}
	raw, err := c.Get(ctx, ksvc, "team", "hello")
	if err != nil || !strings.Contains(string(raw), `"a":"c"`) || strings.Contains(string(raw), `"traffic"`) {
		t.Fatalf("Get: %s, %v; want the updated labels and the spec as applied (not defaulted)", raw, err)
	}
	items, err := c.List(ctx, ksvc, "")
	if err != nil || len(items) != 1 {
		t.Fatalf("List: %d items, %v; want 1", len(items), err)
	}
	if err := c.Delete(ctx, ksvc, "team", "hello"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := c.Delete(ctx, ksvc, "team", "hello"); !apiclient.IsNotFound(err) {
		t.Fatalf("second Delete: %v, want not found", err)
	}
}

// TestApplyRefusesBadFieldsByName: what decoding finds is refused before anything is sent;
// the rest of validation is the cluster's webhooks' (e2e/kube TestAdmissionWebhooks).
func TestApplyRefusesBadFieldsByName(t *testing.T) {
	c := newClient()
	for _, tc := range []struct{ doc, want string }{
		{strings.Replace(service, `"image"`, `"imagge"`, 1), "imagge"},
		{`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}`, `kind "Pod": not a kind Skiff serves`},
		{`{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{}}`, "metadata.name: Required value"},
	} {
		if _, err := c.Apply(context.Background(), apiclient.Document{Source: "doc", Data: []byte(tc.doc)}, "team"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Apply(%s): %v, want an error naming %q", tc.doc, err, tc.want)
		}
	}
}
