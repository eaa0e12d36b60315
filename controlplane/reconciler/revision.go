package reconciler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/extproc"
)

// Annotations Knative reads on a revision template, which Skiff honours the same way.
const (
	MinScaleAnnotation     = "autoscaling.knative.dev/min-scale"
	InitialScaleAnnotation = "autoscaling.knative.dev/initial-scale"
)

// reconcileRevision runs the revision's instances at the autoscaler's scale, publishes
// their ready endpoints to the proxy (and, once the proxy has them, to the activator),
// and reports Knative's revision conditions.
func (c *Controller) reconcileRevision(ctx context.Context, key store.Key) error {
	cluster := xds.ClusterName(key.Namespace, key.Name)
	var rev servingv1.Revision
	if err := c.cfg.Store.Get(ctx, key, &rev); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		c.forgetRevision(cluster)
		if c.resolver != nil {
			c.resolver.Forget(key)
		}
		if err := c.cfg.Runtime.Remove(ctx, key.Namespace, key.Name); err != nil {
			return fmt.Errorf("remove revision %s: %w", key, err)
		}
		c.cfg.Proxy.DeleteCluster(cluster)
		return nil
	}
	cc := int64(0)
	if rev.Spec.ContainerConcurrency != nil {
		cc = *rev.Spec.ContainerConcurrency
	}
	now := c.now()
	st := &rev.Status
	was := storedStatus(&st.Status)
	st.ObservedGeneration = rev.Generation
	if resolved, err := c.reconcileDigest(&rev); err != nil {
		// As Knative: ContainerHealthy=False, and the revision is retried with backoff.
		if st.GetCondition(servingv1.RevisionConditionResourcesAvailable) == nil {
			st.MarkUnknown(servingv1.RevisionConditionResourcesAvailable, ReasonResolvingDigests, "", now)
		}
		st.MarkFalse(servingv1.RevisionConditionContainerHealthy, ReasonContainerMissing, err.Error(), now)
		summarize(&st.Status, now, servingv1.RevisionConditionResourcesAvailable, servingv1.RevisionConditionContainerHealthy)
		if uerr := c.updateStatus(ctx, &rev, was, &rev.Status.Status); uerr != nil {
			return uerr
		}
		return fmt.Errorf("revision %s: %w", key, err)
	} else if !resolved {
		// Nothing runs until the digests are known; the resolver enqueues the revision.
		st.MarkUnknown(servingv1.RevisionConditionResourcesAvailable, ReasonResolvingDigests, "", now)
		if st.GetCondition(servingv1.RevisionConditionContainerHealthy) == nil {
			st.MarkUnknown(servingv1.RevisionConditionContainerHealthy, ReasonResolvingDigests, "", now)
		}
		summarize(&st.Status, now, servingv1.RevisionConditionResourcesAvailable, servingv1.RevisionConditionContainerHealthy)
		return c.updateStatus(ctx, &rev, was, &rev.Status.Status)
	}
	state := c.cfg.Runtime.State(rev.Namespace, rev.Name)

	desired, decision, external, err := c.decide(ctx, &rev, cluster, cc, state)
	if err != nil {
		st.MarkFalse(servingv1.RevisionConditionResourcesAvailable, "InvalidAutoscalingAnnotation", err.Error(), now)
		summarize(&st.Status, now, servingv1.RevisionConditionResourcesAvailable, servingv1.RevisionConditionContainerHealthy)
		return c.updateStatus(ctx, &rev, was, &rev.Status.Status)
	}
	mode := traffic.Mode(c.cfg.Activator != nil, int64(cc), decision.ProxyMode, state.Ready)
	if desired == 0 && state.Ready > 0 && c.cfg.Activator != nil && !c.readyForZero(&rev) {
		// The last pod goes only once every proxy sends this revision's requests through
		// the activator, so a request arriving meanwhile is held, not answered 503.
		desired = state.Desired
		c.queue.AddAfter(key, 100*time.Millisecond)
	}
	if external != nil {
		// The platform scales the revision (a HorizontalPodAutoscaler, or another class's
		// autoscaler): Skiff creates the workload at its initial scale and leaves replicas alone.
		if err := external.scaler.ScaleExternally(ctx, &rev, external.initial, external.hpa); err != nil {
			return fmt.Errorf("revision %s: hand scaling to the platform: %w", key, err)
		}
		desired = state.Desired
	} else if err := c.cfg.Runtime.Scale(ctx, &rev, desired); err != nil {
		return fmt.Errorf("scale revision %s to %d: %w", key, desired, err)
	}

	if err := c.programProxy(&rev, cluster, cc, state); err != nil {
		return fmt.Errorf("revision %s: %w", key, err)
	}
	markRevisionScaled(st, state, desired, c.zeroInitialScale(&rev, cc), mode, decision, now)
	return c.updateStatus(ctx, &rev, was, &rev.Status.Status)
}

