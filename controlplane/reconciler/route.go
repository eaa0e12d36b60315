package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// VisibilityLabel marks a Route or Service reachable only inside the cluster, as in Knative.
const VisibilityLabel = domains.VisibilityLabel

// ReasonProxyRejected is the reason of a Route's IngressReady=False when a serving proxy
// NACKed the configuration carrying it; the message is the proxy's error_detail.
const ReasonProxyRejected = "ProxyRejected"

// reconcileRoute resolves the route's traffic targets to ready revisions, names them from
// config-network and config-domain, gets their certificates (external-domain-tls), programs
// the proxy, and reports the URLs, resolved traffic and readiness.
func (c *Controller) reconcileRoute(ctx context.Context, key store.Key) error {
	var route servingv1.Route
	if err := c.cfg.Store.Get(ctx, key, &route); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		c.cfg.Proxy.DeleteRoute(key.Namespace, key.Name)
		c.setRouteRefs(key, nil)
		c.waitForAck(key, false, "")
		c.releaseCertificates(ctx, key)
		// Knative's labeler finalizes a deleted Route so: its targets no longer list it.
		return c.clearRoutingMeta(ctx, key.Namespace, key.Name, nil, nil)
	}
	// The labeler works from the Route as stored, as Knative's runs beside its reconciler.
	if err := c.syncRoutingMeta(ctx, &route); err != nil {
		return fmt.Errorf("reconcile route %s: %w", key, err)
	}
	now := c.now()
	before := routeServedBefore(&route)
	was := storedStatus(&route.Status.Status)
	st := &route.Status
	st.ObservedGeneration = route.Generation
	conds := []duck.ConditionType{servingv1.RouteConditionAllTrafficAssigned, servingv1.RouteConditionIngressReady, RouteConditionCertificateProvisioned}
	net := c.settings()

	resolved, err := traffic.Build(ctx, &route, storeLister{ctx: ctx, store: c.cfg.Store, namespace: route.Namespace})
	if resolved != nil {
		c.setRouteRefs(key, routeRefs(resolved))
	}
	var terr *traffic.TargetError
	switch {
	case errors.As(err, &terr):
		// A spec error, a missing or unready target: the route keeps no status traffic it
		// cannot assign, and says why (Knative's MarkBadTrafficTarget).
		st.SetCondition(duck.Condition{Type: servingv1.RouteConditionAllTrafficAssigned, Status: terr.Status, Reason: terr.Reason, Message: terr.Message}, now)
		if st.GetCondition(RouteConditionCertificateProvisioned) == nil {
			st.MarkUnknown(RouteConditionCertificateProvisioned, "Uninitialized", "Waiting for the traffic targets.", now)
		}
		// The proxy keeps the last traffic it was given until the new targets are ready.
		summarize(&st.Status, now, conds...)
		return c.updateStatus(ctx, &route, was, &route.Status.Status)
	case err != nil:
		return fmt.Errorf("reconcile route %s: %w", key, err)
	}

	targets, revs := resolved.Targets, resolved.Revisions
	names, err := routeNames(net.cfg, &route, targets)
	if err != nil {
		if !errors.Is(err, domains.ErrDomainName) {
			return fmt.Errorf("reconcile route %s: %w", key, err)
		}
		// Knative reports a host the templates cannot make on AllTrafficAssigned.
		st.MarkFalse(servingv1.RouteConditionAllTrafficAssigned, "ErrorConfig", err.Error(), now)
		summarize(&st.Status, now, conds...)
		return c.updateStatus(ctx, &route, was, &route.Status.Status)
	}
	httpOption, err := net.cfg.HTTPOption(route.Annotations)
	if err != nil {
		st.MarkTrue(servingv1.RouteConditionAllTrafficAssigned, now)
		st.MarkFalse(servingv1.RouteConditionIngressReady, "InvalidHTTPProtocol",
			fmt.Sprintf("metadata.annotations[%s]: %v (want Enabled or Redirected)", domains.HTTPProtocolAnnotation, err), now)
		summarize(&st.Status, now, conds...)
		return c.updateStatus(ctx, &route, was, &route.Status.Status)
	}
	tls, err := c.routeTLS(ctx, &route, key, names, now)
	if err != nil {
		return fmt.Errorf("reconcile route %s: %w", key, err)
	}

	// The rollout state is stored before the proxy is programmed with it, so that the
	// proxies never run ahead of what a restarted control plane would read back.
	ro, err := c.routeRollout(ctx, &route, key, targets, revs, net.cfg.Network.RolloutDurationSecs, now)
	if err != nil {
		return fmt.Errorf("reconcile route %s: %w", key, err)
	}
	if err := c.cfg.Proxy.SetRoute(c.translate(&route, targets, ro, revs, names, httpOption, tls)); err != nil {
		return fmt.Errorf("reconcile route %s: program proxy: %w", key, err)
	}
	// DomainMappings to this route send its traffic themselves (a revision's mode may have
	// changed without the route's status changing).
	c.enqueueMappingsTo(route.Namespace, route.Name)

	markRouteURLs(st, &route, ro.StatusTargets(targets), names, tls, net.cfg.Network.DefaultExternalScheme)
	st.MarkTrue(servingv1.RouteConditionAllTrafficAssigned, now)
	c.markProxyAck(key, &st.Status, servingv1.RouteConditionIngressReady, route.Namespace, route.Name, now, func() {
		if !before.unchanged(&route) {
			st.MarkUnknown(servingv1.RouteConditionIngressReady, "Uninitialized", "Waiting for the proxy to accept the route.", now)
		}
	})
	if !ro.Done() {
		markRolloutInProgress(&st.Status, now)
	}
	summarize(&st.Status, now, conds...)
	return c.updateStatus(ctx, &route, was, &route.Status.Status)
}

