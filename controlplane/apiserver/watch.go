package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/controlplane/store"
)

const (
	// tooLargeWait is how long a watch from a resourceVersion the store has not reached yet
	// waits for it, as kube-apiserver's watch cache waits, before failing with 504.
	tooLargeWait = 3 * time.Second
	// watchBatch and watchScan bound one read of the store's history.
	watchBatch, watchScan = 256, 4096
	// initialEventsEnd annotates the bookmark that ends a watch's initial events.
	initialEventsEnd = "k8s.io/initial-events-end"
)

// watcher is one watch request's stream.
type watcher struct {
	w       http.ResponseWriter
	flusher http.Flusher
	enc     *json.Encoder
	s       *Server
	t       *target
	sel     selector
	out     output
	started bool
}

// watch streams changes as the Kubernetes API does: resourceVersion "" or "0" (or
// sendInitialEvents=true) begins with an ADDED event per existing object (then, when
// bookmarks are allowed, a bookmark annotated k8s.io/initial-events-end), another
// resourceVersion resumes after it; an object that stops matching a selector is DELETED,
// one that starts matching ADDED; bookmarks come every BookmarkInterval; a resourceVersion
// whose later changes are no longer kept gets an ERROR event with 410 Expired.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, t *target) {
	out, err := negotiate(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	sel, err := parseSelectors(t.kind, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	q := r.URL.Query()
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	rvParam := q.Get("resourceVersion")
	var from uint64
	if rvParam != "" {
		if from, err = strconv.ParseUint(rvParam, 10, 64); err != nil {
			s.fail(w, errBadRequest(fmt.Sprintf("invalid resource version %q", rvParam)))
			return
		}
	}
	initial := rvParam == "" || rvParam == "0"
	switch q.Get("sendInitialEvents") {
	case "true":
		if m := q.Get("resourceVersionMatch"); m != string(metav1.ResourceVersionMatchNotOlderThan) {
			s.fail(w, errInvalidOptions("ListOptions", "resourceVersionMatch", fmt.Sprintf("Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, got %q", m)))
			return
		}
		initial = true
	case "false":
		initial = false
	}
	timeout := s.opts.MaxWatchTimeout
	if v := q.Get("timeoutSeconds"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs < 0 {
			s.fail(w, errBadRequest(fmt.Sprintf("invalid timeoutSeconds %q", v)))
			return
		}
		if d := time.Duration(secs) * time.Second; d > 0 && d < timeout {
			timeout = d
		}
	}
	select {
	case s.watches <- struct{}{}:
		defer func() { <-s.watches }()
	default:
		s.fail(w, newStatus(http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests,
			fmt.Sprintf("too many watches open (%d): try again later", cap(s.watches)), &metav1.StatusDetails{RetryAfterSeconds: 1}))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	defer context.AfterFunc(s.closed, cancel)()

	// A resourceVersion the store has not reached yet (another store, or one restored from
	// an older copy): wait a little, then tell the client to list again.
	if from > 0 {
		if err := s.waitFor(ctx, from); err != nil {
			s.fail(w, err)
			return
		}
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		s.fail(w, fmt.Errorf("watch: the response cannot be streamed"))
		return
	}
	wt := &watcher{w: w, flusher: flusher, enc: json.NewEncoder(w), s: s, t: t, sel: sel, out: out}
	last := from
	if initial {
		raws, rv, err := s.store.ListAt(ctx, t.kind.Kind, t.namespace)
		if err != nil {
			s.fail(w, err)
			return
		}
		for _, raw := range raws {
			u, err := decodeObject(raw)
			if err != nil {
				s.fail(w, err)
				return
			}
			if sel.matches(u) {
				if wt.send("ADDED", u) != nil {
					return
				}
			}
		}
		if bookmarks && wt.bookmark(rv, true) != nil {
			return
		}
		last = rv
	} else if rvParam == "" {
		if last, err = s.store.ResourceVersion(); err != nil {
			s.fail(w, err)
			return
		}
	}
	wt.start()
	tick := time.NewTicker(s.opts.BookmarkInterval)
	defer tick.Stop()
	for {
		wake := s.store.Changed()
		events, upTo, current, err := s.store.Changes(ctx, t.kind.Kind, t.namespace, last, watchBatch, watchScan)
		if errors.Is(err, store.ErrExpired) {
			st := newStatus(http.StatusGone, metav1.StatusReasonExpired, err.Error(), nil).status
			wt.event("ERROR", st)
			return
		}
		if err != nil {
			s.log.Error("watch", "kind", t.kind.Kind, "err", err)
			return
		}
		for _, e := range events {
			if wt.change(e) != nil {
				return
			}
		}
		last = upTo
		if upTo < current {
			continue // more to read
		}
		select {
		case <-wake:
		case <-tick.C:
			if bookmarks && wt.bookmark(last, false) != nil {
				return
			}
		case <-ctx.Done():
			if bookmarks && r.Context().Err() == nil {
				// As kube-apiserver: a bookmark before a watch times out, so the client resumes
				// from as late as possible.
				wt.bookmark(last, false)
			}
			return
		}
	}
}

// waitFor waits until the store has reached resourceVersion rv, at most tooLargeWait.
func (s *Server) waitFor(ctx context.Context, rv uint64) error {
	deadline := time.NewTimer(tooLargeWait)
	defer deadline.Stop()
	for {
		changed := s.store.Changed()
		current, err := s.store.ResourceVersion()
		if err != nil {
			return err
		}
		if current >= rv {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return newStatus(http.StatusGatewayTimeout, metav1.StatusReasonTimeout,
				fmt.Sprintf("Timeout: Too large resource version: %d, current: %d", rv, current),
				&metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}, RetryAfterSeconds: 1})
		}
	}
}

