// Package store keeps Skiff's resources in an embedded database file, so that they
// survive restarts, and tells subscribers about every change, like a tiny API server: every
// change gets the next resourceVersion, and the recent changes are kept (history) so that a
// watch can resume from a resourceVersion, also after a restart. It also does in its write
// transactions what a Kubernetes cluster's controllers do afterwards: garbage collection of
// owned objects (Background, Foreground, Orphan) and finalizers. Defaulting and validation are
// not its job: the API in front of it (controlplane/apiserver, api.Admit) does them, and what
// the reconcilers write through it is trusted.
//
// A write returns once it is durable. Writes that arrive together share one bbolt
// transaction and so one fdatasync (group commit, see update): the reconcilers write status
// from several workers at once, and a transaction and a sync for each write made the store a
// fifth of the CPU of applying 500 Services. Each write still succeeds or fails on its own.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// Errors the store returns; match them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrConflict is the Kubernetes API server's optimistic-concurrency failure, word for word.
	ErrConflict = errors.New("the object has been modified; please apply your changes to the latest version and try again")
	// ErrOwnerGone refuses to create an object whose owner (an ownerReference) no longer
	// exists: it would outlive it, as nothing would ever delete it.
	ErrOwnerGone = errors.New("its owner does not exist (any more)")
	// ErrExpired is a watch from a resourceVersion whose later changes are no longer kept.
	ErrExpired = errors.New("too old resource version")
)

// ConflictError is a write refused because the object is not what the caller expected
// (a precondition); errors.Is(err, ErrConflict) holds for it.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return e.Reason }

// Is makes a ConflictError match ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ForbiddenError is a write Kubernetes refuses on the object's state, naming the field.
type ForbiddenError struct{ Field, Reason string }

func (e *ForbiddenError) Error() string { return e.Field + ": Forbidden: " + e.Reason }

// Finalizers the store acts on itself, as Kubernetes' garbage collector does.
const (
	// FinalizerForeground holds an object deleted with propagationPolicy Foreground until the
	// dependents that block it are gone.
	FinalizerForeground = metav1.FinalizerDeleteDependents
)

// Object is a resource the store keeps: Kubernetes-style type and object metadata.
type Object interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
}

// Key names one object.
type Key struct {
	Kind, Namespace, Name string
}

func (k Key) String() string { return k.Kind + "/" + k.Namespace + "/" + k.Name }

func (k Key) bytes() []byte { return []byte(k.String()) }

