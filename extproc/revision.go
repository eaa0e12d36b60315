package extproc

import (
	"container/list"
	"time"
)

// revision is the service's state for one Envoy cluster ("namespace/revision"). Every field is
// guarded by Server.mu.
type revision struct {
	cluster string
	// known is true once the control plane has called SetRevision; an unknown revision has no
	// endpoints and waits for the activation cap.
	known   bool
	cc      int
	timeout time.Duration
	// endpoints are the pods new requests may go to, in the order the control plane gave them.
	endpoints []string
	// load counts the pinned requests in flight per pod address. Pods that left endpoints keep
	// an entry until their last request ends; they are never picked.
	load map[string]int
	// rr is where the next least-loaded scan starts, so that ties rotate.
	rr int
	// queue holds *waiter in arrival order (FIFO across all of the revision's pods).
	queue    list.List
	inFlight int
	total    uint64
	// lastDemand is when OnDemand was last called for this revision (debounce).
	lastDemand time.Time
	// gone is set when the revision left Server.revs (deleted, or an idle unknown entry
	// dropped); requests still holding a pointer to it finish against it.
	gone bool
}

func newRevision(cluster string) *revision {
	return &revision{cluster: cluster, load: make(map[string]int)}
}

// waitOutcome is what a held request learns when it leaves the queue.
type waitOutcome int

const (
	outcomeWaiting waitOutcome = iota
	outcomeGranted
	outcomeFailed
)

// waiter is one request waiting in a revision's queue. The handler goroutine that owns the
// request blocks on done; whoever decides (dispatch, DeleteRevision) sets the outcome under
// Server.mu and closes done.
type waiter struct {
	done    chan struct{}
	elem    *list.Element
	outcome waitOutcome
	slot    slot
	failure *failure
}

// slot is a granted place: the pod it is pinned to ("" when containerConcurrency is 0 and
// Envoy load-balances).
type slot struct {
	endpoint string
}

// failure is an immediate response the request gets instead of being released.
type failure struct {
	status  int
	body    string
	details string
}

// setEndpointsLocked replaces the endpoint list, de-duplicated, order kept, and forgets idle
// pods that left it.
func (r *revision) setEndpointsLocked(eps []string) {
	seen := make(map[string]bool, len(eps))
	r.endpoints = r.endpoints[:0:0]
	for _, ep := range eps {
		if ep == "" || seen[ep] {
			continue
		}
		seen[ep] = true
		r.endpoints = append(r.endpoints, ep)
	}
	for ep, n := range r.load {
		if n == 0 && !seen[ep] {
			delete(r.load, ep)
		}
	}
	if r.rr >= len(r.endpoints) {
		r.rr = 0
	}
}

// acquireLocked takes a slot for one request if the revision has capacity right now: for
// containerConcurrency 0 any endpoint will do (Envoy picks); otherwise the least-loaded
// endpoint below the limit, ties broken round-robin.
func (r *revision) acquireLocked() (slot, bool) {
	n := len(r.endpoints)
	if n == 0 {
		return slot{}, false
	}
	if r.cc <= 0 {
		r.inFlight++
		return slot{}, true
	}
	best, bestLoad := -1, r.cc
	for i := range n {
		idx := (r.rr + i) % n
		if l := r.load[r.endpoints[idx]]; l < bestLoad {
			best, bestLoad = idx, l
			if l == 0 {
				break
			}
		}
	}
	if best < 0 {
		return slot{}, false
	}
	ep := r.endpoints[best]
	r.load[ep]++
	r.rr = (best + 1) % n
	r.inFlight++
	return slot{endpoint: ep}, true
}

// releaseLocked gives back a slot taken by acquireLocked.
func (r *revision) releaseLocked(s slot) {
	r.inFlight--
	if s.endpoint == "" {
		return
	}
	r.load[s.endpoint]--
	if r.load[s.endpoint] <= 0 {
		// Keep a zero entry only for pods still in endpoints (cheap to recreate anyway).
		delete(r.load, s.endpoint)
	}
}

// dispatchLocked hands free slots to queued requests, oldest first, until either runs out.
func (r *revision) dispatchLocked() {
	for e := r.queue.Front(); e != nil; e = r.queue.Front() {
		s, ok := r.acquireLocked()
		if !ok {
			return
		}
		w := e.Value.(*waiter)
		r.removeLocked(w)
		w.outcome, w.slot = outcomeGranted, s
		close(w.done)
	}
}

// failAllLocked answers every queued request with f.
func (r *revision) failAllLocked(f *failure) {
	for e := r.queue.Front(); e != nil; e = r.queue.Front() {
		w := e.Value.(*waiter)
		r.removeLocked(w)
		w.outcome, w.failure = outcomeFailed, f
		close(w.done)
	}
}

func (r *revision) enqueueLocked(w *waiter) {
	w.elem = r.queue.PushBack(w)
}

func (r *revision) removeLocked(w *waiter) {
	if w.elem != nil {
		r.queue.Remove(w.elem)
		w.elem = nil
	}
}

// idleLocked reports whether nothing refers to the revision's state but the map: an unknown
// revision in that state can be dropped.
func (r *revision) idleLocked() bool {
	return r.queue.Len() == 0 && r.inFlight == 0
}

// busyEndpointsLocked counts endpoints at their concurrency limit, for error messages.
func (r *revision) busyEndpointsLocked() int {
	busy := 0
	for _, ep := range r.endpoints {
		if r.cc > 0 && r.load[ep] >= r.cc {
			busy++
		}
	}
	return busy
}
