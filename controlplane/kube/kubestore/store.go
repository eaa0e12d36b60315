// Package kubestore is the reconcilers' store (store.Interface plus Subscribe) backed by a
// Kubernetes API server: Skiff's CRDs read through shared informers (dynamic client), written
// with the dynamic client. It keeps the embedded store's semantics with the API server's own
// machinery: the server bumps metadata.generation on spec changes and keeps status on updates
// (the CRDs have the status subresource), resourceVersion conflicts come back as
// store.ErrConflict, and deletion cascades through owner references and Kubernetes' garbage
// collector (kube-controller-manager), not synchronously as in the embedded store.
package kubestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/config"
	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	eventingv1beta3 "github.com/skiff-dev/skiff/api/eventing/v1beta3"
	flowsv1 "github.com/skiff-dev/skiff/api/flows/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
	networkingv1alpha1 "github.com/skiff-dev/skiff/api/networking/v1alpha1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	servingv1beta1 "github.com/skiff-dev/skiff/api/serving/v1beta1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// Kinds maps every kind the reconcilers keep to its API resource.
var kinds = map[string]schema.GroupVersionResource{
	servingv1.KindService:         {Group: "serving.knative.dev", Version: "v1", Resource: "services"},
	servingv1.KindConfiguration:   {Group: "serving.knative.dev", Version: "v1", Resource: "configurations"},
	servingv1.KindRevision:        {Group: "serving.knative.dev", Version: "v1", Resource: "revisions"},
	servingv1.KindRoute:           {Group: "serving.knative.dev", Version: "v1", Resource: "routes"},
	eventingv1.KindBroker:         {Group: "eventing.knative.dev", Version: "v1", Resource: "brokers"},
	eventingv1.KindTrigger:        {Group: "eventing.knative.dev", Version: "v1", Resource: "triggers"},
	sourcesv1.KindPingSource:      {Group: "sources.knative.dev", Version: "v1", Resource: "pingsources"},
	sourcesv1.KindSinkBinding:     {Group: "sources.knative.dev", Version: "v1", Resource: "sinkbindings"},
	eventingv1beta3.KindEventType: {Group: "eventing.knative.dev", Version: "v1beta3", Resource: "eventtypes"},

	messagingv1.KindChannel:                   {Group: "messaging.knative.dev", Version: "v1", Resource: "channels"},
	messagingv1.KindInMemoryChannel:           {Group: "messaging.knative.dev", Version: "v1", Resource: "inmemorychannels"},
	messagingv1.KindSubscription:              {Group: "messaging.knative.dev", Version: "v1", Resource: "subscriptions"},
	flowsv1.KindSequence:                      {Group: "flows.knative.dev", Version: "v1", Resource: "sequences"},
	flowsv1.KindParallel:                      {Group: "flows.knative.dev", Version: "v1", Resource: "parallels"},
	sourcesv1.KindApiServerSource:             {Group: "sources.knative.dev", Version: "v1", Resource: "apiserversources"},
	sourcesv1.KindContainerSource:             {Group: "sources.knative.dev", Version: "v1", Resource: "containersources"},
	servingv1beta1.KindDomainMapping:          {Group: "serving.knative.dev", Version: "v1beta1", Resource: "domainmappings"},
	networkingv1alpha1.KindClusterDomainClaim: {Group: "networking.internal.knative.dev", Version: "v1alpha1", Resource: "clusterdomainclaims"},
	api.KindSecret:                            {Version: "v1", Resource: "secrets"},
	api.KindConfigMap:                         {Version: "v1", Resource: "configmaps"},
	// Namespaces' labels select which get wildcard certificates (namespace-wildcard-cert-selector).
	"Namespace": {Version: "v1", Resource: "namespaces"},
}

// Option tunes a Store.
type Option func(*options)

type options struct {
	configMapNamespace string
	// named are single ConfigMaps of other namespaces the Store watches too.
	named []store.Key
}

// ConfigMapsIn makes the Store watch the ConfigMaps of one namespace only (the controller's
// settings); without it, ConfigMaps are not served.
func ConfigMapsIn(namespace string) Option {
	return func(o *options) { o.configMapNamespace = namespace }
}

// ConfigMapNamed makes the Store also watch one ConfigMap of another namespace (Eventing's
// config-features in knative-eventing), through an informer of its own that lists and watches
// that name only (a metadata.name field selector, which RBAC's resourceNames can allow). The
// namespace may not exist. If listing it is forbidden, Start logs that once and the
// ConfigMap reads as absent: the controller runs with what it may read.
func ConfigMapNamed(namespace, name string) Option {
	return func(o *options) {
		o.named = append(o.named, store.Key{Kind: api.KindConfigMap, Namespace: namespace, Name: name})
	}
}

