// Package certmanager is the Kubernetes-mode certificate provider: Knative's net-certmanager
// behaviour without Knative's Certificate kind in between. For each certificate a Route or
// DomainMapping needs it keeps a cert-manager Certificate (cert-manager.io/v1) owned by that
// object, issued by config-certmanager's issuerRef; once cert-manager reports it Ready, the
// Secret it wrote is the certificate, which the reconcilers serve as an SDS secret. While an
// ACME HTTP01 challenge is pending (or the certificate renews) it reports the challenge paths
// and their solver Services, which the proxy routes over plain HTTP.
//
// Decisions: the owner is the Route or DomainMapping itself (ownerReferences), so deleting it
// deletes the Certificate; the Certificate and its Secret carry the label
// networking.skiff.dev/certificate=true (the Secret through spec.secretTemplate), and the
// watches are filtered by it. A common name longer than 63 bytes is left out (cert-manager
// accepts a certificate with DNS names only) where Knative shortens it to k.{domain}.
package certmanager

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash/adler32"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/controlplane/certs"
)

// GVRs of the cert-manager kinds read and written.
var (
	CertificatesGVR   = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}
	ClusterIssuersGVR = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "clusterissuers"}
	IssuersGVR        = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "issuers"}
	ChallengesGVR     = schema.GroupVersionResource{Group: "acme.cert-manager.io", Version: "v1", Resource: "challenges"}
	secretsGVR        = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	servicesGVR       = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

// Labels and annotations Skiff and cert-manager put on the objects.
const (
	// ManagedLabel marks the Certificates Skiff asks for and the Secrets cert-manager writes
	// for them.
	ManagedLabel = "networking.skiff.dev/certificate"
	// OwnerAnnotation names the Route or DomainMapping a Certificate is for (its store key).
	OwnerAnnotation = "networking.skiff.dev/owner"
	// HTTPDomainLabel is cert-manager's label on an HTTP01 solver's Service: the adler32 of the
	// domain it answers for.
	HTTPDomainLabel = "acme.cert-manager.io/http-domain"
	// ChallengePath is where ACME HTTP01 tokens are fetched.
	ChallengePath = "/.well-known/acme-challenge/"
	// maxCommonName is the longest common name a certificate may have.
	maxCommonName = 63
)

// notReadyReasons are the cert-manager Ready=False reasons that mean "in progress" (Knative's
// certificate reconciler's list).
var notReadyReasons = []string{"InProgress", "Pending", "TemporaryCertificate"}

// Installed reports whether the API server serves cert-manager's Certificates.
func Installed(d discovery.DiscoveryInterface) (bool, error) {
	res, err := d.ServerResourcesForGroupVersion(CertificatesGVR.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cert-manager: discover %s: %w", CertificatesGVR.GroupVersion(), err)
	}
	for _, r := range res.APIResources {
		if r.Name == "certificates" {
			return true, nil
		}
	}
	return false, nil
}

// Config wires a Provider.
type Config struct {
	Client dynamic.Interface
	// OnChange is told the owner (store key) of a certificate whose Certificate, Secret or
	// challenge changed, so its reconcile runs again.
	OnChange func(owner string)
	Logger   *slog.Logger
}

// Provider is a certs.Provider over cert-manager; New, Start, then use.
type Provider struct {
	cfg       Config
	log       *slog.Logger
	managed   dynamicinformer.DynamicSharedInformerFactory // Certificates and Secrets Skiff made
	all       dynamicinformer.DynamicSharedInformerFactory // issuers, challenges, solver Services
	solvers   dynamicinformer.DynamicSharedInformerFactory // ACME solver Services
	informers map[schema.GroupVersionResource]cache.SharedIndexInformer

	mu      sync.Mutex
	pending map[string]bool // owners with a certificate not Ready yet
}

var _ certs.Provider = (*Provider)(nil)