// KeyOf returns the key of obj.
func KeyOf(obj Object) Key {
	return Key{Kind: obj.GetObjectKind().GroupVersionKind().Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// EventType says what happened to an object.
type EventType string

// The kinds of change a subscriber hears about.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one change to one object.
type Event struct {
	Type EventType `json:"type"`
	Key  Key       `json:"key"`
	// ResourceVersion is the change's place in the store's history.
	ResourceVersion uint64 `json:"rv,omitempty"`
	// Object is the object after the change; for Deleted, its last state with the deletion's
	// resourceVersion.
	Object json.RawMessage `json:"object,omitempty"`
	// PrevLabels are the object's labels before a Modified change, so that a watch with a
	// label selector sees an object that stops matching as deleted, as Kubernetes' does.
	PrevLabels map[string]string `json:"prevLabels,omitempty"`
}

// DefaultHistory is how many changes the store keeps for watches to resume from, when Open
// is given none: a watch from an older resourceVersion gets ErrExpired (410 Gone, and the
// client lists again), as from a Kubernetes API server after etcd's compaction.
const DefaultHistory = 10000

// Options tune a store.
type Options struct {
	// History is how many changes are kept for watches (DefaultHistory when 0).
	History int
}

// Store is the embedded resource store behind `skiff up` and `skiff controlplane`: a bbolt
// file (skiff.db) in the data directory, served to kubectl and client-go by
// controlplane/apiserver.
type Store struct {
	db      *bolt.DB
	now     func() time.Time
	history uint64

	mu       sync.Mutex
	handlers map[int]func(Event)
	nextID   int
	changed  chan struct{} // closed at the next commit, then replaced

	// Group commit: writes that arrive while one batch commits wait in pending, and one of
	// them (the leader) commits them all in the next transaction, so that concurrent writers
	// share one fdatasync instead of queueing for one each.
	wmu     sync.Mutex
	pending []*writeReq
	leading bool // a goroutine is committing a batch
}

var (
	objectsBucket = []byte("objects")
	historyBucket = []byte("history")
	metaBucket    = []byte("meta")
	// compactedKey holds the newest resourceVersion no longer in history: a watch may resume
	// from it or later.
	compactedKey = []byte("compacted")
)

// errDryRun rolls a dry-run transaction back once it has done everything but commit.
var errDryRun = errors.New("dry run")

// Open opens (or creates) the store in dir, keeping DefaultHistory changes.
func Open(dir string) (*Store, error) { return OpenWith(dir, Options{}) }

// OpenWith opens (or creates) the store in dir.
func OpenWith(dir string, opts Options) (*Store, error) {
	path := filepath.Join(dir, "skiff.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		objects, err := tx.CreateBucketIfNotExists(objectsBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(historyBucket); err != nil {
			return err
		}
		meta := tx.Bucket(metaBucket)
		if meta == nil {
			// A store from before history was kept: nothing before now can be watched from.
			if meta, err = tx.CreateBucket(metaBucket); err != nil {
				return err
			}
			return meta.Put(compactedKey, rvBytes(objects.Sequence()))
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	h := opts.History
	if h <= 0 {
		h = DefaultHistory
	}
	return &Store{db: db, now: time.Now, history: uint64(h), handlers: map[int]func(Event){}, changed: make(chan struct{})}, nil
}

// Close closes the database file.
func (s *Store) Close() error { return s.db.Close() }

// Subscribe calls fn after every committed change, in resourceVersion order, until cancel is
// called. fn must not block, nor write to the store (it is called by the writer that
// committed the change, before the next batch of writes commits).
func (s *Store) Subscribe(fn func(Event)) (cancel func()) {
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

// Changed returns a channel that is closed at the next committed change: a watcher takes it
// before reading Changes, so that it never misses a wake-up.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) notify(events []Event) {
	if len(events) == 0 {
		return
	}
	s.mu.Lock()
	hs := make([]func(Event), 0, len(s.handlers))
	for _, h := range s.handlers {
		hs = append(hs, h)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	for _, e := range events {
		for _, h := range hs {
			h(e)
		}
	}
}

// Get reads the object at key into into.
func (s *Store) Get(_ context.Context, key Key, into Object) error {
	return s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(objectsBucket).Get(key.bytes())
		if v == nil {
			return fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return json.Unmarshal(v, into)
	})
}

// GetRaw reads the JSON of the object at key.
func (s *Store) GetRaw(_ context.Context, key Key) (json.RawMessage, error) {
	var out json.RawMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(objectsBucket).Get(key.bytes())
		if v == nil {
			return fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// List returns the raw JSON of every object of kind in namespace ("" = all namespaces), sorted by key.
func (s *Store) List(ctx context.Context, kind, namespace string) ([][]byte, error) {
	out, _, err := s.ListAt(ctx, kind, namespace)
	return out, err
}

// ListAt is List, with the store's resourceVersion the list was read at.
func (s *Store) ListAt(_ context.Context, kind, namespace string) ([][]byte, uint64, error) {
	prefix := []byte(kind + "/")
	if namespace != "" {
		prefix = []byte(kind + "/" + namespace + "/")
	}
	var out [][]byte
	var rv uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(objectsBucket)
		rv = b.Sequence()
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	return out, rv, err
}

// ResourceVersion is the store's current resourceVersion: that of its latest change.
func (s *Store) ResourceVersion() (uint64, error) {
	var rv uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		rv = tx.Bucket(objectsBucket).Sequence()
		return nil
	})
	return rv, err
}

// Changes returns the changes after resourceVersion after to objects of kind (in namespace,
// unless it is ""), oldest first: at most limit of them, looking at most at scan changes. upTo
// is the resourceVersion they were read up to (the next call starts there) and current the
// store's. A change after `after` that is no longer kept makes it ErrExpired.
func (s *Store) Changes(_ context.Context, kind, namespace string, after uint64, limit, scan int) (events []Event, upTo, current uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		current = tx.Bucket(objectsBucket).Sequence()
		compacted := rvFrom(tx.Bucket(metaBucket).Get(compactedKey))
		if after < compacted {
			return fmt.Errorf("%w: %d (%d)", ErrExpired, after, compacted)
		}
		upTo = max(after, current)
		c := tx.Bucket(historyBucket).Cursor()
		n := 0
		for k, v := c.Seek(rvBytes(after + 1)); k != nil; k, v = c.Next() {
			rv := rvFrom(k)
			if n == scan || len(events) == limit {
				upTo = rv - 1
				break
			}
			n++
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode change %d: %w", rv, err)
			}
			if e.Key.Kind != kind || (namespace != "" && e.Key.Namespace != namespace) {
				continue
			}
			e.ResourceVersion = rv
			events = append(events, e)
		}
		return nil
	})
	return events, upTo, current, err
}

