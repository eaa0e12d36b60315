package extproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// The activation feed connects a standalone `skiff extproc` to the control plane, over the
// control plane's HTTP API:
//
//   - GET  {base}/internal/activation/watch streams Updates as JSON lines: every revision
//     first, then each change, so the service knows every revision's endpoints (only those
//     every proxy has ACKed) and concurrency;
//   - POST {base}/internal/activation/poke with {"cluster": "..."} is the activator's poke;
//   - POST {base}/internal/activation/held with a HeldReport tells the autoscaler how many
//     requests this instance holds, since the proxy's stats cannot count them.
//
// In `skiff up` the service runs inside the control plane and none of this is used.
const (
	WatchPath = "/internal/activation/watch"
	PokePath  = "/internal/activation/poke"
	HeldPath  = "/internal/activation/held"
)

// Update is one line of the watch stream: a revision's new state, or its deletion.
type Update struct {
	Cluster  string    `json:"cluster"`
	Revision *Revision `json:"revision,omitempty"` // nil: the revision was deleted
}

// HeldReport is one extproc instance's held requests per cluster.
type HeldReport struct {
	Instance string         `json:"instance"`
	Held     map[string]int `json:"held"`
}

// Poke is the body of a poke request.
type Poke struct {
	Cluster string `json:"cluster"`
}

// Feed keeps a Server in step with the control plane at BaseURL.
type Feed struct {
	BaseURL  string
	Instance string // names this instance in HeldReports (e.g. the pod name)
	Client   *http.Client
	Logger   *slog.Logger
	// ReportEvery is how often held requests are reported (default 1s).
	ReportEvery time.Duration
}

// Poke asks the control plane to scale the cluster's revision up now; it does not block
// the caller for long and logs failures.
func (f *Feed) Poke(cluster string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.post(ctx, PokePath, Poke{Cluster: cluster}); err != nil {
		f.log().Warn("poke control plane", "cluster", cluster, "err", err)
	}
}

// Run follows the control plane's watch stream into s and reports s's held requests until
// ctx ends, reconnecting with backoff when the stream breaks.
func (f *Feed) Run(ctx context.Context, s *Server) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.report(ctx, s)
	}()
	defer func() { <-done }()
	backoff := 250 * time.Millisecond
	for {
		err := f.watch(ctx, s)
		if ctx.Err() != nil {
			return nil
		}
		f.log().Warn("activation feed broken; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// watch reads one watch stream; the first lines are a full snapshot, so revisions the
// service knows and the snapshot lacks are deleted when the snapshot ends (an empty line).
func (f *Feed) watch(ctx context.Context, s *Server) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.BaseURL+WatchPath, nil)
	if err != nil {
		return err
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watch: HTTP %d", resp.StatusCode)
	}
	seen := map[string]bool{}
	snapshot := true
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			if snapshot {
				for cluster := range s.Stats() {
					if !seen[cluster] {
						s.DeleteRevision(cluster)
					}
				}
				snapshot = false
			}
			continue
		}
		var u Update
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			return fmt.Errorf("watch: decode %q: %w", line, err)
		}
		seen[u.Cluster] = true
		if u.Revision == nil {
			s.DeleteRevision(u.Cluster)
		} else {
			s.SetRevision(u.Cluster, *u.Revision)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	return fmt.Errorf("watch: stream ended")
}

func (f *Feed) report(ctx context.Context, s *Server) {
	t := time.NewTicker(cmpDuration(f.ReportEvery, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held := map[string]int{}
		for cluster, st := range s.Stats() {
			if st.Held > 0 {
				held[cluster] = st.Held
			}
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := f.post(rctx, HeldPath, HeldReport{Instance: f.Instance, Held: held}); err != nil && ctx.Err() == nil {
			f.log().Debug("report held requests", "err", err)
		}
		cancel()
	}
}

func (f *Feed) post(ctx context.Context, path string, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.BaseURL+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: HTTP %d", path, resp.StatusCode)
	}
	return nil
}

func (f *Feed) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return http.DefaultClient
}

func (f *Feed) log() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.Default()
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
