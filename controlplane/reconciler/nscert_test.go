package reconciler

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/certs"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// fakeCerts is a certs.Provider that keeps what it was asked for: every certificate is Ready
// at once (PEMs "cert:{name}"), Release forgets an owner's others.
type fakeCerts struct {
	mu     sync.Mutex
	issued map[string]certs.Request // by namespace/name
}

func (f *fakeCerts) Certificate(_ context.Context, req certs.Request) (certs.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.issued == nil {
		f.issued = map[string]certs.Request{}
	}
	f.issued[req.Namespace+"/"+req.Name] = req
	return certs.Status{State: certs.Ready, CertPEM: []byte("cert:" + req.Name), KeyPEM: []byte("key")}, nil
}

func (f *fakeCerts) Release(_ context.Context, owner string, keep []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, r := range f.issued {
		if r.Owner == owner && !slices.Contains(keep, r.Name) {
			delete(f.issued, k)
		}
	}
}

func (f *fakeCerts) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.issued {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (f *fakeCerts) get(name string) (certs.Request, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.issued[name]
	return r, ok
}

// certProxy is nopProxy that keeps the certificates served on the TLS listener.
type certProxy struct {
	nopProxy
	mu    sync.Mutex
	certs map[string]xds.TLSCertificate
}

func (p *certProxy) SetCertificate(c xds.TLSCertificate) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.certs == nil {
		p.certs = map[string]xds.TLSCertificate{}
	}
	p.certs[c.Name] = c
	return nil
}

func (p *certProxy) DeleteCertificate(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.certs, name)
}

func (p *certProxy) served() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]string{}
	for n, c := range p.certs {
		out[n] = c.Hosts
	}
	return out
}

type nsCertEnv struct {
	t     *testing.T
	st    *store.Store
	c     *Controller
	certs *fakeCerts
	proxy *certProxy
}

// newNSCertEnv is a controller over a store holding config-network with netData, and the
// serving objects of one ready Route per name in routes (namespace "default").
func newNSCertEnv(t *testing.T, netData map[string]string, routes ...string) *nsCertEnv {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	objs := []store.Object{
		configMap(domains.NetworkConfigName, netData),
		tConfiguration("cfg", "cfg-00001"),
		tRevision("cfg-00001", "cfg", "", duck.True, servingv1.ModeServe),
	}
	for _, r := range routes {
		objs = append(objs, tRoute(r, servingv1.TrafficTarget{ConfigurationName: "cfg", LatestRevision: ptr(true), Percent: ptr[int64](100)}))
	}
	seed(t, st, objs...)
	e := &nsCertEnv{t: t, st: st, certs: &fakeCerts{}, proxy: &certProxy{}}
	e.c = New(Config{Store: st, Runtime: nopRuntime{}, Proxy: e.proxy, Certificates: e.certs, Domain: "example.com",
		SystemNamespace: DefaultSystemNamespace, Logger: slog.New(slog.DiscardHandler)})
	e.c.now = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	e.loadSettings()
	return e
}

func (e *nsCertEnv) loadSettings() {
	e.t.Helper()
	if err := e.c.loadSettings(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *nsCertEnv) reconcile(k store.Key) {
	e.t.Helper()
	if err := e.c.reconcile(context.Background(), k); err != nil {
		e.t.Fatalf("reconcile %s: %v", k, err)
	}
}

func (e *nsCertEnv) namespace(name string, labels map[string]string) {
	e.t.Helper()
	ctx := context.Background()
	ns := &api.Namespace{}
	ns.APIVersion, ns.Kind, ns.Name = "v1", kindNamespace, name
	err := e.st.Get(ctx, store.Key{Kind: kindNamespace, Name: name}, ns)
	ns.Labels = labels
	if err == nil {
		err = e.st.Update(ctx, ns)
	} else {
		err = e.st.Create(ctx, ns)
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *nsCertEnv) setNetwork(data map[string]string) {
	e.t.Helper()
	ctx := context.Background()
	var cm api.ConfigMap
	if err := e.st.Get(ctx, store.Key{Kind: api.KindConfigMap, Namespace: DefaultSystemNamespace, Name: domains.NetworkConfigName}, &cm); err != nil {
		e.t.Fatal(err)
	}
	cm.Data = data
	if err := e.st.Update(ctx, &cm); err != nil {
		e.t.Fatal(err)
	}
	e.loadSettings()
}

func configMap(name string, data map[string]string) *api.ConfigMap {
	cm := &api.ConfigMap{ConfigMap: corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: DefaultSystemNamespace}, Data: data}}
	cm.APIVersion, cm.Kind = "v1", api.KindConfigMap
	return cm
}

func nsKey(name string) store.Key { return store.Key{Kind: kindNamespace, Name: name} }

const disableWildcardLabel = "networking.knative.dev/disableWildcardCert"