// WriteOptions tune one write.
type WriteOptions struct {
	// DryRun does everything but store the result (Kubernetes' dryRun=All).
	DryRun bool
	// ManagedFields makes UpdateStatus take metadata.managedFields from the object too: the
	// API records who wrote the status there.
	ManagedFields bool
}

// Create stores a new object, setting its uid, resourceVersion, generation and creation time.
// Every owner its ownerReferences name must exist, with that uid, in the same transaction:
// a reconciler that read its parent before a cascading Delete cannot leave a child behind.
func (s *Store) Create(ctx context.Context, obj Object) error {
	return s.CreateWith(ctx, obj, WriteOptions{})
}

// CreateWith is Create with options.
func (s *Store) CreateWith(_ context.Context, obj Object, opts WriteOptions) error {
	key := KeyOf(obj)
	return s.update(opts.DryRun, func(t *txn) error {
		if t.objects.Get(key.bytes()) != nil {
			return fmt.Errorf("create %s: %w", key, ErrExists)
		}
		for _, ref := range obj.GetOwnerReferences() {
			if !ownerExists(t.objects, Key{Kind: ref.Kind, Namespace: key.Namespace, Name: ref.Name}, ref.UID) {
				return fmt.Errorf("create %s: owner %s %s: %w", key, ref.Kind, ref.Name, ErrOwnerGone)
			}
		}
		obj.SetUID(types.UID(uuid.NewUUID()))
		obj.SetGeneration(1)
		obj.SetCreationTimestamp(metav1.NewTime(s.now().Truncate(time.Second)))
		return t.put(key, obj, Added, nil)
	})
}

// Update replaces an object's metadata and spec, keeping its stored status. A non-empty
// resourceVersion must match the stored one. The generation goes up when the spec changes.
// An object being deleted whose update leaves no finalizer is removed.
func (s *Store) Update(ctx context.Context, obj Object) error {
	return s.UpdateWith(ctx, obj, WriteOptions{})
}

// UpdateWith is Update with options.
func (s *Store) UpdateWith(_ context.Context, obj Object, opts WriteOptions) error {
	return s.write(obj, opts, true, func(stored, next map[string]json.RawMessage) {
		setOrDelete(next, "status", stored["status"])
		if !bytes.Equal(compact(stored["spec"]), compact(next["spec"])) {
			next["metadata"] = bumpGeneration(next["metadata"])
		}
	})
}

// UpdateStatus replaces an object's status only. A non-empty resourceVersion must match.
func (s *Store) UpdateStatus(ctx context.Context, obj Object) error {
	return s.UpdateStatusWith(ctx, obj, WriteOptions{})
}

// UpdateStatusWith is UpdateStatus with options.
func (s *Store) UpdateStatusWith(_ context.Context, obj Object, opts WriteOptions) error {
	return s.write(obj, opts, false, func(stored, next map[string]json.RawMessage) {
		status, meta := next["status"], stored["metadata"]
		if opts.ManagedFields {
			meta = withManagedFields(stored["metadata"], next["metadata"])
		}
		for k := range next {
			delete(next, k)
		}
		for k, v := range stored {
			next[k] = v
		}
		next["metadata"] = meta
		setOrDelete(next, "status", status)
	})
}

// write merges obj into the stored object with merge, stores it and reads the result back
// into obj. system says whether merge takes obj's metadata (Update): then the fields the
// system owns are set in it from the stored object first.
//
// The merge (most of the JSON work) is prepared against a read of the stored object, in the
// writer's goroutine, so that concurrent writers do it at once rather than one after the
// other in their batch's transaction; the transaction only checks that the object is still
// the one read (else it prepares again) and stores the result. A write that changes
// nothing, a stale resourceVersion or a missing object needs no write transaction at all:
// it is decided at the read, as a read.
func (s *Store) write(obj Object, opts WriteOptions, system bool, merge func(stored, next map[string]json.RawMessage)) error {
	key := KeyOf(obj)
	// The caller's object, read once: fn may run again (see commitBatch) and obj then holds
	// what it wrote.
	wantRV := obj.GetResourceVersion()
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("update %s: encode: %w", key, err)
	}
	var read *merged
	if err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(objectsBucket).Get(key.bytes())
		if raw == nil {
			return fmt.Errorf("update %s: %w", key, ErrNotFound)
		}
		read, err = prepareWrite(key, bytes.Clone(raw), data, wantRV, system, merge)
		return err
	}); err != nil {
		return err
	}
	if read.same {
		reset(obj)
		return json.Unmarshal(read.stored, obj) // nothing changed: no new version, no event
	}
	var inObj *merged // the merge obj holds
	return s.update(opts.DryRun, func(t *txn) error {
		raw := t.objects.Get(key.bytes())
		if raw == nil {
			return fmt.Errorf("update %s: %w", key, ErrNotFound)
		}
		m := read
		if !bytes.Equal(raw, read.stored) {
			// Written since it was read: merge again, with the precondition, against what is there.
			var err error
			if m, err = prepareWrite(key, raw, data, wantRV, system, merge); err != nil {
				return err
			}
			if m.same {
				reset(obj)
				return json.Unmarshal(raw, obj)
			}
		}
		if inObj != m {
			reset(obj)
			if err := json.Unmarshal(m.result, obj); err != nil {
				return fmt.Errorf("update %s: %w", key, err)
			}
			inObj = m
		}
		if obj.GetDeletionTimestamp() != nil && len(obj.GetFinalizers()) == 0 {
			// The last finalizer is gone: the object goes, and what it owns after it.
			if err := t.remove(key, m.result); err != nil {
				return err
			}
			reset(obj)
			inObj = nil
			return json.Unmarshal(t.removed[key], obj)
		}
		return t.put(key, obj, Modified, m.prevLabels)
	})
}

