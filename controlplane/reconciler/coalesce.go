package reconciler

import (
	"context"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// statusBefore is what a status write is compared with to tell whether it only moves an
// object along while it is still in progress: the stored status's generation and Ready.
type statusBefore struct {
	generation int64
	ready      duck.ConditionStatus // "" when the stored status has no Ready condition yet
}

// storedStatus records st (as read from the store, before the reconcile changes it).
func storedStatus(st *duck.Status) statusBefore {
	b := statusBefore{generation: st.ObservedGeneration}
	if r := st.GetCondition(duck.ConditionReady); r != nil {
		b.ready = r.Status
	}
	return b
}

// updateStatus writes obj's status (st, computed by the reconcile), or, with
// Config.StatusCoalesce, puts off a write that keeps the object in progress: Ready Unknown
// now, and the stored status had no Ready yet or Ready Unknown for the same generation.
// Such a write is made once the object has stayed in progress for StatusCoalesce (the
// object is enqueued again then), or replaced by the status that ends the progress (Ready
// True or False, written at once) if it comes first. A Service rolling out moves its
// Revision, Configuration, Route and Service through several in-progress statuses within a
// second or two; folded, each writes its final status once. Everything the user can see at
// the end is what Knative shows; only the intermediate statuses of the first
// StatusCoalesce are not written.
func (c *Controller) updateStatus(ctx context.Context, obj store.Object, before statusBefore, st *duck.Status) error {
	key := store.KeyOf(obj)
	if w := c.cfg.StatusCoalesce; w > 0 {
		r := st.GetCondition(duck.ConditionReady)
		inProgress := r != nil && r.Status == duck.Unknown &&
			(before.ready == "" || (before.ready == duck.Unknown && before.generation == st.ObservedGeneration))
		if inProgress && c.putOff(key, w) {
			return nil
		}
	}
	c.mu.Lock()
	delete(c.putOffSince, key)
	c.mu.Unlock()
	return c.cfg.Store.UpdateStatus(ctx, obj)
}

// putOff reports whether key's in-progress status may wait (it has waited less than w),
// enqueueing key for when w has passed the first time it waits.
func (c *Controller) putOff(key store.Key, w time.Duration) bool {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	since, ok := c.putOffSince[key]
	if !ok {
		c.putOffSince[key] = now
		c.queue.AddAfter(key, w)
		return true
	}
	return now.Sub(since) < w
}

// forgetPutOff drops a deleted object's pending status write.
func (c *Controller) forgetPutOff(key store.Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.putOffSince, key)
}