// markRouteURLs reports a route's URL, cluster-local address and the URL of each traffic
// target: http, or for an external host the scheme its certificate allows (defaultScheme
// without one).
func markRouteURLs(st *servingv1.RouteStatus, route *servingv1.Route, targets []servingv1.TrafficTarget, names map[string]targetNames, tls *hostTLS, defaultScheme string) {
	url := func(n targetNames) string {
		scheme := "http"
		if n.visibility == domains.ExternalIP {
			scheme = tls.schemeOf(n.primary(), defaultScheme)
		}
		return scheme + "://" + n.primary()
	}
	st.URL = url(names[""])
	st.Address = &duck.Addressable{URL: "http://" + route.Name + "." + route.Namespace + "." + domains.ClusterLocalDomain}
	st.Traffic = traffic.WithURLs(targets, func(tag string) string { return url(names[tag]) })
}

// storeLister reads a route's configurations and revisions from the store for traffic.Build.
type storeLister struct {
	ctx       context.Context
	store     store.Interface
	namespace string
}

func (l storeLister) Configuration(name string) (*servingv1.Configuration, error) {
	return getOrNil[servingv1.Configuration](l.ctx, l.store, store.Key{Kind: servingv1.KindConfiguration, Namespace: l.namespace, Name: name})
}

func (l storeLister) Revision(name string) (*servingv1.Revision, error) {
	return getOrNil[servingv1.Revision](l.ctx, l.store, store.Key{Kind: servingv1.KindRevision, Namespace: l.namespace, Name: name})
}

// getOrNil reads an object, nil when it does not exist.
func getOrNil[T any, PT interface {
	*T
	store.Object
}](ctx context.Context, s store.Interface, key store.Key) (PT, error) {
	obj := PT(new(T))
	err := s.Get(ctx, key, obj)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return obj, nil
}

// routeRefs are the configuration and revision names a route's traffic named, found or not.
func routeRefs(cfg *traffic.Config) map[string]bool {
	refs := map[string]bool{}
	for n := range cfg.Configurations {
		refs[n] = true
	}
	for n := range cfg.Revisions {
		refs[n] = true
	}
	for _, m := range cfg.Missing {
		_, n, _ := strings.Cut(m, "/")
		refs[n] = true
	}
	return refs
}

