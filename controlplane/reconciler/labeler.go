package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// This file is Knative's labeler (pkg/reconciler/labeler, metasync.go and accessors.go):
// each Route lists itself in the serving.knative.dev/routes annotation of the Revisions and
// Configurations its traffic names, and a Revision's serving.knative.dev/routingState label
// follows whether any Route lists it ("active") or none ("reserve"; "pending" from its
// creation until a Route has looked at it), with the time of the last change in
// serving.knative.dev/routingStateModified. A Revision in reserve that is not its
// Configuration's newest runs no instance (isActive).

// routingIndex knows which Revisions and Configurations list each Route in their routes
// annotation, so clearing a Route's marks does not read every object of the namespace on
// every reconcile (Knative's labeler lists them from its informer's cache). A namespace is
// read once, the first time one of its Routes needs it; after that the index follows the
// controller's own writes and the store's events.
type routingIndex struct {
	mu sync.Mutex
	// read are the namespaces read whole; routes is, by object, the Routes it lists, and
	// listing the other way round: by kind, namespace and Route, the objects listing it.
	read    map[string]bool
	routes  map[store.Key][]string
	listing map[routeOfKind]map[store.Key]bool
}

// routeOfKind names the objects of one kind that list one Route.
type routeOfKind struct{ kind, namespace, route string }

func newRoutingIndex() routingIndex {
	return routingIndex{read: map[string]bool{}, routes: map[store.Key][]string{}, listing: map[routeOfKind]map[store.Key]bool{}}
}

// observe records the Routes obj's annotations list.
func (x *routingIndex) observe(key store.Key, annotations map[string]string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, r := range x.routes[key] {
		k := routeOfKind{key.Kind, key.Namespace, r}
		delete(x.listing[k], key)
		if len(x.listing[k]) == 0 {
			delete(x.listing, k)
		}
	}
	rs := routesListed(annotations)
	if len(rs) == 0 {
		delete(x.routes, key)
		return
	}
	x.routes[key] = rs
	for _, r := range rs {
		k := routeOfKind{key.Kind, key.Namespace, r}
		if x.listing[k] == nil {
			x.listing[k] = map[store.Key]bool{}
		}
		x.listing[k][key] = true
	}
}

