package apiserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	corev1 "github.com/skiff-dev/skiff/api/core/v1"
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

func TestAPI(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := New(s, nil)

	if code, _, body := do(t, srv, http.MethodPut, svcPath, svc); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _, body := do(t, srv, http.MethodPut, svcPath, svc); code != http.StatusOK {
		t.Fatalf("apply again: %d %s", code, body)
	}
	code, _, body := do(t, srv, http.MethodGet, svcPath, "")
	if code != http.StatusOK || !strings.Contains(body, `"user-container"`) || !strings.Contains(body, `"timeoutSeconds": 300`) {
		t.Fatalf("get: %d %s; want the defaulted service", code, body)
	}

	bad := []struct {
		name, body string
		code       int
		reason     metav1.StatusReason
		field      string
	}{
		{"percent sum", svc + "  traffic:\n    - latestRevision: true\n      percent: 90\n", 422, metav1.StatusReasonInvalid, "spec.traffic"},
		{"unknown revision", svc + "  traffic:\n    - revisionName: hello-99999\n      percent: 100\n", 422, metav1.StatusReasonInvalid, "spec.traffic[0].revisionName"},
		{"unknown field", svc + "  replicas: 2\n", 400, metav1.StatusReasonBadRequest, "spec.replicas"},
		{"bad min-scale", strings.Replace(svc, "  template:\n", "  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/min-scale: \"many\"\n", 1),
			422, metav1.StatusReasonInvalid, "spec.template.metadata.annotations[autoscaling.knative.dev/min-scale]"},
		{"hpa class", strings.Replace(svc, "  template:\n", "  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/class: hpa.autoscaling.knative.dev\n", 1),
			422, metav1.StatusReasonInvalid, "spec.template.metadata.annotations[autoscaling.knative.dev/class]"},
		{"not yaml", "{{{", 400, metav1.StatusReasonBadRequest, ""},
		{"wrong kind", strings.Replace(svc, "kind: Service", "kind: Route", 1), 400, metav1.StatusReasonBadRequest, "kind"},
		{"name mismatch", strings.Replace(svc, "name: hello", "name: other", 1), 400, metav1.StatusReasonBadRequest, "metadata.name"},
	}
	for _, tc := range bad {
		code, st, body := do(t, srv, http.MethodPut, svcPath, tc.body)
		if code != tc.code || st.Reason != tc.reason || !strings.Contains(st.Message, tc.field) {
			t.Errorf("%s: %d %s, want %d %s naming %q", tc.name, code, body, tc.code, tc.reason, tc.field)
		}
	}
	// The refused writes changed nothing.
	if _, _, body := do(t, srv, http.MethodGet, svcPath, ""); strings.Contains(body, "hello-99999") {
		t.Errorf("a refused apply was stored: %s", body)
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

// ConfigMaps and Secrets live under /api/v1, ClusterDomainClaims at cluster scope, as in
// Kubernetes; a ConfigMap check refuses a bad setting with 422 naming the key.
func TestCoreAndClusterScopedPaths(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := New(s, nil).CheckConfigMaps(func(cm *corev1.ConfigMap) field.ErrorList {
		if cm.Data["domain-template"] == "bad" {
			return field.ErrorList{field.Invalid(field.NewPath("data").Key("domain-template"), "bad", "not a template")}
		}
		return nil
	})
	const cmPath = "/api/v1/namespaces/knative-serving/configmaps/config-network"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-network\n  namespace: knative-serving\ndata:\n  domain-template: %s\n"
	if code, _, body := do(t, srv, http.MethodPut, cmPath, strings.ReplaceAll(cm, "%s", `"{{.Name}}.{{.Domain}}"`)); code != http.StatusCreated {
		t.Fatalf("create ConfigMap: %d %s", code, body)
	}
	code, st, body := do(t, srv, http.MethodPut, cmPath, strings.ReplaceAll(cm, "%s", "bad"))
	if code != http.StatusUnprocessableEntity || !strings.Contains(st.Message, "data[domain-template]") {
		t.Fatalf("bad ConfigMap: %d %s; want 422 naming data[domain-template]", code, body)
	}
	if _, _, body := do(t, srv, http.MethodGet, cmPath, ""); !strings.Contains(body, "{{.Name}}.{{.Domain}}") {
		t.Errorf("after a refused update the ConfigMap is %s; want the old template kept", body)
	}
	const cdcPath = "/apis/networking.internal.knative.dev/v1alpha1/clusterdomainclaims/hello.example.com"
	cdc := "apiVersion: networking.internal.knative.dev/v1alpha1\nkind: ClusterDomainClaim\nmetadata:\n  name: hello.example.com\nspec:\n  namespace: team-a\n"
	if code, _, body := do(t, srv, http.MethodPut, cdcPath, cdc); code != http.StatusCreated {
		t.Fatalf("create ClusterDomainClaim: %d %s", code, body)
	}
	if code, _, _ := do(t, srv, http.MethodGet, "/apis/networking.internal.knative.dev/v1alpha1/namespaces/default/clusterdomainclaims/hello.example.com", ""); code != http.StatusNotFound {
		t.Errorf("a cluster-scoped kind under a namespace: %d, want 404", code)
	}
	if code, _, body := do(t, srv, http.MethodGet, "/apis/networking.internal.knative.dev/v1alpha1/clusterdomainclaims", ""); code != http.StatusOK || !strings.Contains(body, "team-a") {
		t.Errorf("list ClusterDomainClaims: %d %s", code, body)
	}
}
