package kube

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/controlplane/apiserver"
	"github.com/skiff-dev/skiff/controlplane/apiserver/openapi"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// getter fetches paths from one API server with an Accept header.
type getter func(t *testing.T, path, accept string) (int, []byte)

func kubeGetter(c *cluster) getter {
	return func(t *testing.T, path, accept string) (int, []byte) {
		t.Helper()
		rt, err := rest.TransportFor(c.rest)
		if err != nil {
			t.Fatal(err)
		}
		// A CRD's storage answers 429 while its watch cache starts.
		var code int
		var body []byte
		eventually(t, 30*time.Second, "kube-apiserver serving "+path, func() bool {
			code, body = fetch(t, &http.Client{Transport: rt}, c.rest.Host+path, accept)
			return code != http.StatusTooManyRequests
		})
		return code, body
	}
}

func fetch(t *testing.T, hc *http.Client, url, accept string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func skiffGetter(t *testing.T) getter {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := apiserver.New(st, nil, nil, apiserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close(); st.Close() })
	return func(t *testing.T, path, accept string) (int, []byte) {
		t.Helper()
		return fetch(t, http.DefaultClient, hs.URL+path, accept)
	}
}

// What `skiff up`'s API says about Skiff's kinds is what kube-apiserver says with deploy/crds
// installed: aggregated discovery (names, scope, verbs, short names, categories, the status
// subresource), table columns, the kinds' OpenAPI schemas, and the Status of a missing
// object. And the core schemas it serves (controlplane/apiserver/openapi/core-v1.json) are
// kube-apiserver's own: SKIFF_UPDATE_OPENAPI=1 writes them again from this kube-apiserver.
func TestLocalAPIMatchesKubeAPIServer(t *testing.T) {
	c := startCluster(t)
	kube, skiff := kubeGetter(c), skiffGetter(t)

	t.Run("core schemas", func(t *testing.T) { checkCoreSchemas(t, kube) })
	// kube-apiserver publishes a CRD's discovery and OpenAPI shortly after it is established.
	for _, k := range api.Kinds() {
		eventually(t, 30*time.Second, "kube-apiserver publishing "+k.Kind, func() bool {
			code, body := kube(t, "/openapi/v3/"+strings.TrimPrefix(k.Path(), "/"), "")
			if code != 200 || !strings.Contains(string(body), `"`+openapi.SchemaName(k)+`"`) {
				return false
			}
			code, body = kube(t, "/apis/"+k.Group+"/"+k.Version, "")
			return code == 200 && strings.Contains(string(body), `"name":"`+k.Plural+`"`)
		})
	}

	const agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
	discovered := func(g getter, path string) map[string]apidiscoveryv2.APIResourceDiscovery {
		code, body := g(t, path, agg)
		var list apidiscoveryv2.APIGroupDiscoveryList
		if err := json.Unmarshal(body, &list); code != 200 || err != nil {
			t.Fatalf("%s: %d %v", path, code, err)
		}
		out := map[string]apidiscoveryv2.APIResourceDiscovery{}
		for _, gr := range list.Items {
			for _, v := range gr.Versions {
				for _, r := range v.Resources {
					slices.Sort(r.Verbs)
					out[gr.Name+"/"+v.Version+"/"+r.Resource] = r
				}
			}
		}
		return out
	}
	kubeRes := discovered(kube, "/apis")
	for k, v := range discovered(kube, "/api") {
		kubeRes[k] = v
	}
	skiffRes := discovered(skiff, "/apis")
	for k, v := range discovered(skiff, "/api") {
		skiffRes[k] = v
	}
	for _, k := range api.ServedKinds() {
		key := k.Group + "/" + k.Version + "/" + k.Plural
		want, got := kubeRes[key], skiffRes[key]
		if want.Resource == "" || got.Resource == "" {
			t.Errorf("%s: discovered by kube-apiserver %v, by skiff %v", key, want.Resource != "", got.Resource != "")
			continue
		}
		if want.Scope != got.Scope || want.SingularResource != got.SingularResource || !slices.Equal(want.Verbs, got.Verbs) ||
			!slices.Equal(want.ShortNames, got.ShortNames) || !slices.Equal(want.Categories, got.Categories) {
			t.Errorf("%s: skiff %+v, kube-apiserver %+v", key, got, want)
		}
		for _, sub := range got.Subresources {
			if !slices.ContainsFunc(want.Subresources, func(w apidiscoveryv2.APISubresourceDiscovery) bool {
				return w.Subresource == sub.Subresource && slices.Equal(w.Verbs, sub.Verbs)
			}) {
				t.Errorf("%s: subresource %+v, kube-apiserver has %+v", key, sub, want.Subresources)
			}
		}
		// Table columns, from an empty list (for the core kinds, their names and types).
		path := k.CollectionPath("default")
		const table = "application/json;as=Table;v=v1;g=meta.k8s.io"
		columns := func(g getter) []metav1.TableColumnDefinition {
			code, body := g(t, path, table)
			var tbl metav1.Table
			if err := json.Unmarshal(body, &tbl); code != 200 || err != nil {
				t.Fatalf("%s as a table: %d %v %s", path, code, err, body)
			}
			if k.Group == "" {
				for i := range tbl.ColumnDefinitions {
					tbl.ColumnDefinitions[i].Description = ""
				}
			}
			return tbl.ColumnDefinitions
		}
		if w, g := columns(kube), columns(skiff); !slices.Equal(w, g) {
			t.Errorf("%s columns:\n skiff %+v\n kube  %+v", k.Kind, g, w)
		}
		if k.Group == "" {
			continue
		}
		// The kind's schema: spec and status as the CRD has them.
		schema := func(g getter) map[string]any {
			code, body := g(t, "/openapi/v3/"+strings.TrimPrefix(k.Path(), "/"), "")
			var doc struct {
				Components struct {
					Schemas map[string]map[string]any `json:"schemas"`
				} `json:"components"`
			}
			if err := json.Unmarshal(body, &doc); code != 200 || err != nil {
				t.Fatalf("openapi %s: %d %v", k.Path(), code, err)
			}
			return doc.Components.Schemas[openapi.SchemaName(k)]
		}
		w, g := schema(kube), schema(skiff)
		for _, part := range []string{"spec", "status"} {
			wj, _ := json.Marshal(w["properties"].(map[string]any)[part])
			gj, _ := json.Marshal(g["properties"].(map[string]any)[part])
			if string(wj) != string(gj) {
				t.Errorf("%s schema of %s:\n skiff %s\n kube  %s", k.Kind, part, gj, wj)
			}
		}
		if !jsonEqual(w["x-kubernetes-group-version-kind"], g["x-kubernetes-group-version-kind"]) {
			t.Errorf("%s x-kubernetes-group-version-kind: skiff %v, kube %v", k.Kind, g["x-kubernetes-group-version-kind"], w["x-kubernetes-group-version-kind"])
		}
		// A missing object's Status.
		_, wb := kube(t, path+"/nope", "")
		_, gb := skiff(t, path+"/nope", "")
		var ws, gs metav1.Status
		_ = json.Unmarshal(wb, &ws)
		_ = json.Unmarshal(gb, &gs)
		if ws.Message != gs.Message || ws.Reason != gs.Reason || ws.Code != gs.Code || !jsonEqual(ws.Details, gs.Details) {
			t.Errorf("%s not found:\n skiff %+v\n kube  %+v", k.Kind, gs, ws)
		}
	}
}

