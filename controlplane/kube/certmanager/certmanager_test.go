package certmanager

import (
	"context"
	"encoding/base64"
	"hash/adler32"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/controlplane/certs"
	"github.com/skiff-dev/skiff/controlplane/domains"
)

func obj(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns}}}
	for k, v := range fields {
		u.Object[k] = v
	}
	return u
}

func startProvider(t *testing.T, objs ...runtime.Object) (*Provider, *dynamicfake.FakeDynamicClient, chan string) {
	t.Helper()
	listKinds := map[schema.GroupVersionResource]string{
		CertificatesGVR: "CertificateList", ClusterIssuersGVR: "ClusterIssuerList", IssuersGVR: "IssuerList",
		ChallengesGVR: "ChallengeList", secretsGVR: "SecretList", servicesGVR: "ServiceList",
	}
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
	changed := make(chan string, 100)
	p := New(Config{Client: client, OnChange: func(o string) { changed <- o }})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); p.Shutdown() })
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return p, client, changed
}

func request() certs.Request {
	return certs.Request{Owner: "Route/default/hello", Namespace: "default", Name: "route-uid1", Hosts: []string{"hello.default.example.com"},
		OwnerUID: "uid1", OwnerKind: "Route", OwnerAPIVersion: "serving.knative.dev/v1", OwnerName: "hello",
		Issuer: domains.IssuerRef{Kind: "ClusterIssuer", Name: "letsencrypt"}}
}