// GVR returns the API resource of kind, for callers that talk to the API server directly.
func GVR(kind string) (schema.GroupVersionResource, bool) {
	g, ok := kinds[kind]
	return g, ok
}

// Store is a store.Interface over the Kubernetes API.
type Store struct {
	client    dynamic.Interface
	factory   dynamicinformer.DynamicSharedInformerFactory
	informers map[string]cache.SharedIndexInformer
	kinds     map[string]*api.Kind
	// admission holds the settings objects read are defaulted with (SetSettings replaces them).
	admission atomic.Pointer[config.Config]
	log       *slog.Logger
	// extra are the namespace-filtered factories (ConfigMaps).
	extra []dynamicinformer.DynamicSharedInformerFactory
	// named are the informers of single ConfigMaps (ConfigMapNamed), by namespace; Start
	// drops one it may not list.
	named map[string]namedInformer

	mu       sync.Mutex
	handlers map[int]func(store.Event)
	nextID   int

	// encoded holds the JSON of each cached object as last encoded, so the reconcilers' many
	// reads of an object that has not changed decode it from JSON without encoding the
	// informer's map again (see encodedJSON).
	encodedMu sync.Mutex
	encoded   map[store.Key]encodedObject
	// written holds, per object, the status this store last wrote until the informer
	// delivers a newer version: a reconcile that read the version the write replaced (the
	// cache lags behind the write by a moment) and computes the same status again is not
	// sent to come back as a conflict. Guarded by encodedMu.
	written map[store.Key]writtenStatus
}

// writtenStatus is a status write the informer has not delivered yet.
type writtenStatus struct {
	// over is the resourceVersion the write replaced; status is the status written, as
	// statusJSON encodes it, and json the object the API server answered with.
	over, status string
	json         []byte
}

// namedInformer watches one ConfigMap (ConfigMapNamed).
type namedInformer struct {
	key      store.Key
	factory  dynamicinformer.DynamicSharedInformerFactory
	informer cache.SharedIndexInformer
}

// encodedObject is the JSON of one informer cache entry.
type encodedObject struct {
	from *unstructured.Unstructured
	json []byte
}

// New returns a Store watching every namespace; call Start before use. Objects read are
// defaulted with cfg's settings (nil: Knative's defaults).
func New(client dynamic.Interface, logger *slog.Logger, cfg *config.Config, opts ...Option) *Store {
	if cfg == nil {
		cfg = config.Default()
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Store{
		client:    client,
		factory:   dynamicinformer.NewDynamicSharedInformerFactory(client, 10*time.Hour),
		informers: map[string]cache.SharedIndexInformer{},
		log:       logger,
		handlers:  map[int]func(store.Event){},
		kinds:     map[string]*api.Kind{},
		encoded:   map[store.Key]encodedObject{},
		written:   map[store.Key]writtenStatus{},
		named:     map[string]namedInformer{},
	}
	s.admission.Store(cfg)
	for _, k := range api.Kinds() {
		s.kinds[k.Kind] = k
	}
	for kind, gvr := range kinds {
		factory := s.factory
		if kind == api.KindConfigMap {
			if o.configMapNamespace == "" {
				continue
			}
			factory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 10*time.Hour, o.configMapNamespace, nil)
			s.extra = append(s.extra, factory)
		}
		inf := factory.ForResource(gvr).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { s.notify(store.Added, kind, obj) },
			UpdateFunc: func(_, obj any) { s.notify(store.Modified, kind, obj) },
			DeleteFunc: func(obj any) { s.notify(store.Deleted, kind, obj) },
		})
		s.informers[kind] = inf
	}
	for _, key := range o.named {
		if key.Namespace == o.configMapNamespace {
			continue // the namespace's informer has it
		}
		selector := "metadata.name=" + key.Name
		factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 10*time.Hour, key.Namespace,
			func(lo *metav1.ListOptions) { lo.FieldSelector = selector })
		inf := factory.ForResource(kinds[api.KindConfigMap]).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { s.notify(store.Added, api.KindConfigMap, obj) },
			UpdateFunc: func(_, obj any) { s.notify(store.Modified, api.KindConfigMap, obj) },
			DeleteFunc: func(obj any) { s.notify(store.Deleted, api.KindConfigMap, obj) },
		})
		s.named[key.Namespace] = namedInformer{key: key, factory: factory, informer: inf}
	}
	return s
}

