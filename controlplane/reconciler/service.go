package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
)

// lastAppliedConfigAnnotation is kubectl's, which Knative does not copy to children.
const lastAppliedConfigAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// reconcileService makes the Service's Configuration and Route match its spec and
// reports their readiness as the Service's status.
func (c *Controller) reconcileService(ctx context.Context, key store.Key) error {
	var svc servingv1.Service
	if err := c.cfg.Store.Get(ctx, key, &svc); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil // the store deletes what the Service owned
		}
		return err
	}
	owner := ownerRef(&svc.ObjectMeta, servingv1.KindService)
	was := storedStatus(&svc.Status.Status)
	labels := childLabels(svc.Labels, servingv1.ServiceLabel, svc.Name)

	// Knative's MakeConfigurationFromExisting: the Service's labels and UID, its annotations
	// but kubectl's last-applied and the rollout duration, and the routes annotation already
	// naming the Service's Route (with any other Route the labeler listed), so the Revisions
	// it stamps start out active.
	cfg := servingv1.Configuration{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindConfiguration},
		ObjectMeta: childMeta(&svc.ObjectMeta, svc.Name, maps.Clone(labels), owner),
		Spec:       svc.Spec.ConfigurationSpec,
	}
	if svc.UID != "" {
		cfg.Labels[servingv1.ServiceUIDLabel] = string(svc.UID)
	}
	cfg.Annotations = maps.Clone(svc.Annotations)
	if cfg.Annotations == nil {
		cfg.Annotations = map[string]string{}
	}
	for _, k := range []string{lastAppliedConfigAnnotation, servingv1.RolloutDurationKey, servingv1.GroupName + "/rolloutDuration"} {
		delete(cfg.Annotations, k)
	}
	cfg.Annotations, _ = withRoute(cfg.Annotations, svc.Name, false)
	if err := ensure(ctx, c.cfg.Store, &cfg, func(have *servingv1.Configuration) bool {
		// ensure's read of the stored Configuration is the one this needs: the Routes the
		// labeler listed on it stay listed, in what is compared and in what an update writes.
		if v := have.Annotations[servingv1.RoutesAnnotation]; v != "" {
			cfg.Annotations[servingv1.RoutesAnnotation] = v
			cfg.Annotations, _ = withRoute(cfg.Annotations, svc.Name, false)
		}
		return reflect.DeepEqual(have.Spec, cfg.Spec) && maps.Equal(have.Labels, cfg.Labels) && maps.Equal(have.Annotations, cfg.Annotations)
	}); err != nil {
		return c.notOwned(ctx, &svc, servingv1.ServiceConditionConfigurationsReady, fmt.Errorf("reconcile service %s: configuration: %w", key, err))
	}

	// Knative's service reconciler: with a bring-your-own revision name, the Route waits
	// until the Configuration has reconciled, and is not touched while the name is taken by
	// a Revision that is not this generation's (CheckNameAvailability).
	if name := cfg.Spec.Template.Name; name != "" {
		stale := cfg.Status.ObservedGeneration != cfg.Generation
		taken, err := c.revisionNameTaken(ctx, &cfg)
		if err != nil {
			return fmt.Errorf("reconcile service %s: %w", key, err)
		}
		if stale || taken {
			now := c.now()
			st := &svc.Status
			st.ObservedGeneration = svc.Generation
			configurationStatus(st, &cfg, now)
			if !stale {
				st.MarkFalse(servingv1.ServiceConditionRoutesReady, "RevisionNameTaken",
					fmt.Sprintf("The revision name %q is taken by a conflicting Revision, so traffic will not be migrated", name), now)
			}
			summarize(&st.Status, now, servingv1.ServiceConditionConfigurationsReady, servingv1.ServiceConditionRoutesReady)
			return c.updateStatus(ctx, &svc, was, &svc.Status.Status)
		}
	}

	route := servingv1.Route{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRoute},
		ObjectMeta: childMeta(&svc.ObjectMeta, svc.Name, labels, owner),
		Spec:       servingv1.RouteSpec{Traffic: make([]servingv1.TrafficTarget, len(svc.Spec.Traffic))},
	}
	// The Route carries the Service's annotations, as Knative's MakeRoute copies them (the
	// networking ones, e.g. http-protocol, are read from the Route).
	if len(svc.Annotations) > 0 {
		route.Annotations = maps.Clone(svc.Annotations)
		delete(route.Annotations, lastAppliedConfigAnnotation)
	}
	for i, t := range svc.Spec.Traffic {
		if t.LatestRevision != nil && *t.LatestRevision {
			t.ConfigurationName = svc.Name
		}
		route.Spec.Traffic[i] = t
	}
	// Traffic Knative's webhook would have refused (the Service got in without it) never
	// reaches the Route, which keeps routing what it had; RoutesReady says why, naming the
	// field.
	invalid := traffic.Validate(ctx, svc.Spec.Traffic, true)
	if invalid != nil {
		if err := c.cfg.Store.Get(ctx, store.KeyOf(&route), &route); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("reconcile service %s: route: %w", key, err)
		}
	} else if err := ensure(ctx, c.cfg.Store, &route, func(have *servingv1.Route) bool {
		// The rollout state is the Route reconciler's (Knative keeps it on the Ingress, which
		// the Service never writes): it stays, in what is compared and what is written.
		if v, ok := have.Annotations[traffic.RolloutAnnotation]; ok {
			if route.Annotations == nil {
				route.Annotations = map[string]string{}
			}
			route.Annotations[traffic.RolloutAnnotation] = v
		}
		return reflect.DeepEqual(have.Spec, route.Spec) && maps.Equal(have.Labels, route.Labels) && maps.Equal(have.Annotations, route.Annotations)
	}); err != nil {
		return c.notOwned(ctx, &svc, servingv1.ServiceConditionRoutesReady, fmt.Errorf("reconcile service %s: route: %w", key, err))
	}

	now := c.now()
	st := &svc.Status
	st.ObservedGeneration = svc.Generation
	configurationStatus(st, &cfg, now)
	if route.Status.ObservedGeneration == route.Generation {
		st.RouteStatusFields = route.Status.RouteStatusFields
		st.Traffic = make([]servingv1.TrafficTarget, len(route.Status.Traffic))
		for i, t := range route.Status.Traffic {
			t.ConfigurationName = "" // implied by the Service, as Knative reports it
			st.Traffic[i] = t
		}
		mirror(&st.Status, servingv1.ServiceConditionRoutesReady, route.Status.GetCondition(duck.ConditionReady), now)
	} else {
		st.MarkUnknown(servingv1.ServiceConditionRoutesReady, "OutOfDate", "The Route is still working to reflect the latest desired specification.", now)
	}
	if invalid != nil {
		st.MarkFalse(servingv1.ServiceConditionRoutesReady, invalid.Reason, invalid.Message, now)
	}
	if rc := st.GetCondition(servingv1.ServiceConditionRoutesReady); rc != nil && rc.Status == duck.True && !trafficMigrated(&route, &cfg) {
		st.MarkUnknown(servingv1.ServiceConditionRoutesReady, "TrafficNotMigrated", "Traffic is not yet migrated to the latest revision.", now)
	}
	summarize(&st.Status, now, servingv1.ServiceConditionConfigurationsReady, servingv1.ServiceConditionRoutesReady)
	return c.updateStatus(ctx, &svc, was, &svc.Status.Status)
}

