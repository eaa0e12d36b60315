package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/controlplane/store"
)

var (
	ksvcGVR = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "services"}
	revGVR  = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "revisions"}
	cmGVR   = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	nsGVR   = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// kubeAPI is the API on a loopback HTTP server, with client-go clients for it.
type kubeAPI struct {
	url   string
	store *store.Store
	srv   *Server
	rest  *rest.Config
	dyn   *dynamic.DynamicClient
	disco *discovery.DiscoveryClient
}

func startAPI(t *testing.T, history int, opts Options) *kubeAPI {
	t.Helper()
	st, err := store.OpenWith(t.TempDir(), store.Options{History: history})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(st, nil, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		st.Close()
	})
	cfg := &rest.Config{Host: hs.URL, WarningHandler: rest.NoWarnings{}}
	return &kubeAPI{url: hs.URL, store: st, srv: srv, rest: cfg,
		dyn: dynamic.NewForConfigOrDie(cfg), disco: discovery.NewDiscoveryClientForConfigOrDie(cfg)}
}

func ksvc(name string, traffic ...map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "serving.knative.dev/v1", "kind": "Service",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"image": "ko://example.com/app"}}}}},
	}}
	if len(traffic) > 0 {
		var tr []any
		for _, t := range traffic {
			tr = append(tr, t)
		}
		u.Object["spec"].(map[string]any)["traffic"] = tr
	}
	return u
}

func (a *kubeAPI) services() dynamic.ResourceInterface {
	return a.dyn.Resource(ksvcGVR).Namespace("default")
}

// raw does one request and returns the status code, headers and body.
func (a *kubeAPI) raw(t *testing.T, method, path, contentType, accept, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// Discovery reports Skiff's kinds with the short names and categories Knative's CRDs declare
// (serving config/core/300-resources/service.yaml: kservice, ksvc; all, knative, serving),
// so that kubectl's RESTMapper resolves `ksvc` and `knative` as with Knative installed.
func TestDiscovery(t *testing.T) {
	a := startAPI(t, 0, Options{})
	groups, resources, err := a.disco.ServerGroupsAndResources() // aggregated discovery, as kubectl asks
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.Name)
	}
	for _, want := range []string{"", "serving.knative.dev", "eventing.knative.dev", "sources.knative.dev"} {
		if !slices.Contains(names, want) {
			t.Errorf("groups %q: %q missing", names, want)
		}
	}
	find := func(gv, name string) *metav1.APIResource {
		for _, l := range resources {
			if l.GroupVersion == gv {
				for i := range l.APIResources {
					if l.APIResources[i].Name == name {
						return &l.APIResources[i]
					}
				}
			}
		}
		t.Fatalf("%s %s not discovered", gv, name)
		return nil
	}
	svc := find("serving.knative.dev/v1", "services")
	if !slices.Equal(svc.ShortNames, []string{"kservice", "ksvc"}) || !slices.Equal(svc.Categories, []string{"all", "knative", "serving"}) ||
		!svc.Namespaced || svc.Kind != "Service" || svc.SingularName != "service" || !slices.Contains(svc.Verbs, "watch") || !slices.Contains(svc.Verbs, "patch") {
		t.Errorf("services: %+v", svc)
	}
	if st := find("serving.knative.dev/v1", "services/status"); !slices.Equal(st.Verbs, []string{"get", "patch", "update"}) {
		t.Errorf("services/status: %+v", st)
	}
	if ns := find("v1", "namespaces"); ns.Namespaced || !slices.Equal(ns.ShortNames, []string{"ns"}) {
		t.Errorf("namespaces: %+v", ns)
	}
	for _, name := range []string{"secrets", "configmaps", "serviceaccounts"} {
		find("v1", name)
	}
	// kubectl's RESTMapper resolves short names and categories from this.
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memCache{a.disco})
	expander := restmapper.NewShortcutExpander(mapper, a.disco, nil)
	for short, plural := range map[string]string{"ksvc": "services", "kservice": "services", "cfg": "configurations", "rev": "revisions", "rt": "routes", "ns": "namespaces"} {
		gvr, err := expander.ResourceFor(schema.GroupVersionResource{Resource: short})
		if err != nil || gvr.Resource != plural {
			t.Errorf("%s: %v %v, want %s", short, gvr, err, plural)
		}
	}
	cats, ok := restmapper.NewDiscoveryCategoryExpander(a.disco).Expand("knative")
	if !ok || len(cats) < 8 {
		t.Errorf("category knative: %v", cats)
	}
	// Legacy discovery too (clients that do not ask for the aggregated form).
	code, _, body := a.raw(t, http.MethodGet, "/apis/serving.knative.dev/v1", "", "", "")
	var list metav1.APIResourceList
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || list.GroupVersion != "serving.knative.dev/v1" || len(list.APIResources) != 8 {
		t.Errorf("legacy discovery: %d %v %s", code, err, body)
	}
	if code, _, body := a.raw(t, http.MethodGet, "/apis", "", "", ""); code != 200 || !strings.Contains(body, `"APIGroupList"`) {
		t.Errorf("/apis: %d %s", code, body)
	}
}

