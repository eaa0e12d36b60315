package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// VisibilityLabel marks a Route or Service reachable only inside the cluster, as in Knative.
const VisibilityLabel = domains.VisibilityLabel

// ReasonProxyRejected is the reason of a Route's IngressReady=False when a serving proxy
// NACKed the configuration carrying it; the message is the proxy's error_detail.
const ReasonProxyRejected = "ProxyRejected"

// trafficError is a traffic target that cannot be routed yet (Unknown) or at all (False).
type trafficError struct {
	status          duck.ConditionStatus
	reason, message string
}

func (e *trafficError) Error() string { return e.message }

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
		return nil
	}
	now := c.now()
	before := routeServedBefore(&route)
	st := &route.Status
	st.ObservedGeneration = route.Generation
	conds := []duck.ConditionType{servingv1.RouteConditionAllTrafficAssigned, servingv1.RouteConditionIngressReady, RouteConditionCertificateProvisioned}
	net := c.settings()

	refs := map[string]bool{}
	traffic, revs, err := c.resolveTraffic(ctx, &route, refs)
	c.setRouteRefs(key, refs)
	var terr *trafficError
	switch {
	case errors.As(err, &terr):
		st.SetCondition(duck.Condition{Type: servingv1.RouteConditionAllTrafficAssigned, Status: terr.status, Reason: terr.reason, Message: terr.message}, now)
		if st.GetCondition(RouteConditionCertificateProvisioned) == nil {
			st.MarkUnknown(RouteConditionCertificateProvisioned, "Uninitialized", "Waiting for the traffic targets.", now)
		}
		// The proxy keeps the last traffic it was given until the new targets are ready.
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &route)
	case err != nil:
		return fmt.Errorf("reconcile route %s: %w", key, err)
	}

	names, err := routeNames(net.cfg, &route, traffic)
	if err != nil {
		if !errors.Is(err, domains.ErrDomainName) {
			return fmt.Errorf("reconcile route %s: %w", key, err)
		}
		// Knative reports a host the templates cannot make on AllTrafficAssigned.
		st.MarkFalse(servingv1.RouteConditionAllTrafficAssigned, "ErrorConfig", err.Error(), now)
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &route)
	}
	httpOption, err := net.cfg.HTTPOption(route.Annotations)
	if err != nil {
		st.MarkTrue(servingv1.RouteConditionAllTrafficAssigned, now)
		st.MarkFalse(servingv1.RouteConditionIngressReady, "InvalidHTTPProtocol",
			fmt.Sprintf("metadata.annotations[%s]: %v (want Enabled or Redirected)", domains.HTTPProtocolAnnotation, err), now)
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &route)
	}
	tls, err := c.routeTLS(ctx, &route, key, names, now)
	if err != nil {
		return fmt.Errorf("reconcile route %s: %w", key, err)
	}

	if err := c.cfg.Proxy.SetRoute(c.translate(&route, traffic, revs, names, httpOption, tls)); err != nil {
		return fmt.Errorf("reconcile route %s: program proxy: %w", key, err)
	}
	// DomainMappings to this route send its traffic themselves (a revision's mode may have
	// changed without the route's status changing).
	c.enqueueMappingsTo(route.Namespace, route.Name)
	if err := c.markRoutingState(ctx, &route, traffic); err != nil {
		return fmt.Errorf("reconcile route %s: %w", key, err)
	}

	def := names[""]
	scheme := "http"
	if def.visibility == domains.ExternalIP {
		scheme = tls.schemeOf(def.primary(), net.cfg.Network.DefaultExternalScheme)
	}
	st.URL = scheme + "://" + def.primary()
	st.Address = &duck.Addressable{URL: "http://" + route.Name + "." + route.Namespace + "." + domains.ClusterLocalDomain}
	for i, t := range traffic {
		if t.Tag == "" {
			continue
		}
		n := names[t.Tag]
		s := "http"
		if n.visibility == domains.ExternalIP {
			s = tls.schemeOf(n.primary(), net.cfg.Network.DefaultExternalScheme)
		}
		traffic[i].URL = s + "://" + n.primary()
	}
	st.Traffic = traffic
	st.MarkTrue(servingv1.RouteConditionAllTrafficAssigned, now)
	switch ps := c.cfg.Proxy.RouteStatus(route.Namespace, route.Name); {
	case ps.Acked:
		c.waitForAck(key, false, "")
		st.MarkTrue(servingv1.RouteConditionIngressReady, now)
	case ps.Rejected != "":
		// A serving proxy NACKed the configuration carrying the route: it keeps serving
		// what it had, so the route is not ready until a later configuration is accepted.
		c.waitForAck(key, true, ps.Rejected)
		st.MarkFalse(servingv1.RouteConditionIngressReady, ReasonProxyRejected, ps.Rejected, now)
	default:
		c.waitForAck(key, true, "")
		if !before.unchanged(&route) {
			st.MarkUnknown(servingv1.RouteConditionIngressReady, "Uninitialized", "Waiting for the proxy to accept the route.", now)
		}
	}
	summarize(&st.Status, now, conds...)
	return c.cfg.Store.UpdateStatus(ctx, &route)
}

