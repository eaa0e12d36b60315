package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// Annotations Knative reads on a revision template, which Skiff honours the same way.
const (
	MinScaleAnnotation     = "autoscaling.knative.dev/min-scale"
	InitialScaleAnnotation = "autoscaling.knative.dev/initial-scale"
)

// reconcileRevision runs the revision's instances, publishes their ready endpoints to the
// proxy and reports Knative's revision conditions.
func (c *Controller) reconcileRevision(ctx context.Context, key store.Key) error {
	var rev servingv1.Revision
	if err := c.cfg.Store.Get(ctx, key, &rev); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := c.cfg.Runtime.Remove(ctx, key.Namespace, key.Name); err != nil {
			return fmt.Errorf("remove revision %s: %w", key, err)
		}
		c.cfg.Proxy.DeleteCluster(xds.ClusterName(key.Namespace, key.Name))
		return nil
	}
	desired := c.desiredScale(ctx, &rev)
	if err := c.cfg.Runtime.Scale(ctx, &rev, desired); err != nil {
		return fmt.Errorf("scale revision %s to %d: %w", key, desired, err)
	}
	state := c.cfg.Runtime.State(rev.Namespace, rev.Name)

	cluster := xds.ClusterName(rev.Namespace, rev.Name)
	cc := int64(0)
	if rev.Spec.ContainerConcurrency != nil {
		cc = *rev.Spec.ContainerConcurrency
	}
	if err := c.cfg.Proxy.SetCluster(xds.Cluster{
		Name: cluster, Namespace: rev.Namespace, Revision: rev.Name,
		HTTP2:        rev.Spec.UsesH2C(),
		LeastRequest: cc > 0,
	}); err != nil {
		return fmt.Errorf("revision %s: set cluster: %w", key, err)
	}
	eps := make([]xds.Endpoint, 0, len(state.Endpoints))
	for _, ep := range state.Endpoints {
		eps = append(eps, xds.Endpoint{Address: ep.Address, Port: ep.Port})
	}
	if _, err := c.cfg.Proxy.SetEndpoints(cluster, eps); err != nil {
		return fmt.Errorf("revision %s: set endpoints: %w", key, err)
	}

	now := c.now()
	st := &rev.Status
	st.ObservedGeneration = rev.Generation
	st.ActualReplicas = ptr(int32(state.Ready))
	st.DesiredReplicas = ptr(int32(desired))
	switch {
	case state.Failed:
		st.MarkFalse(servingv1.RevisionConditionResourcesAvailable, state.Reason, state.Message, now)
	case state.Ready > 0:
		st.MarkTrue(servingv1.RevisionConditionResourcesAvailable, now)
		st.MarkTrue(servingv1.RevisionConditionContainerHealthy, now)
		st.MarkTrue(servingv1.RevisionConditionActive, now)
	case state.Reason != "":
		// Crashing and not ready: Knative reports the container's exit.
		st.MarkFalse(servingv1.RevisionConditionContainerHealthy, state.Reason, state.Message, now)
	case desired == 0:
		st.MarkFalse(servingv1.RevisionConditionActive, "NoTraffic", "The target is not receiving traffic.", now)
		if st.GetCondition(servingv1.RevisionConditionResourcesAvailable) == nil {
			st.MarkUnknown(servingv1.RevisionConditionResourcesAvailable, "Deploying", "", now)
			st.MarkUnknown(servingv1.RevisionConditionContainerHealthy, "Deploying", "", now)
		}
	default:
		st.MarkUnknown(servingv1.RevisionConditionActive, "Activating", "Waiting for an instance to become ready.", now)
		if c := st.GetCondition(servingv1.RevisionConditionResourcesAvailable); c == nil || c.Status != duck.True {
			st.MarkUnknown(servingv1.RevisionConditionResourcesAvailable, "Deploying", "", now)
			st.MarkUnknown(servingv1.RevisionConditionContainerHealthy, "Deploying", "", now)
		}
	}
	if state.Ready == 0 && desired > 0 && st.GetCondition(servingv1.RevisionConditionActive) == nil {
		st.MarkUnknown(servingv1.RevisionConditionActive, "Activating", "", now)
	}
	summarize(&st.Status, now, servingv1.RevisionConditionResourcesAvailable, servingv1.RevisionConditionContainerHealthy)
	return c.cfg.Store.UpdateStatus(ctx, &rev)
}

// desiredScale is how many instances the revision should run: the autoscaler's answer
// when one is wired in; otherwise one (or min/initial scale) while the revision is routed
// or is its configuration's newest, and zero for a revision in reserve.
func (c *Controller) desiredScale(ctx context.Context, rev *servingv1.Revision) int {
	if c.cfg.Scale != nil {
		return c.cfg.Scale(rev)
	}
	active := rev.Labels[servingv1.RoutingStateLabel] == "active"
	if !active {
		var cfg servingv1.Configuration
		key := store.Key{Kind: servingv1.KindConfiguration, Namespace: rev.Namespace, Name: rev.Labels[servingv1.ConfigurationLabel]}
		if err := c.cfg.Store.Get(ctx, key, &cfg); err == nil && RevisionName(&cfg) == rev.Name {
			active = true
		}
	}
	if !active {
		return 0
	}
	n := 1
	for _, a := range []string{MinScaleAnnotation, InitialScaleAnnotation} {
		if v, err := strconv.Atoi(rev.Annotations[a]); err == nil && v > n {
			n = v
		}
	}
	return n
}

func ptr[T any](v T) *T { return &v }