type memCache struct{ *discovery.DiscoveryClient }

func (memCache) Fresh() bool { return true }
func (memCache) Invalidate() {}

// /version is a Kubernetes version, that of the apimachinery the API follows (go.mod).
func TestVersion(t *testing.T) {
	a := startAPI(t, 0, Options{})
	v, err := a.disco.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major+"."+v.Minor != KubernetesVersion || !strings.HasSuffix(v.GitVersion, "+skiff") {
		t.Errorf("version %+v", v)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`k8s.io/apimachinery v0\.(\d+)\.`).FindSubmatch(mod)
	if m == nil || "1."+string(m[1]) != KubernetesVersion {
		t.Errorf("KubernetesVersion %s, go.mod has k8s.io/apimachinery %s: keep them together", KubernetesVersion, m)
	}
}

// The OpenAPI v3 documents carry the schemas of deploy/crds and the operations kubectl looks
// at: PATCH with fieldValidation (kubectl then validates on the server) and, for CRD kinds,
// no strategic merge patch (kubectl then sends a merge patch), as kube-apiserver publishes.
func TestOpenAPI(t *testing.T) {
	a := startAPI(t, 0, Options{})
	paths, err := a.disco.OpenAPIV3().Paths()
	if err != nil {
		t.Fatal(err)
	}
	for _, gv := range []string{"api/v1", "apis/serving.knative.dev/v1", "apis/eventing.knative.dev/v1", "apis/sources.knative.dev/v1"} {
		if paths[gv] == nil {
			t.Fatalf("openapi v3 root: %s missing (%v)", gv, paths)
		}
	}
	read := func(gv string) *spec3.OpenAPI {
		b, err := paths[gv].Schema("application/json")
		if err != nil {
			t.Fatal(err)
		}
		var doc spec3.OpenAPI
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		return &doc
	}
	serving := read("apis/serving.knative.dev/v1")
	svc := serving.Components.Schemas["dev.knative.serving.v1.Service"]
	if svc == nil || svc.Properties["spec"].Properties["traffic"].Items.Schema.Properties["percent"].Type[0] != "integer" {
		t.Fatalf("Service schema: %+v", svc)
	}
	if svc.Extensions["x-kubernetes-group-version-kind"] == nil || serving.Components.Schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] == nil {
		t.Errorf("Service schema without its kind or ObjectMeta")
	}
	patch := serving.Paths.Paths["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"].Patch
	var params []string
	for _, p := range patch.Parameters {
		params = append(params, p.Name)
	}
	if _, smp := patch.RequestBody.Content["application/strategic-merge-patch+json"]; smp || patch.RequestBody.Content["application/apply-patch+yaml"] == nil ||
		!slices.Contains(params, "fieldValidation") || !slices.Contains(params, "force") {
		t.Errorf("services PATCH: params %v, content %v", params, patch.RequestBody.Content)
	}
	core := read("api/v1")
	cmPatch := core.Paths.Paths["/api/v1/namespaces/{namespace}/configmaps/{name}"].Patch
	if cmPatch.RequestBody.Content["application/strategic-merge-patch+json"] == nil {
		t.Errorf("configmaps PATCH: no strategic merge patch")
	}
	if core.Paths.Paths["/api/v1/namespaces/{name}"] == nil || core.Components.Schemas["io.k8s.api.core.v1.Namespace"] == nil {
		t.Errorf("namespaces (cluster-scoped) missing")
	}
}