// resolveTraffic turns spec.traffic into status.traffic with a ready revision for every
// target, recording in refs every configuration and revision it read.
func (c *Controller) resolveTraffic(ctx context.Context, route *servingv1.Route, refs map[string]bool) ([]servingv1.TrafficTarget, map[string]*servingv1.Revision, error) {
	var out []servingv1.TrafficTarget
	revs := map[string]*servingv1.Revision{}
	for _, t := range route.Spec.Traffic {
		name := t.RevisionName
		if t.LatestRevision != nil && *t.LatestRevision {
			refs[t.ConfigurationName] = true
			var cfg servingv1.Configuration
			err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindConfiguration, Namespace: route.Namespace, Name: t.ConfigurationName}, &cfg)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return nil, nil, &trafficError{duck.False, "ConfigurationMissing", fmt.Sprintf("Configuration %q referenced in traffic not found.", t.ConfigurationName)}
			case err != nil:
				return nil, nil, err
			}
			name = cfg.Status.LatestReadyRevisionName
			if name == "" {
				if r := cfg.Status.GetCondition(duck.ConditionReady); r != nil && r.Status == duck.False {
					return nil, nil, &trafficError{duck.False, "RevisionMissing", fmt.Sprintf("Configuration %q does not have any ready Revision.", t.ConfigurationName)}
				}
				return nil, nil, &trafficError{duck.Unknown, "RevisionMissing", fmt.Sprintf("Configuration %q is waiting for a Revision to become ready.", t.ConfigurationName)}
			}
		}
		refs[name] = true
		rev := revs[name]
		if rev == nil {
			rev = &servingv1.Revision{}
			err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: route.Namespace, Name: name}, rev)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return nil, nil, &trafficError{duck.False, "RevisionMissing", fmt.Sprintf("Revision %q referenced in traffic not found.", name)}
			case err != nil:
				return nil, nil, err
			}
			if r := rev.Status.GetCondition(duck.ConditionReady); r == nil || r.Status != duck.True {
				if r != nil && r.Status == duck.False {
					return nil, nil, &trafficError{duck.False, "RevisionMissing", fmt.Sprintf("Revision %q failed to become ready: %s", name, r.Message)}
				}
				return nil, nil, &trafficError{duck.Unknown, "RevisionMissing", fmt.Sprintf("Revision %q is not yet ready.", name)}
			}
			revs[name] = rev
		}
		resolved := servingv1.TrafficTarget{
			Tag: t.Tag, RevisionName: name, ConfigurationName: t.ConfigurationName,
			LatestRevision: t.LatestRevision, Percent: t.Percent,
		}
		out = append(out, resolved)
	}
	return out, revs, nil
}

