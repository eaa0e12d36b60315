package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/config"
)

func review(t *testing.T, h http.Handler, path string, op admissionv1.Operation, kind metav1.GroupVersionKind, obj, old string) *admissionv1.AdmissionResponse {
	t.Helper()
	toJSON := func(s string) []byte {
		if s == "" {
			return nil
		}
		b, err := yaml.YAMLToJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	req := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: types.UID("u1"), Kind: kind, Operation: op, Namespace: "default",
			UserInfo: authenticationv1.UserInfo{Username: "alice"}},
	}
	req.Request.Object.Raw = toJSON(obj)
	req.Request.OldObject.Raw = toJSON(old)
	body, _ := json.Marshal(req)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("response %d %s: %v", rec.Code, rec.Body, err)
	}
	if out.Response.UID != "u1" {
		t.Errorf("response uid %q", out.Response.UID)
	}
	return out.Response
}

// applyPatch applies the add and replace operations the defaulting webhook answers.
func applyPatch(t *testing.T, doc []byte, patch []byte) map[string]any {
	t.Helper()
	var obj any
	if err := json.Unmarshal(doc, &obj); err != nil {
		t.Fatal(err)
	}
	var ops []patchOp
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		parts := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		cur := obj
		for i, p := range parts {
			p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
			last := i == len(parts)-1
			switch c := cur.(type) {
			case map[string]any:
				if last {
					if _, ok := c[p]; ok != (op.Op == "replace") {
						t.Fatalf("%s %s: the path does not (or does) exist", op.Op, op.Path)
					}
					c[p] = op.Value
				} else {
					cur = c[p]
				}
			case []any:
				n, _ := strconv.Atoi(p)
				if last {
					c[n] = op.Value
				} else {
					cur = c[n]
				}
			default:
				t.Fatalf("%s: no such path", op.Path)
			}
		}
	}
	return obj.(map[string]any)
}

// defaulted is doc after the defaulting webhook's patch, as the API server hands it on.
func defaulted(t *testing.T, s *Server, doc string) string {
	t.Helper()
	resp := review(t, s.Handler(), DefaultingPath, admissionv1.Create, serviceKind, doc, "")
	js, _ := yaml.YAMLToJSON([]byte(doc))
	b, _ := json.Marshal(applyPatch(t, js, resp.Patch))
	return string(b)
}

var serviceKind = metav1.GroupVersionKind{Group: "serving.knative.dev", Version: "v1", Kind: "Service"}

const minimal = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
  annotations:
    example.com/keep: "yes"
spec:
  template:
    spec:
      containers:
        - image: ko://example.com/app
          colour: blue
