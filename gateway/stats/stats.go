// Package stats holds the gateway's counters and gauges under Envoy's stat
// names (for example "cluster.<name>.upstream_rq_total") and renders them in
// Envoy's admin text, JSON and Prometheus formats.
package stats

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Counter is a monotonically increasing Envoy counter.
type Counter struct{ v atomic.Uint64 }

// Inc adds one to the counter.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n to the counter.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is an Envoy gauge: a value that goes up and down.
type Gauge struct{ v atomic.Int64 }

// Inc adds one to the gauge.
func (g *Gauge) Inc() { g.v.Add(1) }

// Dec subtracts one from the gauge.
func (g *Gauge) Dec() { g.v.Add(-1) }

// Add adds n (which may be negative) to the gauge.
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Set sets the gauge to n.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Value returns the current value.
func (g *Gauge) Value() int64 { return g.v.Load() }

// Kind says whether a stat is a counter or a gauge.
type Kind int

const (
	// KindCounter marks a counter.
	KindCounter Kind = iota
	// KindGauge marks a gauge.
	KindGauge
)

// Stat is one stat's name, kind and value at the time of a snapshot.
type Stat struct {
	Name  string
	Kind  Kind
	Value int64
}

// Store is a set of named counters and gauges. The zero value is not usable;
// use NewStore. A Store is safe for concurrent use.
type Store struct {
	mu       sync.RWMutex
	counters map[string]*Counter
	gauges   map[string]*Gauge
	names    uint64 // goes up with every stat created (none is removed)

	// selections caches, per filter, the stats it matches, sorted, while no stat is
	// created: a scraper asking for the same few stats every couple of seconds (the
	// autoscaler's ?filter=) then costs what it gets, not a match of every name.
	selMu      sync.Mutex
	selections map[string]*selection
}

// selection is the stats a filter matched, sorted by name, when the store had names stats.
type selection struct {
	names uint64
	stats []selected
}

type selected struct {
	name string
	c    *Counter
	g    *Gauge
}

// maxSelections bounds the cached selections (filters come from scrapers' requests).
const maxSelections = 16

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{counters: map[string]*Counter{}, gauges: map[string]*Gauge{}}
}