// translate turns resolved traffic into the proxy's model: per target (the route's default,
// split by percent, and each tag, all to its revision) a virtual host for its external name on
// the external listeners (none for a cluster-local target; 301 to https with http-protocol
// Redirected; ACME challenge paths first) and one for its cluster-local names on the local
// listener.
func (c *Controller) translate(route *servingv1.Route, traffic []servingv1.TrafficTarget, revs map[string]*servingv1.Revision, names map[string]targetNames, httpOption domains.HTTPProtocol, tls *hostTLS) xds.Route {
	out := xds.Route{Namespace: route.Namespace, Name: route.Name}
	weights := map[string]int64{}
	var order []string
	for _, t := range traffic {
		if t.Percent == nil || *t.Percent == 0 {
			continue
		}
		if _, seen := weights[t.RevisionName]; !seen {
			order = append(order, t.RevisionName)
		}
		weights[t.RevisionName] += *t.Percent
	}
	var defClusters []xds.WeightedCluster
	var defTimeout time.Duration
	for _, name := range order {
		defClusters = append(defClusters, xds.WeightedCluster{Name: xds.ClusterName(route.Namespace, name), Weight: uint32(weights[name]), Activate: proxyMode(revs[name])})
		defTimeout = max(defTimeout, revisionTimeout(revs[name]))
	}
	add := func(tag, vhName string, clusters []xds.WeightedCluster, timeout time.Duration) {
		n := names[tag]
		md := map[string]string{"namespace": route.Namespace, "route": route.Name}
		if tag != "" {
			md["tag"] = tag
		}
		if n.visibility == domains.ExternalIP {
			var challenges []xds.Challenge
			for _, h := range n.external.Expanded {
				challenges = append(challenges, tls.challenges[h]...)
			}
			out.VirtualHosts = append(out.VirtualHosts, xds.VirtualHost{
				Name: vhName, Domains: n.external.Expanded, Clusters: clusters, Timeout: timeout, Metadata: md,
				Visibility: xds.VisibilityExternal, RedirectHTTP: httpOption == domains.HTTPRedirected, Challenges: challenges,
			})
		}
		out.VirtualHosts = append(out.VirtualHosts, xds.VirtualHost{
			Name: vhName + ":local", Domains: n.local.Expanded, Clusters: clusters, Timeout: timeout, Metadata: md,
			Visibility: xds.VisibilityClusterLocal,
		})
	}
	add("", route.Namespace+"/"+route.Name, defClusters, defTimeout)
	seen := map[string]bool{}
	for _, t := range traffic {
		if t.Tag == "" || seen[t.Tag] {
			continue
		}
		seen[t.Tag] = true
		add(t.Tag, route.Namespace+"/"+route.Name+"/"+t.Tag,
			[]xds.WeightedCluster{{Name: xds.ClusterName(route.Namespace, t.RevisionName), Weight: 100, Activate: proxyMode(revs[t.RevisionName])}},
			revisionTimeout(revs[t.RevisionName]))
	}
	return out
}

// proxyMode reports whether the revision's requests go through the activator (ext_proc).
func proxyMode(rev *servingv1.Revision) bool {
	return rev != nil && rev.Status.Autoscaling != nil && rev.Status.Autoscaling.Mode == servingv1.ModeProxy
}

func revisionTimeout(rev *servingv1.Revision) time.Duration {
	if rev == nil || rev.Spec.TimeoutSeconds == nil {
		return time.Duration(servingv1.DefaultTimeoutSeconds) * time.Second
	}
	return time.Duration(*rev.Spec.TimeoutSeconds) * time.Second
}

// markRoutingState labels the revisions this route sends traffic to "active" and the ones
// it stopped sending traffic to "reserve", so that unrouted revisions stop running.
func (c *Controller) markRoutingState(ctx context.Context, route *servingv1.Route, traffic []servingv1.TrafficTarget) error {
	now := map[string]bool{}
	for _, t := range traffic {
		now[t.RevisionName] = true
	}
	var names []string
	for n := range now {
		names = append(names, n)
	}
	for _, t := range route.Status.Traffic {
		if !now[t.RevisionName] && !slices.Contains(names, t.RevisionName) {
			names = append(names, t.RevisionName)
		}
	}
	for _, n := range names {
		state := "reserve"
		if now[n] {
			state = "active"
		}
		var rev servingv1.Revision
		err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: route.Namespace, Name: n}, &rev)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if rev.Labels[servingv1.RoutingStateLabel] == state {
			continue
		}
		if rev.Labels == nil {
			rev.Labels = map[string]string{}
		}
		rev.Labels[servingv1.RoutingStateLabel] = state
		if err := c.cfg.Store.Update(ctx, &rev); err != nil {
			return fmt.Errorf("label revision %s %s: %w", n, state, err)
		}
	}
	return nil
}
