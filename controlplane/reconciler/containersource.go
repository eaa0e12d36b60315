package reconciler

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// SourceWorkloads runs the pod templates of ContainerSources, one instance each, as
// Knative runs them in a Deployment: local processes in `skiff up`, a Deployment owned by
// the source in a cluster.
type SourceWorkloads interface {
	// Apply makes the source's workload run template (whose containers already carry
	// K_SINK and K_CE_OVERRIDES); idempotent; returns quickly.
	Apply(ctx context.Context, src *sourcesv1.ContainerSource, template corev1.PodTemplateSpec) error
	// Remove stops the source's workload; removing one that does not run is no error.
	Remove(ctx context.Context, namespace, name string) error
	// State is what runs now; Ready counts running instances.
	State(namespace, name string) runtime.State
}

// ContainerSourceChanged is the source workloads' change hook: a ContainerSource's
// workload changed.
func (c *Controller) ContainerSourceChanged(namespace, name string) {
	c.queue.Add(store.Key{Kind: sourcesv1.KindContainerSource, Namespace: namespace, Name: name})
}

// reconcileContainerSource resolves a ContainerSource's sink and runs its template with
// K_SINK and K_CE_OVERRIDES in every container, as Knative's ContainerSource does through
// a SinkBinding on its Deployment (Skiff injects them itself: there is no SinkBinding
// child). Until the sink resolves nothing runs, so no event is sent nowhere.
func (c *Controller) reconcileContainerSource(ctx context.Context, key store.Key) error {
	var src sourcesv1.ContainerSource
	if err := c.cfg.Store.Get(ctx, key, &src); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if c.cfg.SourceWorkloads != nil {
			return c.cfg.SourceWorkloads.Remove(ctx, key.Namespace, key.Name)
		}
		return nil
	}
	now := c.now()
	st := &src.Status
	st.ObservedGeneration = src.Generation
	conds := []duck.ConditionType{sourcesv1.ContainerSourceConditionSinkBindingReady, sourcesv1.ContainerSourceConditionReceiveAdapterReady}
	finish := func() error {
		summarize(&st.Status, now, conds...)
		return c.cfg.Store.UpdateStatus(ctx, &src)
	}
	if c.cfg.SourceWorkloads == nil {
		st.MarkFalse(sourcesv1.ContainerSourceConditionReceiveAdapterReady, "WorkloadsDisabled", "this control plane runs no ContainerSource workloads", now)
		st.MarkUnknown(sourcesv1.ContainerSourceConditionSinkBindingReady, "WorkloadsDisabled", "", now)
		return finish()
	}
	if errs := api.Errors(src.Validate(ctx)); errs != nil {
		// Objects written straight to a cluster's API have not met Skiff's validation.
		st.MarkFalse(sourcesv1.ContainerSourceConditionReceiveAdapterReady, "InvalidSpec", errs.Error(), now)
		st.MarkUnknown(sourcesv1.ContainerSourceConditionSinkBindingReady, "InvalidSpec", "", now)
		return finish()
	}
	sink, err := c.resolveDestination(ctx, src.Namespace, src.Spec.Sink)
	if err != nil {
		st.SinkURI = ""
		markUnresolved(&st.Status, sourcesv1.ContainerSourceConditionSinkBindingReady, "SinkNotResolved", "spec.sink", err, now)
		st.MarkUnknown(sourcesv1.ContainerSourceConditionReceiveAdapterReady, "SinkNotResolved", "the container runs once spec.sink resolves", now)
		if err := c.cfg.SourceWorkloads.Remove(ctx, src.Namespace, src.Name); err != nil {
			return fmt.Errorf("containersource %s: stop while its sink does not resolve: %w", key, err)
		}
		return finish()
	}
	st.SinkURI = sink
	st.MarkTrue(sourcesv1.ContainerSourceConditionSinkBindingReady, now)

	overrides, err := ceOverridesEnv(src.Spec.CEOverrides)
	if err != nil {
		return fmt.Errorf("containersource %s: %w", key, err)
	}
	tmpl := *src.Spec.Template.DeepCopy()
	for i := range tmpl.Spec.Containers {
		setEnv(&tmpl.Spec.Containers[i], EnvSink, sink)
		setEnv(&tmpl.Spec.Containers[i], EnvCEOverrides, overrides)
	}
	if err := c.cfg.SourceWorkloads.Apply(ctx, &src, tmpl); err != nil {
		return fmt.Errorf("containersource %s: run: %w", key, err)
	}
	state := c.cfg.SourceWorkloads.State(src.Namespace, src.Name)
	switch {
	case state.Failed:
		st.MarkFalse(sourcesv1.ContainerSourceConditionReceiveAdapterReady, state.Reason, state.Message, now)
	case state.Ready > 0:
		st.MarkTrue(sourcesv1.ContainerSourceConditionReceiveAdapterReady, now)
	default:
		msg := fmt.Sprintf("The Deployment '%s-deployment' is unavailable.", src.Name)
		if state.Message != "" {
			msg += " " + state.Message
		}
		st.MarkUnknown(sourcesv1.ContainerSourceConditionReceiveAdapterReady, "DeploymentUnavailable", msg, now)
	}
	return finish()
}
