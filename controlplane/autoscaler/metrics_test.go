package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// statsServer is a fake Envoy admin endpoint whose /stats text the test sets.
type statsServer struct {
	mu      sync.Mutex
	body    string
	filters []string
	srv     *httptest.Server
}

func newStatsServer(t *testing.T, body string) *statsServer {
	s := &statsServer{body: body}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.filters = append(s.filters, r.URL.Query().Get("filter"))
		fmt.Fprint(w, s.body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *statsServer) set(body string) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func TestEnvoyStats(t *testing.T) {
	a := newStatsServer(t, strings.Join([]string{
		"cluster.default/hello-00001.upstream_rq_active: 3",
		"cluster.default/hello-00001.upstream_rq_total: 100",
		"cluster.default/hello-00001.upstream_rq_time: P0(nan,1) P25(nan,2)",
		"cluster.skiff-xds.upstream_rq_active: 1",
		"cluster.skiff-xds.upstream_rq_total: 7",
		"cluster.other/rev-1.upstream_rq_total: 5",
		"http.ingress.downstream_rq_active: 9",
		"",
	}, "\n"))
	b := newStatsServer(t, "cluster.default/hello-00001.upstream_rq_active: 2\ncluster.default/hello-00001.upstream_rq_total: 50\n")

	e := NewEnvoyStats(nil, ClusterStats, a.srv.URL, b.srv.URL+"/")
	got, err := e.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Sample{
		"default/hello-00001": {InFlight: 5, RequestsTotal: 150},
		"other/rev-1":         {InFlight: 0, RequestsTotal: 5},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scrape = %v, want %v", got, want)
	}
	if want := ClusterStats.statsFilter(); a.filters[0] != want {
		t.Fatalf("filter = %q, want %q", a.filters[0], want)
	}

	// Proxy b restarts: its counter starts again. The sum must not go backwards.
	a.set("cluster.default/hello-00001.upstream_rq_active: 0\ncluster.default/hello-00001.upstream_rq_total: 110\n")
	b.set("cluster.default/hello-00001.upstream_rq_active: 0\ncluster.default/hello-00001.upstream_rq_total: 4\n")
	got, err = e.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := got["default/hello-00001"]; s.RequestsTotal != 164 {
		t.Fatalf("after b restarted: total %d, want 150 + 10 (a) + 4 (b since restart) = 164", s.RequestsTotal)
	}

	// One proxy down: the scrape fails and names it.
	b.srv.Close()
	if _, err := e.Scrape(context.Background()); err == nil || !strings.Contains(err.Error(), "scrape envoy stats "+b.srv.URL) {
		t.Fatalf("scrape with a proxy down: %v, want an error naming it", err)
	}
}

// The revision-metrics source reads the filter's wasmcustom stats and nothing else, and the
// filter expression it sends selects exactly those lines.
func TestEnvoyStatsRevisionMetrics(t *testing.T) {
	lines := []string{
		"cluster.default/hello-00001.upstream_rq_active: 3",
		"cluster.default/hello-00001.upstream_rq_total: 100",
		"wasmcustom.skiff_revision_in_flight.default/hello-00001: 7",
		"wasmcustom.skiff_revision_requests_total.default/hello-00001: 120",
		"wasmcustom.skiff_revision_requests_total.other/rev-1: 5",
		"wasmcustom.skiff_broker_events_accepted.default/default: 9",
		"wasmcustom.skiff_revision_in_flight.skiff-xds: 1",
	}
	a := newStatsServer(t, strings.Join(lines, "\n")+"\n")
	got, err := NewEnvoyStats(nil, RevisionMetrics, a.srv.URL).Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Sample{
		"default/hello-00001": {InFlight: 7, RequestsTotal: 120},
		"other/rev-1":         {InFlight: 0, RequestsTotal: 5},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scrape = %v, want %v", got, want)
	}
	re := regexp.MustCompile(a.filters[0])
	var selected []string
	for _, l := range lines {
		name, _, _ := strings.Cut(l, ": ")
		if re.MatchString(name) {
			selected = append(selected, name)
		}
	}
	if len(selected) != 4 {
		t.Fatalf("filter %q selects %v, want the four skiff_revision_ stats", a.filters[0], selected)
	}
}

func TestParseStatSource(t *testing.T) {
	for _, v := range []string{"cluster-stats", "revision-metrics"} {
		s, err := ParseStatSource(v)
		if err != nil || s.String() != v {
			t.Errorf("ParseStatSource(%q) = %v, %v", v, s, err)
		}
	}
	if _, err := ParseStatSource("wasm"); err == nil || !strings.Contains(err.Error(), "cluster-stats or revision-metrics") {
		t.Errorf("ParseStatSource(wasm) error = %v, want one naming the choices", err)
	}
}

func TestEnvoyStatsTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := NewEnvoyStats(nil, ClusterStats, srv.URL).Scrape(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestSum(t *testing.T) {
	envoy := MetricsFunc(func(context.Context) (map[string]Sample, error) {
		return map[string]Sample{"ns/a": {InFlight: 2, RequestsTotal: 10}, "ns/b": {InFlight: 1}}, nil
	})
	held := MetricsFunc(func(context.Context) (map[string]Sample, error) {
		return map[string]Sample{"ns/a": {InFlight: 3, RequestsTotal: 3}, "ns/c": {InFlight: 4}}, nil
	})
	got, err := Sum(envoy, held).Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Sample{"ns/a": {InFlight: 5, RequestsTotal: 13}, "ns/b": {InFlight: 1}, "ns/c": {InFlight: 4}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sum = %v, want %v", got, want)
	}
	boom := MetricsFunc(func(context.Context) (map[string]Sample, error) { return nil, errors.New("boom") })
	if _, err := Sum(envoy, boom).Scrape(context.Background()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("sum with a failing source: %v, want its error", err)
	}
}

func TestHeldRequestsThroughSumScaleFromZero(t *testing.T) {
	// Requests held in extproc are not in Envoy's cluster stats; added through Sum they are
	// demand, and a revision at zero scales up on them at the next tick even without a poke.
	clock := newFakeClock()
	var mu sync.Mutex
	heldN := 0.0
	held := MetricsFunc(func(context.Context) (map[string]Sample, error) {
		mu.Lock()
		defer mu.Unlock()
		return map[string]Sample{key: {InFlight: heldN}}, nil
	})
	envoy := MetricsFunc(func(context.Context) (map[string]Sample, error) { return map[string]Sample{}, nil })
	cfg := DefaultConfig()
	cfg.AllowZeroInitialScale = true
	cfg.Now = clock.Now
	as := New(cfg, Sum(envoy, held), discardLogger())
	spec, _ := SpecFor(map[string]string{InitialScaleAnnotationKey: "0", TargetAnnotationKey: "10", TargetUtilizationPercentageAnnotationKey: "100"}, 0, cfg)
	as.Upsert(key, spec)
	clock.Advance(2 * time.Second)
	if err := as.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, _ := as.Decision(key); d.DesiredScale != 0 {
		t.Fatalf("idle: %+v", d)
	}
	mu.Lock()
	heldN = 45
	mu.Unlock()
	clock.Advance(2 * time.Second)
	if err := as.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, _ := as.Decision(key); d.DesiredScale < 2 || !d.Panic {
		t.Fatalf("45 held requests on target 10: %+v, want a panic scale-up", d)
	}
}

func BenchmarkDecide1000(b *testing.B) {
	h := newHarness(b, DefaultConfig())
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("ns-%d/rev-%05d", i%20, i)
		h.upsert(keys[i], map[string]string{TargetAnnotationKey: "10"}, 0)
		h.as.SetReady(keys[i], 1+i%5)
		h.metrics.setInFlight(keys[i], float64(i%50))
		h.metrics.addRequests(keys[i], uint64(i))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h.clock.Advance(2 * time.Second)
		if err := h.as.Tick(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