// merged is an update prepared against one state of the stored object.
type merged struct {
	stored     []byte // the stored object it was merged with
	same       bool   // the update changes nothing
	result     []byte // the object after the update (without its new resourceVersion)
	prevLabels map[string]string
}

// prepareWrite merges data (the caller's object, whose resourceVersion was wantRV) into
// stored (see write).
func prepareWrite(key Key, stored, data []byte, wantRV string, system bool, merge func(stored, next map[string]json.RawMessage)) (*merged, error) {
	var have, next map[string]json.RawMessage
	if err := json.Unmarshal(stored, &have); err != nil {
		return nil, fmt.Errorf("update %s: decode stored: %w", key, err)
	}
	var meta metav1.ObjectMeta
	if err := json.Unmarshal(have["metadata"], &meta); err != nil {
		return nil, fmt.Errorf("update %s: decode stored metadata: %w", key, err)
	}
	if wantRV != "" && wantRV != meta.ResourceVersion {
		return nil, fmt.Errorf("update %s: %w", key, ErrConflict)
	}
	if err := json.Unmarshal(data, &next); err != nil {
		return nil, fmt.Errorf("update %s: %w", key, err)
	}
	if system {
		// Fields the system owns are never taken from the caller.
		var nm metav1.ObjectMeta
		if err := json.Unmarshal(next["metadata"], &nm); err != nil {
			return nil, fmt.Errorf("update %s: decode metadata: %w", key, err)
		}
		nm.UID, nm.CreationTimestamp, nm.Generation = meta.UID, meta.CreationTimestamp, meta.Generation
		nm.ResourceVersion = meta.ResourceVersion
		nm.DeletionTimestamp, nm.DeletionGracePeriodSeconds = meta.DeletionTimestamp, meta.DeletionGracePeriodSeconds
		mb, err := json.Marshal(&nm)
		if err != nil {
			return nil, fmt.Errorf("update %s: encode metadata: %w", key, err)
		}
		next["metadata"] = mb
	}
	merge(have, next)
	if meta.DeletionTimestamp != nil {
		// As the Kubernetes API server: an object on its way out takes no new finalizer.
		var nm metav1.ObjectMeta
		if err := json.Unmarshal(next["metadata"], &nm); err != nil {
			return nil, fmt.Errorf("update %s: %w", key, err)
		}
		var added []string
		for _, f := range nm.Finalizers {
			if !slices.Contains(meta.Finalizers, f) {
				added = append(added, f)
			}
		}
		if len(added) > 0 {
			return nil, &ForbiddenError{Field: "metadata.finalizers",
				Reason: fmt.Sprintf("no new finalizers can be added if the object is being deleted, found new finalizers %q", added)}
		}
	}
	// Both sides are encoding/json's output, so compact: equal values are equal bytes.
	if maps.EqualFunc(have, next, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		return &merged{stored: stored, same: true}, nil
	}
	return &merged{stored: stored, result: joinFields(next), prevLabels: meta.Labels}, nil
}

// joinFields encodes an object's top-level fields, each encoding/json's output already, as
// json.Marshal would (keys sorted) without validating and compacting every value again.
func joinFields(fields map[string]json.RawMessage) []byte {
	keys := slices.Sorted(maps.Keys(fields))
	out := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		kb, _ := json.Marshal(k) // a string always encodes
		out = append(out, kb...)
		out = append(out, ':')
		out = append(out, fields[k]...)
	}
	return append(out, '}')
}

// DeleteOptions are Kubernetes' DeleteOptions the store acts on.
type DeleteOptions struct {
	// Preconditions: a non-empty UID or ResourceVersion must match the stored object's.
	UID             types.UID
	ResourceVersion string
	// Propagation is what happens to the objects it owns (ownerReferences): Background (the
	// default) deletes them after it, Foreground before it, Orphan leaves them, without the
	// reference.
	Propagation metav1.DeletionPropagation
	DryRun      bool
}

