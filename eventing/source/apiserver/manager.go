package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/eventing/source"
)

// Watch is one watch a source runs: the objects of a kind in one namespace (or all),
// optionally selected by labels.
type Watch struct {
	APIVersion, Kind string
	// Namespace is the namespace watched; "" watches every namespace.
	Namespace string
	// LabelSelector selects the objects (a label selector string; "" selects all).
	LabelSelector string
}

// Backend runs the watches of ApiServerSources against some API.
type Backend interface {
	// Host is the URL of the API the events come from: their CloudEvents source.
	Host() string
	// Run starts feeding store with the objects of w, as a client-go reflector feeds a
	// store (Replace with the initial list, then Add, Update and Delete), with the
	// permissions of serviceAccount ("namespace/name"), until ctx ends. It fails at once
	// when w cannot be watched (a kind the API does not serve); later failures of the
	// list or watch are retried with backoff.
	Run(ctx context.Context, w Watch, serviceAccount string, store cache.Store) error
	// Namespaces lists the namespaces selector selects, sorted.
	Namespaces(ctx context.Context, selector *metav1.LabelSelector) ([]string, error)
	// CheckAccess says what serviceAccount may not do of what the watches need (get, list
	// and watch), in Knative's words, or "" when it may do all of it.
	CheckAccess(ctx context.Context, serviceAccount string, watches []Watch) (string, error)
}

// SourceConfig is one ApiServerSource as the adapter runs it, its sink resolved.
type SourceConfig struct {
	// Sink is the absolute URL events are sent to.
	Sink string
	// Extensions are spec.ceOverrides.extensions, set on every event.
	Extensions map[string]string
	// Reference sends references to objects (Reference mode) rather than the objects.
	Reference bool
	// OwnerAPIVersion and OwnerKind, when either is set, keep only the objects whose
	// controller has them (spec.owner).
	OwnerAPIVersion, OwnerKind string
	// ServiceAccount is "namespace/name" of spec.serviceAccountName.
	ServiceAccount string
	// Watches are the resources × namespaces to watch.
	Watches []Watch
}

// Options configure a Manager.
type Options struct {
	// Client sends the events; it should send Skiff's hosts through the proxy.
	Client *http.Client
	Logger *slog.Logger
	// OnChange is called with a source's key when its watches have all listed their
	// objects (it becomes Synced) or one failed.
	OnChange func(key string)
}

// Manager runs ApiServerSources: the watches of each, feeding one delegate per source.
// Its methods are safe for concurrent use.
type Manager struct {
	backend Backend
	client  *http.Client
	log     *slog.Logger
	change  func(string)

	mu      sync.Mutex
	sources map[string]*running
	closed  bool
}

// running is one source's watches.
type running struct {
	cfg    SourceConfig
	cancel context.CancelFunc
	done   sync.WaitGroup
	synced []*atomic.Bool // per watch: listed once
}

// NewManager returns a Manager with no sources.
func NewManager(b Backend, o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.OnChange == nil {
		o.OnChange = func(string) {}
	}
	return &Manager{backend: b, client: o.Client, log: o.Logger.With("component", "apiserversource"), change: o.OnChange, sources: map[string]*running{}}
}

// Backend is the Manager's backend, for namespace and permission checks.
func (m *Manager) Backend() Backend { return m.backend }

// Set runs a source with cfg, replacing its watches when cfg changed. An error says a
// watch could not start (the source then runs none).
func (m *Manager) Set(key string, cfg SourceConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("apiserversource: manager closed")
	}
	if r := m.sources[key]; r != nil {
		if reflect.DeepEqual(r.cfg, cfg) {
			return nil
		}
		r.stop()
		delete(m.sources, key)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cfg: cfg, cancel: cancel}
	d := &delegate{m: m, key: key, cfg: cfg, source: m.backend.Host()}
	for _, w := range cfg.Watches {
		synced := &atomic.Bool{}
		r.synced = append(r.synced, synced)
		st := &syncStore{Store: d, synced: synced, onSync: func() { m.change(key) }}
		if err := m.backend.Run(ctx, w, cfg.ServiceAccount, st); err != nil {
			r.stop()
			return fmt.Errorf("watching %s %s: %w", w.APIVersion, w.Kind, err)
		}
	}
	m.sources[key] = r
	m.log.Info("apiserversource watching", "source", key, "watches", len(cfg.Watches), "sink", cfg.Sink)
	return nil
}

