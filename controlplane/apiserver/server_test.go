package apiserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/fielderr"
	"github.com/skiff-dev/skiff/controlplane/store"
)

const svcPath = "/apis/serving.knative.dev/v1/namespaces/default/services/hello"

const svc = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: ko://example.com/app
`

func do(t *testing.T, srv http.Handler, method, path, body string) (int, metav1.Status, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	data, _ := io.ReadAll(rec.Body)
	var st metav1.Status
	_ = json.Unmarshal(data, &st)
	return rec.Code, st, string(data)
}

func newServer(t *testing.T, s *store.Store) *Server {
	t.Helper()
	srv, err := New(s, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// apply creates the object at path (POST to its collection), or replaces it (PUT) naming the
// resourceVersion it replaces, as `skiff apply` and `kubectl replace` do.
func apply(t *testing.T, srv http.Handler, path, body string) (int, metav1.Status, string) {
	t.Helper()
	code, _, cur := do(t, srv, http.MethodGet, path, "")
	if code == http.StatusNotFound {
		return do(t, srv, http.MethodPost, path[:strings.LastIndex(path, "/")], body)
	}
	var live struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(cur), &live); err != nil {
		t.Fatal(err)
	}
	body = strings.Replace(body, "metadata:\n", fmt.Sprintf("metadata:\n  resourceVersion: %q\n", live.Metadata.ResourceVersion), 1)
	return do(t, srv, http.MethodPut, path, body)
}

func TestAPI(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := newServer(t, s)

	if code, _, body := apply(t, srv, svcPath, svc); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _, body := apply(t, srv, svcPath, svc); code != http.StatusOK {
		t.Fatalf("apply again: %d %s", code, body)
	}
	code, _, body := do(t, srv, http.MethodGet, svcPath, "")
	if code != http.StatusOK || !strings.Contains(body, `"user-container"`) || !strings.Contains(body, `"timeoutSeconds":300`) {
		t.Fatalf("get: %d %s; want the defaulted service", code, body)
	}

	bad := []struct {
		name, body string
		code       int
		reason     metav1.StatusReason
		field      string
	}{
		{"percent sum", svc + "  traffic:\n    - latestRevision: true\n      percent: 90\n", 422, metav1.StatusReasonInvalid, "Traffic targets sum to 90, want 100: spec.traffic"},
		{"unknown field", svc + "  replicas: 2\n", 422, metav1.StatusReasonInvalid, "unknown field: spec.replicas"},
		{"duplicate field", svc + "  template: {}\n", 422, metav1.StatusReasonInvalid, "duplicate field: spec.template"},
		{"bad min-scale", strings.Replace(svc, "  template:\n", "  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/min-scale: \"many\"\n", 1),
			422, metav1.StatusReasonInvalid, "invalid value: many: spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"},
		{"reserved port", svc + "          ports:\n            - containerPort: 8012\n", 422, metav1.StatusReasonInvalid,
			"invalid value: 8012 is a reserved port: spec.template.spec.containers[0].ports.containerPort"},
		{"big annotations", strings.Replace(svc, "  name: hello\n", "  name: hello\n  annotations:\n    big: "+strings.Repeat("x", 256*1024)+"\n", 1),
			422, metav1.StatusReasonInvalid, "metadata.annotations"},
		{"not yaml", "{{{", 400, metav1.StatusReasonBadRequest, ""},
		{"wrong kind", strings.Replace(svc, "kind: Service", "kind: Route", 1), 400, metav1.StatusReasonBadRequest, "kind"},
		{"name mismatch", strings.Replace(svc, "name: hello", "name: other", 1), 400, metav1.StatusReasonBadRequest, "does not match the name on the URL"},
	}
	for _, tc := range bad {
		code, st, body := apply(t, srv, svcPath, tc.body)
		if code != tc.code || st.Reason != tc.reason || !strings.Contains(st.Message, tc.field) {
			t.Errorf("%s: %d %s, want %d %s naming %q", tc.name, code, body, tc.code, tc.reason, tc.field)
		}
	}
	// The refused writes changed nothing.
	if _, _, body := do(t, srv, http.MethodGet, svcPath, ""); strings.Contains(body, "8012") {
		t.Errorf("a refused apply was stored: %s", body)
	}
	// The reserved port is named in the Status' causes too, one per field.
	code, st, _ := apply(t, srv, svcPath, svc+"          ports:\n            - containerPort: 8012\n")
	if code != 422 || st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "spec.template.spec.containers[0].ports.containerPort" {
		t.Errorf("causes: %d %+v", code, st.Details)
	}
	// fieldValidation=Warn (Kubernetes' parameter) reports an unknown field instead of refusing it.
	_, _, cur := do(t, srv, http.MethodGet, svcPath, "")
	var live struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal([]byte(cur), &live)
	warned := strings.Replace(svc, "metadata:\n", "metadata:\n  resourceVersion: \""+live.Metadata.ResourceVersion+"\"\n", 1) + "  replicas: 2\n"
	req := httptest.NewRequest(http.MethodPut, svcPath+"?fieldValidation=Warn", strings.NewReader(warned))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(strings.Join(rec.Header().Values("Warning"), " "), `unknown field \"spec.replicas\"`) {
		t.Errorf("fieldValidation=Warn: %d %v %s", rec.Code, rec.Header().Values("Warning"), rec.Body)
	}
	// Knative accepts traffic naming a revision that does not exist yet (the Route reports it).
	if code, _, body := apply(t, srv, svcPath, svc+"  traffic:\n    - revisionName: hello-99999\n      percent: 100\n"); code != http.StatusOK {
		t.Errorf("traffic to a future revision: %d %s", code, body)
	}
	// Another autoscaler's class is accepted (Knative leaves it to that autoscaler).
	hpa := strings.Replace(svc, "  template:\n", "  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/class: hpa.autoscaling.knative.dev\n        autoscaling.knative.dev/metric: cpu\n", 1)
	if code, _, body := apply(t, srv, svcPath, hpa); code != http.StatusOK {
		t.Errorf("hpa class: %d %s", code, body)
	}

	if code, st, _ := do(t, srv, http.MethodPost, "/apis/serving.knative.dev/v1/namespaces/default/services", svc); code != http.StatusConflict || st.Reason != metav1.StatusReasonAlreadyExists {
		t.Errorf("create existing: %d %s", code, st.Reason)
	}
	if code, _, body := do(t, srv, http.MethodGet, "/apis/serving.knative.dev/v1/services", ""); code != 200 || !strings.Contains(body, `"ServiceList"`) {
		t.Errorf("list: %d %s", code, body)
	}
	if code, _, _ := do(t, srv, http.MethodGet, "/apis/serving.knative.dev/v1/namespaces/default/pods/x", ""); code != http.StatusNotFound {
		t.Errorf("unknown resource: %d", code)
	}
	if code, _, _ := do(t, srv, http.MethodDelete, svcPath, ""); code != http.StatusOK {
		t.Errorf("delete: %d", code)
	}
	if code, st, _ := do(t, srv, http.MethodGet, svcPath, ""); code != http.StatusNotFound || st.Reason != metav1.StatusReasonNotFound {
		t.Errorf("get deleted: %d %s", code, st.Reason)
	}
}