// translate turns resolved traffic into the proxy's model: per target (the route's default,
// split by percent, and each tag, all to its revision) a virtual host for its external name on
// the external listeners (none for a cluster-local target; 301 to https with http-protocol
// Redirected; ACME challenge paths first) and one for its cluster-local names on the local
// listener.
func (c *Controller) translate(route *servingv1.Route, targets []servingv1.TrafficTarget, ro *traffic.Rollout, revs map[string]*servingv1.Revision, names map[string]targetNames, httpOption domains.HTTPProtocol, tls *hostTLS) xds.Route {
	out := xds.Route{Namespace: route.Namespace, Name: route.Name}
	rev := func(name string) *servingv1.Revision { return revs[name] }
	// Each host's split follows the rollout under way, if any (Knative's makeBaseIngressPath).
	defClusters, defTimeouts := traffic.Clusters(route.Namespace, ro.Weights(targets, ""), rev)
	// add appends the external (unless cluster-local) and the local virtual host of one
	// target, from base's routing (clusters, rules, headers set).
	add := func(tag, vhName string, base xds.VirtualHost, timeouts traffic.Timeouts) {
		n := names[tag]
		base.Metadata = map[string]string{"namespace": route.Namespace, "route": route.Name}
		if tag != "" {
			base.Metadata["tag"] = tag
		}
		timeouts.Apply(&base)
		if n.visibility == domains.ExternalIP {
			vh := base
			vh.Name, vh.Domains, vh.Visibility = vhName, n.external.Expanded, xds.VisibilityExternal
			vh.RedirectHTTP = httpOption == domains.HTTPRedirected
			for _, h := range n.external.Expanded {
				vh.Challenges = append(vh.Challenges, tls.challenges[h]...)
			}
			out.VirtualHosts = append(out.VirtualHosts, vh)
		}
		vh := base
		vh.Name, vh.Domains, vh.Visibility = vhName+":local", n.local.Expanded, xds.VisibilityClusterLocal
		out.VirtualHosts = append(out.VirtualHosts, vh)
	}
	type tagged struct {
		tag      string
		clusters []xds.WeightedCluster
		timeouts traffic.Timeouts
	}
	var tags []tagged
	for _, t := range traffic.Tags(targets) {
		clusters, timeouts := traffic.Clusters(route.Namespace, ro.Weights(targets, t.Tag), rev)
		tags = append(tags, tagged{t.Tag, clusters, timeouts})
	}
	def := xds.VirtualHost{Clusters: defClusters}
	tagHeader := c.tagHeaderRouting()
	if tagHeader {
		// Knative's MakeIngressSpec with tag-header-based-routing: on the default host, a
		// rule per tag (in tag order) for requests naming it in Knative-Serving-Tag, then
		// the default split, marked Knative-Serving-Default-Route: true so the app can tell
		// an unknown tag (both headers) from no tag.
		// Each tag's rule keeps its revisions' timeouts, as each revision's queue-proxy
		// enforces its own in Knative.
		for _, t := range tags {
			def.Rules = append(def.Rules, xds.Rule{Headers: []xds.HeaderMatch{{Name: RouteTagHeader, Value: t.tag}}, Clusters: t.clusters, Timeouts: t.timeouts.Route()})
		}
		def.Rules = append(def.Rules, xds.Rule{Clusters: defClusters, SetRequestHeaders: []xds.Header{{Name: DefaultRouteHeader, Value: "true"}}})
	}
	add("", route.Namespace+"/"+route.Name, def, defTimeouts)
	for _, t := range tags {
		vh := xds.VirtualHost{Clusters: t.clusters}
		if tagHeader {
			// A request by the tag's own host names its tag too (Knative appends it).
			vh.SetRequestHeaders = []xds.Header{{Name: RouteTagHeader, Value: t.tag}}
		}
		add(t.tag, route.Namespace+"/"+route.Name+"/"+t.tag, vh, t.timeouts)
	}
	return out
}

// Knative's headers for tag-header-based routing (knative.dev/networking/pkg/http/header).
const (
	// RouteTagHeader names the tag whose target a request to a Route's default host goes to.
	RouteTagHeader = "Knative-Serving-Tag"
	// DefaultRouteHeader marks a request the default target answers.
	DefaultRouteHeader = "Knative-Serving-Default-Route"
)

// markProxyAck sets cond from what the serving proxies did with the proxy route (ns, name)
// that key's reconcile programs: True once every one ACKed it, False (ProxyRejected) while
// one NACKed it, and otherwise whatever waiting reports. Until it is ACKed, pollAcks checks
// again and re-enqueues key when that changes.
//
// A serving proxy that NACKed the configuration keeps serving what it had, so the object is
// not ready until a later configuration is accepted.
func (c *Controller) markProxyAck(key store.Key, st *duck.Status, cond duck.ConditionType, ns, name string, now time.Time, waiting func()) {
	switch ps := c.cfg.Proxy.RouteStatus(ns, name); {
	case ps.Acked:
		c.waitForAck(key, false, "")
		st.MarkTrue(cond, now)
	case ps.Rejected != "":
		c.waitForAck(key, true, ps.Rejected)
		st.MarkFalse(cond, ReasonProxyRejected, ps.Rejected, now)
	default:
		c.waitForAck(key, true, "")
		waiting()
	}
}
