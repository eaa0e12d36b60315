package reconciler

import (
	"sync"

	"github.com/skiff-dev/skiff/controlplane/store"
)

// lanes is the work queue's storage (a client-go workqueue.Queue) with two lanes, as
// Knative's two-lane queue (knative.dev/pkg/controller/two_lane_queue.go): keys from Run's
// first resync wait in the slow lane, and every key added because something changed (a
// parent wrote its child, a child's status moved, an ACK arrived, a retry) goes to the fast
// lane, which is always served first. So a Service's children proceed as soon as their
// parent wrote them, instead of queueing behind every other object of the resync: the
// backlog of a restart is worked through depth first, one Service to Ready at a time, while
// the slow lane fills the workers' idle time.
//
// The workqueue keeps its own guarantees (a key is never queued twice nor processed by two
// workers at once); lanes only chooses the order. Its methods are called under the
// workqueue's lock, markSlow from outside it, hence its own mutex.
type lanes struct {
	mu sync.Mutex
	// pendingSlow are keys the next Push puts in the slow lane (resync marks them).
	pendingSlow map[store.Key]bool
	fast        []store.Key
	// slow may hold keys promoted since (no longer in inSlow): Pop skips them.
	slow   []store.Key
	inSlow map[store.Key]bool
}

func newLanes() *lanes {
	return &lanes{pendingSlow: map[store.Key]bool{}, inSlow: map[store.Key]bool{}}
}

// markSlow makes the next Push of k go to the slow lane.
func (l *lanes) markSlow(k store.Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pendingSlow[k] = true
}

// Push queues a key that was not queued.
func (l *lanes) Push(k store.Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pendingSlow[k] {
		delete(l.pendingSlow, k)
		l.slow = append(l.slow, k)
		l.inSlow[k] = true
		return
	}
	l.fast = append(l.fast, k)
}

// Touch is a queued key added again: something changed, so a key waiting in the slow lane
// moves to the fast one.
func (l *lanes) Touch(k store.Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pendingSlow, k)
	if l.inSlow[k] {
		delete(l.inSlow, k)
		l.fast = append(l.fast, k)
	}
}

// Len is the number of keys queued.
func (l *lanes) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.fast) + len(l.inSlow)
}

// Pop takes the oldest key of the fast lane, or else of the slow one; the workqueue calls
// it only when Len is positive.
func (l *lanes) Pop() store.Key {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fast) > 0 {
		k := l.fast[0]
		l.fast[0] = store.Key{}
		l.fast = l.fast[1:]
		return k
	}
	for len(l.slow) > 0 {
		k := l.slow[0]
		l.slow[0] = store.Key{}
		l.slow = l.slow[1:]
		if l.inSlow[k] {
			delete(l.inSlow, k)
			return k
		}
	}
	return store.Key{} // unreachable while Len > 0
}