func jsonEqual(a, b any) bool {
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	return string(aj) == string(bj)
}

// checkCoreSchemas compares core-v1.json with kube-apiserver's schemas for the core kinds
// Skiff serves and the meta types, pruned to what they refer to.
func checkCoreSchemas(t *testing.T, kube getter) {
	code, body := kube(t, "/openapi/v3/api/v1", "")
	var doc struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(body, &doc); code != 200 || err != nil {
		t.Fatalf("kube-apiserver /openapi/v3/api/v1: %d %v", code, err)
	}
	all := doc.Components.Schemas
	var roots []string
	for _, k := range api.CoreKinds() {
		roots = append(roots, "io.k8s.api.core.v1."+k.Kind, "io.k8s.api.core.v1."+k.Kind+"List")
	}
	for _, m := range []string{"DeleteOptions", "Status", "Patch", "WatchEvent", "ListMeta", "ObjectMeta"} {
		roots = append(roots, "io.k8s.apimachinery.pkg.apis.meta.v1."+m)
	}
	keep := map[string]json.RawMessage{}
	var walk func(name string)
	walk = func(name string) {
		if _, ok := keep[name]; ok {
			return
		}
		s, ok := all[name]
		if !ok {
			t.Fatalf("kube-apiserver has no schema %s", name)
		}
		keep[name] = s
		for _, ref := range refs(s) {
			walk(ref)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	want, err := json.MarshalIndent(map[string]any{"components": map[string]any{"schemas": keep}}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	path := filepath.Join(moduleRoot(t), "controlplane", "apiserver", "openapi", "core-v1.json")
	if os.Getenv("SKIFF_UPDATE_OPENAPI") != "" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got, exp any
	if err := json.Unmarshal([]byte(mustRead(t, path)), &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(want, &exp)
	if !jsonEqual(got, exp) {
		t.Errorf("%s is not kube-apiserver's (run this test with SKIFF_UPDATE_OPENAPI=1 to write it again)", path)
	}
}

// refs lists the schema names a schema refers to ($ref).
func refs(raw json.RawMessage) []string {
	var v any
	_ = json.Unmarshal(raw, &v)
	var out []string
	var visit func(v any)
	visit = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					out = append(out, strings.TrimPrefix(s, "#/components/schemas/"))
					continue
				}
				visit(x)
			}
		case []any:
			for _, x := range v {
				visit(x)
			}
		}
	}
	visit(v)
	return out
}