// configurationStatus is the Configuration's part of a Service's status: its fields and its
// Ready condition once it has reconciled the latest spec, OutOfDate until then.
func configurationStatus(st *servingv1.ServiceStatus, cfg *servingv1.Configuration, now time.Time) {
	if cfg.Status.ObservedGeneration != cfg.Generation {
		st.MarkUnknown(servingv1.ServiceConditionConfigurationsReady, "OutOfDate", "The Configuration is still working to reflect the latest desired specification.", now)
		return
	}
	st.ConfigurationStatusFields = cfg.Status.ConfigurationStatusFields
	mirror(&st.Status, servingv1.ServiceConditionConfigurationsReady, cfg.Status.GetCondition(duck.ConditionReady), now)
}

// revisionNameTaken reports whether the Configuration's bring-your-own revision name is held
// by a Revision that is not its own, or is its own from another generation with another
// spec (Knative's service.CheckNameAvailability).
func (c *Controller) revisionNameTaken(ctx context.Context, cfg *servingv1.Configuration) (bool, error) {
	var rev servingv1.Revision
	switch err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: cfg.Namespace, Name: cfg.Spec.Template.Name}, &rev); {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("revision %s: %w", cfg.Spec.Template.Name, err)
	}
	if !isOwnedBy(rev.OwnerReferences, []metav1.OwnerReference{{UID: cfg.UID}}) {
		return true, nil
	}
	if rev.Labels[servingv1.ConfigurationGenerationLabel] == strconv.FormatInt(cfg.Generation, 10) {
		return false, nil
	}
	return !reflect.DeepEqual(rev.Spec, cfg.Spec.Template.Spec), nil
}

