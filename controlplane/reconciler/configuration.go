package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// RevisionName is the name Knative gives the revision a configuration generation creates:
// the template's own name when set (bring your own), else {config}-{generation:05d}.
func RevisionName(cfg *servingv1.Configuration) string {
	if cfg.Spec.Template.Name != "" {
		return cfg.Spec.Template.Name
	}
	return fmt.Sprintf("%s-%05d", cfg.Name, cfg.Generation)
}

// reconcileConfiguration creates the Revision for the current template and reports the
// latest created and latest ready revisions.
func (c *Controller) reconcileConfiguration(ctx context.Context, key store.Key) error {
	var cfg servingv1.Configuration
	if err := c.cfg.Store.Get(ctx, key, &cfg); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	now := c.now()
	st := &cfg.Status
	name := RevisionName(&cfg)
	rev, created, err := c.ensureRevision(ctx, &cfg, name)
	if err != nil {
		var conflict *revisionConflict
		if !errors.As(err, &conflict) {
			return fmt.Errorf("reconcile configuration %s: %w", key, err)
		}
		st.ObservedGeneration = cfg.Generation
		st.MarkFalse(duck.ConditionReady, "RevisionFailed", conflict.Error(), now)
		return c.cfg.Store.UpdateStatus(ctx, &cfg)
	}
	if st.LatestCreatedRevisionName != name && !created {
		// An existing revision (a name brought back) is now the newest: re-check it. One
		// just created comes back through the store's event, once a cache has it (reconciled
		// before, a Kubernetes informer's cache would not find it yet).
		c.queue.Add(store.KeyOf(rev))
	}
	st.ObservedGeneration = cfg.Generation
	st.LatestCreatedRevisionName = name
	ready := rev.Status.GetCondition(duck.ConditionReady)
	switch {
	case ready != nil && ready.Status == duck.True:
		if st.LatestReadyRevisionName != name {
			c.log.Info("revision ready", "configuration", key.String(), "revision", name)
		}
		st.LatestReadyRevisionName = name
		st.MarkTrue(duck.ConditionReady, now)
	case ready != nil && ready.Status == duck.False:
		st.MarkFalse(duck.ConditionReady, "RevisionFailed",
			fmt.Sprintf("Revision %q failed with message: %s.", name, ready.Message), now)
	default:
		st.MarkUnknown(duck.ConditionReady, "", "", now)
	}
	return c.cfg.Store.UpdateStatus(ctx, &cfg)
}

// revisionConflict is a bring-your-own revision name that another spec already holds.
type revisionConflict struct{ name string }

func (e *revisionConflict) Error() string {
	return fmt.Sprintf("Revision %q already exists with a different spec: revisions are immutable; choose a new spec.template.metadata.name", e.name)
}

// ensureRevision returns the revision for the current generation, creating it when missing
// (then created is true).
func (c *Controller) ensureRevision(ctx context.Context, cfg *servingv1.Configuration, name string) (rev *servingv1.Revision, created bool, err error) {
	key := store.Key{Kind: servingv1.KindRevision, Namespace: cfg.Namespace, Name: name}
	var have servingv1.Revision
	err = c.cfg.Store.Get(ctx, key, &have)
	if err == nil {
		if !isOwnedBy(have.OwnerReferences, []metav1.OwnerReference{{UID: cfg.UID}}) ||
			!reflect.DeepEqual(have.Spec, cfg.Spec.Template.Spec) {
			if cfg.Spec.Template.Name != "" {
				return nil, false, &revisionConflict{name: name}
			}
		}
		return &have, false, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	labels := maps.Clone(cfg.Spec.Template.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[servingv1.ConfigurationLabel] = cfg.Name
	labels[servingv1.ConfigurationGenerationLabel] = strconv.FormatInt(cfg.Generation, 10)
	if svc := cfg.Labels[servingv1.ServiceLabel]; svc != "" {
		labels[servingv1.ServiceLabel] = svc
	}
	rev = &servingv1.Revision{
		TypeMeta: metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRevision},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cfg.Namespace, Labels: labels,
			Annotations:     maps.Clone(cfg.Spec.Template.Annotations),
			OwnerReferences: []metav1.OwnerReference{ownerRef(&cfg.ObjectMeta, servingv1.KindConfiguration)},
		},
		Spec: cfg.Spec.Template.Spec,
	}
	if err := c.cfg.Store.Create(ctx, rev); err != nil {
		return nil, false, fmt.Errorf("create revision %s: %w", name, err)
	}
	c.log.Info("revision created", "namespace", cfg.Namespace, "revision", name)
	return rev, true, nil
}
