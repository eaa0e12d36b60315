package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// SinkBinding environment and bookkeeping.
const (
	// EnvSink is the environment variable a SinkBinding sets to the sink's URL.
	EnvSink = "K_SINK"
	// EnvCEOverrides is the environment variable holding spec.ceOverrides as JSON.
	EnvCEOverrides = "K_CE_OVERRIDES"
	// SinkBindingAnnotation marks a Service with the SinkBinding bound to it,
	// so that the binding can be undone when it goes or stops selecting it.
	SinkBindingAnnotation = "sources.knative.dev/sinkbinding"

	sinkBindingConditionAvailable duck.ConditionType = "BindingAvailable"
)

// reconcileSinkBinding injects K_SINK (and K_CE_OVERRIDES) into the containers
// of the Services a SinkBinding selects, as Knative's SinkBinding webhook
// does to its subjects' pod templates: the change is a spec change, so the
// Service rolls out a new Revision with the environment. Services it no
// longer selects (or all of them once it is deleted) get the variables removed.
// Only Knative Services (serving.knative.dev/v1) can be subjects here.
func (c *Controller) reconcileSinkBinding(ctx context.Context, key store.Key) error {
	var sb sourcesv1.SinkBinding
	exists := true
	if err := c.cfg.Store.Get(ctx, key, &sb); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		exists = false
	}
	services, err := store.ListAs[servingv1.Service](ctx, c.cfg.Store, servingv1.KindService, key.Namespace)
	if err != nil {
		return err
	}
	var errs []error
	unbind := func(svc *servingv1.Service) {
		if svc.Annotations[SinkBindingAnnotation] != key.Name {
			return
		}
		delete(svc.Annotations, SinkBindingAnnotation)
		setBindingEnv(svc, "", "")
		if err := c.cfg.Store.Update(ctx, svc); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("unbinding service %s: %w", svc.Name, err))
		}
	}
	if !exists {
		for _, svc := range services {
			unbind(svc)
		}
		return errors.Join(errs...)
	}

	now := c.now()
	st := &sb.Status
	st.ObservedGeneration = sb.Generation
	subj := sb.Spec.Subject
	if subj.Kind != servingv1.KindService || subj.APIVersion != servingv1.GroupVersion {
		st.MarkFalse(sinkBindingConditionAvailable, "SubjectUnsupported",
			fmt.Sprintf("spec.subject: %s %s cannot be bound here: use a Knative Service (%s)", subj.APIVersion, subj.Kind, servingv1.GroupVersion), now)
		summarize(&st.Status, now, sinkBindingConditionAvailable)
		return c.cfg.Store.UpdateStatus(ctx, &sb)
	}
	var selector labels.Selector
	if subj.Selector != nil {
		if selector, err = metav1.LabelSelectorAsSelector(subj.Selector); err != nil {
			st.MarkFalse(sinkBindingConditionAvailable, "InvalidSelector", "spec.subject.selector: "+err.Error(), now)
			summarize(&st.Status, now, sinkBindingConditionAvailable)
			return c.cfg.Store.UpdateStatus(ctx, &sb)
		}
	}
	selects := func(svc *servingv1.Service) bool {
		if svc.Namespace != subj.Namespace && subj.Namespace != "" {
			return false
		}
		if selector != nil {
			return selector.Matches(labels.Set(svc.Labels))
		}
		return svc.Name == subj.Name
	}

	sink, sinkErr := c.resolveDestination(ctx, sb.Namespace, sb.Spec.Sink)
	if sinkErr != nil {
		st.SinkURI = ""
		markUnresolved(&st.Status, sourceConditionSinkProvided, "NotFound", "spec.sink", sinkErr, now)
	} else {
		st.SinkURI = sink
		st.MarkTrue(sourceConditionSinkProvided, now)
	}
	overrides := ""
	if sb.Spec.CEOverrides != nil {
		b, err := json.Marshal(sb.Spec.CEOverrides)
		if err != nil {
			return fmt.Errorf("sinkbinding %s: encoding ceOverrides: %w", key, err)
		}
		overrides = string(b)
	}

	bound := 0
	for _, svc := range services {
		if !selects(svc) {
			unbind(svc)
			continue
		}
		if sinkErr != nil {
			continue // keep what it has until the sink resolves again
		}
		if other := svc.Annotations[SinkBindingAnnotation]; other != "" && other != sb.Name {
			errs = append(errs, fmt.Errorf("service %s is already bound by sinkbinding %q", svc.Name, other))
			continue
		}
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		changed := svc.Annotations[SinkBindingAnnotation] != sb.Name
		svc.Annotations[SinkBindingAnnotation] = sb.Name
		if setBindingEnv(svc, sink, overrides) || changed {
			if err := c.cfg.Store.Update(ctx, svc); err != nil {
				errs = append(errs, fmt.Errorf("binding service %s: %w", svc.Name, err))
				continue
			}
		}
		bound++
	}
	switch {
	case len(errs) > 0:
		st.MarkFalse(sinkBindingConditionAvailable, "BindingFailed", errors.Join(errs...).Error(), now)
	case bound == 0 && sinkErr == nil:
		st.MarkFalse(sinkBindingConditionAvailable, "SubjectMissing", "spec.subject selects no Service", now)
	case sinkErr == nil:
		st.MarkTrue(sinkBindingConditionAvailable, now)
	default:
		st.MarkUnknown(sinkBindingConditionAvailable, "SinkNotResolved", "", now)
	}
	summarize(&st.Status, now, sourceConditionSinkProvided, sinkBindingConditionAvailable)
	if err := c.cfg.Store.UpdateStatus(ctx, &sb); err != nil {
		errs = append(errs, err)
	}
	if slices.ContainsFunc(errs, func(e error) bool { return errors.Is(e, store.ErrConflict) }) {
		return store.ErrConflict
	}
	return errors.Join(errs...)
}

// setBindingEnv sets (or with sink "", removes) K_SINK and K_CE_OVERRIDES in
// every container of a Service's template; it reports whether anything changed.
func setBindingEnv(svc *servingv1.Service, sink, overrides string) bool {
	changed := false
	cs := svc.Spec.Template.Spec.Containers
	for i := range cs {
		for _, kv := range [...][2]string{{EnvSink, sink}, {EnvCEOverrides, overrides}} {
			if sink == "" {
				kv[1] = ""
			}
			changed = setEnv(&cs[i], kv[0], kv[1]) || changed
		}
	}
	return changed
}

// setEnv sets name to value in a container's env ("" removes it).
func setEnv(c *corev1.Container, name, value string) bool {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	switch {
	case value == "" && i < 0:
		return false
	case value == "":
		c.Env = slices.Delete(c.Env, i, i+1)
		return true
	case i < 0:
		c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
		return true
	case c.Env[i].Value == value && c.Env[i].ValueFrom == nil:
		return false
	}
	c.Env[i] = corev1.EnvVar{Name: name, Value: value}
	return true
}