// Knative's pkg/reconciler/nscert/nscert_test.go, TestReconcile: which namespaces get a
// wildcard certificate, how it is named, owned and labelled, and that one no longer selected
// loses it ("disabling namespace cert feature deletes the cert").
func TestReconcileNamespaceWildcardCert(t *testing.T) {
	notIn := "matchExpressions:\n- key: " + disableWildcardLabel + "\n  operator: NotIn\n  values: [\"true\"]"
	e := newNSCertEnv(t, map[string]string{"external-domain-tls": "Enabled", domains.NamespaceWildcardCertSelectorKey: notIn})

	// "create Knative certificate for namespace with explicitly enabled"
	e.namespace("foo", map[string]string{disableWildcardLabel: "false"})
	e.reconcile(nsKey("foo"))
	req, ok := e.certs.get("foo/foo.example.com")
	if !ok {
		t.Fatalf("certificates %v, want foo/foo.example.com", e.certs.names())
	}
	var ns api.Namespace
	if err := e.st.Get(context.Background(), nsKey("foo"), &ns); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(req.Hosts, []string{"*.foo.example.com"}) || req.Owner != "Namespace//foo" || req.OwnerKind != "Namespace" ||
		req.OwnerAPIVersion != "v1" || req.OwnerName != "foo" || req.OwnerUID != string(ns.UID) || req.OwnerUID == "" ||
		req.Labels[domains.WildcardCertDomainLabel] != "example.com" {
		t.Errorf("wildcard request %+v", req)
	}

	// "certificate not created for excluded namespace ..."
	e.namespace("excluded", map[string]string{disableWildcardLabel: "true"})
	e.reconcile(nsKey("excluded"))
	if got := e.certs.names(); !slices.Equal(got, []string{"foo/foo.example.com"}) {
		t.Errorf("certificates %v, want only foo's", got)
	}

	// "disabling namespace cert feature deletes the cert"
	e.namespace("foo", map[string]string{disableWildcardLabel: "true"})
	e.reconcile(nsKey("foo"))
	if got := e.certs.names(); len(got) != 0 {
		t.Errorf("certificates %v after foo was excluded, want none", got)
	}

	// Unsetting the selector (Knative's default: no namespace) releases them too.
	e.namespace("foo", nil)
	e.reconcile(nsKey("foo"))
	if got := e.certs.names(); len(got) != 1 {
		t.Fatalf("certificates %v, want foo's again", got)
	}
	e.setNetwork(map[string]string{"external-domain-tls": "Enabled"})
	e.reconcile(nsKey("foo"))
	if got := e.certs.names(); len(got) != 0 {
		t.Errorf("certificates %v with the selector unset, want none", got)
	}
}

// Knative's nscert_test.go, TestUpdateDomainTemplate: a domain template that cannot make a
// wildcard keeps the certificate the namespace has.
func TestReconcileNamespaceWildcardBadTemplate(t *testing.T) {
	e := newNSCertEnv(t, map[string]string{"external-domain-tls": "Enabled", domains.NamespaceWildcardCertSelectorKey: "{}"})
	e.namespace("testns", nil)
	e.reconcile(nsKey("testns"))
	e.setNetwork(map[string]string{"external-domain-tls": "Enabled", domains.NamespaceWildcardCertSelectorKey: "{}",
		"domain-template": "{{.Name}}.subdomain.{{.Namespace}}.{{.Domain}}"})
	e.reconcile(nsKey("testns"))
	if got := e.certs.names(); !slices.Equal(got, []string{"testns/subdomain.testns.example.com"}) {
		t.Fatalf("certificates %v, want the subdomain wildcard alone", got)
	}
	e.setNetwork(map[string]string{"external-domain-tls": "Enabled", domains.NamespaceWildcardCertSelectorKey: "{}",
		"domain-template": "{{.Namespace}}.{{.Name}}.{{.Domain}}"})
	e.reconcile(nsKey("testns"))
	if got := e.certs.names(); !slices.Equal(got, []string{"testns/subdomain.testns.example.com"}) {
		t.Errorf("certificates %v after an invalid template, want them unchanged", got)
	}
}