// informer is the informer holding kind's objects in namespace.
func (s *Store) informer(kind, namespace string) (cache.SharedIndexInformer, bool) {
	if kind == api.KindConfigMap {
		if n, ok := s.named[namespace]; ok {
			return n.informer, true
		}
	}
	inf, ok := s.informers[kind]
	return inf, ok
}

// Start starts the informers and waits until their caches have synced; they stop with ctx.
func (s *Store) Start(ctx context.Context) error {
	s.factory.Start(ctx.Done())
	for _, f := range s.extra {
		f.Start(ctx.Done())
	}
	for kind, inf := range s.informers {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return fmt.Errorf("kubestore: wait for %s informer to sync: %w", kind, ctx.Err())
		}
	}
	for ns, n := range s.named {
		// An informer that may not list retries forever and never syncs: ask once first.
		_, err := s.client.Resource(kinds[api.KindConfigMap]).Namespace(ns).List(ctx,
			metav1.ListOptions{FieldSelector: "metadata.name=" + n.key.Name, Limit: 1})
		if apierrors.IsForbidden(err) {
			s.log.Warn("not allowed to read a ConfigMap; running with Knative's defaults for it (deploy/skiff.yaml's RBAC allows it)",
				"namespace", ns, "name", n.key.Name, "err", err)
			delete(s.named, ns)
			continue
		}
		if err != nil {
			return fmt.Errorf("kubestore: list ConfigMap %s/%s: %w", ns, n.key.Name, err)
		}
		n.factory.Start(ctx.Done())
		if !cache.WaitForCacheSync(ctx.Done(), n.informer.HasSynced) {
			return fmt.Errorf("kubestore: wait for ConfigMap %s/%s informer to sync: %w", ns, n.key.Name, ctx.Err())
		}
	}
	return nil
}

// Shutdown waits for the informers' goroutines after Start's ctx is done.
func (s *Store) Shutdown() {
	s.factory.Shutdown()
	for _, f := range s.extra {
		f.Shutdown()
	}
	for _, n := range s.named {
		n.factory.Shutdown()
	}
}

// Subscribe calls fn after every change the informers see, until cancel is called.
func (s *Store) Subscribe(fn func(store.Event)) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID
	s.nextID++
	s.handlers[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.handlers, id)
	}
}

func (s *Store) notify(t store.EventType, kind string, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	e := store.Event{Type: t, Key: store.Key{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName()}}
	s.encodedMu.Lock()
	if t == store.Deleted {
		delete(s.encoded, e.Key)
	}
	if w, ok := s.written[e.Key]; ok && (t == store.Deleted || w.over != m.GetResourceVersion()) {
		delete(s.written, e.Key) // the cache has caught up with the write
	}
	s.encodedMu.Unlock()
	s.mu.Lock()
	hs := make([]func(store.Event), 0, len(s.handlers))
	for _, h := range s.handlers {
		hs = append(hs, h)
	}
	s.mu.Unlock()
	for _, h := range hs {
		h(e)
	}
}

func (s *Store) resource(kind, namespace string) (dynamic.ResourceInterface, error) {
	gvr, ok := kinds[kind]
	if !ok {
		return nil, fmt.Errorf("kubestore: kind %q is not served", kind)
	}
	return s.client.Resource(gvr).Namespace(namespace), nil
}

// Get reads the object at key from the informer cache into into.
func (s *Store) Get(_ context.Context, key store.Key, into store.Object) error {
	u, err := s.cached(key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	if err := decodeInto(s.encodedJSON(key, u), into); err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	s.prepare(into)
	return nil
}

// cached is the informer cache's object at key.
func (s *Store) cached(key store.Key) (*unstructured.Unstructured, error) {
	if n, ok := s.named[key.Namespace]; ok && key.Kind == api.KindConfigMap && key.Name != n.key.Name {
		return nil, store.ErrNotFound // the one ConfigMap of that namespace served
	}
	inf, ok := s.informer(key.Kind, key.Namespace)
	if !ok {
		return nil, errors.New("kind not served")
	}
	cacheKey := key.Namespace + "/" + key.Name
	if key.Namespace == "" {
		cacheKey = key.Name // cluster-scoped
	}
	item, exists, err := inf.GetIndexer().GetByKey(cacheKey)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, store.ErrNotFound
	}
	return item.(*unstructured.Unstructured), nil
}

