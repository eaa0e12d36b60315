package telemetry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"k8s.io/client-go/util/workqueue"
)

// XDSMetrics are Skiff's xDS server metrics: skiff.xds.push.duration, how long a proxy took
// to answer a response (ACK or NACK), and skiff.xds.nacks, the responses it rejected, by
// node id and resource type. A nil *XDSMetrics records nothing.
type XDSMetrics struct {
	push  metric.Float64Histogram
	nacks metric.Int64Counter
}

// NewXDSMetrics creates the xDS instruments on t's providers.
func NewXDSMetrics(t *Telemetry) (*XDSMetrics, error) {
	meter := t.MeterProvider().Meter(ScopeSkiff)
	m := &XDSMetrics{}
	var err error
	if m.push, err = meter.Float64Histogram(MetricXDSPush,
		metric.WithDescription("Time from sending an xDS response to the proxy's ACK or NACK of it"),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBounds...)); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricXDSPush, err)
	}
	if m.nacks, err = meter.Int64Counter(MetricXDSNACKs,
		metric.WithDescription("xDS responses a proxy rejected"), metric.WithUnit("{response}")); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricXDSNACKs, err)
	}
	return m, nil
}

// typeName shortens a type URL to the resource's name (envoy.config.cluster.v3.Cluster).
func typeName(typeURL string) string {
	if i := strings.LastIndexByte(typeURL, '/'); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}

// Answered records a proxy's answer to a response sent d ago; nack says it rejected it.
func (m *XDSMetrics) Answered(ctx context.Context, node, typeURL string, nack bool, d time.Duration) {
	if m == nil {
		return
	}
	result := "ack"
	if nack {
		result = "nack"
	}
	attrs := []attribute.KeyValue{KeyXDSNode.String(node), KeyXDSType.String(typeName(typeURL))}
	m.push.Record(ctx, d.Seconds(), metric.WithAttributes(append(attrs, KeyXDSResult.String(result))...))
	if nack {
		m.nacks.Add(ctx, 1, metric.WithAttributes(attrs...))
	}
}

// WorkqueueMetrics is a client-go workqueue.MetricsProvider reporting Knative's work queue
// metrics (knative.dev/pkg/observability/metrics/k8s): kn.workqueue.depth, .adds,
// .queue.duration, .process.duration, .unfinished_work, .longest_running_processor and
// .retries, by queue name (attribute "name").
type WorkqueueMetrics struct {
	depth          metric.Int64UpDownCounter
	adds, retries  metric.Int64Counter
	latency, work  metric.Float64Histogram
	unfinished     metric.Float64Gauge
	longestRunning metric.Float64Gauge
}

var _ workqueue.MetricsProvider = (*WorkqueueMetrics)(nil)

// NewWorkqueueMetrics creates the work queue instruments on t's providers.
func NewWorkqueueMetrics(t *Telemetry) (*WorkqueueMetrics, error) {
	meter := t.MeterProvider().Meter(ScopeWorkqueue)
	w := &WorkqueueMetrics{}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	w.depth, err = meter.Int64UpDownCounter(MetricWorkqueueDepth, metric.WithDescription("Number of current items in the queue"), metric.WithUnit("{item}"))
	add(err)
	w.adds, err = meter.Int64Counter(MetricWorkqueueAdds, metric.WithDescription("Number of items added to the queue"), metric.WithUnit("{item}"))
	add(err)
	w.latency, err = meter.Float64Histogram(MetricWorkqueueLatency, metric.WithDescription("How long an item stays in workqueue"),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBounds...))
	add(err)
	w.work, err = meter.Float64Histogram(MetricWorkqueueWork, metric.WithDescription("How long in seconds processing an item from workqueue takes"),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBounds...))
	add(err)
	w.unfinished, err = meter.Float64Gauge(MetricWorkqueueUnfin, metric.WithUnit("s"))
	add(err)
	w.longestRunning, err = meter.Float64Gauge(MetricWorkqueueLongest, metric.WithUnit("s"))
	add(err)
	w.retries, err = meter.Int64Counter(MetricWorkqueueRetries, metric.WithDescription("Number of items re-added to the queue"), metric.WithUnit("{item}"))
	add(err)
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("telemetry: work queue metrics: %w", err)
		}
	}
	return w, nil
}

func wqOpt(name string) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(KeyWorkqueueName.String(name)))
}

// NewDepthMetric implements workqueue.MetricsProvider.
func (w *WorkqueueMetrics) NewDepthMetric(name string) workqueue.GaugeMetric {
	return wqGauge{m: w.depth, opt: wqOpt(name)}
}

// NewAddsMetric implements workqueue.MetricsProvider.
func (w *WorkqueueMetrics) NewAddsMetric(name string) workqueue.CounterMetric {
	return wqCounter{m: w.adds, opt: wqOpt(name)}
}

// NewLatencyMetric implements workqueue.MetricsProvider.
func (w *WorkqueueMetrics) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return wqHistogram{m: w.latency, opt: wqOpt(name)}
}

// NewWorkDurationMetric implements workqueue.MetricsProvider.
func (w *WorkqueueMetrics) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return wqHistogram{m: w.work, opt: wqOpt(name)}
}

// NewUnfinishedWorkSecondsMetric implements workqueue.MetricsProvider.
func (w *WorkqueueMetrics) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return wqSettable{m: w.unfinished, opt: wqOpt(name)}
}

// NewLongestRunningProcessorSecondsMetric implements workqueue.MetricsProvider.
func (w *WorkqueueMetrics) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return wqSettable{m: w.longestRunning, opt: wqOpt(name)}
}

// NewRetriesMetric implements workqueue.MetricsProvider.
func (w *WorkqueueMetrics) NewRetriesMetric(name string) workqueue.CounterMetric {
	return wqCounter{m: w.retries, opt: wqOpt(name)}
}

type wqGauge struct {
	m   metric.Int64UpDownCounter
	opt metric.MeasurementOption
}

func (g wqGauge) Inc() { g.m.Add(context.Background(), 1, g.opt) }
func (g wqGauge) Dec() { g.m.Add(context.Background(), -1, g.opt) }

type wqCounter struct {
	m   metric.Int64Counter
	opt metric.MeasurementOption
}

func (c wqCounter) Inc() { c.m.Add(context.Background(), 1, c.opt) }

type wqHistogram struct {
	m   metric.Float64Histogram
	opt metric.MeasurementOption
}

func (h wqHistogram) Observe(v float64) { h.m.Record(context.Background(), v, h.opt) }

type wqSettable struct {
	m   metric.Float64Gauge
	opt metric.MeasurementOption
}

func (s wqSettable) Set(v float64) { s.m.Record(context.Background(), v, s.opt) }
