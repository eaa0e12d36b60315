package reconciler

import (
	"context"
	"fmt"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
)

// ReasonRolloutInProgress is the reason of a Route's IngressReady=Unknown while a gradual
// rollout moves its traffic (Knative's MarkIngressRolloutInProgress).
const ReasonRolloutInProgress = "RolloutInProgress"

// markRolloutInProgress marks a Route's IngressReady as Knative does during a rollout; a
// proxy's rejection of the route stays reported instead, being what the user must act on.
func markRolloutInProgress(st *duck.Status, now time.Time) {
	if c := st.GetCondition(servingv1.RouteConditionIngressReady); c != nil && c.Status == duck.False && c.Reason == ReasonProxyRejected {
		return
	}
	st.MarkUnknown(servingv1.RouteConditionIngressReady, ReasonRolloutInProgress, "A gradual rollout of the latest revision(s) is in progress.", now)
}

// rolloutDuration is how long a route takes to move its traffic to a new latest revision:
// the route's serving.knative.dev/rollout-duration annotation (a Service's Route carries the
// Service's), else config-network's rollout-duration (defaultSecs), as Knative's
// reconcileRollout reads it. Zero is at once.
func rolloutDuration(route *servingv1.Route, defaultSecs int) time.Duration {
	for _, k := range []string{servingv1.RolloutDurationKey, servingv1.GroupName + "/rolloutDuration"} {
		v, ok := route.Annotations[k]
		if !ok || v == "" {
			continue
		}
		// The webhook refused a value that does not parse; one that got in anyway is
		// ignored, as Knative's Route.RolloutDuration does.
		if d, err := time.ParseDuration(v); err == nil && d >= time.Second {
			return d.Truncate(time.Second)
		}
		break
	}
	return time.Duration(defaultSecs) * time.Second
}

// routeRollout is where the route's gradual rollout stands now (Knative's reconcileRollout):
// with a rollout duration, the state stored on the route (traffic.RolloutAnnotation) stepped
// towards the traffic the route asks for, timed from when the proxies first served the
// rollout, and the route re-enqueued when the next step is due; without one, the traffic
// as it is (and no state kept). The revisions being rolled away from are added to revs (a
// revision's mode decides its cluster's, and the route follows their changes), those gone
// dropped from the rollout. The state is saved on the route before it returns.
func (c *Controller) routeRollout(ctx context.Context, route *servingv1.Route, key store.Key, targets []servingv1.TrafficTarget, revs map[string]*servingv1.Revision, defaultSecs int, now time.Time) (*traffic.Rollout, error) {
	goal := traffic.BuildRollout(targets)
	d := rolloutDuration(route, defaultSecs)
	if d <= 0 {
		return goal, c.saveRollout(ctx, route, "")
	}
	prev, err := traffic.ParseRollout(route.Annotations[traffic.RolloutAnnotation])
	if err != nil {
		// Edited by hand or corrupt: start from the traffic as it is, as Knative does.
		c.log.Warn("route rollout state unreadable, starting afresh", "route", key.String(), "err", err)
	}
	// The proxies serve the rollout's first step: time the rest of it from how long that
	// took (Knative: the Ingress turned ready while the Route was not yet).
	ready := route.Status.GetCondition(servingv1.RouteConditionIngressReady)
	if prev != nil && (ready == nil || ready.Status != duck.True) && c.cfg.Proxy.RouteStatus(route.Namespace, route.Name).Acked {
		prev.ObserveReady(now, d)
	}
	ro, next := goal.Step(prev, now)
	if err := c.rolloutRevisions(ctx, key, ro, revs); err != nil {
		return nil, err
	}
	if !next.IsZero() && !ro.Done() {
		c.enqueueAfter(key, next.Sub(now))
	}
	return ro, c.saveRollout(ctx, route, ro.String())
}

// rolloutRevisions reads the revisions of ro that the traffic does not name into revs, drops
// from ro those that no longer exist, and makes the route follow the rest's changes.
func (c *Controller) rolloutRevisions(ctx context.Context, key store.Key, ro *traffic.Rollout, revs map[string]*servingv1.Revision) error {
	l := storeLister{ctx: ctx, store: c.cfg.Store, namespace: key.Namespace}
	gone := map[string]bool{}
	var extra []string
	for _, cr := range ro.Configurations {
		for _, r := range cr.Revisions {
			if revs[r.RevisionName] != nil || gone[r.RevisionName] {
				continue
			}
			rev, err := l.Revision(r.RevisionName)
			if err != nil {
				return fmt.Errorf("rollout: %w", err)
			}
			if rev == nil {
				gone[r.RevisionName] = true
				continue
			}
			revs[r.RevisionName] = rev
			extra = append(extra, r.RevisionName)
		}
	}
	ro.Drop(func(name string) bool { return gone[name] })
	if len(extra) > 0 || len(gone) > 0 {
		c.mu.Lock()
		if refs := c.routeRefs[key]; refs != nil {
			for _, n := range extra {
				refs[n] = true
			}
			for n := range gone {
				refs[n] = true // its re-creation is seen too
			}
		}
		c.mu.Unlock()
	}
	return nil
}

// saveRollout stores state as the route's traffic.RolloutAnnotation ("" removes it) when it
// changed, leaving route as stored (its status as it was).
func (c *Controller) saveRollout(ctx context.Context, route *servingv1.Route, state string) error {
	if route.Annotations[traffic.RolloutAnnotation] == state {
		return nil
	}
	upd := servingv1.Route{TypeMeta: route.TypeMeta, ObjectMeta: *route.ObjectMeta.DeepCopy(), Spec: route.Spec}
	if state == "" {
		delete(upd.Annotations, traffic.RolloutAnnotation)
	} else {
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[traffic.RolloutAnnotation] = state
	}
	if err := c.cfg.Store.Update(ctx, &upd); err != nil {
		return fmt.Errorf("save rollout state: %w", err)
	}
	route.ObjectMeta = upd.ObjectMeta
	return nil
}