// waitCached waits for the informer to see the certificate the provider created or updated.
func waitCached(t *testing.T, p *Provider, ns, name string, cond func(*unstructured.Unstructured) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if u := p.cached(CertificatesGVR, ns, name); u != nil && cond(u) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the informer did not see Certificate %s/%s", ns, name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ported behaviour of Knative's certificate reconciler (pkg/reconciler/certificate,
// certificate_test.go): the cert-manager Certificate made from the request (Knative's
// MakeCertManagerCertificate), its Ready condition mapped to the certificate's state, and the
// HTTP01 challenges of an ACME issuer found through the solver Services.
func TestCertificateLifecycle(t *testing.T) {
	host := "hello.default.example.com"
	solver := obj("v1", "Service", "default", "cm-acme-http-solver-abcde", map[string]any{
		"spec": map[string]any{"ports": []any{map[string]any{"port": int64(8089)}}},
	})
	solver.SetLabels(map[string]string{HTTPDomainLabel: strconv.FormatUint(uint64(adler32.Checksum([]byte(host))), 10)})
	solver.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "acme.cert-manager.io/v1", Kind: "Challenge", Name: "route-uid1-1-2", UID: "c1"}})
	p, client, changed := startProvider(t,
		obj("cert-manager.io/v1", "ClusterIssuer", "", "letsencrypt", map[string]any{
			"spec": map[string]any{"acme": map[string]any{"solvers": []any{map[string]any{"http01": map[string]any{"ingress": map[string]any{}}}}}},
		}),
		obj("acme.cert-manager.io/v1", "Challenge", "default", "route-uid1-1-2", map[string]any{
			"spec": map[string]any{"token": "tok123", "dnsName": host},
		}),
		solver,
	)
	ctx := context.Background()
	st, err := p.Certificate(ctx, request())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != certs.Pending || st.Reason != "NoCertManagerCertCondition" {
		t.Errorf("new certificate: %+v, want Pending NoCertManagerCertCondition", st)
	}
	if len(st.Challenges) != 1 || st.Challenges[0].Path != "/.well-known/acme-challenge/tok123" || st.Challenges[0].Host != host ||
		st.Challenges[0].ServiceName != "cm-acme-http-solver-abcde" || st.Challenges[0].ServicePort != 8089 {
		t.Errorf("challenges = %+v, want the solver's for tok123", st.Challenges)
	}
	cert, err := client.Resource(CertificatesGVR).Namespace("default").Get(ctx, "route-uid1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := cert.Object["spec"].(map[string]any)
	issuer := spec["issuerRef"].(map[string]any)
	if spec["commonName"] != host || spec["secretName"] != "route-uid1" || issuer["name"] != "letsencrypt" || issuer["kind"] != "ClusterIssuer" || issuer["group"] != "cert-manager.io" {
		t.Errorf("Certificate spec = %v", spec)
	}
	if o := metav1.GetControllerOf(cert); o == nil || o.Kind != "Route" || o.UID != "uid1" {
		t.Errorf("Certificate controller = %+v", o)
	}
	waitCached(t, p, "default", "route-uid1", func(*unstructured.Unstructured) bool { return true })
	select {
	case o := <-changed:
		if o != "Route/default/hello" {
			t.Errorf("OnChange(%q)", o)
		}
	case <-time.After(5 * time.Second):
		t.Error("no OnChange for the Certificate")
	}

	setReady := func(status, reason string) {
		t.Helper()
		cur, err := client.Resource(CertificatesGVR).Namespace("default").Get(ctx, "route-uid1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedSlice(cur.Object, []any{map[string]any{"type": "Ready", "status": status, "reason": reason, "message": "m"}}, "status", "conditions")
		if _, err := client.Resource(CertificatesGVR).Namespace("default").UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitCached(t, p, "default", "route-uid1", func(u *unstructured.Unstructured) bool {
			c, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			return len(c) == 1 && c[0].(map[string]any)["status"] == status && c[0].(map[string]any)["reason"] == reason
		})
	}
	setReady("False", "Pending")
	if st, _ := p.Certificate(ctx, request()); st.State != certs.Pending || st.Reason != "Pending" {
		t.Errorf("Ready=False Pending: %+v, want Pending", st)
	}
	setReady("False", "Failed")
	if st, _ := p.Certificate(ctx, request()); st.State != certs.Failed || st.Reason != "Failed" {
		t.Errorf("Ready=False Failed: %+v, want Failed", st)
	}
	setReady("True", "Ready")
	if st, _ := p.Certificate(ctx, request()); st.State != certs.Pending || st.Reason != "SecretNotFound" {
		t.Errorf("Ready without its Secret: %+v, want Pending SecretNotFound", st)
	}
	sec := obj("v1", "Secret", "default", "route-uid1", map[string]any{
		"data": map[string]any{"tls.crt": base64.StdEncoding.EncodeToString([]byte("CERT")), "tls.key": base64.StdEncoding.EncodeToString([]byte("KEY"))},
	})
	sec.SetLabels(map[string]string{ManagedLabel: "true"})
	if _, err := client.Resource(secretsGVR).Namespace("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.cached(secretsGVR, "default", "route-uid1") == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st, _ = p.Certificate(ctx, request())
	if st.State != certs.Ready || string(st.CertPEM) != "CERT" || string(st.KeyPEM) != "KEY" || len(st.Challenges) != 0 {
		t.Errorf("Ready with its Secret: %+v", st)
	}

	// New hosts update the spec; a Certificate of another owner is not taken over.
	req := request()
	req.Hosts = []string{"hi.default.example.com"}
	if _, err := p.Certificate(ctx, req); err != nil {
		t.Fatal(err)
	}
	if cur, _ := client.Resource(CertificatesGVR).Namespace("default").Get(ctx, "route-uid1", metav1.GetOptions{}); cur.Object["spec"].(map[string]any)["commonName"] != "hi.default.example.com" {
		t.Errorf("changed hosts did not update the Certificate: %v", cur.Object["spec"])
	}
	waitCached(t, p, "default", "route-uid1", func(u *unstructured.Unstructured) bool {
		return u.Object["spec"].(map[string]any)["commonName"] == "hi.default.example.com"
	})
	other := request()
	other.OwnerUID = "uid2"
	if st, _ := p.Certificate(ctx, other); st.State != certs.Failed || st.Reason != "CertificateNotOwned" {
		t.Errorf("another owner's Certificate: %+v, want CertificateNotOwned", st)
	}

	// Release deletes what the owner no longer needs.
	p.Release(ctx, "Route/default/hello", nil)
	if _, err := client.Resource(CertificatesGVR).Namespace("default").Get(ctx, "route-uid1", metav1.GetOptions{}); err == nil {
		t.Error("Release left the Certificate")
	}
}

// A namespace wildcard certificate (Knative's nscert resources.MakeWildcardCertificate, from
// wildcard_certificate_test.go): named after its DNS name, owned by the Namespace, labelled
// with its domain, and released with the namespace's other certificates.
func TestWildcardCertificate(t *testing.T) {
	p, client, _ := startProvider(t)
	ctx := context.Background()
	req := certs.Request{Owner: "Namespace//foo", Namespace: "foo", Name: "foo.example.com", Hosts: []string{"*.foo.example.com"},
		OwnerUID: "ns-uid", OwnerKind: "Namespace", OwnerAPIVersion: "v1", OwnerName: "foo",
		Issuer: domains.IssuerRef{Kind: "ClusterIssuer", Name: "dns01"},
		Labels: map[string]string{"networking.knative.dev/wildcardDomain": "example.com", ManagedLabel: "false"}}
	if _, err := p.Certificate(ctx, req); err != nil {
		t.Fatal(err)
	}
	cert, err := client.Resource(CertificatesGVR).Namespace("foo").Get(ctx, "foo.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := cert.GetLabels(); l["networking.knative.dev/wildcardDomain"] != "example.com" || l[ManagedLabel] != "true" {
		t.Errorf("labels = %v, want the wildcard domain and Skiff's managed label", l)
	}
	spec := cert.Object["spec"].(map[string]any)
	if names, _ := spec["dnsNames"].([]any); len(names) != 1 || names[0] != "*.foo.example.com" || spec["secretName"] != "foo.example.com" {
		t.Errorf("spec = %v", spec)
	}
	if o := metav1.GetControllerOf(cert); o == nil || o.Kind != "Namespace" || o.APIVersion != "v1" || o.UID != "ns-uid" {
		t.Errorf("controller = %+v, want the Namespace", o)
	}
	waitCached(t, p, "foo", "foo.example.com", func(*unstructured.Unstructured) bool { return true })
	p.Release(ctx, "Namespace//foo", nil)
	if _, err := client.Resource(CertificatesGVR).Namespace("foo").Get(ctx, "foo.example.com", metav1.GetOptions{}); err == nil {
		t.Error("the wildcard Certificate is still there after its namespace released it")
	}
}

// The Namespace and its Routes ask for a namespace wildcard at once: one whose Create loses
// to another's (AlreadyExists before the informer sees the winner) takes the same owner's
// Certificate instead of reporting it as not owned.
func TestCertificateCreatedMeanwhileBySameOwner(t *testing.T) {
	p, client, _ := startProvider(t)
	ctx := context.Background()
	req := certs.Request{Owner: "Namespace//foo", Namespace: "foo", Name: "foo.example.com", Hosts: []string{"*.foo.example.com"},
		OwnerUID: "ns-uid", OwnerKind: "Namespace", OwnerAPIVersion: "v1", OwnerName: "foo"}
	client.PrependReactor("create", "certificates", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject()
		if err := client.Tracker().Create(CertificatesGVR, obj, "foo"); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewAlreadyExists(CertificatesGVR.GroupResource(), req.Name)
	})
	st, err := p.Certificate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != certs.Pending {
		t.Errorf("status %+v, want Pending (the same owner's Certificate, not yet Ready)", st)
	}
	other := req
	other.OwnerUID, other.Owner = "other-uid", "Namespace//bar"
	client.PrependReactor("create", "certificates", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewAlreadyExists(CertificatesGVR.GroupResource(), req.Name)
	})
	if st, err := p.Certificate(ctx, certs.Request{Owner: other.Owner, Namespace: "foo", Name: "foo.example.com", Hosts: other.Hosts, OwnerUID: other.OwnerUID}); err != nil || st.Reason != "CertificateNotOwned" {
		t.Errorf("another owner: %+v, %v; want CertificateNotOwned", st, err)
	}
}