// programProxy gives the proxy the revision's cluster and its ready endpoints, and
// publishes them to the activator once the proxy has them.
func (c *Controller) programProxy(rev *servingv1.Revision, cluster string, cc int64, state runtime.State) error {
	if err := c.cfg.Proxy.SetCluster(xds.Cluster{
		Name: cluster, Namespace: rev.Namespace, Revision: rev.Name,
		Service: rev.Labels[servingv1.ServiceLabel], Configuration: rev.Labels[servingv1.ConfigurationLabel],
		HTTP2:        rev.Spec.UsesH2C(),
		LeastRequest: cc > 0,
		OverrideHost: cc > 0 && c.cfg.Activator != nil,
	}); err != nil {
		return fmt.Errorf("set cluster: %w", err)
	}
	eps := make([]xds.Endpoint, 0, len(state.Endpoints))
	addrs := make([]string, 0, len(state.Endpoints))
	for _, ep := range state.Endpoints {
		eps = append(eps, xds.Endpoint{Address: ep.Address, Port: ep.Port})
		addrs = append(addrs, net.JoinHostPort(ep.Address, strconv.Itoa(int(ep.Port))))
	}
	version, err := c.cfg.Proxy.SetEndpoints(cluster, eps)
	if err != nil {
		return fmt.Errorf("set endpoints: %w", err)
	}
	c.publish(cluster, version, extproc.Revision{
		ContainerConcurrency: int(cc), Timeout: traffic.Timeout(rev), Endpoints: addrs,
	})
	return nil
}