// New returns a Provider watching every namespace.
func New(cfg Config) *Provider {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(string) {}
	}
	sel := func(o *metav1.ListOptions) { o.LabelSelector = ManagedLabel + "=true" }
	p := &Provider{
		cfg: cfg, log: cfg.Logger.With("component", "certmanager"),
		managed:   dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Client, 10*time.Hour, metav1.NamespaceAll, sel),
		all:       dynamicinformer.NewDynamicSharedInformerFactory(cfg.Client, 10*time.Hour),
		informers: map[schema.GroupVersionResource]cache.SharedIndexInformer{},
		pending:   map[string]bool{},
	}
	for _, gvr := range []schema.GroupVersionResource{CertificatesGVR, secretsGVR} {
		inf := p.managed.ForResource(gvr).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    p.ownerChanged,
			UpdateFunc: func(_, obj any) { p.ownerChanged(obj) },
			DeleteFunc: p.ownerChanged,
		})
		p.informers[gvr] = inf
	}
	sel2 := func(o *metav1.ListOptions) { o.LabelSelector = HTTPDomainLabel }
	solvers := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Client, 10*time.Hour, metav1.NamespaceAll, sel2)
	p.informers[servicesGVR] = solvers.ForResource(servicesGVR).Informer()
	for _, gvr := range []schema.GroupVersionResource{ClusterIssuersGVR, IssuersGVR, ChallengesGVR} {
		p.informers[gvr] = p.all.ForResource(gvr).Informer()
	}
	for _, gvr := range []schema.GroupVersionResource{ChallengesGVR, servicesGVR} {
		_, _ = p.informers[gvr].AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { p.pendingChanged() },
			UpdateFunc: func(any, any) { p.pendingChanged() },
			DeleteFunc: func(any) { p.pendingChanged() },
		})
	}
	p.solvers = solvers
	return p
}

// Start starts the informers and waits for their caches; they stop with ctx.
func (p *Provider) Start(ctx context.Context) error {
	p.managed.Start(ctx.Done())
	p.all.Start(ctx.Done())
	p.solvers.Start(ctx.Done())
	for gvr, inf := range p.informers {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return fmt.Errorf("cert-manager: wait for %s informer: %w", gvr.Resource, ctx.Err())
		}
	}
	return nil
}

// Shutdown waits for the informers' goroutines after Start's ctx is done.
func (p *Provider) Shutdown() {
	p.managed.Shutdown()
	p.all.Shutdown()
	p.solvers.Shutdown()
}

func (p *Provider) ownerChanged(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if owner := u.GetAnnotations()[OwnerAnnotation]; owner != "" {
			p.cfg.OnChange(owner)
		}
	}
}

// pendingChanged re-runs the owners whose certificates are pending: a challenge or solver
// Service changed.
func (p *Provider) pendingChanged() {
	p.mu.Lock()
	owners := slices.Collect(maps.Keys(p.pending))
	p.mu.Unlock()
	for _, o := range owners {
		p.cfg.OnChange(o)
	}
}

func (p *Provider) setPending(owner string, pending bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pending {
		p.pending[owner] = true
	} else {
		delete(p.pending, owner)
	}
}

func (p *Provider) cached(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	key := name
	if ns != "" {
		key = ns + "/" + name
	}
	item, ok, err := p.informers[gvr].GetIndexer().GetByKey(key)
	if err != nil || !ok {
		return nil
	}
	u, _ := item.(*unstructured.Unstructured)
	return u
}

// desired is the cert-manager Certificate req asks for.
func desired(req certs.Request) *unstructured.Unstructured {
	names := make([]any, len(req.Hosts))
	for i, h := range req.Hosts {
		names[i] = h
	}
	group := req.Issuer.Group
	if group == "" {
		group = "cert-manager.io"
	}
	kind := req.Issuer.Kind
	if kind == "" {
		kind = "Issuer"
	}
	spec := map[string]any{
		"dnsNames":   names,
		"secretName": req.Name,
		"issuerRef":  map[string]any{"name": req.Issuer.Name, "kind": kind, "group": group},
		"secretTemplate": map[string]any{
			"labels":      map[string]any{ManagedLabel: "true"},
			"annotations": map[string]any{OwnerAnnotation: req.Owner},
		},
	}
	if len(req.Hosts) > 0 && len(req.Hosts[0]) <= maxCommonName {
		spec["commonName"] = req.Hosts[0]
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
		"metadata": map[string]any{"name": req.Name, "namespace": req.Namespace},
		"spec":     spec,
	}}
	labels := map[string]string{ManagedLabel: "true"}
	for k, v := range req.Labels {
		if k != ManagedLabel {
			labels[k] = v
		}
	}
	u.SetLabels(labels)
	u.SetAnnotations(map[string]string{OwnerAnnotation: req.Owner})
	yes := true
	u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: req.OwnerAPIVersion, Kind: req.OwnerKind, Name: req.OwnerName,
		UID: typesUID(req.OwnerUID), Controller: &yes, BlockOwnerDeletion: &yes}})
	return u
}