// Delete removes an object and, like Kubernetes' garbage collector, everything it owns.
func (s *Store) Delete(ctx context.Context, key Key) error {
	_, _, err := s.DeleteWith(ctx, key, DeleteOptions{})
	return err
}

// DeleteWith deletes the object at key as the Kubernetes API server and its garbage
// collector would, in one transaction: an object with finalizers (or, in Foreground, with
// dependents that block it) is only marked (deletionTimestamp) and goes once they are gone.
// It returns the object as deleted or marked, and whether it is gone.
func (s *Store) DeleteWith(_ context.Context, key Key, opts DeleteOptions) (json.RawMessage, bool, error) {
	var out json.RawMessage
	gone := false
	err := s.update(opts.DryRun, func(t *txn) error {
		out, gone = nil, false
		raw := t.objects.Get(key.bytes())
		if raw == nil {
			return fmt.Errorf("delete %s: %w", key, ErrNotFound)
		}
		var o struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		m := o.Metadata
		if opts.UID != "" && opts.UID != m.UID {
			return &ConflictError{Reason: fmt.Sprintf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", opts.UID, m.UID)}
		}
		if opts.ResourceVersion != "" && opts.ResourceVersion != m.ResourceVersion {
			return &ConflictError{Reason: fmt.Sprintf("the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified", opts.ResourceVersion, m.ResourceVersion)}
		}
		if err := t.delete(key, opts.Propagation); err != nil {
			return err
		}
		if after := t.objects.Get(key.bytes()); after != nil {
			out = bytes.Clone(after)
		} else {
			out, gone = t.removed[key], true
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, gone, nil
}

// txn is one write transaction: it numbers each change and records it in history. Several
// writes (a batch) can share one; events and removed are those of the write running.
type txn struct {
	s                   *Store
	tx                  *bolt.Tx
	objects, hist, meta *bolt.Bucket
	events              []Event
	removed             map[Key][]byte // last states of what this write removed
	// wrote says the write running has changed the transaction: if it then fails, its
	// changes cannot be taken back alone, and the whole transaction is rolled back.
	wrote bool
}

// writeReq is one write waiting for its batch to commit.
type writeReq struct {
	fn  func(t *txn) error
	err error
	// wake gets one value: when the request's batch has committed (lead false), or when it is
	// to commit the pending batch itself (lead true).
	wake chan struct{}
	lead bool
	// panicked is what fn panicked with: its writer panics with it, the others go on.
	panicked any
}

// run runs the write's fn in t, turning a panic into an error (see panicked).
func (r *writeReq) run(t *txn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked = p
			t.wrote = true // whatever it did is taken back with the transaction
			err = fmt.Errorf("write panicked: %v", p)
		}
	}()
	r.panicked = nil
	return r.fn(t)
}

// result is the write's outcome for its writer.
func (r *writeReq) result() error {
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// errRollback aborts a batch's transaction when one of its writes failed after changing it.
var errRollback = errors.New("roll back the batch")

// update runs fn in a write transaction and returns once its changes are durable (or
// failed). Concurrent updates are committed together (group commit): each runs in turn in
// one bbolt transaction, so they share its fdatasync. One write's failure does not fail
// the others: a write that fails before changing anything is left out of the commit; one
// that fails halfway rolls the transaction back, then runs alone and the others again
// without it. fn may therefore run more than once; it must set its results afresh each
// time. Subscribers hear of every change in resourceVersion order, before update returns.
//
// bbolt's DB.Batch does the same with two differences that matter here: it waits up to
// MaxBatchDelay (10 ms) for more writers, and any failing write, even a conflict that
// changed nothing (common under optimistic concurrency), reruns the whole batch.
func (s *Store) update(dryRun bool, fn func(t *txn) error) error {
	if dryRun {
		err := s.db.Update(func(tx *bolt.Tx) error {
			if err := fn(s.newTxn(tx)); err != nil {
				return err
			}
			return errDryRun
		})
		if errors.Is(err, errDryRun) {
			return nil
		}
		return err
	}
	req := &writeReq{fn: fn, wake: make(chan struct{}, 1)}
	s.wmu.Lock()
	s.pending = append(s.pending, req)
	if s.leading {
		s.wmu.Unlock()
		<-req.wake
		if !req.lead {
			return req.result()
		}
	} else {
		s.leading = true
		s.wmu.Unlock()
	}
	s.commitPending(req)
	return req.result()
}

// commitPending commits the pending writes (self's among them) as one batch, then wakes
// their writers and hands the lead to the first write that arrived meanwhile.
func (s *Store) commitPending(self *writeReq) {
	s.wmu.Lock()
	batch := s.pending
	s.pending = nil
	s.wmu.Unlock()
	s.commitBatch(batch)
	s.wmu.Lock()
	var next *writeReq
	if len(s.pending) > 0 {
		next = s.pending[0]
		next.lead = true
	} else {
		s.leading = false
	}
	s.wmu.Unlock()
	for _, r := range batch {
		if r != self {
			r.wake <- struct{}{}
		}
	}
	if next != nil {
		next.wake <- struct{}{}
	}
}

// commitBatch runs the writes of batch in one transaction, in order, sets each one's
// error, and tells subscribers about the committed changes.
func (s *Store) commitBatch(batch []*writeReq) {
	failed := -1
	var failure error
	var events []Event
	err := s.db.Update(func(tx *bolt.Tx) error {
		t := s.newTxn(tx)
		events = nil
		for i, r := range batch {
			t.events, t.removed, t.wrote = nil, nil, false
			r.err = r.run(t)
			if r.err != nil && t.wrote {
				failed, failure = i, r.err
				return errRollback
			}
			events = append(events, t.events...)
		}
		return t.compact()
	})
	switch {
	case failed >= 0 && len(batch) == 1:
		batch[0].err = failure
	case failed >= 0:
		// Alone, it fails again with nothing of it stored, or succeeds against the state
		// before the others: either is an order concurrent writes may take.
		s.commitBatch(batch[failed : failed+1])
		rest := append(slices.Clone(batch[:failed]), batch[failed+1:]...)
		s.commitBatch(rest)
	case err != nil:
		// Nothing is stored (the commit or the history's compaction failed).
		for _, r := range batch {
			r.err = err
		}
	default:
		s.notify(events)
	}
}

func (s *Store) newTxn(tx *bolt.Tx) *txn {
	return &txn{s: s, tx: tx, objects: tx.Bucket(objectsBucket), hist: tx.Bucket(historyBucket), meta: tx.Bucket(metaBucket)}
}

// put stores obj under the next resourceVersion and records the change.
func (t *txn) put(key Key, obj Object, typ EventType, prevLabels map[string]string) error {
	t.wrote = true
	seq, err := t.objects.NextSequence()
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	obj.SetResourceVersion(strconv.FormatUint(seq, 10))
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("put %s: encode: %w", key, err)
	}
	if err := t.objects.Put(key.bytes(), data); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return t.record(Event{Type: typ, Key: key, ResourceVersion: seq, Object: data, PrevLabels: prevLabels})
}

// putRaw stores an object given as JSON (metadata decoded in m) under the next resourceVersion.
func (t *txn) putRaw(key Key, obj map[string]json.RawMessage, m *metav1.ObjectMeta, prevLabels map[string]string) error {
	t.wrote = true
	seq, err := t.objects.NextSequence()
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	m.ResourceVersion = strconv.FormatUint(seq, 10)
	mb, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("put %s: encode: %w", key, err)
	}
	obj["metadata"] = mb
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("put %s: encode: %w", key, err)
	}
	if err := t.objects.Put(key.bytes(), data); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return t.record(Event{Type: Modified, Key: key, ResourceVersion: seq, Object: data, PrevLabels: prevLabels})
}