func getTable(t *testing.T, a *kubeAPI, path string) metav1.Table {
	t.Helper()
	code, _, body := a.raw(t, http.MethodGet, path, "", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json", "")
	var tbl metav1.Table
	if err := json.Unmarshal([]byte(body), &tbl); code != 200 || err != nil {
		t.Fatalf("table %s: %d %v %s", path, code, err, body)
	}
	return tbl
}

func columnNames(tbl metav1.Table) []string {
	var out []string
	for _, c := range tbl.ColumnDefinitions {
		out = append(out, c.Name)
	}
	return out
}

// Tables have the columns of Knative's CRDs (additionalPrinterColumns), filled as
// kube-apiserver fills them (nil when the path finds nothing), and the core kinds kube's.
func TestTables(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	svc, err := a.services().Create(ctx, ksvc("hello"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Object["status"] = map[string]any{
		"url": "http://hello.default.localhost", "latestCreatedRevisionName": "hello-00001", "latestReadyRevisionName": "hello-00001",
		"conditions": []any{map[string]any{"type": "Ready", "status": "False", "reason": "RevisionFailed"}},
	}
	if _, err := a.services().UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	tbl := getTable(t, a, "/apis/serving.knative.dev/v1/namespaces/default/services")
	// serving config/core/300-resources/service.yaml additionalPrinterColumns.
	if got, want := columnNames(tbl), []string{"Name", "URL", "LatestCreated", "LatestReady", "Ready", "Reason"}; !slices.Equal(got, want) {
		t.Errorf("ksvc columns %v, want %v", got, want)
	}
	if len(tbl.Rows) != 1 || !slices.Equal(tbl.Rows[0].Cells, []any{"hello", "http://hello.default.localhost", "hello-00001", "hello-00001", "False", "RevisionFailed"}) {
		t.Errorf("ksvc rows %+v", tbl.Rows)
	}
	var meta metav1.PartialObjectMetadata
	if err := json.Unmarshal(tbl.Rows[0].Object.Raw, &meta); err != nil || meta.Name != "hello" || meta.Kind != "PartialObjectMetadata" {
		t.Errorf("row object %s: %v", tbl.Rows[0].Object.Raw, err)
	}
	// One object as a table too (kubectl get ksvc hello).
	if one := getTable(t, a, "/apis/serving.knative.dev/v1/namespaces/default/services/hello"); len(one.Rows) != 1 {
		t.Errorf("get as table: %+v", one)
	}
	// A revision's integer columns; unset ones are null (kubectl prints <none>).
	rev := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
		"metadata": map[string]any{"name": "r", "namespace": "default", "labels": map[string]any{"serving.knative.dev/configurationGeneration": "3"}},
		"spec":     map[string]any{"containers": []any{map[string]any{"image": "ko://example.com/app"}}}}}
	rv, err := a.dyn.Resource(revGVR).Namespace("default").Create(ctx, rev, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv.Object["status"] = map[string]any{"actualReplicas": int64(2)}
	if _, err := a.dyn.Resource(revGVR).Namespace("default").UpdateStatus(ctx, rv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	tbl = getTable(t, a, "/apis/serving.knative.dev/v1/namespaces/default/revisions")
	if got, want := columnNames(tbl), []string{"Name", "Config Name", "Generation", "Ready", "Reason", "Actual Replicas", "Desired Replicas"}; !slices.Equal(got, want) {
		t.Errorf("revision columns %v, want %v", got, want)
	}
	if c := tbl.Rows[0].Cells; c[1] != nil || c[2] != "3" || c[3] != nil || c[5] != float64(2) || c[6] != nil {
		t.Errorf("revision cells %#v", c)
	}
	if _, err := a.dyn.Resource(cmGVR).Namespace("default").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"}, "data": map[string]any{"a": "1", "b": "2"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tbl = getTable(t, a, "/api/v1/namespaces/default/configmaps")
	if got := columnNames(tbl); !slices.Equal(got, []string{"Name", "Data", "Age"}) || tbl.Rows[0].Cells[1] != float64(2) {
		t.Errorf("configmap table %v %v", got, tbl.Rows)
	}
}

// Lists honour label and field selectors, refusing a field the API server does not select on.
func TestListSelectors(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		s := ksvc(n)
		s.SetLabels(map[string]string{"tier": map[bool]string{true: "web", false: "batch"}[n != "c"]})
		if _, err := a.services().Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	names := func(opts metav1.ListOptions) []string {
		l, err := a.dyn.Resource(ksvcGVR).List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, i := range l.Items {
			out = append(out, i.GetName())
		}
		if l.GetResourceVersion() == "" {
			t.Errorf("list without a resourceVersion")
		}
		return out
	}
	if got := names(metav1.ListOptions{LabelSelector: "tier=web"}); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("tier=web: %v", got)
	}
	if got := names(metav1.ListOptions{LabelSelector: "tier!=web,tier"}); !slices.Equal(got, []string{"c"}) {
		t.Errorf("tier!=web: %v", got)
	}
	if got := names(metav1.ListOptions{FieldSelector: "metadata.name=b,metadata.namespace=default"}); !slices.Equal(got, []string{"b"}) {
		t.Errorf("metadata.name=b: %v", got)
	}
	_, err := a.dyn.Resource(ksvcGVR).List(ctx, metav1.ListOptions{FieldSelector: "spec.x=b"})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "field label not supported: spec.x") {
		t.Errorf("unsupported field: %v", err)
	}
	// deletecollection deletes what the selector matches, nothing else.
	if err := a.services().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "tier=web"}); err != nil {
		t.Fatal(err)
	}
	if got := names(metav1.ListOptions{}); !slices.Equal(got, []string{"c"}) {
		t.Errorf("after deleting tier=web: %v", got)
	}
}