// Certificate keeps the Certificate req asks for and reports it as Knative's certificate
// reconciler does: Ready (with the Secret's certificate) when cert-manager's Ready condition
// is True, Pending while it is missing, Unknown or False for an in-progress reason, Failed
// otherwise; with the HTTP01 challenges to route while pending or renewing.
func (p *Provider) Certificate(ctx context.Context, req certs.Request) (certs.Status, error) {
	want := desired(req)
	ri := p.cfg.Client.Resource(CertificatesGVR).Namespace(req.Namespace)
	cur := p.cached(CertificatesGVR, req.Namespace, req.Name)
	switch {
	case cur == nil:
		created, err := ri.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// A namespace wildcard is asked for by the Namespace and its Routes at once:
			// the one created meanwhile by the same owner is the one wanted.
			if live, gerr := ri.Get(ctx, req.Name, metav1.GetOptions{}); gerr == nil && ownedBy(live, req.OwnerUID) {
				cur = live
				break
			}
			return certs.Status{State: certs.Failed, Reason: "CertificateNotOwned",
				Message: fmt.Sprintf("There is an existing certificate %s that we don't own.", req.Name)}, nil
		}
		if err != nil {
			return certs.Status{}, fmt.Errorf("create Certificate %s/%s: %w", req.Namespace, req.Name, err)
		}
		cur = created
	case !ownedBy(cur, req.OwnerUID):
		return certs.Status{State: certs.Failed, Reason: "CertificateNotOwned",
			Message: fmt.Sprintf("There is an existing certificate %s that we don't own.", req.Name)}, nil
	case !equalSpec(cur, want):
		next := cur.DeepCopy()
		next.Object["spec"] = want.Object["spec"]
		updated, err := ri.Update(ctx, next, metav1.UpdateOptions{})
		if err != nil {
			return certs.Status{}, fmt.Errorf("update Certificate %s/%s: %w", req.Namespace, req.Name, err)
		}
		cur = updated
	}
	st := p.status(cur, req)
	p.setPending(req.Owner, st.State != certs.Ready)
	return st, nil
}

func (p *Provider) status(cur *unstructured.Unstructured, req certs.Request) certs.Status {
	var cond map[string]any
	conds, _, _ := unstructured.NestedSlice(cur.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			cond = m
		}
	}
	str := func(k string) string { s, _ := cond[k].(string); return s }
	challenges := p.challenges(req)
	switch {
	case cond == nil:
		return certs.Status{State: certs.Pending, Reason: "NoCertManagerCertCondition",
			Message: "The ready condition of Cert Manager Certifiate does not exist.", Challenges: challenges}
	case str("status") == "Unknown":
		return certs.Status{State: certs.Pending, Reason: str("reason"), Message: str("message"), Challenges: challenges}
	case str("status") == "False":
		if slices.Contains(notReadyReasons, str("reason")) {
			return certs.Status{State: certs.Pending, Reason: str("reason"), Message: str("message"), Challenges: challenges}
		}
		return certs.Status{State: certs.Failed, Reason: str("reason"), Message: str("message")}
	}
	sec := p.cached(secretsGVR, req.Namespace, req.Name)
	if sec == nil {
		return certs.Status{State: certs.Pending, Reason: "SecretNotFound",
			Message: fmt.Sprintf("Secret %s/%s of the Ready certificate is not there yet", req.Namespace, req.Name), Challenges: challenges}
	}
	crt, _, _ := unstructured.NestedString(sec.Object, "data", "tls.crt")
	key, _, _ := unstructured.NestedString(sec.Object, "data", "tls.key")
	out := certs.Status{State: certs.Ready, CertPEM: decodeB64(crt), KeyPEM: decodeB64(key)}
	// A certificate past its renewal time keeps serving while its challenges are routed.
	if rt, _, _ := unstructured.NestedString(cur.Object, "status", "renewalTime"); rt != "" {
		if t, err := time.Parse(time.RFC3339, rt); err == nil && time.Now().After(t) {
			out.Challenges = challenges
		}
	}
	return out
}