// start sends the response headers, once.
func (wt *watcher) start() {
	if wt.started {
		return
	}
	wt.started = true
	wt.w.Header().Set("Content-Type", "application/json")
	wt.w.Header().Set("Cache-Control", "no-cache, private")
	wt.w.WriteHeader(http.StatusOK)
	wt.flusher.Flush()
}

// change sends one stored change, as the watch's selectors see it.
func (wt *watcher) change(e store.Event) error {
	u, err := decodeObject(e.Object)
	if err != nil {
		return err
	}
	now := wt.sel.matches(u)
	switch e.Type {
	case store.Modified:
		before := wt.sel.labels.Matches(labels.Set(e.PrevLabels)) && wt.sel.fields.Matches(fieldSet(u))
		switch {
		case before && now:
			return wt.send("MODIFIED", u)
		case now:
			return wt.send("ADDED", u)
		case before:
			return wt.send("DELETED", u)
		}
	case store.Added, store.Deleted:
		if now {
			return wt.send(string(e.Type), u)
		}
	}
	return nil
}

// send sends an object in the representation the client asked for.
func (wt *watcher) send(typ string, u *unstructured.Unstructured) error {
	switch wt.out.kind {
	case outTable:
		return wt.event(typ, wt.s.table(wt.t.kind, []*unstructured.Unstructured{u}, u.GetResourceVersion(), wt.out))
	case outPartial:
		return wt.event(typ, partial(u, wt.out.version))
	}
	return wt.event(typ, u.Object)
}

// bookmark tells the client everything up to rv has been sent.
func (wt *watcher) bookmark(rv uint64, initialEnd bool) error {
	meta := map[string]any{"resourceVersion": strconv.FormatUint(rv, 10)}
	if initialEnd {
		meta["annotations"] = map[string]any{initialEventsEnd: "true"}
	}
	obj := map[string]any{"apiVersion": wt.t.kind.APIVersion(), "kind": wt.t.kind.Kind, "metadata": meta}
	if wt.out.kind == outPartial {
		obj["apiVersion"], obj["kind"] = "meta.k8s.io/"+wt.out.version, "PartialObjectMetadata"
	}
	return wt.event("BOOKMARK", obj)
}

func (wt *watcher) event(typ string, obj any) error {
	wt.start()
	if err := wt.enc.Encode(map[string]any{"type": typ, "object": obj}); err != nil {
		return err
	}
	wt.flusher.Flush()
	return nil
}
