package reconciler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/revisiongc"
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
	was := storedStatus(&st.Status)
	name := RevisionName(&cfg)
	rev, created, err := c.ensureRevision(ctx, &cfg, name)
	if err != nil {
		var conflict *revisionConflict
		if !errors.As(err, &conflict) {
			return fmt.Errorf("reconcile configuration %s: %w", key, err)
		}
		st.ObservedGeneration = cfg.Generation
		st.MarkFalse(duck.ConditionReady, "RevisionFailed", fmt.Sprintf("Revision creation failed with message: %s.", conflict.Error()), now)
		return c.updateStatus(ctx, &cfg, was, &cfg.Status.Status)
	}
	if st.LatestCreatedRevisionName != name && !created && rev.Labels[servingv1.ConfigurationGenerationLabel] != strconv.FormatInt(cfg.Generation, 10) {
		// An existing revision (a name brought back) is now the newest: re-check it. One
		// created for this generation comes back through the store's events, once a cache
		// has it (reconciled before, a Kubernetes informer's cache would not find it yet),
		// also while the status naming it is put off (updateStatus).
		c.queue.Add(store.KeyOf(rev))
	}
	// Knative's ReconcileKind: the latest created revision; Ready Unknown unless it is also
	// the latest ready; False when it failed; then the latest ready revision is the newest
	// ready one since the previous latest ready (findAndSetLatestReadyRevision), Ready True
	// when that is the latest created.
	st.ObservedGeneration = cfg.Generation
	st.LatestCreatedRevisionName = name
	if st.LatestReadyRevisionName != name {
		st.MarkUnknown(duck.ConditionReady, "", "", now)
	}
	if ready := rev.Status.GetCondition(duck.ConditionReady); ready != nil && ready.Status == duck.False {
		st.MarkFalse(duck.ConditionReady, "RevisionFailed",
			fmt.Sprintf("Revision %q failed with message: %s.", name, ready.Message), now)
	}
	latestReady, err := c.latestReadyRevision(ctx, &cfg, rev)
	if err != nil {
		return fmt.Errorf("reconcile configuration %s: %w", key, err)
	}
	if latestReady != "" {
		if latestReady != st.LatestReadyRevisionName {
			c.log.Info("revision ready", "configuration", key.String(), "revision", latestReady)
		}
		st.LatestReadyRevisionName = latestReady
		if latestReady == name {
			st.MarkTrue(duck.ConditionReady, now)
		}
	}
	if err := c.updateStatus(ctx, &cfg, was, &cfg.Status.Status); err != nil {
		return err
	}
	if err := c.forgetDeletedRoutes(ctx, &cfg); err != nil {
		return fmt.Errorf("reconcile configuration %s: %w", key, err)
	}
	return c.collectRevisions(ctx, key, &cfg)
}

// forgetDeletedRoutes takes Routes that no longer exist off the Configuration and its
// Revisions. A Route's deletion does so when the controller sees it; Knative guarantees it
// with a finalizer on the Route, Skiff by this check on every Configuration reconcile, which
// the controller's start runs for all of them. The Route of the Configuration's own Service
// is left to the Service, which (re)creates it.
func (c *Controller) forgetDeletedRoutes(ctx context.Context, cfg *servingv1.Configuration) error {
	for _, r := range routesListed(cfg.Annotations) {
		if svc := cfg.Labels[servingv1.ServiceLabel]; svc != "" && svc == r {
			continue
		}
		var route servingv1.Route
		err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRoute, Namespace: cfg.Namespace, Name: r}, &route)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if err := c.clearRoutingMeta(ctx, cfg.Namespace, r, nil, nil); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
	return nil
}

// loadGC reads config-gc from the system namespace into the settings in force: Knative's
// defaults without one, and none at all (nothing is collected) while it does not parse.
func (c *Controller) loadGC(ctx context.Context) error {
	gc := revisiongc.Default()
	var cm api.ConfigMap
	err := c.cfg.Store.Get(ctx, store.Key{Kind: api.KindConfigMap, Namespace: c.cfg.SystemNamespace, Name: revisiongc.ConfigName}, &cm)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("load config-gc: %w", err)
	default:
		if gc, err = revisiongc.Parse(cm.Data); err != nil {
			c.log.Error("config-gc is invalid; no revision is collected", "namespace", c.cfg.SystemNamespace, "err", err)
			gc = revisiongc.Config{RetainSinceCreateTime: revisiongc.Disabled, RetainSinceLastActiveTime: revisiongc.Disabled, MaxNonActiveRevisions: revisiongc.Disabled}
		}
	}
	c.gc.Store(&gc)
	return nil
}

// collectRevisions deletes the Configuration's Revisions Knative's garbage collector would
// (revisiongc, with the config-gc settings loadGC holds), and looks again when the next one
// turns stale. A Configuration cannot have more Revisions than its generation, so one below
// min-non-active-revisions is not looked at further.
func (c *Controller) collectRevisions(ctx context.Context, key store.Key, cfg *servingv1.Configuration) error {
	if c.gc.Load() == nil { // not loaded by Run yet
		if err := c.loadGC(ctx); err != nil {
			return fmt.Errorf("collect revisions of %s: %w", key, err)
		}
	}
	gc := *c.gc.Load()
	if gc.Off() || cfg.Generation <= gc.MinNonActiveRevisions {
		return nil
	}
	objs, err := store.ListAs[metav1.PartialObjectMetadata](ctx, c.cfg.Store, servingv1.KindRevision, cfg.Namespace)
	if err != nil {
		return fmt.Errorf("collect revisions of %s: %w", key, err)
	}
	var revs []metav1.ObjectMeta
	for _, m := range objs {
		if m.Labels[servingv1.ConfigurationLabel] == cfg.Name {
			revs = append(revs, m.ObjectMeta)
		}
	}
	now := c.now()
	for _, name := range revisiongc.Collect(gc, now, cfg.Status.LatestReadyRevisionName, revs) {
		c.log.Info("deleting stale revision", "configuration", key.String(), "revision", name)
		if err := c.cfg.Store.Delete(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: cfg.Namespace, Name: name}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("collect revision %s: %w", name, err)
		}
	}
	if next := revisiongc.NextStale(gc, now, cfg.Status.LatestReadyRevisionName, revs); !next.IsZero() {
		c.queue.AddAfter(key, next.Sub(now)+time.Second)
	}
	return nil
}