type seen struct {
	typ  watch.EventType
	name string
}

func next(t *testing.T, w watch.Interface) (watch.Event, seen) {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch ended")
		}
		name := ""
		if m, ok := e.Object.(metav1.Object); ok {
			name = m.GetName()
		}
		return e, seen{e.Type, name}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return watch.Event{}, seen{}
}

// A watch from a list's resourceVersion sees every later change in order; one whose label
// selector an object stops (starts) matching sees it DELETED (ADDED); "0" begins with the
// current state and, with bookmarks, the initial-events-end bookmark.
func TestWatch(t *testing.T) {
	a := startAPI(t, 0, Options{BookmarkInterval: 100 * time.Millisecond})
	ctx := context.Background()
	if _, err := a.services().Create(ctx, ksvc("old"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := a.services().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.services().Watch(ctx, metav1.ListOptions{ResourceVersion: l.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	web, err := a.services().Watch(ctx, metav1.ListOptions{ResourceVersion: l.GetResourceVersion(), LabelSelector: "tier=web"})
	if err != nil {
		t.Fatal(err)
	}
	defer web.Stop()
	s := ksvc("hello")
	s.SetLabels(map[string]string{"tier": "web"})
	if s, err = a.services().Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.SetLabels(map[string]string{"tier": "batch"})
	if s, err = a.services().Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.services().Delete(ctx, "hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []seen{{watch.Added, "hello"}, {watch.Modified, "hello"}, {watch.Deleted, "hello"}} {
		if _, got := next(t, w); got != want {
			t.Errorf("watch: %v, want %v", got, want)
		}
	}
	for _, want := range []seen{{watch.Added, "hello"}, {watch.Deleted, "hello"}} {
		if _, got := next(t, web); got != want {
			t.Errorf("watch tier=web: %v, want %v", got, want)
		}
	}

	// resourceVersion 0: the current state first, then the bookmark that ends it, then
	// periodic bookmarks.
	w0, err := a.services().Watch(ctx, metav1.ListOptions{ResourceVersion: "0", AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w0.Stop()
	if _, got := next(t, w0); got != (seen{watch.Added, "old"}) {
		t.Errorf("initial event %v", got)
	}
	e, got := next(t, w0)
	if got.typ != watch.Bookmark || e.Object.(metav1.Object).GetAnnotations()[metav1.InitialEventsAnnotationKey] != "true" {
		t.Errorf("after the initial events: %v %v", got, e.Object)
	}
	if _, got := next(t, w0); got.typ != watch.Bookmark {
		t.Errorf("periodic bookmark: %v", got)
	}
}

// A watch from a resourceVersion the history no longer holds gets 410 Expired (the client
// lists again); one from a resourceVersion not reached yet 504 with ResourceVersionTooLarge.
func TestWatchExpiredAndTooLarge(t *testing.T) {
	a := startAPI(t, 2, Options{})
	ctx := context.Background()
	first, err := a.services().Create(ctx, ksvc("a"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b", "c", "d"} {
		if _, err := a.services().Create(ctx, ksvc(n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := a.services().Watch(ctx, metav1.ListOptions{ResourceVersion: first.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := next(t, w)
	if st, ok := e.Object.(*metav1.Status); e.Type != watch.Error || !ok || st.Code != http.StatusGone || st.Reason != metav1.StatusReasonExpired {
		t.Errorf("too old: %v %+v", e.Type, e.Object)
	}
	w.Stop()
	start := time.Now()
	_, err = a.services().Watch(ctx, metav1.ListOptions{ResourceVersion: "999999"})
	if !apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge) || !apierrors.IsTimeout(err) {
		t.Errorf("too large: %v", err)
	}
	if d := time.Since(start); d < tooLargeWait-time.Second {
		t.Errorf("too large answered after %s, want a wait of %s first", d, tooLargeWait)
	}
}

// Optimistic concurrency: an update naming an old resourceVersion is 409 Conflict, one
// naming none is refused for a CRD kind, as by kube-apiserver.
func TestUpdateConflict(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	s, err := a.services().Create(ctx, ksvc("hello"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := s.DeepCopy()
	s.SetLabels(map[string]string{"a": "b"})
	if _, err := a.services().Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = a.services().Update(ctx, stale, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `Operation cannot be fulfilled on services.serving.knative.dev "hello": the object has been modified`) {
		t.Errorf("stale update: %v", err)
	}
	stale.SetResourceVersion("")
	if _, err = a.services().Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.resourceVersion") {
		t.Errorf("update without resourceVersion: %v", err)
	}
	if _, err := a.services().Create(ctx, ksvc("hello"), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("create existing: %v", err)
	}
	_, err = a.services().Get(ctx, "nope", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != `services.serving.knative.dev "nope" not found` {
		t.Errorf("get missing: %v", err)
	}
}

// Patches go through admission like any write: a traffic split patched in is defaulted and
// validated (a bad one refused naming the field), a strategic merge patch of a CRD kind is
// 415 (kubectl then sends a merge patch), a JSON patch whose test fails is 422.
func TestPatch(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	if _, err := a.services().Create(ctx, ksvc("hello"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	split := `{"spec":{"traffic":[{"revisionName":"hello-00001","percent":50},{"latestRevision":true,"percent":50,"tag":"candidate"}]}}`
	got, err := a.services().Patch(ctx, "hello", types.MergePatchType, []byte(split), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, _, _ := unstructured.NestedSlice(got.Object, "spec", "traffic")
	if len(tr) != 2 || tr[0].(map[string]any)["latestRevision"] != false {
		t.Errorf("patched traffic %v (Knative defaults latestRevision: false on a named revision)", tr)
	}
	_, err = a.services().Patch(ctx, "hello", types.MergePatchType, []byte(`{"spec":{"traffic":[{"latestRevision":true,"percent":90}]}}`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "Traffic targets sum to 90, want 100: spec.traffic") {
		t.Errorf("bad traffic by patch: %v", err)
	}
	_, err = a.services().Patch(ctx, "hello", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/traffic/0/percent","value":40},{"op":"replace","path":"/spec/traffic/1/percent","value":60}]`), metav1.PatchOptions{})
	if err != nil {
		t.Errorf("JSON patch: %v", err)
	}
	_, err = a.services().Patch(ctx, "hello", types.JSONPatchType, []byte(`[{"op":"test","path":"/metadata/name","value":"other"}]`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("failed JSON patch test: %v", err)
	}
	_, err = a.services().Patch(ctx, "hello", types.StrategicMergePatchType, []byte(`{}`), metav1.PatchOptions{})
	if !apierrors.IsUnsupportedMediaType(err) {
		t.Errorf("strategic merge patch of a CRD kind: %v", err)
	}
	_, err = a.services().Patch(ctx, "hello", types.MergePatchType, []byte(`{"metadata":{"resourceVersion":"1","labels":{"x":"y"}}}`), metav1.PatchOptions{})
	if !apierrors.IsConflict(err) {
		t.Errorf("patch naming a stale resourceVersion: %v", err)
	}
	// A core kind takes a strategic merge patch (kubectl's for built-in types).
	cms := a.dyn.Resource(cmGVR).Namespace("default")
	if _, err := cms.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "c"}, "data": map[string]any{"a": "1"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Patch(ctx, "c", types.StrategicMergePatchType, []byte(`{"data":{"b":"2"}}`), metav1.PatchOptions{})
	if d, _, _ := unstructured.NestedStringMap(cm.Object, "data"); err != nil || len(d) != 2 {
		t.Errorf("strategic merge patch of a ConfigMap: %v %v", d, err)
	}
}

// Server-side apply: the same configuration applied twice by one manager changes nothing;
// another manager setting a field the first owns is 409 naming it, as kube-apiserver
// reports (FieldManagerConflict causes), until it forces; admission applies to the result.
func TestServerSideApply(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	cfg := ksvc("hello", map[string]any{"latestRevision": true, "percent": int64(100)})
	first, err := a.services().Apply(ctx, "hello", cfg, metav1.ApplyOptions{FieldManager: "kubectl"})
	if err != nil {
		t.Fatal(err)
	}
	if mf := first.GetManagedFields(); len(mf) != 1 || mf[0].Manager != "kubectl" || mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("managedFields %+v", mf)
	}
	if c, _, _ := unstructured.NestedSlice(first.Object, "spec", "template", "spec", "containers"); c[0].(map[string]any)["name"] != "user-container" {
		t.Errorf("apply was not defaulted: %v", c)
	}
	again, err := a.services().Apply(ctx, "hello", cfg, metav1.ApplyOptions{FieldManager: "kubectl"})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetResourceVersion() != first.GetResourceVersion() || again.GetGeneration() != 1 {
		t.Errorf("second identical apply changed the object: rv %s -> %s, generation %d", first.GetResourceVersion(), again.GetResourceVersion(), again.GetGeneration())
	}
	// Another manager applies the traffic alone.
	other := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "serving.knative.dev/v1", "kind": "Service",
		"metadata": map[string]any{"name": "hello", "namespace": "default"},
		"spec":     map[string]any{"traffic": []any{map[string]any{"latestRevision": true, "percent": int64(100), "tag": "x"}}}}}
	_, err = a.services().Apply(ctx, "hello", other, metav1.ApplyOptions{FieldManager: "other"})
	var se *apierrors.StatusError
	if !apierrors.IsConflict(err) || !errorsAs(err, &se) || len(se.ErrStatus.Details.Causes) != 1 ||
		se.ErrStatus.Details.Causes[0].Type != metav1.CauseTypeFieldManagerConflict || se.ErrStatus.Details.Causes[0].Field != ".spec.traffic" ||
		!strings.Contains(err.Error(), `Apply failed with 1 conflict: conflict with "kubectl"`) {
		t.Errorf("conflicting apply: %v", err)
	}
	forced, err := a.services().Apply(ctx, "hello", other, metav1.ApplyOptions{FieldManager: "other", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if tr, _, _ := unstructured.NestedSlice(forced.Object, "spec", "traffic"); tr[0].(map[string]any)["tag"] != "x" {
		t.Errorf("forced apply: %v", tr)
	}
	bad := other.DeepCopy()
	bad.Object["spec"] = map[string]any{"traffic": []any{map[string]any{"latestRevision": true, "percent": int64(90)}}}
	if _, err := a.services().Apply(ctx, "hello", bad, metav1.ApplyOptions{FieldManager: "other", Force: true}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "spec.traffic") {
		t.Errorf("invalid apply: %v", err)
	}
	code, _, body := a.raw(t, http.MethodPatch, "/apis/serving.knative.dev/v1/namespaces/default/services/hello", "application/apply-patch+yaml", "", "{}")
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "fieldManager: Required value") {
		t.Errorf("apply without a fieldManager: %d %s", code, body)
	}
}

func errorsAs(err error, se **apierrors.StatusError) bool {
	s, ok := err.(*apierrors.StatusError)
	*se = s
	return ok
}

// Deletion with finalizers through the API: the object is marked and answered, a watch sees
// it modified, then deleted once its finalizer is patched away; preconditions are checked.
func TestDeleteWithFinalizers(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	cms := a.dyn.Resource(cmGVR).Namespace("default")
	cm, err := cms.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "f", "finalizers": []any{"example.com/hold"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: cm.GetResourceVersion(), FieldSelector: "metadata.name=f"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	err = cms.Delete(ctx, "f", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("other"))}})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "the UID in the precondition (other) does not match") {
		t.Errorf("uid precondition: %v", err)
	}
	if err := cms.Delete(ctx, "f", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	if e, got := next(t, w); got != (seen{watch.Modified, "f"}) || e.Object.(metav1.Object).GetDeletionTimestamp() == nil {
		t.Errorf("after delete: %v", got)
	}
	if _, err := cms.Patch(ctx, "f", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, got := next(t, w); got != (seen{watch.Deleted, "f"}) {
		t.Errorf("after the finalizer went: %v", got)
	}
	if _, err := cms.Get(ctx, "f", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("still there: %v", err)
	}
	code, _, body := a.raw(t, http.MethodDelete, "/api/v1/namespaces/default/configmaps/x", "application/json", "", `{"propagationPolicy":"Sometimes"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "propagationPolicy") {
		t.Errorf("bad propagationPolicy: %d %s", code, body)
	}
}

// The status subresource: a write of the object keeps the stored status, a write of status
// changes nothing else, as for a Knative CRD.
func TestStatusSubresource(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	s, err := a.services().Create(ctx, ksvc("hello"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Object["status"] = map[string]any{"url": "http://x"}
	s.SetLabels(map[string]string{"ignored": "yes"})
	got, err := a.services().UpdateStatus(ctx, s, metav1.UpdateOptions{FieldManager: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	if url, _, _ := unstructured.NestedString(got.Object, "status", "url"); url != "http://x" || got.GetLabels()["ignored"] != "" {
		t.Errorf("status write: url %q, labels %v", url, got.GetLabels())
	}
	if mf := got.GetManagedFields(); !slices.ContainsFunc(mf, func(e metav1.ManagedFieldsEntry) bool { return e.Manager == "tester" && e.Subresource == "status" }) {
		t.Errorf("status write's managedFields %+v", mf)
	}
	got.Object["status"] = map[string]any{"url": "http://y"}
	after, err := a.services().Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if url, _, _ := unstructured.NestedString(after.Object, "status", "url"); url != "http://x" {
		t.Errorf("an object write changed status to %q", url)
	}
}

// dryRun=All: admitted and answered, never stored.
func TestDryRun(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	dry := []string{metav1.DryRunAll}
	created, err := a.services().Create(ctx, ksvc("dry"), metav1.CreateOptions{DryRun: dry})
	if err != nil || created.GetUID() == "" || created.GetResourceVersion() != "" {
		t.Fatalf("dry-run create: %v %v", err, created)
	}
	if _, err := a.services().Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run create stored: %v", err)
	}
	if _, err := a.services().Create(ctx, ksvc("hello", map[string]any{"latestRevision": true, "percent": int64(90)}), metav1.CreateOptions{DryRun: dry}); !apierrors.IsInvalid(err) {
		t.Errorf("dry run is admitted: %v", err)
	}
	if _, err := a.services().Create(ctx, ksvc("hello"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	live, err := a.services().Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	patched, err := a.services().Patch(ctx, "hello", types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`), metav1.PatchOptions{DryRun: dry})
	if err != nil || patched.GetLabels()["a"] != "b" || patched.GetResourceVersion() != live.GetResourceVersion() {
		t.Fatalf("dry-run patch: %v %v, resourceVersion %s (stored %s)", err, patched.GetLabels(), patched.GetResourceVersion(), live.GetResourceVersion())
	}
	if err := a.services().Delete(ctx, "hello", metav1.DeleteOptions{DryRun: dry}); err != nil {
		t.Fatal(err)
	}
	got, err := a.services().Get(ctx, "hello", metav1.GetOptions{})
	if err != nil || len(got.GetLabels()) != 0 {
		t.Errorf("after dry-run patch and delete: %v %v", got.GetLabels(), err)
	}
	code, _, body := a.raw(t, http.MethodPost, "/apis/serving.knative.dev/v1/namespaces/default/services?dryRun=Some", "application/json", "", "{}")
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "dryRun") {
		t.Errorf("bad dryRun: %d %s", code, body)
	}
}

// Namespaces are cluster-scoped; deleting one deletes what is in it.
func TestNamespaces(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	if err := a.srv.EnsureNamespace(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	nss := a.dyn.Resource(nsGVR)
	if _, err := nss.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "team"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err := nss.Get(ctx, "team", metav1.GetOptions{})
	if phase, _, _ := unstructured.NestedString(ns.Object, "status", "phase"); err != nil || phase != "Active" || ns.GetLabels()["kubernetes.io/metadata.name"] != "team" {
		t.Errorf("namespace: %v %v", ns, err)
	}
	if _, err := nss.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "Bad_Name"}}}, metav1.CreateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("bad namespace name: %v", err)
	}
	s := ksvc("in-team")
	s.SetNamespace("team")
	if _, err := a.dyn.Resource(ksvcGVR).Namespace("team").Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nss.Delete(ctx, "team", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.dyn.Resource(ksvcGVR).Namespace("team").Get(ctx, "in-team", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a deleted namespace's service: %v", err)
	}
	l, err := nss.List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.Items[0].GetName() != "default" {
		t.Errorf("namespaces: %v %v", l, err)
	}
}

// Watches are bounded (one more is 429, which clients retry) and end when the API closes,
// so that shutting down does not wait for them.
func TestWatchesBoundedAndClosed(t *testing.T) {
	a := startAPI(t, 0, Options{MaxWatches: 1})
	ctx := context.Background()
	w, err := a.services().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := a.services().Watch(ctx, metav1.ListOptions{}); !apierrors.IsTooManyRequests(err) {
		t.Errorf("a watch over the bound: %v", err)
	}
	a.srv.Close()
	select {
	case _, ok := <-w.ResultChan():
		for ok {
			_, ok = <-w.ResultChan()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end when the API closed")
	}
}

// Server-side apply of a core kind, with kube-apiserver's schema (core-v1.json): two
// managers own a key of data each, and neither removes the other's.
func TestServerSideApplyCoreKind(t *testing.T) {
	a := startAPI(t, 0, Options{})
	ctx := context.Background()
	cms := a.dyn.Resource(cmGVR).Namespace("default")
	cm := func(key string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "shared"}, "data": map[string]any{key: "1"}}}
	}
	if _, err := cms.Apply(ctx, "shared", cm("a"), metav1.ApplyOptions{FieldManager: "one"}); err != nil {
		t.Fatal(err)
	}
	got, err := cms.Apply(ctx, "shared", cm("b"), metav1.ApplyOptions{FieldManager: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if d, _, _ := unstructured.NestedStringMap(got.Object, "data"); len(d) != 2 || len(got.GetManagedFields()) != 2 {
		t.Errorf("data %v, managedFields %+v: want both keys, one manager each", d, got.GetManagedFields())
	}
	// "one" applies without its key: it goes, "two"'s stays.
	empty := cm("a")
	delete(empty.Object, "data")
	got, err = cms.Apply(ctx, "shared", empty, metav1.ApplyOptions{FieldManager: "one"})
	if d, _, _ := unstructured.NestedStringMap(got.Object, "data"); err != nil || len(d) != 1 || d["b"] != "1" {
		t.Errorf("after one dropped its key: %v %v", d, err)
	}
}

// A create does not take the status its creator sends, for a kind with the status
// subresource (the controller writes it), as kube-apiserver drops it for a CRD.
func TestCreateDropsStatus(t *testing.T) {
	a := startAPI(t, 0, Options{})
	s := ksvc("hello")
	s.Object["status"] = map[string]any{"url": "http://forged"}
	got, err := a.services().Create(context.Background(), s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if url, _, _ := unstructured.NestedString(got.Object, "status", "url"); url != "" {
		t.Errorf("created with status.url %q", url)
	}
}