// encodedJSON is u's JSON, u being the informer cache's object at key, encoded once per
// cache entry: reconciling one Service reads its objects many times between changes, and
// encoding the informer's map was most of what a read cost. The informer never mutates an
// entry (a change stores a new object), so the entry's pointer names one content; holding
// it keeps the pointer from being reused.
func (s *Store) encodedJSON(key store.Key, u *unstructured.Unstructured) []byte {
	k := key
	s.encodedMu.Lock()
	e, ok := s.encoded[k]
	s.encodedMu.Unlock()
	if ok && e.from == u {
		return e.json
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return nil // decodeInto reports the empty document
	}
	s.encodedMu.Lock()
	s.encoded[key] = encodedObject{from: u, json: b}
	s.encodedMu.Unlock()
	return b
}

// SetSettings defaults the objects read from then on with cfg, as the webhooks do once they
// reload a config-defaults edit; nil means Knative's defaults.
func (s *Store) SetSettings(cfg *config.Config) {
	if cfg == nil {
		cfg = config.Default()
	}
	s.admission.Store(cfg)
}

// prepare applies Skiff's defaults to an object read from the API server, as the defaulting
// webhook did when it was written: objects written while no webhook was installed (or before
// a config-defaults change) arrive as written, and the reconcilers expect them defaulted as
// `skiff apply` stores them. Validation is the webhook's, on write; the reconcilers report
// what they cannot honour in status.
func (s *Store) prepare(obj store.Object) {
	if o, ok := obj.(api.Object); ok {
		o.SetDefaults(config.ToContext(admission.WithinCreate(context.Background()), s.admission.Load()))
	}
}

