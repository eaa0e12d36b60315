// Package gatewayapi fronts Knative Services with Gateway API: HTTPRoutes attached to Gateways
// of a GatewayClass whose controllerName is ControllerName, with backendRefs to Knative
// Services (group serving.knative.dev, kind Service), are routed through Skiff's xDS to the
// Services' revisions, weighted by each Service's traffic split; Skiff writes the HTTPRoutes'
// status.parents conditions (Accepted, ResolvedRefs), the Gateways' and listeners' conditions
// and attached route counts, and the GatewayClasses' Accepted condition.
//
// Decisions: every Gateway of Skiff's class is served by the same proxies on their one HTTP
// listener (skiff-http; the skiff-ingress Service in a cluster), HTTPS listeners on the TLS
// one (skiff-https) with their certificateRefs' certificate as an SDS secret for the listener's
// hostname, so a listener's port only selects which parentRefs match it. Only HTTP and HTTPS
// (TLS mode Terminate, a Secret in the Gateway's namespace) listeners are accepted. Rules from every route
// on a hostname are merged by Gateway API's precedence. What Skiff cannot honour (filters,
// query-parameter or method matches, regular expressions, timeouts, retries, session
// persistence) makes the route Accepted=False with reason UnsupportedValue naming the field,
// rather than being ignored. A backendRef that does not resolve gets no traffic; a rule left
// with none answers 500, as Gateway API asks.
package gatewayapi

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
	"github.com/skiff-dev/skiff/controlplane/xds"
	k8scorev1 "k8s.io/api/core/v1"
)

// ControllerName is the GatewayClass spec.controllerName Skiff serves.
const ControllerName gwv1.GatewayController = "skiff.dev/gateway-controller"

// RouteNamespace is the xds.Route namespace under which HTTPRoute hostnames are programmed
// (one xds.Route per hostname); no Kubernetes namespace can be named so.
const RouteNamespace = "gateway.networking.k8s.io"

var (
	classesGVR    = gwv1.SchemeGroupVersion.WithResource("gatewayclasses")
	gatewaysGVR   = gwv1.SchemeGroupVersion.WithResource("gateways")
	routesGVR     = gwv1.SchemeGroupVersion.WithResource("httproutes")
	grantsGVR     = gwv1.SchemeGroupVersion.WithResource("referencegrants")
	namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// Proxy is the part of the xDS server HTTPRoutes are programmed through.
type Proxy interface {
	SetRoute(r xds.Route) error
	DeleteRoute(namespace, name string)
	// SetCertificate serves an HTTPS listener's certificate on the TLS listener (an SDS
	// secret), refusing one that does not load with the reason; DeleteCertificate stops it.
	SetCertificate(c xds.TLSCertificate) error
	DeleteCertificate(name string)
}

// Config wires a Controller.
type Config struct {
	Client dynamic.Interface
	// Store reads Knative Services, Routes and Revisions (kubestore, defaulted).
	Store  store.Interface
	Proxy  Proxy
	Logger *slog.Logger
}

// Controller is the Gateway API controller; New, then Start, then Run.
type Controller struct {
	cfg       Config
	log       *slog.Logger
	factory   dynamicinformer.DynamicSharedInformerFactory
	informers map[schema.GroupVersionResource]cache.SharedIndexInformer
	kick      chan struct{}

	mu         sync.Mutex
	programmed map[string]xds.Route // hostname → what the proxy has
	// certs are the HTTPS listeners' certificates the proxy serves, by SDS name.
	certs map[string]bool
}

// Installed reports whether the API server serves Gateway API's v1 HTTPRoutes (the CRDs
// are installed); the controller is only started when they are.
func Installed(d discovery.DiscoveryInterface) (bool, error) {
	res, err := d.ServerResourcesForGroupVersion(gwv1.SchemeGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("gateway api: discover %s: %w", gwv1.SchemeGroupVersion, err)
	}
	for _, r := range res.APIResources {
		if r.Name == "httproutes" {
			return true, nil
		}
	}
	return false, nil
}

// New returns a Controller watching every namespace.
func New(cfg Config) *Controller {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{
		cfg: cfg, log: cfg.Logger.With("component", "gateway-api"),
		factory:    dynamicinformer.NewDynamicSharedInformerFactory(cfg.Client, 10*time.Hour),
		informers:  map[schema.GroupVersionResource]cache.SharedIndexInformer{},
		kick:       make(chan struct{}, 1),
		programmed: map[string]xds.Route{},
		certs:      map[string]bool{},
	}
	for _, gvr := range []schema.GroupVersionResource{classesGVR, gatewaysGVR, routesGVR, grantsGVR, namespacesGVR} {
		inf := c.factory.ForResource(gvr).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { c.Kick() },
			UpdateFunc: func(any, any) { c.Kick() },
			DeleteFunc: func(any) { c.Kick() },
		})
		c.informers[gvr] = inf
	}
	return c
}