func (t *txn) record(e Event) error {
	rec := e
	rec.ResourceVersion = 0 // the history key holds it
	rec.Object = nil
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("record change to %s: %w", e.Key, err)
	}
	if e.Object != nil {
		// The object is encoding/json's output already: spliced in, not validated and
		// compacted again as json.Marshal does with a RawMessage.
		data = slices.Concat([]byte(`{"object":`), e.Object, []byte(","), data[1:])
	}
	if err := t.hist.Put(rvBytes(e.ResourceVersion), data); err != nil {
		return fmt.Errorf("record change to %s: %w", e.Key, err)
	}
	t.events = append(t.events, e)
	return nil
}

// compact drops the oldest changes beyond the history bound. Every resourceVersion up to the
// current one is in history unless compacted, so the count is their difference.
func (t *txn) compact() error {
	current := t.objects.Sequence()
	compacted := rvFrom(t.meta.Get(compactedKey))
	if current-compacted <= t.s.history {
		return nil
	}
	keep := current - t.s.history
	c := t.hist.Cursor()
	for k, _ := c.First(); k != nil && rvFrom(k) <= keep; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("compact history: %w", err)
		}
	}
	return t.meta.Put(compactedKey, rvBytes(keep))
}

// delete deletes the object at key with the given propagation, as the API server and its
// garbage collector would: see DeleteWith.
func (t *txn) delete(key Key, propagation metav1.DeletionPropagation) error {
	raw := t.objects.Get(key.bytes())
	if raw == nil {
		return nil // gone meanwhile (a dependent of two owners)
	}
	obj, m, err := decodeMeta(raw)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if m.DeletionTimestamp != nil {
		return nil // already on its way out
	}
	if propagation == metav1.DeletePropagationOrphan {
		if err := t.orphan(m.UID); err != nil {
			return err
		}
	}
	finalizers := slices.Clone(m.Finalizers)
	if propagation == metav1.DeletePropagationForeground && t.hasDependents(m.UID) {
		finalizers = append(finalizers, FinalizerForeground)
	}
	if len(finalizers) == 0 {
		return t.remove(key, raw)
	}
	// Marked, not removed: Kubernetes' graceful deletion of an object with finalizers.
	prev := m.Labels
	now := metav1.NewTime(t.s.now().Truncate(time.Second))
	zero := int64(0)
	m.DeletionTimestamp, m.DeletionGracePeriodSeconds, m.Finalizers = &now, &zero, finalizers
	m.Generation++
	if err := t.putRaw(key, obj, m, prev); err != nil {
		return err
	}
	if slices.Contains(finalizers, FinalizerForeground) {
		for _, d := range t.dependents(m.UID) {
			if err := t.delete(d, metav1.DeletePropagationForeground); err != nil {
				return err
			}
		}
		return t.finishForeground(key)
	}
	return nil
}

