package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

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
//
// It resolves the subject and the sink, applies them to the Services
// (bindServices), then reports what happened (markSinkBindingAvailable).
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
	if !exists {
		var errs []error
		for _, svc := range services {
			if err := c.unbindService(ctx, key.Name, svc); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}

	now := c.now()
	st := &sb.Status
	st.ObservedGeneration = sb.Generation
	selects, reason, err := subjectSelector(sb.Spec.Subject)
	if err != nil {
		st.MarkFalse(sinkBindingConditionAvailable, reason, err.Error(), now)
		summarize(&st.Status, now, sinkBindingConditionAvailable)
		return c.cfg.Store.UpdateStatus(ctx, &sb)
	}
	sink, sinkErr := c.resolveDestination(ctx, sb.Namespace, sb.Spec.Sink)
	if sinkErr != nil {
		st.SinkURI = ""
		markUnresolved(&st.Status, sourceConditionSinkProvided, "NotFound", "spec.sink", sinkErr, now)
	} else {
		st.SinkURI = sink
		st.MarkTrue(sourceConditionSinkProvided, now)
	}
	overrides, err := ceOverridesEnv(sb.Spec.CEOverrides)
	if err != nil {
		return fmt.Errorf("sinkbinding %s: %w", key, err)
	}

	bound, errs := c.bindServices(ctx, sb.Name, services, selects, sink, sinkErr, overrides)
	markSinkBindingAvailable(st, bound, errs, sinkErr, now)
	if err := c.cfg.Store.UpdateStatus(ctx, &sb); err != nil {
		errs = append(errs, err)
	}
	if slices.ContainsFunc(errs, func(e error) bool { return errors.Is(e, store.ErrConflict) }) {
		return store.ErrConflict
	}
	return errors.Join(errs...)
}

// subjectSelector returns which Services a SinkBinding's subject selects; an error (with
// the reason to report on BindingAvailable) for a subject that is not a Knative Service or
// a selector that does not parse.
func subjectSelector(subj sourcesv1.Reference) (func(*servingv1.Service) bool, string, error) {
	if subj.Kind != servingv1.KindService || subj.APIVersion != servingv1.GroupVersion {
		return nil, "SubjectUnsupported", fmt.Errorf("spec.subject: %s %s cannot be bound here: use a Knative Service (%s)", subj.APIVersion, subj.Kind, servingv1.GroupVersion)
	}
	var selector labels.Selector
	if subj.Selector != nil {
		var err error
		if selector, err = metav1.LabelSelectorAsSelector(subj.Selector); err != nil {
			return nil, "InvalidSelector", fmt.Errorf("spec.subject.selector: %w", err)
		}
	}
	return func(svc *servingv1.Service) bool {
		if svc.Namespace != subj.Namespace && subj.Namespace != "" {
			return false
		}
		if selector != nil {
			return selector.Matches(labels.Set(svc.Labels))
		}
		return svc.Name == subj.Name
	}, "", nil
}

// bindServices binds the SinkBinding named name to the Services it selects and unbinds it
// from the others; it returns how many are bound and what failed. While the sink does not
// resolve (sinkErr), bound Services keep what they have.
func (c *Controller) bindServices(ctx context.Context, name string, services []*servingv1.Service, selects func(*servingv1.Service) bool, sink string, sinkErr error, overrides string) (int, []error) {
	var errs []error
	bound := 0
	for _, svc := range services {
		if !selects(svc) {
			if err := c.unbindService(ctx, name, svc); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if sinkErr != nil {
			continue // keep what it has until the sink resolves again
		}
		if other := svc.Annotations[SinkBindingAnnotation]; other != "" && other != name {
			errs = append(errs, fmt.Errorf("service %s is already bound by sinkbinding %q", svc.Name, other))
			continue
		}
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		changed := svc.Annotations[SinkBindingAnnotation] != name
		svc.Annotations[SinkBindingAnnotation] = name
		if setBindingEnv(svc, sink, overrides) || changed {
			if err := c.cfg.Store.Update(ctx, svc); err != nil {
				errs = append(errs, fmt.Errorf("binding service %s: %w", svc.Name, err))
				continue
			}
		}
		bound++
	}
	return bound, errs
}

// unbindService removes the binding of the SinkBinding named name from svc, if it has it.
func (c *Controller) unbindService(ctx context.Context, name string, svc *servingv1.Service) error {
	if svc.Annotations[SinkBindingAnnotation] != name {
		return nil
	}
	delete(svc.Annotations, SinkBindingAnnotation)
	setBindingEnv(svc, "", "")
	if err := c.cfg.Store.Update(ctx, svc); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("unbinding service %s: %w", svc.Name, err)
	}
	return nil
}

// markSinkBindingAvailable reports BindingAvailable from what binding did (bound Services,
// errs) and whether the sink resolved, and summarizes Ready.
func markSinkBindingAvailable(st *sourcesv1.SourceStatus, bound int, errs []error, sinkErr error, now time.Time) {
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
}

// ceOverridesEnv is the value of K_CE_OVERRIDES for a source's ceOverrides ("" for none).
func ceOverridesEnv(o *sourcesv1.CloudEventOverrides) (string, error) {
	if o == nil {
		return "", nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return "", fmt.Errorf("encoding ceOverrides: %w", err)
	}
	return string(b), nil
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
