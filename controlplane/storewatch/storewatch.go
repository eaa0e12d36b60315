// Package storewatch is the ApiServerSource backend of `skiff up`: it watches Skiff's own
// resources in its store (the kinds `skiff get` shows) and feeds the same cache.Store
// delegate the Kubernetes backend's reflectors feed (eventing/source/apiserver): the
// initial list as Replace, then every change the store reports as Add, Update or Delete,
// with label selectors applied (an object that stops matching is a Delete, as a
// Kubernetes watch reports it). `skiff up` has no RBAC: every ServiceAccount may watch
// everything, and no Namespace objects: a namespace selector must be empty (all).
package storewatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/eventing/source/apiserver"
)

// Store is what the backend reads: the embedded store with its change feed.
type Store interface {
	List(ctx context.Context, kind, namespace string) ([][]byte, error)
	Subscribe(fn func(store.Event)) (cancel func())
	Get(ctx context.Context, key store.Key, into store.Object) error
}

// Backend is an apiserver.Backend over Skiff's store.
type Backend struct {
	st   Store
	host func() string
}

// New returns a backend over st; host returns the URL of Skiff's API (the events' source).
func New(st Store, host func() string) *Backend { return &Backend{st: st, host: host} }

// Host is Skiff's API URL.
func (b *Backend) Host() string { return b.host() }

// Run lists the objects of w into s (Replace) and feeds it every later change until ctx
// ends. Kinds Skiff does not serve are refused.
func (b *Backend) Run(ctx context.Context, w apiserver.Watch, _ string, s cache.Store) error {
	k := api.LookupGVK(w.APIVersion, w.Kind)
	if k == nil {
		return fmt.Errorf("skiff up serves no kind %s in %s (it watches its own kinds: Knative's serving, eventing, messaging, flows and sources)", w.Kind, w.APIVersion)
	}
	sel, err := labels.Parse(w.LabelSelector)
	if err != nil {
		return fmt.Errorf("label selector %q: %w", w.LabelSelector, err)
	}
	wt := &watcher{b: b, kind: k.Kind, ns: w.Namespace, sel: sel, out: s, known: map[string]*unstructured.Unstructured{}, wake: make(chan struct{}, 1)}
	// Subscribe before listing, so nothing between the two is missed.
	cancel := b.st.Subscribe(wt.enqueue)
	items, err := wt.list(ctx)
	if err != nil {
		cancel()
		return err
	}
	go func() {
		defer cancel()
		_ = s.Replace(items, "")
		wt.run(ctx)
	}()
	return nil
}

// Namespaces: `skiff up` has no Namespace objects, so only the empty selector (every
// namespace) can be honoured; it lists the namespaces objects are in.
func (b *Backend) Namespaces(ctx context.Context, selector *metav1.LabelSelector) ([]string, error) {
	if selector != nil && (len(selector.MatchLabels) > 0 || len(selector.MatchExpressions) > 0) {
		return nil, errors.New("skiff up has no Namespace objects to select by label: leave spec.namespaceSelector out (the source's namespace) or empty (every namespace)")
	}
	seen := map[string]bool{}
	for _, k := range api.Kinds() {
		objs, err := store.ListAs[metav1.PartialObjectMetadata](ctx, storeLister{b.st}, k.Kind, "")
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			seen[o.Namespace] = true
		}
	}
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out, nil
}

// CheckAccess: `skiff up` has no RBAC; everything is allowed.
func (b *Backend) CheckAccess(context.Context, string, []apiserver.Watch) (string, error) {
	return "", nil
}

// storeLister adapts Store to the List half of store.Interface for store.ListAs.
type storeLister struct{ Store }

func (storeLister) Create(context.Context, store.Object) error       { return errors.ErrUnsupported }
func (storeLister) Update(context.Context, store.Object) error       { return errors.ErrUnsupported }
func (storeLister) UpdateStatus(context.Context, store.Object) error { return errors.ErrUnsupported }
func (storeLister) Delete(context.Context, store.Key) error          { return errors.ErrUnsupported }

// watcher is one watch: the objects it has reported, and the store's changes not yet
// handled.
type watcher struct {
	b    *Backend
	kind string
	ns   string
	sel  labels.Selector
	out  cache.Store

	known map[string]*unstructured.Unstructured // namespace/name → last reported
	mu    sync.Mutex
	queue []store.Event
	wake  chan struct{}
}

// enqueue is the store's callback: it must not block.
func (w *watcher) enqueue(e store.Event) {
	if e.Key.Kind != w.kind || (w.ns != "" && e.Key.Namespace != w.ns) {
		return
	}
	w.mu.Lock()
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) list(ctx context.Context) ([]any, error) {
	raws, err := w.b.st.List(ctx, w.kind, w.ns)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", w.kind, err)
	}
	items := make([]any, 0, len(raws))
	for _, raw := range raws {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("decoding a %s: %w", w.kind, err)
		}
		if w.sel.Matches(labels.Set(u.GetLabels())) {
			w.known[u.GetNamespace()+"/"+u.GetName()] = u
			items = append(items, u)
		}
	}
	return items, nil
}

func (w *watcher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		w.mu.Lock()
		events := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, e := range events {
			if ctx.Err() != nil {
				return
			}
			w.handle(ctx, e)
		}
	}
}

func (w *watcher) handle(ctx context.Context, e store.Event) {
	id := e.Key.Namespace + "/" + e.Key.Name
	old := w.known[id]
	var cur *unstructured.Unstructured
	if e.Type != store.Deleted {
		u := &unstructured.Unstructured{}
		if err := w.b.st.Get(ctx, e.Key, u); err == nil && w.sel.Matches(labels.Set(u.GetLabels())) {
			cur = u
		}
	}
	switch {
	case cur == nil && old != nil:
		delete(w.known, id)
		_ = w.out.Delete(old)
	case cur != nil && old == nil:
		w.known[id] = cur
		_ = w.out.Add(cur)
	case cur != nil && cur.GetResourceVersion() != old.GetResourceVersion():
		w.known[id] = cur
		_ = w.out.Update(cur)
	}
}