// Counter returns the counter with the given Envoy name, creating it at zero.
func (s *Store) Counter(name string) *Counter {
	s.mu.RLock()
	c, ok := s.counters[name]
	s.mu.RUnlock()
	if ok {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok = s.counters[name]; !ok {
		c = &Counter{}
		s.counters[name] = c
		s.names++
	}
	return c
}

// Gauge returns the gauge with the given Envoy name, creating it at zero.
func (s *Store) Gauge(name string) *Gauge {
	s.mu.RLock()
	g, ok := s.gauges[name]
	s.mu.RUnlock()
	if ok {
		return g
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok = s.gauges[name]; !ok {
		g = &Gauge{}
		s.gauges[name] = g
		s.names++
	}
	return g
}

// Snapshot returns every stat, sorted by name.
func (s *Store) Snapshot() []Stat { return s.snapshot(nil) }

// snapshot returns the stats whose names match filter (all when nil), sorted by name.
func (s *Store) snapshot(filter *regexp.Regexp) []Stat {
	if filter != nil {
		return s.selected(filter)
	}
	s.mu.RLock()
	out := make([]Stat, 0, len(s.counters)+len(s.gauges))
	for n, c := range s.counters {
		out = append(out, Stat{Name: n, Kind: KindCounter, Value: int64(c.Value())})
	}
	for n, g := range s.gauges {
		out = append(out, Stat{Name: n, Kind: KindGauge, Value: g.Value()})
	}
	s.mu.RUnlock()
	sortStats(out)
	return out
}

// selected returns the stats filter matches, sorted by name, from the cached selection
// while no stat has been created since it was made.
func (s *Store) selected(filter *regexp.Regexp) []Stat {
	key := filter.String()
	s.mu.RLock()
	names := s.names
	s.mu.RUnlock()
	s.selMu.Lock()
	sel := s.selections[key]
	s.selMu.Unlock()
	if sel == nil || sel.names != names {
		sel = &selection{}
		s.mu.RLock()
		sel.names = s.names
		for n, c := range s.counters {
			if filter.MatchString(n) {
				sel.stats = append(sel.stats, selected{name: n, c: c})
			}
		}
		for n, g := range s.gauges {
			if filter.MatchString(n) {
				sel.stats = append(sel.stats, selected{name: n, g: g})
			}
		}
		s.mu.RUnlock()
		slices.SortFunc(sel.stats, func(a, b selected) int { return strings.Compare(a.name, b.name) })
		s.selMu.Lock()
		if s.selections == nil || len(s.selections) >= maxSelections {
			s.selections = map[string]*selection{}
		}
		s.selections[key] = sel
		s.selMu.Unlock()
	}
	out := make([]Stat, len(sel.stats))
	for i, st := range sel.stats {
		if st.c != nil {
			out[i] = Stat{Name: st.name, Kind: KindCounter, Value: int64(st.c.Value())}
		} else {
			out[i] = Stat{Name: st.name, Kind: KindGauge, Value: st.g.Value()}
		}
	}
	return out
}

func sortStats(out []Stat) {
	slices.SortFunc(out, func(a, b Stat) int { return strings.Compare(a.Name, b.Name) })
}

// Value returns the value of the counter or gauge called name, and whether it exists.
func (s *Store) Value(name string) (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c, ok := s.counters[name]; ok {
		return int64(c.Value()), true
	}
	if g, ok := s.gauges[name]; ok {
		return g.Value(), true
	}
	return 0, false
}

// WriteText writes the stats in Envoy's /stats text format ("name: value",
// sorted), keeping only names matching filter when it is not nil.
func (s *Store) WriteText(w io.Writer, filter *regexp.Regexp) error {
	var b []byte
	for _, st := range s.snapshot(filter) {
		b = append(b, st.Name...)
		b = append(b, ": "...)
		b = strconv.AppendInt(b, st.Value, 10)
		b = append(b, '\n')
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("writing stats: %w", err)
	}
	return nil
}

// WriteJSON writes the stats in Envoy's /stats?format=json shape.
func (s *Store) WriteJSON(w io.Writer, filter *regexp.Regexp) error {
	type entry struct {
		Name  string `json:"name"`
		Value int64  `json:"value"`
	}
	out := struct {
		Stats []entry `json:"stats"`
	}{Stats: []entry{}}
	for _, st := range s.snapshot(filter) {
		out.Stats = append(out.Stats, entry{Name: st.Name, Value: st.Value})
	}
	if err := json.NewEncoder(w).Encode(out); err != nil {
		return fmt.Errorf("writing stats json: %w", err)
	}
	return nil
}

// Tag is one extracted Prometheus label.
type Tag struct{ Name, Value string }

// tagExtractor mirrors one of Envoy's default tag extractors: the regexp's
// first submatch is removed from the stat name and its second submatch is
// the tag value.
type tagExtractor struct {
	name string
	re   *regexp.Regexp
}

// defaultExtractors are the subset of Envoy's default tag extractors
// (source/common/config/well_known_names.cc) that apply to the stats the
// gateway emits.
var defaultExtractors = []tagExtractor{
	{"envoy_response_code", regexp.MustCompile(`_rq(_(\d{3}))$`)},
	{"envoy_response_code_class", regexp.MustCompile(`_rq_((\d))xx$`)},
	{"envoy_http_conn_manager_prefix", regexp.MustCompile(`^http\.(([^.]+)\.)`)},
	{"envoy_cluster_name", regexp.MustCompile(`^cluster\.(([^.]+)\.)`)},
}

// ExtractTags applies Envoy's default tag extraction to an Envoy stat name
// and returns the tag-extracted name (still dotted) and the tags.
func ExtractTags(name string) (string, []Tag) {
	var tags []Tag
	for _, ex := range defaultExtractors {
		m := ex.re.FindStringSubmatchIndex(name)
		if m == nil || m[2] < 0 {
			continue
		}
		tags = append(tags, Tag{Name: ex.name, Value: name[m[4]:m[5]]})
		// Envoy removes the first submatch from the name.
		name = name[:m[2]] + name[m[3]:]
	}
	return name, tags
}

// PrometheusName converts a tag-extracted Envoy stat name to a Prometheus
// metric name the way Envoy does: prefix "envoy_", every character outside
// [a-zA-Z0-9_] becomes "_".
func PrometheusName(name string) string {
	var b strings.Builder
	b.WriteString("envoy_")
	for _, r := range name {
		if r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(v)
}

// WritePrometheus writes the stats in Envoy's /stats/prometheus format: one
// "# TYPE" line per metric family followed by its labelled samples.
func (s *Store) WritePrometheus(w io.Writer) error {
	type sample struct {
		labels string
		value  int64
	}
	type family struct {
		kind    Kind
		samples []sample
	}
	fams := map[string]*family{}
	for _, st := range s.Snapshot() {
		base, tags := ExtractTags(st.Name)
		pn := PrometheusName(base)
		f, ok := fams[pn]
		if !ok {
			f = &family{kind: st.Kind}
			fams[pn] = f
		}
		parts := make([]string, 0, len(tags))
		for _, t := range tags {
			parts = append(parts, fmt.Sprintf(`%s="%s"`, t.Name, escapeLabel(t.Value)))
		}
		f.samples = append(f.samples, sample{labels: strings.Join(parts, ","), value: st.Value})
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := fams[n]
		typ := "counter"
		if f.kind == KindGauge {
			typ = "gauge"
		}
		if _, err := fmt.Fprintf(w, "# TYPE %s %s\n", n, typ); err != nil {
			return fmt.Errorf("writing prometheus stats: %w", err)
		}
		sort.Slice(f.samples, func(i, j int) bool { return f.samples[i].labels < f.samples[j].labels })
		for _, sm := range f.samples {
			var err error
			if sm.labels == "" {
				_, err = fmt.Fprintf(w, "%s %d\n", n, sm.value)
			} else {
				_, err = fmt.Fprintf(w, "%s{%s} %d\n", n, sm.labels, sm.value)
			}
			if err != nil {
				return fmt.Errorf("writing prometheus stats: %w", err)
			}
		}
	}
	return nil
}