// listed returns the objects of kind in namespace whose annotation lists route.
func (x *routingIndex) listed(kind, namespace, route string) []store.Key {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []store.Key
	for k := range x.listing[routeOfKind{kind, namespace, route}] {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b store.Key) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// readNamespace fills the index with namespace's Revisions and Configurations, once.
func (c *Controller) readNamespace(ctx context.Context, namespace string) error {
	x := &c.routing
	x.mu.Lock()
	done := x.read[namespace]
	x.mu.Unlock()
	if done {
		return nil
	}
	for _, kind := range []string{servingv1.KindRevision, servingv1.KindConfiguration} {
		objs, err := store.ListAs[metav1.PartialObjectMetadata](ctx, c.cfg.Store, kind, namespace)
		if err != nil {
			return fmt.Errorf("read namespace %s: %w", namespace, err)
		}
		for _, m := range objs {
			x.observe(store.Key{Kind: kind, Namespace: namespace, Name: m.Name}, m.Annotations)
		}
	}
	x.mu.Lock()
	x.read[namespace] = true
	x.mu.Unlock()
	return nil
}

// routesListed is the set of Route names in a routes annotation, sorted.
func routesListed(annotations map[string]string) []string {
	v := annotations[servingv1.RoutesAnnotation]
	if v == "" {
		return nil
	}
	out := strings.Split(v, ",")
	slices.Sort(out)
	return slices.Compact(out)
}

// withRoute sets or removes route in the routes annotation, as Knative's
// updateRouteAnnotation does: a sorted, comma-separated set, the key removed with the last.
func withRoute(annotations map[string]string, route string, remove bool) (map[string]string, bool) {
	set := routesListed(annotations)
	has := slices.Contains(set, route)
	if has != remove {
		return annotations, false
	}
	if remove {
		set = slices.DeleteFunc(set, func(r string) bool { return r == route })
	} else {
		set = append(set, route)
		slices.Sort(set)
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	if len(set) == 0 {
		delete(annotations, servingv1.RoutesAnnotation)
	} else {
		annotations[servingv1.RoutesAnnotation] = strings.Join(set, ",")
	}
	return annotations, true
}

// setRoutingState is Knative's Revision.SetRoutingState: the label, and the time it changed
// (kept when the state is already this one and has a time).
func setRoutingState(obj metav1.Object, state string, now time.Time) {
	labels, anns := obj.GetLabels(), obj.GetAnnotations()
	if labels[servingv1.RoutingStateLabel] == state && anns[servingv1.RoutingStateModifiedAnnotation] != "" {
		return
	}
	if labels == nil {
		labels = map[string]string{}
	}
	if anns == nil {
		anns = map[string]string{}
	}
	labels[servingv1.RoutingStateLabel] = state
	anns[servingv1.RoutingStateModifiedAnnotation] = now.UTC().Format(time.RFC3339)
	obj.SetLabels(labels)
	obj.SetAnnotations(anns)
}

// syncRoutingMeta lists the Route on the Revisions and Configurations its status and spec
// traffic name (a latestRevision target also names its Configuration's latest created
// Revision, so the next one is active before it takes traffic), and, once the Route is Ready
// or Failed, takes it off those it no longer names (Knative's syncRoutingMeta).
func (c *Controller) syncRoutingMeta(ctx context.Context, route *servingv1.Route) error {
	ns := route.Namespace
	revisions, configs := map[string]bool{}, map[string]bool{}
	for _, tt := range append(slices.Clone(route.Status.Traffic), route.Spec.Traffic...) {
		cfgName := tt.ConfigurationName
		if tt.RevisionName != "" {
			var rev servingv1.Revision
			err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: ns, Name: tt.RevisionName}, &rev)
			if errors.Is(err, store.ErrNotFound) {
				continue // its creation brings the Route back
			}
			if err != nil {
				return err
			}
			revisions[tt.RevisionName] = true
			if owner := metav1.GetControllerOf(&rev); owner != nil && owner.Kind == servingv1.KindConfiguration {
				cfgName = owner.Name
			}
		}
		if cfgName == "" {
			continue
		}
		var cfg servingv1.Configuration
		err := c.cfg.Store.Get(ctx, store.Key{Kind: servingv1.KindConfiguration, Namespace: ns, Name: cfgName}, &cfg)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		configs[cfgName] = true
		if latest := cfg.Status.LatestCreatedRevisionName; latest != "" && tt.LatestRevision != nil && *tt.LatestRevision {
			revisions[latest] = true
		}
	}
	// Knative's Route IsReady (Ready True at the current generation) or IsFailed (Ready False).
	ready := route.Status.GetCondition(duck.ConditionReady)
	if ready != nil && (ready.Status == duck.False || ready.Status == duck.True && route.Status.ObservedGeneration == route.Generation) {
		if err := c.clearRoutingMeta(ctx, ns, route.Name, revisions, configs); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(revisions)) {
		if err := c.markRouting(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: ns, Name: name}, route.Name, false); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(configs)) {
		if err := c.markRouting(ctx, store.Key{Kind: servingv1.KindConfiguration, Namespace: ns, Name: name}, route.Name, false); err != nil {
			return err
		}
	}
	return nil
}

// clearRoutingMeta takes the Route off the Revisions and Configurations that list it but are
// not in keep (nil: all of them, as when the Route is deleted).
func (c *Controller) clearRoutingMeta(ctx context.Context, ns, route string, keepRevisions, keepConfigs map[string]bool) error {
	if err := c.readNamespace(ctx, ns); err != nil {
		return fmt.Errorf("clear route %s/%s from its targets: %w", ns, route, err)
	}
	for _, kind := range []string{servingv1.KindRevision, servingv1.KindConfiguration} {
		keep := keepRevisions
		if kind == servingv1.KindConfiguration {
			keep = keepConfigs
		}
		for _, k := range c.routing.listed(kind, ns, route) {
			if keep[k.Name] {
				continue
			}
			if err := c.markRouting(ctx, k, route, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// markRouting adds the Route to (or removes it from) one object's routes annotation and, on a
// Revision, sets the routing state that follows; it writes only a change.
func (c *Controller) markRouting(ctx context.Context, key store.Key, route string, remove bool) error {
	var obj store.Object = &servingv1.Configuration{}
	if key.Kind == servingv1.KindRevision {
		obj = &servingv1.Revision{}
	}
	err := c.cfg.Store.Get(ctx, key, obj)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	anns, changed := withRoute(obj.GetAnnotations(), route, remove)
	obj.SetAnnotations(anns)
	if key.Kind == servingv1.KindRevision {
		state := servingv1.RoutingStateReserve
		if anns[servingv1.RoutesAnnotation] != "" {
			state = servingv1.RoutingStateActive
		}
		if obj.GetLabels()[servingv1.RoutingStateLabel] != state {
			// A new label always gets a new time (Knative's markRoutingState).
			setRoutingState(obj, state, c.now())
			changed = true
		}
	}
	if changed {
		if err := c.cfg.Store.Update(ctx, obj); err != nil {
			return fmt.Errorf("mark %s routed by %s: %w", key, route, err)
		}
	}
	c.routing.observe(key, obj.GetAnnotations())
	return nil
}
