package activation

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/extproc"
)

// The requests standalone activators hold reach the autoscaler as a source of their own, which
// autoscaler.Sum adds to the proxies' concurrency (Knative's collector adds the activator's
// stat to the scraped one); reports older than staleReport stop counting, and a poke only
// pokes.
func TestHeldIsASourceAddedToTheProxies(t *testing.T) {
	var pokes []string
	h := New(nil, func(c string) { pokes = append(pokes, c) }, nil)
	now := time.Unix(1_700_000_000, 0)
	h.now = func() time.Time { return now }
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	post := func(path string, body any) int {
		t.Helper()
		raw, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(extproc.HeldPath, extproc.HeldReport{Instance: "a", Held: map[string]int{"default/r-1": 30}}); code != http.StatusNoContent {
		t.Fatalf("held report: %d", code)
	}
	post(extproc.HeldPath, extproc.HeldReport{Instance: "b", Held: map[string]int{"default/r-1": 10}})
	if code := post(extproc.PokePath, extproc.Poke{Cluster: "default/r-1"}); code != http.StatusNoContent || len(pokes) != 1 {
		t.Fatalf("poke: %d, pokes %v", code, pokes)
	}

	proxy := autoscaler.MetricsFunc(func(context.Context) (map[string]autoscaler.Sample, error) {
		return map[string]autoscaler.Sample{"default/r-1": {InFlight: 10, RequestsTotal: 7}}, nil
	})
	sum := autoscaler.Sum(proxy, autoscaler.MetricsFunc(h.Held))
	got, err := sum.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := got["default/r-1"]; s.InFlight != 50 || s.RequestsTotal != 7 {
		t.Fatalf("sum = %+v, want 10 in the proxy + 40 held = 50 in flight", s)
	}
	now = now.Add(staleReport + time.Second)
	got, _ = sum.Scrape(context.Background())
	if s := got["default/r-1"]; s.InFlight != 10 {
		t.Fatalf("after the reports went stale: %+v, want the proxy's 10 only", s)
	}
	if code := post(extproc.HeldPath, map[string]any{"held": map[string]int{}}); code != http.StatusBadRequest {
		t.Fatalf("report without an instance: %d, want 400", code)
	}
}