// Start starts the informers and waits for their caches; they stop with ctx.
func (c *Controller) Start(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	for gvr, inf := range c.informers {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return fmt.Errorf("gateway api: wait for %s informer: %w", gvr.Resource, ctx.Err())
		}
	}
	return nil
}

// Shutdown waits for the informers' goroutines after Start's ctx is done.
func (c *Controller) Shutdown() { c.factory.Shutdown() }

// Kick asks for a sync: a Gateway API object or a Knative Service, Route or Revision changed.
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default: // a sync is already due and will see this change
	}
}

// OnStoreEvent is a kubestore subscriber: Knative changes can change what routes resolve to.
func (c *Controller) OnStoreEvent(e store.Event) {
	switch e.Key.Kind {
	case servingv1.KindService, servingv1.KindRoute, servingv1.KindRevision, api.KindSecret:
		c.Kick()
	}
}

// Run syncs on every kick until ctx is done; a failed sync is retried after a second.
func (c *Controller) Run(ctx context.Context) {
	c.Kick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		if err := c.sync(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("gateway api sync failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				c.Kick()
			}
		}
	}
}

// sync recomputes every route's attachment and rules, programs the proxy and writes status.
func (c *Controller) sync(ctx context.Context) error {
	w := &world{gateways: map[string]*gwv1.Gateway{}, namespaceLabels: map[string]map[string]string{}, backend: c.backend(ctx)}
	classes := map[string]*unstructured.Unstructured{}
	for _, u := range c.list(classesGVR) {
		var gc gwv1.GatewayClass
		if err := fromUnstructured(u, &gc); err == nil && gc.Spec.ControllerName == ControllerName {
			classes[gc.Name] = u
		}
	}
	gatewayObjs := map[string]*unstructured.Unstructured{}
	for _, u := range c.list(gatewaysGVR) {
		var gw gwv1.Gateway
		if err := fromUnstructured(u, &gw); err == nil && classes[string(gw.Spec.GatewayClassName)] != nil {
			w.gateways[gw.Namespace+"/"+gw.Name] = &gw
			gatewayObjs[gw.Namespace+"/"+gw.Name] = u
		}
	}
	for _, u := range c.list(namespacesGVR) {
		w.namespaceLabels[u.GetName()] = u.GetLabels()
	}
	for _, u := range c.list(grantsGVR) {
		var g gwv1.ReferenceGrant
		if err := fromUnstructured(u, &g); err == nil {
			w.grants = append(w.grants, &g)
		}
	}

	type routeState struct {
		obj *unstructured.Unstructured
		r   *gwv1.HTTPRoute
		res routeResult
	}
	var routes []*routeState
	attached := map[string]int32{}
	byHost := map[string][]rankedRule{}
	hostRoutes := map[string][]*routeState{}
	for _, u := range c.list(routesGVR) {
		var r gwv1.HTTPRoute
		if err := fromUnstructured(u, &r); err != nil {
			c.log.Warn("undecodable HTTPRoute", "route", u.GetNamespace()+"/"+u.GetName(), "err", err)
			continue
		}
		rs := &routeState{obj: u, r: &r, res: w.translateRoute(&r, attached)}
		routes = append(routes, rs)
		for _, h := range rs.res.hostnames {
			byHost[h] = append(byHost[h], rs.res.rules...)
			hostRoutes[h] = append(hostRoutes[h], rs)
		}
	}

	// Program one xds.Route per hostname; a hostname the proxy refuses (another Route
	// already serves it) makes every route on it not Accepted.
	var errs []error
	conflicts := map[*routeState]string{}
	for h, rules := range byHost {
		sortRules(rules)
		xr := xds.Route{Namespace: RouteNamespace, Name: h, VirtualHosts: []xds.VirtualHost{{
			Name: "httproute:" + h, Domains: []string{h}, Metadata: map[string]string{"hostname": h},
		}}}
		for _, rr := range rules {
			xr.VirtualHosts[0].Rules = append(xr.VirtualHosts[0].Rules, rr.rule)
		}
		if err := c.cfg.Proxy.SetRoute(xr); err != nil {
			for _, rs := range hostRoutes[h] {
				conflicts[rs] = fmt.Sprintf("hostname %s cannot be programmed: %v", h, err)
			}
			continue
		}
		c.mu.Lock()
		c.programmed[h] = xr
		c.mu.Unlock()
	}
	c.mu.Lock()
	for h := range c.programmed {
		if _, ok := byHost[h]; !ok {
			c.cfg.Proxy.DeleteRoute(RouteNamespace, h)
			delete(c.programmed, h)
		}
	}
	c.mu.Unlock()

	for _, rs := range routes {
		if msg, bad := conflicts[rs]; bad {
			for i := range rs.res.parents {
				cd := &rs.res.parents[i].Conditions[0]
				cd.Status, cd.Reason, cd.Message = metav1.ConditionFalse, string(gwv1.RouteReasonUnsupportedValue), msg
			}
		}
		if err := c.writeRouteStatus(ctx, rs.obj, rs.r, rs.res.parents); err != nil {
			errs = append(errs, err)
		}
	}
	certProblems := c.programCertificates(ctx, w)
	for key, u := range gatewayObjs {
		if err := c.writeGatewayStatus(ctx, u, w.gateways[key], attached, certProblems); err != nil {
			errs = append(errs, err)
		}
	}
	for _, u := range classes {
		if err := c.writeClassStatus(ctx, u); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// backend resolves Knative Services to their Route's current traffic, read from the store.
func (c *Controller) backend(ctx context.Context) func(ns, name string) (Backend, bool) {
	return func(ns, name string) (Backend, bool) {
		var svc servingv1.Service
		if err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindService, Namespace: ns, Name: name}, &svc); err != nil {
			return Backend{}, false
		}
		var route servingv1.Route
		if err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRoute, Namespace: ns, Name: name}, &route); err != nil {
			return Backend{}, true // not routable yet: no traffic, but the reference resolves
		}
		// The Route's own default split (traffic.Split), each revision's mode as its status says.
		clusters, _ := traffic.Clusters(ns, traffic.Split(route.Status.Traffic), func(rev string) *servingv1.Revision {
			var r servingv1.Revision
			if err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: ns, Name: rev}, &r); err != nil {
				return nil
			}
			return &r
		})
		b := Backend{Clusters: clusters}
		return b, true
	}
}