// challenges are the HTTP01 challenges of req's hosts when its issuer solves ACME HTTP01
// first, from the solver Services cert-manager labels with each domain's adler32 and the
// Challenge that owns each (Knative's setHTTP01Challenges).
func (p *Provider) challenges(req certs.Request) []certs.Challenge {
	var issuer *unstructured.Unstructured
	if req.Issuer.Kind == "ClusterIssuer" {
		issuer = p.cached(ClusterIssuersGVR, "", req.Issuer.Name)
	} else {
		issuer = p.cached(IssuersGVR, req.Namespace, req.Issuer.Name)
	}
	if issuer == nil {
		return nil
	}
	solvers, _, _ := unstructured.NestedSlice(issuer.Object, "spec", "acme", "solvers")
	if len(solvers) == 0 {
		return nil
	}
	if s, ok := solvers[0].(map[string]any); !ok || s["http01"] == nil {
		return nil
	}
	var out []certs.Challenge
	for _, host := range req.Hosts {
		sel := labels.SelectorFromSet(labels.Set{HTTPDomainLabel: strconv.FormatUint(uint64(adler32.Checksum([]byte(host))), 10)})
		items, _ := p.informers[servicesGVR].GetIndexer().ByIndex(cache.NamespaceIndex, req.Namespace)
		for _, it := range items {
			svc, ok := it.(*unstructured.Unstructured)
			if !ok || !sel.Matches(labels.Set(svc.GetLabels())) || len(svc.GetOwnerReferences()) == 0 {
				continue
			}
			ch := p.cached(ChallengesGVR, req.Namespace, svc.GetOwnerReferences()[0].Name)
			if ch == nil {
				continue
			}
			token, _, _ := unstructured.NestedString(ch.Object, "spec", "token")
			dnsName, _, _ := unstructured.NestedString(ch.Object, "spec", "dnsName")
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if token == "" || len(ports) == 0 {
				continue
			}
			port, _, _ := unstructured.NestedInt64(ports[0].(map[string]any), "port")
			out = append(out, certs.Challenge{Host: dnsName, Path: ChallengePath + token,
				ServiceNamespace: svc.GetNamespace(), ServiceName: svc.GetName(), ServicePort: uint32(port)})
		}
	}
	slices.SortFunc(out, func(a, b certs.Challenge) int {
		if a.Host+a.Path < b.Host+b.Path {
			return -1
		}
		return 1
	})
	return out
}

// Release deletes owner's Certificates except those named in keep.
func (p *Provider) Release(ctx context.Context, owner string, keep []string) {
	for _, it := range p.informers[CertificatesGVR].GetIndexer().List() {
		u, ok := it.(*unstructured.Unstructured)
		if !ok || u.GetAnnotations()[OwnerAnnotation] != owner || slices.Contains(keep, u.GetName()) {
			continue
		}
		err := p.cfg.Client.Resource(CertificatesGVR).Namespace(u.GetNamespace()).Delete(ctx, u.GetName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			p.log.Warn("delete a Certificate no longer needed", "certificate", u.GetNamespace()+"/"+u.GetName(), "err", err)
		}
	}
	if len(keep) == 0 {
		p.setPending(owner, false)
	}
}

func typesUID(uid string) types.UID { return types.UID(uid) }

// ownedBy reports whether u's controller is the object with uid.
func ownedBy(u *unstructured.Unstructured, uid string) bool {
	for _, r := range u.GetOwnerReferences() {
		if r.Controller != nil && *r.Controller && string(r.UID) == uid {
			return true
		}
	}
	return false
}

// equalSpec reports whether cur has the spec of want.
func equalSpec(cur, want *unstructured.Unstructured) bool {
	return equality.Semantic.DeepEqual(cur.Object["spec"], want.Object["spec"])
}

// decodeB64 decodes a Secret's data value (base64 in JSON); a bad one decodes to nothing,
// which fails the certificate's check with the reason.
func decodeB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}