// remove takes the object out of the store (its last state is raw), then deletes what it
// owns (Background, as the garbage collector) and lets owners waiting in Foreground go.
func (t *txn) remove(key Key, raw []byte) error {
	t.wrote = true
	obj, m, err := decodeMeta(raw)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	seq, err := t.objects.NextSequence()
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	m.ResourceVersion = strconv.FormatUint(seq, 10)
	mb, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	obj["metadata"] = mb
	last, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := t.objects.Delete(key.bytes()); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if t.removed == nil {
		t.removed = map[Key][]byte{}
	}
	t.removed[key] = last
	if err := t.record(Event{Type: Deleted, Key: key, ResourceVersion: seq, Object: last}); err != nil {
		return err
	}
	// What it owned goes after it; a Namespace takes what is in it, as Kubernetes' namespace
	// controller does.
	for _, d := range t.dependents(m.UID) {
		if err := t.delete(d, metav1.DeletePropagationBackground); err != nil {
			return err
		}
	}
	if key.Kind == "Namespace" && key.Namespace == "" {
		for _, d := range t.inNamespace(key.Name) {
			if err := t.delete(d, metav1.DeletePropagationBackground); err != nil {
				return err
			}
		}
	}
	for _, ref := range m.OwnerReferences {
		if err := t.finishForeground(Key{Kind: ref.Kind, Namespace: key.Namespace, Name: ref.Name}); err != nil {
			return err
		}
	}
	return nil
}

// finishForeground removes the foreground finalizer from the owner at key once no dependent
// that blocks it (blockOwnerDeletion) is left, and the owner with it when that was the last.
func (t *txn) finishForeground(key Key) error {
	raw := t.objects.Get(key.bytes())
	if raw == nil {
		return nil
	}
	obj, m, err := decodeMeta(raw)
	if err != nil {
		return fmt.Errorf("finish deleting %s: %w", key, err)
	}
	if m.DeletionTimestamp == nil || !slices.Contains(m.Finalizers, FinalizerForeground) || t.hasBlockingDependents(m.UID) {
		return nil
	}
	m.Finalizers = slices.DeleteFunc(m.Finalizers, func(f string) bool { return f == FinalizerForeground })
	if len(m.Finalizers) > 0 {
		return t.putRaw(key, obj, m, m.Labels)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	obj["metadata"] = mb
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return t.remove(key, data)
}

// orphan removes every ownerReference to uid, as the garbage collector does for
// propagationPolicy Orphan.
func (t *txn) orphan(uid types.UID) error {
	for _, d := range t.dependents(uid) {
		raw := t.objects.Get(d.bytes())
		obj, m, err := decodeMeta(raw)
		if err != nil {
			return fmt.Errorf("orphan %s: %w", d, err)
		}
		m.OwnerReferences = slices.DeleteFunc(m.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == uid })
		if len(m.OwnerReferences) == 0 {
			m.OwnerReferences = nil
		}
		if err := t.putRaw(d, obj, m, m.Labels); err != nil {
			return err
		}
	}
	return nil
}

type ownedBy struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Namespace       string                  `json:"namespace"`
		Name            string                  `json:"name"`
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
	} `json:"metadata"`
}