func (c *Controller) list(gvr schema.GroupVersionResource) []*unstructured.Unstructured {
	items := c.informers[gvr].GetIndexer().List()
	out := make([]*unstructured.Unstructured, 0, len(items))
	for _, it := range items {
		if u, ok := it.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *unstructured.Unstructured) int {
		return cmp.Or(strings.Compare(a.GetNamespace(), b.GetNamespace()), strings.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// writeRouteStatus replaces Skiff's entries in status.parents (others' stay) when they changed.
func (c *Controller) writeRouteStatus(ctx context.Context, u *unstructured.Unstructured, r *gwv1.HTTPRoute, ours []gwv1.RouteParentStatus) error {
	var next []gwv1.RouteParentStatus
	var old []gwv1.RouteParentStatus
	for _, p := range r.Status.Parents {
		if p.ControllerName == ControllerName {
			old = append(old, p)
		} else {
			next = append(next, p)
		}
	}
	for _, p := range ours {
		var prev []metav1.Condition
		for _, o := range old {
			if equality.Semantic.DeepEqual(o.ParentRef, p.ParentRef) {
				prev = o.Conditions
			}
		}
		p.Conditions = keepTransitionTimes(prev, p.Conditions)
		next = append(next, p)
	}
	if equality.Semantic.DeepEqual(normalize(r.Status.Parents), normalize(next)) {
		return nil
	}
	if len(ours) == 0 && len(old) == 0 {
		return nil
	}
	st := gwv1.HTTPRouteStatus{RouteStatus: gwv1.RouteStatus{Parents: next}}
	return c.updateStatus(ctx, routesGVR, u, &st)
}

// writeGatewayStatus says the Gateway is Accepted and Programmed, with each listener's
// conditions and attached routes.
func (c *Controller) writeGatewayStatus(ctx context.Context, u *unstructured.Unstructured, gw *gwv1.Gateway, attached map[string]int32, certProblems map[string]string) error {
	cond := func(t string, ok bool, reason, falseReason, msg string) metav1.Condition {
		c := metav1.Condition{Type: t, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: gw.Generation}
		if !ok {
			c.Status, c.Reason = metav1.ConditionFalse, falseReason
		}
		return c
	}
	st := gwv1.GatewayStatus{Conditions: keepTransitionTimes(gw.Status.Conditions, []metav1.Condition{
		cond(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonAccepted), "", "Served by Skiff's proxies."),
		cond(string(gwv1.GatewayConditionProgrammed), true, string(gwv1.GatewayReasonProgrammed), "", "Routes are programmed through Skiff's xDS."),
	})}
	for _, l := range gw.Spec.Listeners {
		http := servedProtocol(l)
		msg := "HTTP listener served on the skiff-http listener."
		switch {
		case !http:
			msg = fmt.Sprintf("protocol %s is not supported by Skiff (HTTP, and HTTPS terminating TLS).", l.Protocol)
		case l.Protocol == gwv1.HTTPSProtocolType:
			msg = "HTTPS listener served on the skiff-https listener with its certificateRefs' certificate."
		}
		certProblem := certProblems[gw.Namespace+"/"+gw.Name+"/"+string(l.Name)]
		ls := gwv1.ListenerStatus{Name: l.Name, AttachedRoutes: attached[gw.Namespace+"/"+gw.Name+"/"+string(l.Name)]}
		if http {
			ls.SupportedKinds = []gwv1.RouteGroupKind{{Group: &gatewayGroup, Kind: "HTTPRoute"}}
		}
		var prev []metav1.Condition
		for _, p := range gw.Status.Listeners {
			if p.Name == l.Name {
				prev = p.Conditions
			}
		}
		refsMsg := "No references to resolve."
		if l.Protocol == gwv1.HTTPSProtocolType {
			refsMsg = "The certificateRefs resolve to a usable certificate."
		}
		programmedMsg := msg
		if certProblem != "" {
			refsMsg, programmedMsg = certProblem, certProblem
		}
		ls.Conditions = keepTransitionTimes(prev, []metav1.Condition{
			cond(string(gwv1.ListenerConditionAccepted), http, string(gwv1.ListenerReasonAccepted), string(gwv1.ListenerReasonUnsupportedProtocol), msg),
			cond(string(gwv1.ListenerConditionProgrammed), http && certProblem == "", string(gwv1.ListenerReasonProgrammed), string(gwv1.ListenerReasonInvalid), programmedMsg),
			cond(string(gwv1.ListenerConditionResolvedRefs), certProblem == "", string(gwv1.ListenerReasonResolvedRefs), string(gwv1.ListenerReasonInvalidCertificateRef), refsMsg),
		})
		st.Listeners = append(st.Listeners, ls)
	}
	if equality.Semantic.DeepEqual(gw.Status.Conditions, st.Conditions) && equality.Semantic.DeepEqual(gw.Status.Listeners, st.Listeners) {
		return nil
	}
	st.Addresses = gw.Status.Addresses
	return c.updateStatus(ctx, gatewaysGVR, u, &st)
}

// writeClassStatus accepts a GatewayClass naming Skiff's controller.
func (c *Controller) writeClassStatus(ctx context.Context, u *unstructured.Unstructured) error {
	var gc gwv1.GatewayClass
	if err := fromUnstructured(u, &gc); err != nil {
		return err
	}
	conds := keepTransitionTimes(gc.Status.Conditions, []metav1.Condition{{
		Type: string(gwv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
		Reason: string(gwv1.GatewayClassReasonAccepted), Message: "Handled by Skiff.", ObservedGeneration: gc.Generation,
	}})
	if equality.Semantic.DeepEqual(gc.Status.Conditions, conds) {
		return nil
	}
	gc.Status.Conditions = conds
	return c.updateStatus(ctx, classesGVR, u, &gc.Status)
}

func (c *Controller) updateStatus(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured, status any) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return fmt.Errorf("gateway api: encode %s %s/%s status: %w", gvr.Resource, u.GetNamespace(), u.GetName(), err)
	}
	next := u.DeepCopy()
	next.Object["status"] = m
	var ri dynamic.ResourceInterface = c.cfg.Client.Resource(gvr)
	if u.GetNamespace() != "" {
		ri = c.cfg.Client.Resource(gvr).Namespace(u.GetNamespace())
	}
	if _, err := ri.UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("gateway api: write %s %s/%s status: %w", gvr.Resource, u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

// keepTransitionTimes carries lastTransitionTime over from prev for conditions whose status
// did not change, and stamps now on the others.
func keepTransitionTimes(prev, next []metav1.Condition) []metav1.Condition {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	out := slices.Clone(next)
	for i := range out {
		out[i].LastTransitionTime = now
		for _, p := range prev {
			if p.Type == out[i].Type && p.Status == out[i].Status {
				out[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
	return out
}

// normalize drops nothing but makes nil and empty slices compare equal.
func normalize(ps []gwv1.RouteParentStatus) []gwv1.RouteParentStatus {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func fromUnstructured(u *unstructured.Unstructured, into any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		return fmt.Errorf("decode %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

// programCertificates serves the certificate of every HTTPS listener of Skiff's Gateways on
// the TLS listener, for the listener's hostname (or, without one, the names the certificate
// covers), and stops serving those of listeners gone. It returns, by "ns/gateway/listener",
// why a listener's certificate cannot be served: a certificateRef that is not a Secret in the
// Gateway's namespace, a Secret missing, or one whose certificate does not load. A bad
// certificate fails its listener alone.
func (c *Controller) programCertificates(ctx context.Context, w *world) map[string]string {
	problems := map[string]string{}
	want := map[string]bool{}
	for _, gw := range w.gateways {
		for _, l := range gw.Spec.Listeners {
			if l.Protocol != gwv1.HTTPSProtocolType || !servedProtocol(l) {
				continue
			}
			key := gw.Namespace + "/" + gw.Name + "/" + string(l.Name)
			name := "gateway:" + key
			cert, err := c.listenerCertificate(ctx, gw, l)
			if err == nil {
				cert.Name = name
				err = c.cfg.Proxy.SetCertificate(cert)
			}
			if err != nil {
				problems[key] = err.Error()
				continue
			}
			want[name] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.certs {
		if !want[name] {
			c.cfg.Proxy.DeleteCertificate(name)
		}
	}
	c.certs = want
	return problems
}

// listenerCertificate reads the certificate of an HTTPS listener's first certificateRef.
func (c *Controller) listenerCertificate(ctx context.Context, gw *gwv1.Gateway, l gwv1.Listener) (xds.TLSCertificate, error) {
	if l.TLS == nil || len(l.TLS.CertificateRefs) == 0 {
		return xds.TLSCertificate{}, fmt.Errorf("listener %s: tls.certificateRefs is required", l.Name)
	}
	ref := l.TLS.CertificateRefs[0]
	if ptrOr(ref.Group, "") != "" || ptrOr(ref.Kind, "Secret") != "Secret" {
		return xds.TLSCertificate{}, fmt.Errorf("listener %s: certificateRefs[0] must be a core Secret", l.Name)
	}
	if ns := string(ptrOr(ref.Namespace, gwv1.Namespace(gw.Namespace))); ns != gw.Namespace {
		return xds.TLSCertificate{}, fmt.Errorf("listener %s: certificateRefs[0]: a Secret in another namespace (%s) is not supported", l.Name, ns)
	}
	var sec api.Secret
	if err := c.cfg.Store.Get(ctx, store.Key{Kind: api.KindSecret, Namespace: gw.Namespace, Name: string(ref.Name)}, &sec); err != nil {
		return xds.TLSCertificate{}, fmt.Errorf("listener %s: certificateRefs[0]: Secret %s/%s: %w", l.Name, gw.Namespace, ref.Name, err)
	}
	cert := xds.TLSCertificate{CertPEM: sec.Data[k8scorev1.TLSCertKey], KeyPEM: sec.Data[k8scorev1.TLSPrivateKeyKey]}
	if l.Hostname != nil && *l.Hostname != "" {
		cert.Hosts = []string{string(*l.Hostname)}
		return cert, nil
	}
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		return xds.TLSCertificate{}, fmt.Errorf("listener %s: Secret %s/%s: %w", l.Name, gw.Namespace, ref.Name, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || len(leaf.DNSNames) == 0 {
		return xds.TLSCertificate{}, fmt.Errorf("listener %s: Secret %s/%s: a listener without a hostname needs a certificate with DNS names", l.Name, gw.Namespace, ref.Name)
	}
	cert.Hosts = leaf.DNSNames
	return cert, nil
}
