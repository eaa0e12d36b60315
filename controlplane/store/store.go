// Package store keeps Skiff's resources in an embedded database file, so that they
// survive restarts, and tells subscribers about every change, like a tiny API server.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
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
	ErrConflict = errors.New("the object has been modified; apply your changes to the latest version and try again")
	// ErrOwnerGone refuses to create an object whose owner (an ownerReference) no longer
	// exists: it would outlive it, as nothing would ever delete it.
	ErrOwnerGone = errors.New("its owner does not exist (any more)")
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
	Type EventType
	Key  Key
}

// Store is the embedded resource store behind `skiff up`.
type Store struct {
	db  *bolt.DB
	now func() time.Time

	mu       sync.Mutex
	handlers map[int]func(Event)
	nextID   int
}

var objectsBucket = []byte("objects")

// Open opens (or creates) the store in dir.
func Open(dir string) (*Store, error) {
	path := filepath.Join(dir, "skiff.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(objectsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now, handlers: map[int]func(Event){}}, nil
}

// Close closes the database file.
func (s *Store) Close() error { return s.db.Close() }

// Subscribe calls fn after every committed change, until cancel is called. fn must not block.
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

func (s *Store) notify(events []Event) {
	s.mu.Lock()
	hs := make([]func(Event), 0, len(s.handlers))
	for _, h := range s.handlers {
		hs = append(hs, h)
	}
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

// List returns the raw JSON of every object of kind in namespace ("" = all namespaces), sorted by key.
func (s *Store) List(_ context.Context, kind, namespace string) ([][]byte, error) {
	prefix := []byte(kind + "/")
	if namespace != "" {
		prefix = []byte(kind + "/" + namespace + "/")
	}
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(objectsBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	return out, err
}

// Create stores a new object, setting its uid, resourceVersion, generation and creation time.
// Every owner its ownerReferences name must exist, with that uid, in the same transaction:
// a reconciler that read its parent before a cascading Delete cannot leave a child behind.
func (s *Store) Create(_ context.Context, obj Object) error {
	key := KeyOf(obj)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(objectsBucket)
		if b.Get(key.bytes()) != nil {
			return fmt.Errorf("create %s: %w", key, ErrExists)
		}
		for _, ref := range obj.GetOwnerReferences() {
			if !ownerExists(b, Key{Kind: ref.Kind, Namespace: key.Namespace, Name: ref.Name}, ref.UID) {
				return fmt.Errorf("create %s: owner %s %s: %w", key, ref.Kind, ref.Name, ErrOwnerGone)
			}
		}
		obj.SetUID(types.UID(uuid.NewUUID()))
		obj.SetGeneration(1)
		obj.SetCreationTimestamp(metav1.NewTime(s.now().Truncate(time.Second)))
		return put(b, key, obj)
	})
	if err != nil {
		return err
	}
	s.notify([]Event{{Type: Added, Key: key}})
	return nil
}

// Update replaces an object's metadata and spec, keeping its stored status. A non-empty
// resourceVersion must match the stored one. The generation goes up when the spec changes.
func (s *Store) Update(_ context.Context, obj Object) error {
	return s.write(obj, func(stored, next map[string]json.RawMessage) {
		setOrDelete(next, "status", stored["status"])
		if !bytes.Equal(compact(stored["spec"]), compact(next["spec"])) {
			next["metadata"] = bumpGeneration(next["metadata"])
		}
	})
}

// UpdateStatus replaces an object's status only. A non-empty resourceVersion must match.
func (s *Store) UpdateStatus(_ context.Context, obj Object) error {
	return s.write(obj, func(stored, next map[string]json.RawMessage) {
		status := next["status"]
		for k := range next {
			delete(next, k)
		}
		for k, v := range stored {
			next[k] = v
		}
		setOrDelete(next, "status", status)
	})
}

// write merges obj into the stored object with merge, stores it and reads the result back into obj.
func (s *Store) write(obj Object, merge func(stored, next map[string]json.RawMessage)) error {
	key := KeyOf(obj)
	changed := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(objectsBucket)
		raw := b.Get(key.bytes())
		if raw == nil {
			return fmt.Errorf("update %s: %w", key, ErrNotFound)
		}
		var stored, next map[string]json.RawMessage
		if err := json.Unmarshal(raw, &stored); err != nil {
			return fmt.Errorf("update %s: decode stored: %w", key, err)
		}
		var meta metav1.ObjectMeta
		if err := json.Unmarshal(stored["metadata"], &meta); err != nil {
			return fmt.Errorf("update %s: decode stored metadata: %w", key, err)
		}
		if rv := obj.GetResourceVersion(); rv != "" && rv != meta.ResourceVersion {
			return fmt.Errorf("update %s: %w", key, ErrConflict)
		}
		// Fields the system owns are never taken from the caller.
		obj.SetUID(meta.UID)
		obj.SetCreationTimestamp(meta.CreationTimestamp)
		obj.SetGeneration(meta.Generation)
		obj.SetResourceVersion(meta.ResourceVersion)
		data, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("update %s: encode: %w", key, err)
		}
		if err := json.Unmarshal(data, &next); err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		merge(stored, next)
		merged, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("update %s: encode: %w", key, err)
		}
		if canonical, err := json.Marshal(stored); err == nil && bytes.Equal(canonical, merged) {
			reset(obj)
			return json.Unmarshal(raw, obj) // nothing changed: no new version, no event
		}
		reset(obj)
		if err := json.Unmarshal(merged, obj); err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		changed = true
		return put(b, key, obj)
	})
	if err != nil || !changed {
		return err
	}
	s.notify([]Event{{Type: Modified, Key: key}})
	return nil
}

// Delete removes an object and, like Kubernetes' garbage collector, everything it owns.
func (s *Store) Delete(_ context.Context, key Key) error {
	var events []Event
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(objectsBucket)
		raw := b.Get(key.bytes())
		if raw == nil {
			return fmt.Errorf("delete %s: %w", key, ErrNotFound)
		}
		var doomed []Key
		var collect func(k Key, raw []byte) error
		collect = func(k Key, raw []byte) error {
			doomed = append(doomed, k)
			var owner struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := json.Unmarshal(raw, &owner); err != nil {
				return err
			}
			return b.ForEach(func(ck, cv []byte) error {
				var child struct {
					Kind     string            `json:"kind"`
					Metadata metav1.ObjectMeta `json:"metadata"`
				}
				if err := json.Unmarshal(cv, &child); err != nil {
					return err
				}
				for _, ref := range child.Metadata.OwnerReferences {
					if ref.UID == owner.Metadata.UID {
						return collect(Key{Kind: child.Kind, Namespace: child.Metadata.Namespace, Name: child.Metadata.Name}, cv)
					}
				}
				return nil
			})
		}
		if err := collect(key, raw); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		for _, k := range doomed {
			if err := b.Delete(k.bytes()); err != nil {
				return fmt.Errorf("delete %s: %w", k, err)
			}
			events = append(events, Event{Type: Deleted, Key: k})
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.notify(events)
	return nil
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

func put(b *bolt.Bucket, key Key, obj Object) error {
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	obj.SetResourceVersion(strconv.FormatUint(seq, 10))
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("put %s: encode: %w", key, err)
	}
	return b.Put(key.bytes(), data)
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

// Interface is what reconcilers need from a store; the embedded Store and, later, a
// Kubernetes-backed store both provide it.
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
