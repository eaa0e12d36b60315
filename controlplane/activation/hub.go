// Package activation connects the control plane to the ext_proc activators: it keeps every
// revision's activation state (the endpoints the proxies have ACKed, containerConcurrency,
// timeout), hands it to the activator running in this process and streams it to standalone
// `skiff extproc` instances, and takes their pokes and held-request counts back.
package activation

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/extproc"
)

// staleReport is how long a remote instance's held count is believed without a new report.
const staleReport = 5 * time.Second

// Hub fans revision activation state out to activators and their demand back in.
type Hub struct {
	local  *extproc.Server // may be nil
	poke   func(cluster string)
	log    *slog.Logger
	now    func() time.Time
	mu     sync.Mutex
	revs   map[string]extproc.Revision
	subs   map[chan extproc.Update]struct{}
	remote map[string]heldReport // instance → its last report
}

type heldReport struct {
	at   time.Time
	held map[string]int
}

// New returns a Hub feeding local (when not nil) and calling poke on demand.
func New(local *extproc.Server, poke func(cluster string), logger *slog.Logger) *Hub {
	if logger == nil {
		logger = slog.Default()
	}
	return &Hub{
		local: local, poke: poke, log: logger.With("component", "activation"), now: time.Now,
		revs: map[string]extproc.Revision{}, subs: map[chan extproc.Update]struct{}{}, remote: map[string]heldReport{},
	}
}

// SetRevision records a revision's activation state and passes it on.
func (h *Hub) SetRevision(cluster string, r extproc.Revision) {
	h.mu.Lock()
	h.revs[cluster] = r
	h.broadcastLocked(extproc.Update{Cluster: cluster, Revision: &r})
	h.mu.Unlock()
	if h.local != nil {
		h.local.SetRevision(cluster, r)
	}
}

// DeleteRevision forgets a revision everywhere; its held requests fail.
func (h *Hub) DeleteRevision(cluster string) {
	h.mu.Lock()
	delete(h.revs, cluster)
	h.broadcastLocked(extproc.Update{Cluster: cluster})
	h.mu.Unlock()
	if h.local != nil {
		h.local.DeleteRevision(cluster)
	}
}

// broadcastLocked queues u for every watcher; a watcher too slow to keep up is dropped
// (its stream ends and it reconnects to a fresh snapshot) rather than blocking the control plane.
func (h *Hub) broadcastLocked(u extproc.Update) {
	for ch := range h.subs {
		select {
		case ch <- u:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Held is an autoscaler metrics source: the requests every activator holds, per revision.
func (h *Hub) Held(context.Context) (map[string]autoscaler.Sample, error) {
	out := map[string]autoscaler.Sample{}
	if h.local != nil {
		for cluster, st := range h.local.Stats() {
			out[cluster] = autoscaler.Sample{InFlight: float64(st.Held)}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for inst, rep := range h.remote {
		if h.now().Sub(rep.at) > staleReport {
			delete(h.remote, inst)
			continue
		}
		for cluster, n := range rep.held {
			s := out[cluster]
			s.InFlight += float64(n)
			out[cluster] = s
		}
	}
	return out, nil
}

// Handler serves the activation feed (see extproc.WatchPath, PokePath, HeldPath).
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+extproc.WatchPath, h.watch)
	mux.HandleFunc("POST "+extproc.PokePath, h.pokeHandler)
	mux.HandleFunc("POST "+extproc.HeldPath, h.held)
	return mux
}

func (h *Hub) watch(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch := make(chan extproc.Update, 1024)
	h.mu.Lock()
	snapshot := make([]extproc.Update, 0, len(h.revs))
	for c, rev := range h.revs {
		snapshot = append(snapshot, extproc.Update{Cluster: c, Revision: &rev})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
		}
		h.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, u := range snapshot {
		if err := enc.Encode(u); err != nil {
			return
		}
	}
	fmt.Fprintln(w) // the end of the snapshot
	flusher.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case u, ok := <-ch:
			if !ok {
				return // too slow: reconnect for a fresh snapshot
			}
			if err := enc.Encode(u); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func (h *Hub) pokeHandler(w http.ResponseWriter, r *http.Request) {
	var p extproc.Poke
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&p); err != nil || p.Cluster == "" {
		http.Error(w, "body must be {\"cluster\": \"namespace/revision\"}", http.StatusBadRequest)
		return
	}
	if h.poke != nil {
		h.poke(p.Cluster)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Hub) held(w http.ResponseWriter, r *http.Request) {
	var rep extproc.HeldReport
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&rep); err != nil || rep.Instance == "" {
		http.Error(w, "body must be {\"instance\": \"...\", \"held\": {\"namespace/revision\": n}}", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.remote[rep.Instance] = heldReport{at: h.now(), held: rep.Held}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
