package stats

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
)

func TestExtractTags(t *testing.T) {
	cases := []struct {
		in, name string
		tags     []Tag
	}{
		{"cluster.default/hello-00001.upstream_rq_total", "cluster.upstream_rq_total", []Tag{{"envoy_cluster_name", "default/hello-00001"}}},
		{"cluster.c.upstream_rq_503", "cluster.upstream_rq", []Tag{{"envoy_response_code", "503"}, {"envoy_cluster_name", "c"}}},
		{"cluster.c.upstream_rq_5xx", "cluster.upstream_rq_xx", []Tag{{"envoy_response_code_class", "5"}, {"envoy_cluster_name", "c"}}},
		{"http.skiff-http.downstream_rq_2xx", "http.downstream_rq_xx", []Tag{{"envoy_response_code_class", "2"}, {"envoy_http_conn_manager_prefix", "skiff-http"}}},
		{"cluster_manager.cds.update_success", "cluster_manager.cds.update_success", nil},
	}
	for _, c := range cases {
		name, tags := ExtractTags(c.in)
		if name != c.name || len(tags) != len(c.tags) {
			t.Errorf("ExtractTags(%q) = %q %v, want %q %v", c.in, name, tags, c.name, c.tags)
			continue
		}
		for i := range tags {
			if tags[i] != c.tags[i] {
				t.Errorf("ExtractTags(%q) tags %v, want %v", c.in, tags, c.tags)
			}
		}
	}
}

func TestFormats(t *testing.T) {
	s := NewStore()
	s.Counter("cluster.a.upstream_rq_total").Add(3)
	s.Gauge("cluster.a.upstream_rq_active").Set(2)
	s.Counter("control_plane.x").Inc()
	var text strings.Builder
	if err := s.WriteText(&text, regexp.MustCompile("cluster")); err != nil {
		t.Fatal(err)
	}
	if got := text.String(); got != "cluster.a.upstream_rq_active: 2\ncluster.a.upstream_rq_total: 3\n" {
		t.Errorf("text:\n%s", got)
	}
	var prom strings.Builder
	if err := s.WritePrometheus(&prom); err != nil {
		t.Fatal(err)
	}
	want := "# TYPE envoy_cluster_upstream_rq_active gauge\n" +
		"envoy_cluster_upstream_rq_active{envoy_cluster_name=\"a\"} 2\n" +
		"# TYPE envoy_cluster_upstream_rq_total counter\n" +
		"envoy_cluster_upstream_rq_total{envoy_cluster_name=\"a\"} 3\n" +
		"# TYPE envoy_control_plane_x counter\n" +
		"envoy_control_plane_x 1\n"
	if prom.String() != want {
		t.Errorf("prometheus:\n%s\nwant:\n%s", prom.String(), want)
	}
}

// TestFilteredScrapesFollowChanges: a filter's matches are cached between scrapes; the
// next scrape still shows new values, stats created since, and each filter its own.
func TestFilteredScrapesFollowChanges(t *testing.T) {
	s := NewStore()
	s.Counter("cluster.b.upstream_rq_total").Add(1)
	s.Counter("cluster.b.upstream_cx_total").Add(7)
	rq := regexp.MustCompile(`upstream_rq_(active|total)$`)
	cx := regexp.MustCompile(`upstream_cx_total$`)
	scrape := func(filter *regexp.Regexp) string {
		t.Helper()
		var b strings.Builder
		if err := s.WriteText(&b, filter); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got := scrape(rq); got != "cluster.b.upstream_rq_total: 1\n" {
		t.Errorf("first scrape:\n%s", got)
	}
	s.Counter("cluster.b.upstream_rq_total").Add(2)
	s.Gauge("cluster.a.upstream_rq_active").Set(4)
	if got, want := scrape(rq), "cluster.a.upstream_rq_active: 4\ncluster.b.upstream_rq_total: 3\n"; got != want {
		t.Errorf("scrape after a new stat:\n%swant:\n%s", got, want)
	}
	if got := scrape(cx); got != "cluster.b.upstream_cx_total: 7\n" {
		t.Errorf("other filter:\n%s", got)
	}
	s.Gauge("cluster.a.upstream_rq_active").Set(5)
	if got, want := scrape(rq), "cluster.a.upstream_rq_active: 5\ncluster.b.upstream_rq_total: 3\n"; got != want {
		t.Errorf("scrape after a new value:\n%swant:\n%s", got, want)
	}
}

// BenchmarkWriteTextFiltered is the autoscaler's scrape of a gateway with 1,000 revisions
// (20 stats each): it asks for two stats per revision with ?filter=.
func BenchmarkWriteTextFiltered(b *testing.B) {
	s := NewStore()
	for i := range 1000 {
		for j := range 18 {
			s.Counter(fmt.Sprintf("cluster.default/svc-%04d-00001.upstream_cx_%02d", i, j)).Inc()
		}
		s.Counter(fmt.Sprintf("cluster.default/svc-%04d-00001.upstream_rq_total", i)).Inc()
		s.Gauge(fmt.Sprintf("cluster.default/svc-%04d-00001.upstream_rq_active", i)).Set(1)
	}
	filter := regexp.MustCompile(`upstream_rq_(active|total)$`)
	for b.Loop() {
		if err := s.WriteText(io.Discard, filter); err != nil {
			b.Fatal(err)
		}
	}
}
