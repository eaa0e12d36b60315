package autoscaler

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Sample is what the proxies report for one revision at one scrape.
type Sample struct {
	// InFlight is the number of requests in the proxy for the revision now, including held ones.
	InFlight float64
	// RequestsTotal is a monotonic count of requests, from which the engine derives rps. A drop
	// (a proxy restarted) is read as no new requests, never as a negative rate.
	RequestsTotal uint64
}

// Metrics is a source of per-revision samples, scraped once per tick. Keys are revision keys,
// the xDS cluster names "namespace/revision". A revision missing from a successful scrape has
// no request in flight. An error means nothing is known this tick: the engine keeps its decisions.
type Metrics interface {
	// Scrape returns the current samples; it should honour ctx's deadline.
	Scrape(ctx context.Context) (map[string]Sample, error)
}

// MetricsFunc adapts a function to Metrics, e.g. the requests extproc is holding.
type MetricsFunc func(ctx context.Context) (map[string]Sample, error)

// Scrape calls f.
func (f MetricsFunc) Scrape(ctx context.Context) (map[string]Sample, error) { return f(ctx) }

// Sum returns a Metrics adding up the samples of every source per revision (in-flight requests
// and request counters), e.g. Envoy's cluster stats plus the requests extproc holds, which
// Envoy's cluster stats do not count. The sources are scraped concurrently; if any fails the
// scrape fails, since a partial sum would look like a drop in demand.
func Sum(sources ...Metrics) Metrics {
	return MetricsFunc(func(ctx context.Context) (map[string]Sample, error) {
		results := make([]map[string]Sample, len(sources))
		errs := make([]error, len(sources))
		var wg sync.WaitGroup
		for i, src := range sources {
			wg.Go(func() {
				results[i], errs[i] = src.Scrape(ctx)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("sum metrics: %w", err)
		}
		out := make(map[string]Sample)
		for _, r := range results {
			for k, s := range r {
				acc := out[k]
				acc.InFlight += s.InFlight
				acc.RequestsTotal += s.RequestsTotal
				out[k] = acc
			}
		}
		return out, nil
	})
}

// StatSource names the proxy stats a revision's demand is read from.
type StatSource int

const (
	// ClusterStats are Envoy's own upstream cluster stats,
	// `cluster.<ns>/<rev>.upstream_rq_active` (in flight) and `...upstream_rq_total`. They do
	// not count requests held before routing reaches the cluster (ext_proc holding a cold
	// revision's requests), so the control plane adds the activator's held requests to them.
	ClusterStats StatSource = iota
	// RevisionMetrics are the counters of the revision-metrics proxy-wasm filter
	// (wasm-filters/revision-metrics), `wasmcustom.skiff_revision_in_flight.<ns>/<rev>` and
	// `wasmcustom.skiff_revision_requests_total.<ns>/<rev>`. The filter runs before ext_proc,
	// so its in-flight gauge already includes held requests.
	RevisionMetrics
)

// String returns the source's flag value.
func (s StatSource) String() string {
	switch s {
	case ClusterStats:
		return "cluster-stats"
	case RevisionMetrics:
		return "revision-metrics"
	}
	return fmt.Sprintf("StatSource(%d)", int(s))
}

// ParseStatSource reads a flag value: "cluster-stats" or "revision-metrics".
func ParseStatSource(v string) (StatSource, error) {
	switch v {
	case "cluster-stats", "":
		return ClusterStats, nil
	case "revision-metrics":
		return RevisionMetrics, nil
	}
	return 0, fmt.Errorf("stat source %q: must be cluster-stats or revision-metrics", v)
}

// statsFilter is the /stats?filter= regular expression that asks a proxy for the two stats
// the source reads only.
func (s StatSource) statsFilter() string {
	if s == RevisionMetrics {
		return `^wasmcustom\.skiff_revision_(in_flight|requests_total)\.`
	}
	return `upstream_rq_(active|total)$`
}

// revisionStat recognises a revision's stat the source reads and returns its cluster
// ("namespace/revision") and whether it is the in-flight gauge (else the request counter).
func (s StatSource) revisionStat(name string) (cluster string, active, ok bool) {
	if s == RevisionMetrics {
		return revisionMetricsStat(name)
	}
	return clusterStat(name)
}

// EnvoyStats scrapes the admin `/stats` text endpoint of one or more Envoys (or Skiff gateways)
// and sums, per revision cluster, the in-flight gauge (InFlight) and the request counter
// (RequestsTotal) of its StatSource. Clusters whose name has no "/" (the xDS cluster, for
// instance) are ignored. Each proxy's counter is tracked separately, so that
// one proxy restarting (its counter starting again from zero) neither loses nor invents
// requests: the summed RequestsTotal stays monotonic while the set of proxies stays the same.
type EnvoyStats struct {
	client *http.Client
	urls   []string
	source StatSource

	mu     sync.Mutex
	totals map[string]map[string]counterState // base URL → cluster → counter
}

// counterState turns one proxy's raw counter into a monotonic one across restarts.
type counterState struct {
	raw uint64 // last raw value read
	acc uint64 // monotonic total reported
}

// NewEnvoyStats returns an EnvoyStats reading source's stats from the admin endpoints at
// baseURLs (e.g. "http://127.0.0.1:9901"). A nil client means http.DefaultClient; the scrape's
// deadline comes from the context.
func NewEnvoyStats(client *http.Client, source StatSource, baseURLs ...string) *EnvoyStats {
	if client == nil {
		client = http.DefaultClient
	}
	return &EnvoyStats{
		client: client,
		urls:   append([]string(nil), baseURLs...),
		source: source,
		totals: make(map[string]map[string]counterState),
	}
}

// Scrape reads every proxy concurrently and sums their samples per revision.
func (e *EnvoyStats) Scrape(ctx context.Context) (map[string]Sample, error) {
	type result struct {
		active map[string]float64
		total  map[string]uint64
		err    error
	}
	results := make([]result, len(e.urls))
	var wg sync.WaitGroup
	for i, base := range e.urls {
		wg.Go(func() {
			r := &results[i]
			r.active, r.total, r.err = e.scrapeOne(ctx, base)
		})
	}
	wg.Wait()

	var errs []error
	for _, r := range results {
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Sample)
	for i, base := range e.urls {
		r := results[i]
		prev := e.totals[base]
		next := make(map[string]counterState, len(r.total))
		for cluster, raw := range r.total {
			c, seen := prev[cluster]
			switch {
			case !seen:
				c.acc = raw
			case raw >= c.raw:
				c.acc += raw - c.raw
			default: // the proxy restarted: its counter began again at zero
				c.acc += raw
			}
			c.raw = raw
			next[cluster] = c
			s := out[cluster]
			s.RequestsTotal += c.acc
			out[cluster] = s
		}
		e.totals[base] = next
		for cluster, n := range r.active {
			s := out[cluster]
			s.InFlight += n
			out[cluster] = s
		}
	}
	return out, nil
}

// scrapeOne reads one proxy's /stats.
func (e *EnvoyStats) scrapeOne(ctx context.Context, base string) (map[string]float64, map[string]uint64, error) {
	u := strings.TrimRight(base, "/") + "/stats?filter=" + url.QueryEscape(e.source.statsFilter())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("scrape envoy stats %s: %w", base, err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("scrape envoy stats %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, nil, fmt.Errorf("scrape envoy stats %s: HTTP %s", base, resp.Status)
	}
	active, total, err := parseStats(resp.Body, e.source)
	if err != nil {
		return nil, nil, fmt.Errorf("scrape envoy stats %s: %w", base, err)
	}
	return active, total, nil
}

// parseStats reads Envoy's /stats text format ("name: value" lines), keeping the source's
// in-flight and request-count stats of revision clusters.
func parseStats(r io.Reader, source StatSource) (map[string]float64, map[string]uint64, error) {
	active := make(map[string]float64)
	total := make(map[string]uint64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		cluster, isActive, ok := source.revisionStat(name)
		switch {
		case !ok:
		case isActive:
			n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil || n < 0 {
				continue
			}
			active[cluster] += n
		default:
			n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
			if err != nil {
				continue
			}
			total[cluster] += n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read stats: %w", err)
	}
	return active, total, nil
}

// clusterStat recognises a revision cluster's upstream stat:
// cluster.<ns>/<rev>.upstream_rq_active (active) or cluster.<ns>/<rev>.upstream_rq_total.
func clusterStat(name string) (cluster string, active, ok bool) {
	rest, ok := strings.CutPrefix(name, "cluster.")
	if !ok {
		return "", false, false
	}
	if c, ok := strings.CutSuffix(rest, ".upstream_rq_active"); ok && isRevisionCluster(c) {
		return c, true, true
	}
	if c, ok := strings.CutSuffix(rest, ".upstream_rq_total"); ok && isRevisionCluster(c) {
		return c, false, true
	}
	return "", false, false
}

// revisionMetricsStat recognises a revision-metrics filter stat:
// wasmcustom.skiff_revision_in_flight.<ns>/<rev> (active) or
// wasmcustom.skiff_revision_requests_total.<ns>/<rev>. Metric names have no dots and revision
// cluster names none either, so the name splits unambiguously.
func revisionMetricsStat(name string) (cluster string, active, ok bool) {
	rest, ok := strings.CutPrefix(name, "wasmcustom.")
	if !ok {
		return "", false, false
	}
	if c, ok := strings.CutPrefix(rest, "skiff_revision_in_flight."); ok && isRevisionCluster(c) {
		return c, true, true
	}
	if c, ok := strings.CutPrefix(rest, "skiff_revision_requests_total."); ok && isRevisionCluster(c) {
		return c, false, true
	}
	return "", false, false
}

// isRevisionCluster reports whether a cluster name is a revision's "namespace/revision".
func isRevisionCluster(name string) bool {
	return strings.Count(name, "/") == 1 && !strings.Contains(name, ".")
}

// ProxyDemand is the autoscaler's input as Skiff's control planes (`skiff up`, `skiff
// controller`) assemble it: the stats proxies push to sink (Envoy's metrics_service stat
// sink), plus the admin /stats of the proxies at statsURLs when any are given, plus — with
// ClusterStats, whose upstream stats do not see requests held before the cluster — the
// requests the activators hold (held; nil when there is no activator). The revision-metrics
// filter counts held requests itself, so held is not added to RevisionMetrics.
func ProxyDemand(source StatSource, sink *StatSink, held Metrics, statsURLs []string) Metrics {
	sources := []Metrics{sink}
	if source == ClusterStats && held != nil {
		sources = append(sources, held)
	}
	if len(statsURLs) > 0 {
		sources = append(sources, NewEnvoyStats(nil, source, statsURLs...))
	}
	return Sum(sources...)
}