// markRevisionScaled reports on a revision's status its replicas, its autoscaling state and
// Knative's conditions for what the runtime observes (state) against what was asked
// (desired; zeroInitial: the revision may start and stay at zero pods, zeroInitialScale),
// and summarizes Ready.
func markRevisionScaled(st *servingv1.RevisionStatus, state runtime.State, desired int, zeroInitial bool, mode string, decision autoscaler.Decision, now time.Time) {
	st.ActualReplicas = ptr(int32(state.Ready))
	st.DesiredReplicas = ptr(int32(desired))
	st.Autoscaling = &servingv1.AutoscalingStatus{
		Mode: mode, Panic: decision.Panic,
		StableConcurrency: round2(decision.StableConcurrency), PanicConcurrency: round2(decision.PanicConcurrency),
		StableRPS: round2(decision.StableRPS), ExcessBurstCapacity: decision.ExcessBurstCapacity,
	}
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
		switch {
		case zeroInitial:
			// Knative's KPA marks the scale target initialized once min(initial-scale,
			// min-scale) pods are ready (activeThreshold, computeActiveCondition): at
			// initial-scale 0 that is at once, and the revision's resources are available
			// with no pod (PropagateAutoscalerStatus).
			if h := st.GetCondition(servingv1.RevisionConditionContainerHealthy); h == nil || h.Status != duck.False {
				st.MarkTrue(servingv1.RevisionConditionResourcesAvailable, now)
				st.MarkTrue(servingv1.RevisionConditionContainerHealthy, now)
			}
		case st.GetCondition(servingv1.RevisionConditionResourcesAvailable) == nil:
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
	summarize(&st.Status, now, servingv1.RevisionConditionResourcesAvailable, servingv1.RevisionConditionContainerHealthy)
}

// zeroInitialScale reports whether the revision starts at zero pods and may stay there
// (initial-scale and min-scale 0, which the autoscaler's settings must allow), so that it
// is initialized without a pod, as Knative's KPA has it. Without an autoscaler a revision
// always starts with a pod.
func (c *Controller) zeroInitialScale(rev *servingv1.Revision, cc int64) bool {
	if c.cfg.Autoscaler == nil {
		return false
	}
	spec, errs := autoscaler.SpecFor(rev.Annotations, cc, c.autoscalerDefaults())
	return len(errs) == 0 && spec.InitialScale == 0 && spec.MinScale == 0
}

// externalScale is a revision whose replicas the platform decides (runtime.ExternalScaler).
type externalScale struct {
	scaler  runtime.ExternalScaler
	initial int
	hpa     *runtime.HPA
}

// reconcileDigest fills status.containerStatuses with each container's image digest, as
// Knative's revision reconciler does before it creates anything: true once they are there
// (then the runtime runs the digests), false while a resolution is in flight. Containers the
// runtime runs no image for (Config.ResolvesImages false) get an empty digest at once.
func (c *Controller) reconcileDigest(rev *servingv1.Revision) (bool, error) {
	if len(rev.Status.ContainerStatuses) == len(rev.Spec.Containers) {
		if c.resolver != nil {
			c.resolver.Clear(store.Key{Kind: servingv1.KindRevision, Namespace: rev.Namespace, Name: rev.Name})
		}
		return true, nil
	}
	if c.resolver == nil || (c.cfg.ResolvesImages != nil && !c.cfg.ResolvesImages(rev)) {
		rev.Status.ContainerStatuses = make([]servingv1.ContainerStatus, len(rev.Spec.Containers))
		for i, ct := range rev.Spec.Containers {
			rev.Status.ContainerStatuses[i] = servingv1.ContainerStatus{Name: ct.Name}
		}
		return true, nil
	}
	statuses, err := c.resolver.Resolve(rev, c.cfg.DigestResolutionTimeout)
	if err != nil {
		// Cleared, so the next reconcile resolves again (after the image's backoff).
		c.resolver.Clear(store.Key{Kind: servingv1.KindRevision, Namespace: rev.Namespace, Name: rev.Name})
		return false, err
	}
	if statuses == nil {
		return false, nil
	}
	rev.Status.ContainerStatuses = statuses
	return true, nil
}

// decide returns how many instances the revision should run and the autoscaler's decision:
// the autoscaler's answer while the revision is routed or is its configuration's newest, and
// zero for a revision in reserve. Without an autoscaler: one instance (or min/initial scale).
// A revision of the hpa class, or of an external autoscaler's, on a runtime that can scale
// it itself (Kubernetes) is returned as external instead: the platform scales it.
func (c *Controller) decide(ctx context.Context, rev *servingv1.Revision, cluster string, cc int64, state runtime.State) (int, autoscaler.Decision, *externalScale, error) {
	active := c.isActive(ctx, rev)
	if c.cfg.Autoscaler == nil {
		if !active {
			return 0, autoscaler.Decision{}, nil, nil
		}
		n := 1
		for _, a := range []string{MinScaleAnnotation, InitialScaleAnnotation} {
			if v, err := strconv.Atoi(rev.Annotations[a]); err == nil && v > n {
				n = v
			}
		}
		return n, autoscaler.Decision{DesiredScale: n}, nil, nil
	}
	if !active {
		c.cfg.Autoscaler.Delete(cluster)
		return 0, autoscaler.Decision{ProxyMode: true}, nil, nil
	}
	spec, errs := autoscaler.SpecFor(rev.Annotations, cc, c.autoscalerDefaults())
	if len(errs) > 0 {
		return 0, autoscaler.Decision{}, nil, errs.ToAggregate()
	}
	if ext, ok := c.cfg.Runtime.(runtime.ExternalScaler); ok && spec.Class != autoscaler.KPA {
		c.cfg.Autoscaler.Delete(cluster)
		e := &externalScale{scaler: ext, initial: spec.InitialScale}
		if spec.Class == autoscaler.HPA {
			e.hpa = HPAFor(&spec)
		}
		return state.Desired, autoscaler.Decision{DesiredScale: state.Desired, ActualScale: state.Ready, ProxyMode: state.Ready == 0}, e, nil
	}
	if sc := rev.Spec.ServingContainer(); sc != nil {
		if q, ok := sc.Resources.Requests[corev1.ResourceCPU]; ok {
			spec.CPURequest = q.AsApproximateFloat64()
		}
	}
	spec.Service, spec.Configuration = rev.Labels[servingv1.ServiceLabel], rev.Labels[servingv1.ConfigurationLabel]
	c.cfg.Autoscaler.Upsert(cluster, spec)
	c.cfg.Autoscaler.SetReady(cluster, state.Ready)
	d, ok := c.cfg.Autoscaler.Decision(cluster)
	if !ok {
		return spec.InitialScale, autoscaler.Decision{DesiredScale: spec.InitialScale, ProxyMode: true}, nil, nil
	}
	return d.DesiredScale, d, nil, nil
}

// HPAFor is the HorizontalPodAutoscaler Knative's HPA reconciler makes for an hpa-class
// revision (pkg/reconciler/autoscaling/hpa/resources MakeHPA): the metric and target
// annotations, min-scale and max-scale, and the window annotation as stabilization window.
func HPAFor(spec *autoscaler.Spec) *runtime.HPA {
	return &runtime.HPA{
		Metric: spec.Metric, Target: spec.Target,
		MinReplicas: int32(spec.MinScale), MaxReplicas: int32(spec.MaxScale),
		Window: spec.Window,
	}
}

// isActive reports whether a route sends the revision traffic or it is its configuration's
// newest revision (which must come up to become ready).
func (c *Controller) isActive(ctx context.Context, rev *servingv1.Revision) bool {
	if rev.Labels[servingv1.RoutingStateLabel] == "active" {
		return true
	}
	var cfg servingv1.Configuration
	key := store.Key{Kind: servingv1.KindConfiguration, Namespace: rev.Namespace, Name: rev.Labels[servingv1.ConfigurationLabel]}
	return c.cfg.Store.Get(ctx, key, &cfg) == nil && RevisionName(&cfg) == rev.Name
}

// readyForZero reports whether the revision's stored status already says proxy mode and
// every route sending it traffic has been ACKed by the proxies since.
func (c *Controller) readyForZero(rev *servingv1.Revision) bool {
	if !traffic.ProxyMode(rev) {
		return false
	}
	c.mu.Lock()
	var routes []store.Key
	for k, refs := range c.routeRefs {
		if k.Namespace == rev.Namespace && refs[rev.Name] {
			routes = append(routes, k)
		}
	}
	c.mu.Unlock()
	for _, k := range routes {
		if c.ackPending(k) || !c.cfg.Proxy.RouteAcked(k.Namespace, k.Name) {
			return false
		}
	}
	return true
}

// ackPending reports whether the route has been changed and not yet re-checked for ACKs.
func (c *Controller) ackPending(k store.Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.ackWait[k]
	return ok
}

// publish gives the activator the revision's endpoints once every proxy has ACKed the EDS
// update carrying them, so a released request never reaches a cluster without that pod.
// Fewer endpoints are published at once: taking a pod away is safe before the proxy knows.
func (c *Controller) publish(cluster, version string, r extproc.Revision) {
	if c.cfg.Activator == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cancel := c.publishing[cluster]; cancel != nil {
		cancel()
		delete(c.publishing, cluster)
	}
	if len(r.Endpoints) == 0 {
		c.cfg.Activator.SetRevision(cluster, r)
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.publishing[cluster] = cancel
	c.wg.Go(func() {
		defer cancel()
		if err := c.cfg.Proxy.WaitEndpointsAcked(ctx, cluster, version); err != nil {
			return // superseded, or shutting down
		}
		c.cfg.Activator.SetRevision(cluster, r)
	})
}

// forgetRevision drops a deleted revision from the autoscaler and the activator.
func (c *Controller) forgetRevision(cluster string) {
	c.mu.Lock()
	if cancel := c.publishing[cluster]; cancel != nil {
		cancel()
		delete(c.publishing, cluster)
	}
	c.mu.Unlock()
	if c.cfg.Autoscaler != nil {
		c.cfg.Autoscaler.Delete(cluster)
	}
	if c.cfg.Activator != nil {
		c.cfg.Activator.DeleteRevision(cluster)
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func ptr[T any](v T) *T { return &v }
