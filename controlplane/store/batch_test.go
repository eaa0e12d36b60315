package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// holdLeader makes the next committed change block its committing writer (in the
// subscriber call, before the next batch starts) until release is called, so that the
// writes started meanwhile queue up and commit together as one batch.
func holdLeader(t *testing.T, s *Store) (held <-chan struct{}, release func()) {
	t.Helper()
	heldc, releasec := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cancel := s.Subscribe(func(Event) {
		once.Do(func() {
			close(heldc)
			<-releasec
		})
	})
	t.Cleanup(cancel)
	var rOnce sync.Once
	return heldc, func() { rOnce.Do(func() { close(releasec) }) }
}

// waitPending waits until n writes wait for the next batch.
func waitPending(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.wmu.Lock()
		got := len(s.pending)
		s.wmu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatchOneFailureDoesNotFailOthers commits, in one batch, good writes beside two
// updates from the same resourceVersion (the second conflicts in the transaction), a create
// of an existing object and a create that fails halfway (a key bbolt refuses, after the
// write took its resourceVersion): each gets its own result, and the failures store nothing.
func TestBatchOneFailureDoesNotFailOthers(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	existing := newService("existing", "a")
	if err := s.Create(ctx, existing); err != nil {
		t.Fatal(err)
	}
	stale := existing.ResourceVersion
	existing.Status.ObservedGeneration = 1
	if err := s.UpdateStatus(ctx, existing); err != nil {
		t.Fatal(err)
	}

	held, release := holdLeader(t, s)
	defer release()
	first := make(chan error, 1)
	go func() { first <- s.Create(ctx, newService("first", "a")) }()
	<-held

	update := func(image string) func() error {
		return func() error {
			u := newService("existing", image)
			u.ResourceVersion = existing.ResourceVersion
			return s.Update(ctx, u)
		}
	}
	batched := map[string]func() error{
		"good-0":  func() error { return s.Create(ctx, newService("good-0", "a")) },
		"racer-b": update("b"),
		"good-1":  func() error { return s.Create(ctx, newService("good-1", "a")) },
		"exists":  func() error { return s.Create(ctx, newService("existing", "c")) },
		"halfway": func() error {
			return s.Create(ctx, newService(strings.Repeat("x", 40000), "a")) // key > bbolt's MaxKeySize
		},
		"racer-d": update("d"),
		"good-3":  func() error { return s.Create(ctx, newService("good-3", "a")) },
	}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(batched))
	for name, w := range batched {
		go func() { results <- result{name, w()} }()
	}
	waitPending(t, s, len(batched))
	// A write from a resourceVersion already gone is refused without waiting for the batch.
	u := newService("existing", "e")
	u.ResourceVersion = stale
	if err := s.Update(ctx, u); !errors.Is(err, ErrConflict) {
		t.Errorf("stale update: %v, want ErrConflict", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	racers := map[string]error{}
	for range batched {
		r := <-results
		switch r.name {
		case "racer-b", "racer-d":
			racers[r.name] = r.err
		case "exists":
			if !errors.Is(r.err, ErrExists) {
				t.Errorf("create of an existing object: %v, want ErrExists", r.err)
			}
		case "halfway":
			if r.err == nil {
				t.Errorf("create with a %d-byte key succeeded", 40000)
			}
		default:
			if r.err != nil {
				t.Errorf("%s failed beside the others' failures: %v", r.name, r.err)
			}
		}
	}
	winner := ""
	for name, err := range racers {
		switch {
		case err == nil && winner == "":
			winner = name
		case !errors.Is(err, ErrConflict):
			t.Errorf("%s: %v; want one update from resourceVersion %s to succeed and the other to conflict", name, err, existing.ResourceVersion)
		}
	}
	var got servingv1.Service
	if err := s.Get(ctx, Key{Kind: "Service", Namespace: "default", Name: "existing"}, &got); err != nil {
		t.Fatal(err)
	}
	if img := got.Spec.Template.Spec.Containers[0].Image; winner == "" || img != winner[len(winner)-1:] {
		t.Errorf("existing has image %q; the update that succeeded was %q", img, winner)
	}
	// Every resourceVersion is in history once, none taken by the write that failed halfway.
	checkHistory(t, s)
}

// checkHistory checks that the history holds every resourceVersion from the first to the
// current one, each naming an object whose stored or last state has it.
func checkHistory(t *testing.T, s *Store) {
	t.Helper()
	events, _, current, err := s.Changes(context.Background(), "Service", "", 0, 1<<30, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(events)) != current {
		t.Fatalf("history holds %d changes, store is at resourceVersion %d", len(events), current)
	}
	for i, e := range events {
		if e.ResourceVersion != uint64(i+1) {
			t.Fatalf("change %d has resourceVersion %d", i, e.ResourceVersion)
		}
	}
}

// TestConcurrentWritesDurableAndOrdered has many writers create and update at once: every
// write that returned is there after the store is reopened, and subscribers heard every
// change once, in resourceVersion order.
func TestConcurrentWritesDurableAndOrdered(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var heard []uint64
	s.Subscribe(func(e Event) {
		mu.Lock()
		heard = append(heard, e.ResourceVersion)
		mu.Unlock()
	})
	const writers, each = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				svc := newService(fmt.Sprintf("svc-%d-%d", w, i), "a")
				if err := s.Create(ctx, svc); err != nil {
					errs <- err
					continue
				}
				svc.Status.ObservedGeneration = 1
				if err := s.UpdateStatus(ctx, svc); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mu.Lock()
	if len(heard) != writers*each*2 {
		t.Errorf("subscriber heard %d changes, want %d", len(heard), writers*each*2)
	}
	for i, rv := range heard {
		if rv != uint64(i+1) {
			t.Fatalf("change %d heard has resourceVersion %d (heard %v...)", i, rv, heard[:i+1])
		}
	}
	mu.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raws, err := s.List(ctx, "Service", "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(raws) != writers*each {
		t.Fatalf("%d Services after reopening, want %d", len(raws), writers*each)
	}
	for w := range writers {
		for i := range each {
			var got servingv1.Service
			key := Key{Kind: "Service", Namespace: "default", Name: fmt.Sprintf("svc-%d-%d", w, i)}
			if err := s.Get(ctx, key, &got); err != nil {
				t.Fatal(err)
			}
			if got.Status.ObservedGeneration != 1 {
				t.Errorf("%s lost its status write", key)
			}
		}
	}
	checkHistory(t, s)
	if rv, _ := s.ResourceVersion(); rv != writers*each*2 {
		t.Errorf("resourceVersion %d after reopening, want %d", rv, writers*each*2)
	}
}

// TestDryRunIsNotHeard: a dry run stores nothing, so no subscriber hears of it.
func TestDryRunIsNotHeard(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var heard []string
	s.Subscribe(func(e Event) {
		mu.Lock()
		heard = append(heard, e.Key.Name+"@"+strconv.FormatUint(e.ResourceVersion, 10))
		mu.Unlock()
	})
	if err := s.CreateWith(ctx, newService("dry", "a"), WriteOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, newService("real", "a")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 1 || heard[0] != "real@1" {
		t.Errorf("subscriber heard %v, want [real@1]", heard)
	}
}

// TestBatchPanicStaysWithItsWriter: a write that panics in a batch panics in its own
// writer's goroutine; the writes batched with it are committed, and the store goes on.
func TestBatchPanicStaysWithItsWriter(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	held, release := holdLeader(t, s)
	defer release()
	first := make(chan error, 1)
	go func() { first <- s.Create(ctx, newService("first", "a")) }()
	<-held

	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_ = s.update(false, func(t *txn) error {
			if err := t.put(Key{Kind: "Service", Namespace: "default", Name: "half"}, newService("half", "a"), Added, nil); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	good := make(chan error, 2)
	for _, name := range []string{"good-0", "good-1"} {
		go func() { good <- s.Create(ctx, newService(name, "a")) }()
	}
	waitPending(t, s, 3)
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if p := <-panicked; p != "boom" {
		t.Errorf("the panicking write's writer recovered %v, want boom", p)
	}
	for range 2 {
		if err := <-good; err != nil {
			t.Errorf("a write batched with one that panicked: %v", err)
		}
	}
	if err := s.Get(ctx, Key{Kind: "Service", Namespace: "default", Name: "half"}, &servingv1.Service{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("what the panicking write stored before it panicked: %v, want it rolled back (not found)", err)
	}
	if err := s.Create(ctx, newService("after", "a")); err != nil {
		t.Errorf("a write after the panic: %v", err)
	}
	checkHistory(t, s)
}