// latestReadyRevision is the newest ready revision of cfg created since its latest ready one,
// latest (the latest created) first, "" when none is ready: Knative's
// findAndSetLatestReadyRevision over getSortedCreatedRevisions (the bring-your-own name first,
// then by configuration generation, newest first). The revisions between are read only when
// there can be any: the latest created is not ready and two generations or more have passed
// since the latest ready one.
func (c *Controller) latestReadyRevision(ctx context.Context, cfg *servingv1.Configuration, latest *servingv1.Revision) (string, error) {
	if latest.Status.IsReady() {
		return latest.Name, nil
	}
	lower, bounded := int64(1), false
	if lr := cfg.Status.LatestReadyRevisionName; lr != "" {
		var have servingv1.Revision
		switch err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: cfg.Namespace, Name: lr}, &have); {
		case err == nil:
			lower, bounded = cfg.Generation, true
			if g, ok := configGeneration(&have); ok {
				lower = g
			}
		case !errors.Is(err, store.ErrNotFound): // a deleted one: look at every generation
			return "", err
		}
	}
	if (bounded && cfg.Generation-lower < 2) || (!bounded && cfg.Generation < 2) {
		// Nothing else in range: the latest created and, at most, the latest ready itself.
		return "", nil
	}
	revs, err := store.ListAs[servingv1.Revision](ctx, c.cfg.Store, servingv1.KindRevision, cfg.Namespace)
	if err != nil {
		return "", err
	}
	latestGen, latestGenOK := configGeneration(latest)
	var candidates []*servingv1.Revision
	for _, r := range revs {
		if r.Labels[servingv1.ConfigurationLabel] != cfg.Name {
			continue
		}
		g, ok := configGeneration(r)
		inRange := ok && g >= lower && g <= cfg.Generation
		if inRange || (cfg.Spec.Template.Name != "" && latestGenOK && ok && g == latestGen) {
			candidates = append(candidates, r)
		}
	}
	slices.SortStableFunc(candidates, func(a, b *servingv1.Revision) int {
		switch byo := cfg.Spec.Template.Name; {
		case a.Name == byo:
			return -1
		case b.Name == byo:
			return 1
		}
		ga, _ := configGeneration(a)
		gb, _ := configGeneration(b)
		return cmp.Compare(gb, ga)
	})
	for _, r := range candidates {
		if r.Status.IsReady() {
			return r.Name, nil
		}
	}
	return "", nil
}

// configGeneration is the configuration generation that created rev (its
// serving.knative.dev/configurationGeneration label).
func configGeneration(rev *servingv1.Revision) (int64, bool) {
	g, err := strconv.ParseInt(rev.Labels[servingv1.ConfigurationGenerationLabel], 10, 64)
	return g, err == nil
}

// revisionConflict is a bring-your-own revision name that another spec already holds.
type revisionConflict struct{ name string }

// Error is Knative's: the API's AlreadyExists for the revision (CheckNameAvailability).
func (e *revisionConflict) Error() string {
	return fmt.Sprintf("revisions.serving.knative.dev %q already exists", e.name)
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
	// Knative's MakeRevision (pkg/reconciler/configuration/resources/revision.go): the
	// owners' names and UIDs as labels, the creator from the Configuration's last modifier,
	// and the routing state pending until a Route looks, or active at once when the
	// Configuration is already routed (its routes annotation, which the Revision inherits).
	labels[servingv1.ConfigurationLabel] = cfg.Name
	labels[servingv1.ConfigurationGenerationLabel] = strconv.FormatInt(cfg.Generation, 10)
	if cfg.UID != "" {
		labels[servingv1.ConfigurationUIDLabel] = string(cfg.UID)
	}
	for _, k := range []string{servingv1.ServiceLabel, servingv1.ServiceUIDLabel} {
		if v := cfg.Labels[k]; v != "" {
			labels[k] = v
		}
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
	now := c.now()
	setRoutingState(rev, servingv1.RoutingStatePending, now)
	if v, ok := cfg.Annotations[servingv1.UpdaterAnnotation]; ok {
		rev.Annotations[servingv1.CreatorAnnotation] = v
	}
	if v, ok := cfg.Annotations[servingv1.RoutesAnnotation]; ok {
		rev.Annotations[servingv1.RoutesAnnotation] = v
		setRoutingState(rev, servingv1.RoutingStateActive, now)
	}
	if err := c.cfg.Store.Create(ctx, rev); err != nil {
		return nil, false, fmt.Errorf("create revision %s: %w", name, err)
	}
	c.log.Info("revision created", "namespace", cfg.Namespace, "revision", name)
	return rev, true, nil
}