// Synced reports whether every watch of a source has listed its objects: from then on
// every change is sent.
func (m *Manager) Synced(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.sources[key]
	if r == nil {
		return false
	}
	for _, s := range r.synced {
		if !s.Load() {
			return false
		}
	}
	return true
}

// Delete stops a source's watches.
func (m *Manager) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.sources[key]; r != nil {
		r.stop()
		delete(m.sources, key)
	}
}

// Close stops every source.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for k, r := range m.sources {
		r.stop()
		delete(m.sources, k)
	}
}

func (r *running) stop() { r.cancel() }

// syncStore marks its watch synced on the first Replace (the initial list).
type syncStore struct {
	cache.Store
	synced *atomic.Bool
	onSync func()
}

// Replace implements cache.Store.
func (s *syncStore) Replace(items []any, rv string) error {
	err := s.Store.Replace(items, rv)
	if !s.synced.Swap(true) {
		s.onSync()
	}
	return err
}

// delegate is the cache.Store every watch of a source feeds, as Knative's
// resourceDelegate (with controllerFilter for spec.owner): each add, update and delete
// becomes an event sent to the sink. The initial list (Replace) sends nothing.
type delegate struct {
	m      *Manager
	key    string
	cfg    SourceConfig
	source string
}

func (d *delegate) Add(obj any) error    { return d.handle(Added, obj) }
func (d *delegate) Update(obj any) error { return d.handle(Updated, obj) }
func (d *delegate) Delete(obj any) error { return d.handle(Deleted, obj) }

func (d *delegate) handle(change Change, obj any) error {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("apiserversource %s: not an unstructured object: %T", d.key, obj)
	}
	if d.cfg.OwnerAPIVersion != "" || d.cfg.OwnerKind != "" {
		c := metav1.GetControllerOf(u)
		if c == nil || (d.cfg.OwnerAPIVersion != "" && d.cfg.OwnerAPIVersion != c.APIVersion) || (d.cfg.OwnerKind != "" && d.cfg.OwnerKind != c.Kind) {
			return nil
		}
	}
	ev, err := MakeEvent(change, d.source, u, d.cfg.Reference)
	if err != nil {
		d.m.log.Info("event creation failed", "source", d.key, "err", err)
		return err
	}
	ev.SetID(uuid.New().String())
	for k, v := range d.cfg.Extensions {
		ev.SetExtension(k, v)
	}
	if err := d.m.send(d.cfg.Sink, ev); err != nil {
		d.m.log.Warn("failed to send cloudevent", "source", d.key, "type", ev.Type(), "subject", ev.Subject(), "id", ev.ID(), "err", err)
	}
	return nil
}

// The rest of cache.Store: the delegate keeps nothing.
func (d *delegate) List() []any                          { return nil }
func (d *delegate) ListKeys() []string                   { return nil }
func (d *delegate) Get(any) (any, bool, error)           { return nil, false, nil }
func (d *delegate) GetByKey(string) (any, bool, error)   { return nil, false, nil }
func (d *delegate) Replace([]any, string) error          { return nil }
func (d *delegate) Resync() error                        { return nil }
func (d *delegate) Bookmark(string)                      {}
func (d *delegate) LastStoreSyncResourceVersion() string { return "" }

// send posts ev in binary mode, retrying network errors, 5xx, 408 and 429 with
// exponential backoff from 50ms, 5 times, as Knative's adapter does
// (ContextWithRetriesExponentialBackoff(50ms, 5)); then the event is dropped.
func (m *Manager) send(target string, ev cloudevents.Event) error {
	proto, err := cloudevents.NewHTTP(cloudevents.WithTarget(target), cehttp.WithClient(*m.client))
	if err != nil {
		return err
	}
	c, err := cloudevents.NewClient(proto, cloudevents.WithTimeNow())
	if err != nil {
		return err
	}
	return source.SendWithRetries(context.Background(), c, ev, 5, 50*time.Millisecond, 30*time.Second)
}
