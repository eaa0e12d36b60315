package broker

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// benchSink is one HTTP server standing for every subscriber of a benchmark:
// it records each delivery's latency from the ce-sentat extension.
type benchSink struct {
	srv       *httptest.Server
	delivered atomic.Int64
	mu        sync.Mutex
	latencies []time.Duration
}

func newBenchSink(b *testing.B) *benchSink {
	s := &benchSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ns, err := strconv.ParseInt(r.Header.Get("Ce-Sentat"), 10, 64); err == nil {
			d := time.Since(time.Unix(0, ns))
			s.mu.Lock()
			s.latencies = append(s.latencies, d)
			s.mu.Unlock()
		}
		s.delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(s.srv.Close)
	return s
}

func (s *benchSink) percentile(p float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	return l[int(float64(len(l)-1)*p)]
}

// benchBroker starts a broker with n triggers; matching of them select the
// benchmark's events (type "bench"), the others another type.
func benchBroker(b *testing.B, n, matching int) (*testEnv, *benchSink) {
	e := start(b, b.TempDir(), Options{Logger: testLogger(b)})
	sink := newBenchSink(b)
	cfg := BrokerConfig{Namespace: "bench", Name: "default"}
	for i := range n {
		typ := "bench"
		if i >= matching {
			typ = "other"
		}
		cfg.Triggers = append(cfg.Triggers, TriggerConfig{
			Name:       fmt.Sprintf("t%d", i),
			Subscriber: fmt.Sprintf("%s/t%d", sink.srv.URL, i),
			Filter:     eventfilter.Filter{Attributes: map[string]string{"type": typ}},
		})
	}
	if err := e.srv.SetBroker(b.Context(), cfg); err != nil {
		b.Fatal(err)
	}
	return e, sink
}

func benchClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: tr}
}

func benchPost(client *http.Client, url string, i int64) error {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"order":12345,"items":["a","b","c"]}`))
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", strconv.FormatInt(i, 10))
	req.Header.Set("Ce-Source", "/bench")
	req.Header.Set("Ce-Type", "bench")
	req.Header.Set("Ce-Sentat", strconv.FormatInt(time.Now().UnixNano(), 10))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

var benchShapes = []struct{ triggers, matching int }{{1, 1}, {10, 10}, {100, 100}, {100, 1}}

// BenchmarkIngress measures events accepted per second by the ingress over
// loopback HTTP, with parallel senders, every accepted event stored (and
// acknowledged by JetStream) once per matching trigger, while the dispatcher
// delivers. After the timed part it waits for every delivery and reports the
// end-to-end latency percentiles under that load.
func BenchmarkIngress(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(fmt.Sprintf("triggers=%d/matching=%d", shape.triggers, shape.matching), func(b *testing.B) {
			e, sink := benchBroker(b, shape.triggers, shape.matching)
			client, url := benchClient(), e.url("bench", "default")
			var seq atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := benchPost(client, url, seq.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			want := int64(b.N) * int64(shape.matching)
			waitFor(b, 5*time.Minute, "every delivery", func() bool { return sink.delivered.Load() >= want })
			all := time.Since(start)
			b.ReportMetric(float64(want)/all.Seconds(), "deliveries/s")
			b.ReportMetric(float64(sink.percentile(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(sink.percentile(0.99).Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkLatency measures end-to-end latency (POST sent to subscriber
// reached) with one sender posting one event at a time, so that latency is
// not queueing behind a saturated dispatcher.
func BenchmarkLatency(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(fmt.Sprintf("triggers=%d/matching=%d", shape.triggers, shape.matching), func(b *testing.B) {
			e, sink := benchBroker(b, shape.triggers, shape.matching)
			client, url := benchClient(), e.url("bench", "default")
			b.ResetTimer()
			for i := range b.N {
				if err := benchPost(client, url, int64(i)); err != nil {
					b.Fatal(err)
				}
				// Wait for this event's deliveries before the next one.
				want := int64(i+1) * int64(shape.matching)
				deadline := time.Now().Add(10 * time.Second)
				for sink.delivered.Load() < want {
					if time.Now().After(deadline) {
						b.Fatalf("event %d not delivered after 10s", i)
					}
					time.Sleep(50 * time.Microsecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(sink.percentile(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(sink.percentile(0.99).Microseconds())/1000, "p99-ms")
		})
	}
}