`

// TestDefaultingWebhook: the patch makes the object what `skiff apply` stores, records the
// user as Knative does, and never removes a field (an unknown one is left for validation).
func TestDefaultingWebhook(t *testing.T) {
	s := New(Config{Client: fake.NewClientset(), Logger: slog.New(slog.DiscardHandler)})
	resp := review(t, s.Handler(), DefaultingPath, admissionv1.Create, serviceKind, minimal, "")
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v", resp)
	}
	doc, _ := yaml.YAMLToJSON([]byte(minimal))
	got := applyPatch(t, doc, resp.Patch)
	spec, _ := json.Marshal(got["spec"])
	for _, want := range []string{`"name":"user-container"`, `"timeoutSeconds":300`, `"containerConcurrency":0`, `"enableServiceLinks":false`,
		`"readinessProbe":{"successThreshold":1,"tcpSocket":{"port":0}}`, `"traffic":[{"latestRevision":true,"percent":100}]`, `"colour":"blue"`} {
		if !strings.Contains(string(spec), want) {
			t.Errorf("defaulted spec %s lacks %s", spec, want)
		}
	}
	anns := got["metadata"].(map[string]any)["annotations"].(map[string]any)
	if anns["serving.knative.dev/creator"] != "alice" || anns["serving.knative.dev/lastModifier"] != "alice" || anns["example.com/keep"] != "yes" {
		t.Errorf("annotations %v", anns)
	}

	// Validation (of the defaulted object, as the API server sends it) refuses the unknown
	// field the patch left, and what Knative refuses.
	resp = review(t, s.Handler(), ValidationPath, admissionv1.Create, serviceKind, defaulted(t, s, minimal+"          ports:\n            - containerPort: 8012\n"), "")
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest ||
		!strings.Contains(resp.Result.Message, "validation failed: invalid value: 8012 is a reserved port: spec.template.spec.containers[0].ports.containerPort") ||
		!strings.Contains(resp.Result.Message, "unknown field: spec.template.spec.containers[0].colour") {
		t.Fatalf("validation: %+v", resp.Result)
	}
	ok := strings.Replace(minimal, "          colour: blue\n", "", 1)
	if resp = review(t, s.Handler(), ValidationPath, admissionv1.Create, serviceKind, defaulted(t, s, ok), ""); !resp.Allowed || len(resp.Warnings) == 0 {
		t.Fatalf("valid Service: %+v (want allowed, with Knative's security context warnings)", resp)
	}
	// An update is checked against the object it replaces: a Revision's spec never changes.
	rev := "apiVersion: serving.knative.dev/v1\nkind: Revision\nmetadata: {name: hello-00001, namespace: default}\nspec:\n  containers: [{image: a}]\n"
	revKind := metav1.GroupVersionKind{Group: "serving.knative.dev", Version: "v1", Kind: "Revision"}
	resp = review(t, s.Handler(), ValidationPath, admissionv1.Update, revKind, strings.Replace(rev, "image: a", "image: b", 1), rev)
	if resp.Allowed || !strings.Contains(resp.Result.Message, "Immutable fields changed (-old +new): spec") {
		t.Fatalf("revision update: %+v", resp.Result)
	}
	// Kinds that are not Skiff's pass.
	if resp = review(t, s.Handler(), ValidationPath, admissionv1.Create, metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, "{}", ""); !resp.Allowed {
		t.Fatalf("pod: %+v", resp)
	}
}

// TestCertificates: the first replica makes the CA and certificate in the Secret and puts the
// CA into both configurations; another replica (or a restart) uses the same; a certificate
// that no longer names the service is renewed. The webhook answers over TLS with it.
func TestCertificates(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset(
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: DefaultMutatingName},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "webhook.serving.knative.dev"}, {Name: "webhook.eventing.knative.dev"}}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: DefaultValidatingName},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "validation.webhook.serving.knative.dev"}}},
	)
	cfg := Config{Client: client, Hosts: []string{"127.0.0.1"}, Logger: slog.New(slog.DiscardHandler)}
	a := New(cfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, lis) }()
	var ca []byte
	installed := func() bool {
		ca = a.CABundle()
		mut, _ := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, DefaultMutatingName, metav1.GetOptions{})
		val, _ := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, DefaultValidatingName, metav1.GetOptions{})
		return ca != nil && bytes.Equal(mut.Webhooks[0].ClientConfig.CABundle, ca) &&
			bytes.Equal(mut.Webhooks[1].ClientConfig.CABundle, ca) && bytes.Equal(val.Webhooks[0].ClientConfig.CABundle, ca)
	}
	for deadline := time.Now().Add(10 * time.Second); !installed(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no certificate, or caBundle not set in both configurations")
		}
	}
	// Over TLS, trusted through the CA, for the name the API server uses.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "x", Kind: serviceKind, Operation: admissionv1.Create, Object: runtimeRaw(t, defaulted(t, a, minimal))}})
	resp, err := hc.Post("https://"+lis.Addr().String()+ValidationPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("TLS call: %v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(out), "unknown field: spec.template.spec.containers[0].colour") {
		t.Errorf("answer %s", out)
	}

	// Another replica uses the same certificate.
	b := New(cfg)
	if err := b.sync(ctx); err != nil || !bytes.Equal(b.CABundle(), ca) {
		t.Fatalf("second replica: %v, same CA %v", err, bytes.Equal(b.CABundle(), ca))
	}
	// A certificate that does not name the service is replaced (and the caBundle with it).
	c := New(Config{Client: client, ServiceName: "renamed", Logger: slog.New(slog.DiscardHandler)})
	if err := c.sync(ctx); err != nil || bytes.Equal(c.CABundle(), ca) {
		t.Fatalf("renamed service: %v, CA unchanged %v", err, bytes.Equal(c.CABundle(), ca))
	}
	val, _ := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, DefaultValidatingName, metav1.GetOptions{})
	if !bytes.Equal(val.Webhooks[0].ClientConfig.CABundle, c.CABundle()) {
		t.Error("caBundle not renewed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func runtimeRaw(t *testing.T, doc string) (r runtime.RawExtension) {
	t.Helper()
	b, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r.Raw = b
	return r
}

// TestReloadSettings: settings edited in the cluster (config-features here) take effect at the
// next resync, without a restart.
func TestReloadSettings(t *testing.T) {
	enabled := config.Default()
	enabled.Features.PodSpecNodeSelector = config.Enabled
	s := New(Config{Client: fake.NewClientset(), Logger: slog.New(slog.DiscardHandler),
		Reload: func(context.Context) (*config.Config, error) { return enabled, nil }})
	doc := strings.Replace(strings.Replace(minimal, "          colour: blue\n", "", 1), "    spec:\n", "    spec:\n      nodeSelector: {disk: ssd}\n", 1)
	if resp := review(t, s.Handler(), ValidationPath, admissionv1.Create, serviceKind, defaulted(t, s, doc), ""); resp.Allowed ||
		!strings.Contains(resp.Result.Message, "must not set the field(s): spec.template.spec.nodeSelector") {
		t.Fatalf("nodeSelector with Knative's defaults: %+v", resp.Result)
	}
	s.reload(context.Background())
	if resp := review(t, s.Handler(), ValidationPath, admissionv1.Create, serviceKind, defaulted(t, s, doc), ""); !resp.Allowed {
		t.Fatalf("nodeSelector after kubernetes.podspec-nodeselector was enabled: %+v", resp.Result)
	}
}