// List returns the JSON of every cached object of kind in namespace ("" = all), sorted by key.
func (s *Store) List(_ context.Context, kind, namespace string) ([][]byte, error) {
	inf, ok := s.informer(kind, namespace)
	if !ok {
		return nil, fmt.Errorf("list %s: kind not served", kind)
	}
	var items []any
	if namespace == "" {
		items = inf.GetIndexer().List()
		if kind == api.KindConfigMap {
			for _, n := range s.named {
				items = append(items, n.informer.GetIndexer().List()...)
			}
		}
	} else {
		var err error
		if items, err = inf.GetIndexer().ByIndex(cache.NamespaceIndex, namespace); err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", kind, namespace, err)
		}
	}
	slices.SortFunc(items, func(a, b any) int {
		ua, ub := a.(*unstructured.Unstructured), b.(*unstructured.Unstructured)
		if c := cmpStr(ua.GetNamespace(), ub.GetNamespace()); c != 0 {
			return c
		}
		return cmpStr(ua.GetName(), ub.GetName())
	})
	out := make([][]byte, 0, len(items))
	for _, it := range items {
		b, err := it.(*unstructured.Unstructured).MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("list %s: encode: %w", kind, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Create creates obj in the API server and reads the stored object back into it.
func (s *Store) Create(ctx context.Context, obj store.Object) error {
	key := store.KeyOf(obj)
	ri, err := s.resource(key.Kind, key.Namespace)
	if err != nil {
		return err
	}
	u, err := toUnstructured(obj)
	if err != nil {
		return fmt.Errorf("create %s: %w", key, err)
	}
	unstructured.RemoveNestedField(u.Object, "status") // the status subresource owns it
	res, err := ri.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create %s: %w", key, mapErr(err))
	}
	return fromUnstructured(res, obj)
}

// Update writes obj's metadata and spec (the API server keeps status and bumps generation).
func (s *Store) Update(ctx context.Context, obj store.Object) error {
	return s.update(ctx, obj, false)
}

// UpdateStatus writes obj's status through the status subresource. A status equal to the
// one the cache holds is not written (obj gets the cached object), as Knative's generated
// reconcilers skip an unchanged status: the API server would store nothing and send no
// event, so the request would only cost a round trip. Knative compares with the object as
// its reconcile read it; this compares with the cache's latest, which may be newer: a
// status another reconcile of the same object has written meanwhile is then not sent again
// with a stale resourceVersion only to come back as a conflict. Should the server hold
// newer still, its event brings the object back to be reconciled.
func (s *Store) UpdateStatus(ctx context.Context, obj store.Object) error {
	key := store.KeyOf(obj)
	want, _ := statusJSON(obj)
	if cached := s.sameStatus(obj, want); cached != nil {
		if err := decodeInto(s.encodedJSON(key, cached), obj); err != nil {
			return fmt.Errorf("update status %s: %w", key, err)
		}
		return nil
	}
	s.encodedMu.Lock()
	w, ok := s.written[key]
	s.encodedMu.Unlock()
	if ok && w.over == obj.GetResourceVersion() && w.over != "" && w.status == string(want) {
		if err := decodeInto(w.json, obj); err != nil {
			return fmt.Errorf("update status %s: %w", key, err)
		}
		return nil
	}
	over := obj.GetResourceVersion()
	if err := s.update(ctx, obj, true); err != nil {
		return err
	}
	if b, err := json.Marshal(obj); err == nil && over != "" {
		s.encodedMu.Lock()
		s.written[key] = writtenStatus{over: over, status: string(want), json: b}
		s.encodedMu.Unlock()
	}
	return nil
}

// sameStatus returns the cached object when it has obj's status (want, as statusJSON
// encodes it; nil when obj has none), and nil otherwise (then the write decides, conflicts
// included). An object never read (no resourceVersion) is always written.
func (s *Store) sameStatus(obj store.Object, want []byte) *unstructured.Unstructured {
	key := store.KeyOf(obj)
	if want == nil || obj.GetResourceVersion() == "" {
		return nil
	}
	cached, err := s.cached(key)
	if err != nil {
		return nil
	}
	// Both sides go through obj's type, so fields the type leaves out when empty compare equal.
	stored := reflect.New(reflect.TypeOf(obj).Elem()).Interface()
	if decodeInto(s.encodedJSON(key, cached), stored) != nil {
		return nil
	}
	have, ok := statusJSON(stored)
	if !ok || !bytes.Equal(want, have) {
		return nil
	}
	return cached
}

// statusJSON is the JSON of the Status field of the struct obj points to; false when it
// has none or it does not encode.
func statusJSON(obj any) ([]byte, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	f := v.Elem().FieldByName("Status")
	if !f.IsValid() {
		return nil, false
	}
	b, err := json.Marshal(f.Interface())
	return b, err == nil
}

func (s *Store) update(ctx context.Context, obj store.Object, status bool) error {
	key := store.KeyOf(obj)
	ri, err := s.resource(key.Kind, key.Namespace)
	if err != nil {
		return err
	}
	if obj.GetResourceVersion() == "" {
		// The embedded store accepts an unconditional write; so does this one, against the
		// latest version the cache holds.
		var cur metav1.PartialObjectMetadata
		if err := s.Get(ctx, key, &cur); err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		obj.SetResourceVersion(cur.ResourceVersion)
	}
	u, err := toUnstructured(obj)
	if err != nil {
		return fmt.Errorf("update %s: %w", key, err)
	}
	// An update without managedFields keeps the stored ones (the API server's field
	// manager); sending them back only made the server decode and check them again.
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	var res *unstructured.Unstructured
	if status {
		res, err = ri.UpdateStatus(ctx, u, metav1.UpdateOptions{})
	} else {
		res, err = ri.Update(ctx, u, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("update %s: %w", key, mapErr(err))
	}
	return fromUnstructured(res, obj)
}

// Delete deletes the object; what it owns goes through Kubernetes' garbage collector
// (background propagation), as with `kubectl delete`.
func (s *Store) Delete(ctx context.Context, key store.Key) error {
	ri, err := s.resource(key.Kind, key.Namespace)
	if err != nil {
		return err
	}
	bg := metav1.DeletePropagationBackground
	if err := ri.Delete(ctx, key.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		return fmt.Errorf("delete %s: %w", key, mapErr(err))
	}
	return nil
}

// mapErr turns API status errors into the store's sentinel errors, keeping the message.
func mapErr(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %v", store.ErrNotFound, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%w: %v", store.ErrExists, err)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%w: %v", store.ErrConflict, err)
	}
	return err
}

func toUnstructured(obj any) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return u, nil
}

// fromUnstructured decodes u into a zeroed obj, so no field of the caller's copy survives.
func fromUnstructured(u *unstructured.Unstructured, obj any) error {
	b, err := u.MarshalJSON()
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return decodeInto(b, obj)
}

// decodeInto decodes an object's JSON into a zeroed obj, so no field of the caller's copy
// survives.
func decodeInto(b []byte, obj any) error {
	resetValue(obj)
	if err := json.Unmarshal(b, obj); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// resetValue zeroes the struct obj points to.
func resetValue(obj any) {
	v := reflect.ValueOf(obj)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v.Elem().SetZero()
	}
}