// Knative's pkg/reconciler/route/table_test.go, TestReconcileEnableExternalDomainTLS: "check
// that existing wildcard cert is used when creating a Route" (no route-{uid} certificate,
// https URL, the wildcard's name in CertificateProvisioned) and "check that Certificate is
// correctly configured when creating a Route" (without a wildcard, its own); plus the way
// back: a namespace no longer selected leaves its Routes to their own certificates, and the
// wildcard is served while any Route uses it.
func TestRouteUsesNamespaceWildcardCert(t *testing.T) {
	e := newNSCertEnv(t, map[string]string{"external-domain-tls": "Enabled",
		domains.NamespaceWildcardCertSelectorKey: "matchLabels: {wildcard: \"yes\"}"}, "a", "b")
	e.namespace("default", map[string]string{"wildcard": "yes"})
	e.reconcile(nsKey("default"))
	e.reconcile(routeKey("a"))
	e.reconcile(routeKey("b"))

	for _, name := range []string{"a", "b"} {
		r := getRoute(t, e.st, name)
		if r.Status.URL != "https://"+name+".default.example.com" {
			t.Errorf("route %s URL %q, want https", name, r.Status.URL)
		}
		wantCondition(t, &r.Status.Status, RouteConditionCertificateProvisioned, duck.True, "", "")
	}
	if got := e.certs.names(); !slices.Equal(got, []string{"default/default.example.com"}) {
		t.Errorf("certificates %v, want only the namespace wildcard", got)
	}
	wantServed := map[string][]string{"default/default.example.com": {"*.default.example.com"}}
	if got := e.proxy.served(); !equalServed(got, wantServed) {
		t.Errorf("served %v, want %v", got, wantServed)
	}

	// Route a goes away: b still serves the wildcard.
	if err := e.st.Delete(context.Background(), routeKey("a")); err != nil {
		t.Fatal(err)
	}
	e.reconcile(routeKey("a"))
	if got := e.proxy.served(); !equalServed(got, wantServed) {
		t.Errorf("served %v after route a was deleted, want %v", got, wantServed)
	}

	// The namespace is no longer selected: b goes back to its own certificate.
	e.namespace("default", map[string]string{"wildcard": "no"})
	e.reconcile(nsKey("default"))
	e.reconcile(routeKey("b"))
	b := getRoute(t, e.st, "b")
	own := "default/" + routeCertName(b, "")
	if got := e.certs.names(); !slices.Equal(got, []string{own}) {
		t.Errorf("certificates %v, want only %s", got, own)
	}
	wantServed = map[string][]string{own: {"b.default.example.com"}}
	if got := e.proxy.served(); !equalServed(got, wantServed) {
		t.Errorf("served %v, want %v", got, wantServed)
	}
	if b.Status.URL != "https://b.default.example.com" {
		t.Errorf("route b URL %q, want https", b.Status.URL)
	}

	// Selected again: its own certificate is released for the wildcard.
	e.namespace("default", map[string]string{"wildcard": "yes"})
	e.reconcile(nsKey("default"))
	e.reconcile(routeKey("b"))
	if got := e.certs.names(); !slices.Equal(got, []string{"default/default.example.com"}) {
		t.Errorf("certificates %v, want only the wildcard", got)
	}
}

// A Route whose hosts the wildcard does not cover (another domain by config-domain's
// selector, or a domain template with more levels) keeps its own certificate, as Knative's
// wildcardCertMatches and its lookup by the Route's domain label decide.
func TestRouteWildcardNotCovering(t *testing.T) {
	e := newNSCertEnv(t, map[string]string{"external-domain-tls": "Enabled", domains.NamespaceWildcardCertSelectorKey: "{}"}, "a")
	ctx := context.Background()
	if err := e.st.Create(ctx, configMap(domains.DomainConfigName,
		map[string]string{"example.com": "", "special.org": "selector:\n  app: special"})); err != nil {
		t.Fatal(err)
	}
	e.loadSettings()
	var r servingv1.Route
	if err := e.st.Get(ctx, routeKey("a"), &r); err != nil {
		t.Fatal(err)
	}
	r.Labels = map[string]string{"app": "special"}
	if err := e.st.Update(ctx, &r); err != nil {
		t.Fatal(err)
	}
	e.reconcile(routeKey("a"))
	got := getRoute(t, e.st, "a")
	if got.Status.URL != "https://a.default.special.org" {
		t.Fatalf("URL %q", got.Status.URL)
	}
	own := "default/" + routeCertName(got, "")
	if names := e.certs.names(); !slices.Contains(names, own) || slices.Contains(names, "default/default.special.org") {
		t.Errorf("certificates %v, want %s and no wildcard for special.org", names, own)
	}
}

func equalServed(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// A tag's host is covered by the namespace wildcard too: the Route serves the one wildcard
// for both, and asks for neither route-{uid} nor route-{uid}-{tag hash}.
func TestRouteTagUsesNamespaceWildcardCert(t *testing.T) {
	e := newNSCertEnv(t, map[string]string{"external-domain-tls": "Enabled", domains.NamespaceWildcardCertSelectorKey: "{}"})
	ctx := context.Background()
	if err := e.st.Create(ctx, tRoute("r",
		servingv1.TrafficTarget{ConfigurationName: "cfg", LatestRevision: ptr(true), Percent: ptr[int64](100)},
		servingv1.TrafficTarget{Tag: "candidate", RevisionName: "cfg-00001", Percent: ptr[int64](0)})); err != nil {
		t.Fatal(err)
	}
	e.reconcile(routeKey("r"))
	r := getRoute(t, e.st, "r")
	if r.Status.URL != "https://r.default.example.com" {
		t.Errorf("URL %q", r.Status.URL)
	}
	tagURL := ""
	for _, tt := range r.Status.Traffic {
		if tt.Tag == "candidate" {
			tagURL = tt.URL
		}
	}
	if tagURL != "https://candidate-r.default.example.com" {
		t.Errorf("tag URL %q, want https://candidate-r.default.example.com", tagURL)
	}
	if got := e.certs.names(); !slices.Equal(got, []string{"default/default.example.com"}) {
		t.Errorf("certificates %v, want only the namespace wildcard", got)
	}
	if got, want := e.proxy.served(), map[string][]string{"default/default.example.com": {"*.default.example.com"}}; !equalServed(got, want) {
		t.Errorf("served %v, want %v", got, want)
	}
}