// ensure creates obj, or updates the stored copy when same() says it differs, and leaves
// the stored object (with its status) in obj.
func ensure[T any, PT interface {
	*T
	store.Object
}](ctx context.Context, s store.Interface, obj PT, same func(have PT) bool) error {
	have := PT(new(T))
	err := s.Get(ctx, store.KeyOf(obj), have)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.Create(ctx, obj)
	case err != nil:
		return err
	case same(have):
		*obj = *have
		return nil
	}
	if !isOwnedBy(have.GetOwnerReferences(), obj.GetOwnerReferences()) {
		return &notOwnedError{key: store.KeyOf(obj), owner: obj.GetOwnerReferences()[0].Name}
	}
	obj.SetResourceVersion(have.GetResourceVersion())
	return s.Update(ctx, obj)
}

// notOwnedError is a child name already taken by an object the parent does not own.
type notOwnedError struct {
	key   store.Key
	owner string
}

func (e *notOwnedError) Error() string {
	return fmt.Sprintf("there is an existing %s %q that we do not own", e.key.Kind, e.key.Name)
}

// notOwned reports a notOwnedError on the Service's condition t, as Knative does (reason
// NotOwned), and passes any other error through.
func (c *Controller) notOwned(ctx context.Context, svc *servingv1.Service, t duck.ConditionType, err error) error {
	var no *notOwnedError
	if !errors.As(err, &no) {
		return err
	}
	now := c.now()
	svc.Status.ObservedGeneration = svc.Generation
	svc.Status.MarkFalse(t, "NotOwned", no.Error()+".", now)
	summarize(&svc.Status.Status, now, servingv1.ServiceConditionConfigurationsReady, servingv1.ServiceConditionRoutesReady)
	return c.cfg.Store.UpdateStatus(ctx, svc)
}

func isOwnedBy(have, want []metav1.OwnerReference) bool {
	for _, h := range have {
		for _, w := range want {
			if h.UID == w.UID {
				return true
			}
		}
	}
	return false
}

func ownerRef(m *metav1.ObjectMeta, kind string) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion: servingv1.GroupVersion, Kind: kind, Name: m.Name, UID: m.UID,
		Controller: &yes, BlockOwnerDeletion: &yes,
	}
}

func childLabels(parent map[string]string, key, value string) map[string]string {
	l := maps.Clone(parent)
	if l == nil {
		l = map[string]string{}
	}
	l[key] = value
	return l
}

func childMeta(parent *metav1.ObjectMeta, name string, labels map[string]string, owner metav1.OwnerReference) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: parent.Namespace, Labels: labels,
		OwnerReferences: []metav1.OwnerReference{owner},
	}
}

// mirror copies a child's Ready condition into the parent's condition t.
func mirror(st *duck.Status, t duck.ConditionType, child *duck.Condition, now time.Time) {
	if child == nil {
		st.MarkUnknown(t, "Initializing", "", now)
		return
	}
	st.SetCondition(duck.Condition{Type: t, Status: child.Status, Reason: child.Reason, Message: child.Message}, now)
}

// summarize sets Ready from the dependent conditions, as Knative's condition sets do:
// False if any is False, True if all are True, Unknown otherwise.
func summarize(st *duck.Status, now time.Time, deps ...duck.ConditionType) {
	var unknown *duck.Condition
	for _, d := range deps {
		c := st.GetCondition(d)
		if c == nil {
			st.MarkUnknown(duck.ConditionReady, "Initializing", "", now)
			return
		}
		switch c.Status {
		case duck.False:
			st.MarkFalse(duck.ConditionReady, c.Reason, c.Message, now)
			return
		case duck.Unknown:
			if unknown == nil {
				unknown = c
			}
		}
	}
	if unknown != nil {
		st.MarkUnknown(duck.ConditionReady, unknown.Reason, unknown.Message, now)
		return
	}
	st.MarkTrue(duck.ConditionReady, now)
}

// trafficMigrated is Knative's checkRoutesNotReady: the Route's status.traffic is its
// spec.traffic with the Service's configuration resolved to its latest ready revision
// (URLs and latestRevision aside), so a Service is not Ready before its Route catches up.
func trafficMigrated(route *servingv1.Route, cfg *servingv1.Configuration) bool {
	if len(route.Spec.Traffic) != len(route.Status.Traffic) {
		return false
	}
	for i, want := range route.Spec.Traffic {
		if want.ConfigurationName == cfg.Name {
			want.RevisionName, want.ConfigurationName = cfg.Status.LatestReadyRevisionName, ""
		}
		got := route.Status.Traffic[i]
		want.URL, got.URL = "", ""
		want.LatestRevision, got.LatestRevision = nil, nil
		if !reflect.DeepEqual(want, got) {
			return false
		}
	}
	return true
}
