package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/grpc"
)

// StatSink receives Envoy's metrics_service stat sink (envoy.stat_sinks.metrics_service,
// envoy.service.metrics.v3.MetricsService): each Envoy pushes its stats every flush interval
// over gRPC instead of being scraped, which suits many Envoys behind a Service. Envoy must send
// full stat names (emit_tags_as_labels: false) and cumulative counters
// (report_counters_as_deltas: false), as deploy/envoy/bootstrap.yaml configures it.
type StatSink struct {
	metricsv3.UnimplementedMetricsServiceServer

	source StatSource
	stale  time.Duration
	now    func() time.Time

	mu      sync.Mutex
	streams map[int]*pushed
	nextID  int
}

// pushed is what one Envoy stream last reported.
type pushed struct {
	at     time.Time
	active map[string]float64
	total  map[string]uint64
}

// NewStatSink returns a sink reading source's stats that forgets an Envoy's stats when it has
// not pushed for stale (use a few flush intervals).
func NewStatSink(source StatSource, stale time.Duration) *StatSink {
	return &StatSink{source: source, stale: stale, now: time.Now, streams: map[int]*pushed{}}
}

// Register serves the sink on g.
func (s *StatSink) Register(g *grpc.Server) { metricsv3.RegisterMetricsServiceServer(g, s) }

// StreamMetrics takes one Envoy's pushes until it disconnects.
func (s *StatSink) StreamMetrics(stream metricsv3.MetricsService_StreamMetricsServer) error {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, id)
		s.mu.Unlock()
	}()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&metricsv3.StreamMetricsResponse{})
		}
		if err != nil {
			return fmt.Errorf("stat sink: receive: %w", err)
		}
		p := &pushed{at: s.now(), active: map[string]float64{}, total: map[string]uint64{}}
		for _, f := range msg.GetEnvoyMetrics() {
			cluster, active, ok := s.source.revisionStat(f.GetName())
			if !ok {
				continue
			}
			for _, m := range f.GetMetric() {
				switch {
				case active && m.GetGauge() != nil:
					p.active[cluster] += m.GetGauge().GetValue()
				case !active && m.GetCounter() != nil:
					p.total[cluster] += uint64(m.GetCounter().GetValue())
				}
			}
		}
		s.mu.Lock()
		s.streams[id] = p
		s.mu.Unlock()
	}
}

// Scrape sums the latest push of every Envoy heard from recently.
func (s *StatSink) Scrape(context.Context) (map[string]Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Sample{}
	for id, p := range s.streams {
		if s.now().Sub(p.at) > s.stale {
			delete(s.streams, id)
			continue
		}
		for c, n := range p.active {
			v := out[c]
			v.InFlight += n
			out[c] = v
		}
		for c, n := range p.total {
			v := out[c]
			v.RequestsTotal += n
			out[c] = v
		}
	}
	return out, nil
}