// dependents are the objects with an ownerReference to uid.
func (t *txn) dependents(uid types.UID) []Key {
	var out []Key
	t.eachOwned(uid, func(k Key, _ metav1.OwnerReference) { out = append(out, k) })
	return out
}

func (t *txn) hasDependents(uid types.UID) bool { return len(t.dependents(uid)) > 0 }

func (t *txn) hasBlockingDependents(uid types.UID) bool {
	blocked := false
	t.eachOwned(uid, func(_ Key, ref metav1.OwnerReference) {
		if ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
			blocked = true
		}
	})
	return blocked
}

func (t *txn) eachOwned(uid types.UID, fn func(Key, metav1.OwnerReference)) {
	_ = t.objects.ForEach(func(_, v []byte) error {
		if !bytes.Contains(v, []byte(uid)) {
			return nil // cheap: most objects do not mention it at all
		}
		var o ownedBy
		if json.Unmarshal(v, &o) != nil {
			return nil
		}
		for _, ref := range o.Metadata.OwnerReferences {
			if ref.UID == uid {
				fn(Key{Kind: o.Kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name}, ref)
				return nil
			}
		}
		return nil
	})
}

// inNamespace lists every object in namespace ns.
func (t *txn) inNamespace(ns string) []Key {
	var out []Key
	_ = t.objects.ForEach(func(k, _ []byte) error {
		key, err := ParseKey(string(k))
		if err == nil && key.Namespace == ns {
			out = append(out, key)
		}
		return nil
	})
	return out
}

func decodeMeta(raw []byte) (map[string]json.RawMessage, *metav1.ObjectMeta, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, nil, err
	}
	m := &metav1.ObjectMeta{}
	if err := json.Unmarshal(obj["metadata"], m); err != nil {
		return nil, nil, err
	}
	return obj, m, nil
}

// ownerExists reports whether the object at key exists with the given uid.
func ownerExists(b *bolt.Bucket, key Key, uid types.UID) bool {
	raw := b.Get(key.bytes())
	if raw == nil {
		return false
	}
	var o struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	return json.Unmarshal(raw, &o) == nil && o.Metadata.UID == uid
}

func rvBytes(rv uint64) []byte { return binary.BigEndian.AppendUint64(nil, rv) }

func rvFrom(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// reset zeroes obj so that decoding into it keeps no field of the caller's copy.
func reset(obj Object) { reflect.ValueOf(obj).Elem().SetZero() }

func setOrDelete(m map[string]json.RawMessage, k string, v json.RawMessage) {
	if v == nil {
		delete(m, k)
		return
	}
	m[k] = v
}

// withManagedFields is the stored metadata with the managedFields of next.
func withManagedFields(stored, next json.RawMessage) json.RawMessage {
	var m, n metav1.ObjectMeta
	if json.Unmarshal(stored, &m) != nil || json.Unmarshal(next, &n) != nil {
		return stored
	}
	m.ManagedFields = n.ManagedFields
	out, err := json.Marshal(m)
	if err != nil {
		return stored
	}
	return out
}

func bumpGeneration(meta json.RawMessage) json.RawMessage {
	var m metav1.ObjectMeta
	if err := json.Unmarshal(meta, &m); err != nil {
		return meta
	}
	m.Generation++
	out, err := json.Marshal(m)
	if err != nil {
		return meta
	}
	return out
}

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// ParseKey turns "kind/namespace/name" back into a Key.
func ParseKey(s string) (Key, error) {
	parts := strings.SplitN(s, "/", 3)
	if len(parts) != 3 {
		return Key{}, fmt.Errorf("parse key %q: want kind/namespace/name", s)
	}
	return Key{Kind: parts[0], Namespace: parts[1], Name: parts[2]}, nil
}

// Interface is what reconcilers need from a store. Two implement it: the embedded Store
// (`skiff up`, `skiff controlplane`) and controlplane/kube/kubestore, over a Kubernetes API
// server (`skiff controller`); both answer ErrNotFound, ErrExists and ErrConflict alike.
type Interface interface {
	Get(ctx context.Context, key Key, into Object) error
	List(ctx context.Context, kind, namespace string) ([][]byte, error)
	Create(ctx context.Context, obj Object) error
	Update(ctx context.Context, obj Object) error
	UpdateStatus(ctx context.Context, obj Object) error
	Delete(ctx context.Context, key Key) error
}

// ListAs lists the objects of kind in namespace decoded as T.
func ListAs[T any](ctx context.Context, s Interface, kind, namespace string) ([]*T, error) {
	raws, err := s.List(ctx, kind, namespace)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	out := make([]*T, 0, len(raws))
	for _, raw := range raws {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, fmt.Errorf("list %s: decode: %w", kind, err)
		}
		out = append(out, v)
	}
	return out, nil
}