// Secrets and ConfigMaps are served under /api/v1 as a Kubernetes API server serves them:
// stringData folded into data, type Opaque by default, a pull secret without its key refused
// naming the field.
func TestCoreKinds(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := newServer(t, s)
	const secretPath = "/api/v1/namespaces/default/secrets/creds"
	code, _, body := apply(t, srv, secretPath, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  token: abc\n")
	if code != http.StatusCreated {
		t.Fatalf("create secret: %d %s", code, body)
	}
	code, _, body = do(t, srv, http.MethodGet, secretPath, "")
	if code != http.StatusOK || !strings.Contains(body, `"token":"YWJj"`) || !strings.Contains(body, `"type":"Opaque"`) || strings.Contains(body, "stringData") {
		t.Errorf("get secret: %d %s", code, body)
	}
	code, st, _ := apply(t, srv, "/api/v1/namespaces/default/secrets/pull",
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull\ntype: kubernetes.io/dockerconfigjson\ndata: {}\n")
	if code != http.StatusUnprocessableEntity || !strings.Contains(st.Message, "data[.dockerconfigjson]") {
		t.Errorf("pull secret without its key: %d %s", code, st.Message)
	}
	code, _, body = apply(t, srv, "/api/v1/namespaces/default/configmaps/cfg",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a.conf: x\n")
	if code != http.StatusCreated {
		t.Fatalf("create configmap: %d %s", code, body)
	}
	if code, _, body = do(t, srv, http.MethodGet, "/api/v1/namespaces/default/configmaps", ""); code != http.StatusOK || !strings.Contains(body, `"a.conf"`) {
		t.Errorf("list configmaps: %d %s", code, body)
	}
	if code, _, _ = do(t, srv, http.MethodDelete, secretPath, ""); code != http.StatusOK {
		t.Errorf("delete secret: %d", code)
	}
}

// TestReapplyKeepsImmutableParts: applying the same manifest again is a no-op even for what
// Knative never changes after creation (a Revision's spec, a template naming its revision),
// as with `kubectl apply`; a real change to them is refused as Knative refuses it.
func TestReapplyKeepsImmutableParts(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := newServer(t, s)
	byo := strings.Replace(svc, "  template:\n", "  template:\n    metadata:\n      name: hello-v1\n", 1)
	for i, want := range []int{http.StatusCreated, http.StatusOK} {
		if code, _, body := apply(t, srv, svcPath, byo); code != want {
			t.Fatalf("apply %d: %d %s", i, code, body)
		}
	}
	code, st, _ := apply(t, srv, svcPath, strings.Replace(byo, "ko://example.com/app", "ko://example.com/other", 1))
	if code != 422 || !strings.Contains(st.Message, "Saw the following changes without a name change (-old +new): spec.template.metadata.name") {
		t.Errorf("changed template, same name: %d %s", code, st.Message)
	}

	const revPath = "/apis/serving.knative.dev/v1/namespaces/default/revisions/r-1"
	rev := "apiVersion: serving.knative.dev/v1\nkind: Revision\nmetadata:\n  name: r-1\nspec:\n  containers:\n    - image: ko://example.com/app\n"
	for i, want := range []int{http.StatusCreated, http.StatusOK} {
		if code, _, body := apply(t, srv, revPath, rev); code != want {
			t.Fatalf("revision apply %d: %d %s", i, code, body)
		}
	}
	code, st, _ = apply(t, srv, revPath, strings.Replace(rev, "example.com/app", "example.com/other", 1))
	if code != 422 || !strings.Contains(st.Message, "Immutable fields changed (-old +new): spec") {
		t.Errorf("changed revision: %d %s", code, st.Message)
	}
}

// TestCreateWithGenerateName: a POST naming only generateName gets a name, as from the
// Kubernetes API server (Knative's validation accepts generateName).
func TestCreateWithGenerateName(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := newServer(t, s)
	doc := strings.Replace(svc, "  name: hello\n", "  generateName: hello-\n", 1)
	code, _, body := do(t, srv, http.MethodPost, "/apis/serving.knative.dev/v1/namespaces/default/services", doc)
	var got struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal([]byte(body), &got)
	if code != http.StatusCreated || !strings.HasPrefix(got.Metadata.Name, "hello-") || len(got.Metadata.Name) != len("hello-")+5 {
		t.Fatalf("create: %d %s", code, body)
	}
}

// TestTriggerCESQLChecked: a Trigger's CESQL filter is parsed when applied, by the proxy's own
// filter evaluator, and refused naming it as Knative does.
func TestTriggerCESQLChecked(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := newServer(t, s)
	const path = "/apis/eventing.knative.dev/v1/namespaces/default/triggers/t"
	trigger := "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: t\nspec:\n  broker: default\n  filters:\n    - cesql: %q\n  subscriber:\n    uri: http://example.com\n"
	if code, _, body := apply(t, srv, path, fmt.Sprintf(trigger, "type = 'a'")); code != http.StatusCreated {
		t.Fatalf("valid: %d %s", code, body)
	}
	code, st, _ := apply(t, srv, path, fmt.Sprintf(trigger, "type = "))
	if code != 422 || !strings.Contains(st.Message, "invalid value: type = : spec.filters[0].cesql") {
		t.Errorf("bad cesql: %d %s", code, st.Message)
	}
	// Knative's validation is sdk-go's parser, which takes a call to no built-in and a value
	// that is not a condition (they pass no event); only syntax is refused.
	for _, expr := range []string{"REGEX(type, 'a')", "CONCAT_WS()", "myflag", "LENGTH(type)"} {
		if code, _, body := apply(t, srv, path, fmt.Sprintf(trigger, expr)); code != http.StatusOK {
			t.Errorf("%s: %d %s, want 200 (accepted, as Knative)", expr, code, body)
		}
	}
}

// ClusterDomainClaims live at cluster scope, as in Kubernetes; a ConfigMap check refuses a
// bad setting with 422 naming the key, and the stored ConfigMap stays as it was.
func TestClusterScopedKindsAndConfigMapCheck(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := newServer(t, s).CheckConfigMaps(func(cm *api.ConfigMap) *fielderr.Error {
		if cm.Data["domain-template"] == "bad" {
			return fielderr.Invalid("bad", "data[domain-template]", "not a template")
		}
		return nil
	})
	const cmPath = "/api/v1/namespaces/knative-serving/configmaps/config-network"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-network\n  namespace: knative-serving\ndata:\n  domain-template: %s\n"
	if code, _, body := apply(t, srv, cmPath, strings.ReplaceAll(cm, "%s", `"{{.Name}}.{{.Domain}}"`)); code != http.StatusCreated {
		t.Fatalf("create ConfigMap: %d %s", code, body)
	}
	code, st, body := apply(t, srv, cmPath, strings.ReplaceAll(cm, "%s", "bad"))
	if code != http.StatusUnprocessableEntity || !strings.Contains(st.Message, "data[domain-template]") {
		t.Fatalf("bad ConfigMap: %d %s; want 422 naming data[domain-template]", code, body)
	}
	if _, _, body := do(t, srv, http.MethodGet, cmPath, ""); !strings.Contains(body, "{{.Name}}.{{.Domain}}") {
		t.Errorf("after a refused update the ConfigMap is %s; want the old template kept", body)
	}
	const cdcPath = "/apis/networking.internal.knative.dev/v1alpha1/clusterdomainclaims/hello.example.com"
	cdc := "apiVersion: networking.internal.knative.dev/v1alpha1\nkind: ClusterDomainClaim\nmetadata:\n  name: hello.example.com\nspec:\n  namespace: team-a\n"
	if code, _, body := apply(t, srv, cdcPath, cdc); code != http.StatusCreated {
		t.Fatalf("create ClusterDomainClaim: %d %s", code, body)
	}
	if code, _, _ := do(t, srv, http.MethodGet, "/apis/networking.internal.knative.dev/v1alpha1/namespaces/default/clusterdomainclaims/hello.example.com", ""); code != http.StatusNotFound {
		t.Errorf("a cluster-scoped kind under a namespace: %d, want 404", code)
	}
	if code, _, body := do(t, srv, http.MethodGet, "/apis/networking.internal.knative.dev/v1alpha1/clusterdomainclaims", ""); code != http.StatusOK || !strings.Contains(body, "team-a") {
		t.Errorf("list ClusterDomainClaims: %d %s", code, body)
	}
}
