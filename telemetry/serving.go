package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Revision names a Knative Revision and what it belongs to: the attributes of its metrics.
type Revision struct {
	Namespace, Service, Configuration, Name string
}

func (r Revision) attrs() []attribute.KeyValue {
	return []attribute.KeyValue{
		KeyNamespace.String(r.Namespace), KeyService.String(r.Service),
		KeyConfiguration.String(r.Configuration), KeyRevision.String(r.Name),
	}
}

// RequestMetrics records each request a proxy sends to a revision, as Knative's activator
// and queue-proxy record theirs: http.server.request.duration with the revision's
// attributes, the method and the status code (and revision_request_count and
// revision_request_latencies with Legacy). Safe for concurrent use.
type RequestMetrics struct {
	duration metric.Float64Histogram
	legacy   *Legacy
	series   sync.Map // requestKey → *requestSeries
}

type requestKey struct {
	rev    Revision
	method string
	scheme string
	proto  string
	code   int
}

type requestSeries struct {
	opt    metric.RecordOption
	legacy *legacyRequest
}

// NewRequestMetrics creates the request instruments on t's providers.
func NewRequestMetrics(t *Telemetry) (*RequestMetrics, error) {
	d, err := t.MeterProvider().Meter(ScopeActivator).Float64Histogram(MetricRequestDuration,
		metric.WithDescription("Duration of HTTP server requests."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(latencyBounds...))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricRequestDuration, err)
	}
	return &RequestMetrics{duration: d, legacy: t.Legacy()}, nil
}

// knownMethods are the methods the semantic conventions keep; others are "_OTHER", so a
// client cannot grow the series without bound.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true,
	http.MethodTrace: true, http.MethodPatch: true,
}

// Record records one request to rev that ended with code after d. ctx carries the request's
// span, whose trace id becomes the measurement's exemplar.
func (m *RequestMetrics) Record(ctx context.Context, rev Revision, method, scheme string, protoMajor, code int, d time.Duration) {
	if m == nil {
		return
	}
	if !knownMethods[method] {
		method = "_OTHER"
	}
	proto := "1.1"
	if protoMajor == 2 {
		proto = "2"
	}
	k := requestKey{rev: rev, method: method, scheme: scheme, proto: proto, code: code}
	v, ok := m.series.Load(k)
	if !ok {
		attrs := append(rev.attrs(), KeyHTTPMethod.String(method), KeyHTTPStatus.Int(code),
			KeyURLScheme.String(scheme), KeyProtocolVersion.String(proto))
		v, _ = m.series.LoadOrStore(k, &requestSeries{
			opt:    metric.WithAttributeSet(attribute.NewSet(attrs...)),
			legacy: m.legacy.request(rev.Namespace, rev.Service, rev.Configuration, rev.Name, code),
		})
	}
	s := v.(*requestSeries)
	m.duration.Record(ctx, d.Seconds(), s.opt)
	if s.legacy != nil {
		s.legacy.count.Inc()
		s.legacy.latency.Observe(float64(d.Milliseconds()))
	}
}

// RevisionScale is the autoscaler's state of one revision, as Knative's autoscaler and KPA
// reconciler report it.
type RevisionScale struct {
	Revision
	// RPS says the revision scales on requests per second (else on concurrency).
	RPS bool
	// DesiredPods is the decider's desired scale; RequestedPods what the KPA asks the runtime
	// for (bounded by min/max-scale, scale to zero); ActualPods the ready instances.
	DesiredPods, RequestedPods, ActualPods int64
	ExcessBurstCapacity                    float64
	Panic                                  bool
	// Stable, PanicValue and Target are the scaling metric's stable and panic window averages
	// and its per-instance target.
	Stable, PanicValue, Target float64
}

// RegisterAutoscaler reports the gauges of every revision snapshot returns, each time
// metrics are collected: kn.revision.pods.desired, .requested, .count,
// kn.revision.capacity.excess, kn.revision.panic.mode and kn.revision.concurrency.* or
// kn.revision.rps.* (and the autoscaler_* gauges with Legacy). The returned function stops it.
func RegisterAutoscaler(t *Telemetry, snapshot func() []RevisionScale) (func(), error) {
	meter := t.MeterProvider().Meter(ScopeAutoscaler)
	var errs []error
	ig := func(name, desc, unit string) metric.Int64ObservableGauge {
		g, err := meter.Int64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return g
	}
	fg := func(name, desc, unit string) metric.Float64ObservableGauge {
		g, err := meter.Float64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return g
	}
	desired := ig(MetricPodsDesired, "Number of pods the autoscaler wants to allocate", "{item}")
	requested := ig(MetricPodsRequested, "Number of pods autoscaler requested from Kubernetes", "{pod}")
	actual := ig(MetricPodsCount, "Number of pods that are allocated currently", "{pod}")
	excess := fg(MetricCapacityExcess, "Excess burst capacity observed over the stable window", "{concurrency}")
	panicMode := ig(MetricPanicMode, "If greater than 0 the autoscaler is in panic mode", "")
	cStable := fg(MetricConcurrencyStable, "Average of request count per observed pod over the stable window", "{concurrency}")
	cPanic := fg(MetricConcurrencyPanic, "Average of request count per observed pod over the panic window", "{concurrency}")
	cTarget := fg(MetricConcurrencyTarget, "The desired concurrent requests for each pod", "{concurrency}")
	rStable := fg(MetricRPSStable, "Average of requests-per-second per observed pod over the stable window", "{request}/s")
	rPanic := fg(MetricRPSPanic, "Average of requests-per-second per observed pod over the panic window", "{request}/s")
	rTarget := fg(MetricRPSTarget, "The desired requests-per-second for each pod", "{request}/s")
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("telemetry: autoscaler gauges: %w", err)
		}
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, s := range snapshot() {
			opt := metric.WithAttributes(s.attrs()...)
			o.ObserveInt64(desired, s.DesiredPods, opt)
			o.ObserveInt64(requested, s.RequestedPods, opt)
			o.ObserveInt64(actual, s.ActualPods, opt)
			o.ObserveFloat64(excess, s.ExcessBurstCapacity, opt)
			p := int64(0)
			if s.Panic {
				p = 1
			}
			o.ObserveInt64(panicMode, p, opt)
			if s.RPS {
				o.ObserveFloat64(rStable, s.Stable, opt)
				o.ObserveFloat64(rPanic, s.PanicValue, opt)
				o.ObserveFloat64(rTarget, s.Target, opt)
			} else {
				o.ObserveFloat64(cStable, s.Stable, opt)
				o.ObserveFloat64(cPanic, s.PanicValue, opt)
				o.ObserveFloat64(cTarget, s.Target, opt)
			}
		}
		return nil
	}, desired, requested, actual, excess, panicMode, cStable, cPanic, cTarget, rStable, rPanic, rTarget)
	if err != nil {
		return nil, fmt.Errorf("telemetry: autoscaler gauges: %w", err)
	}
	stop := func() { _ = reg.Unregister() }
	if l := t.Legacy(); l != nil {
		c := &legacyAutoscaler{snapshot: snapshot}
		if err := l.reg.Register(c); err != nil {
			stop()
			return nil, fmt.Errorf("telemetry: legacy autoscaler gauges: %w", err)
		}
		stop = func() { _ = reg.Unregister(); l.reg.Unregister(c) }
	}
	return stop, nil
}

// legacyAutoscaler reports the autoscaler_* gauges from the same snapshot at each scrape.
type legacyAutoscaler struct {
	snapshot func() []RevisionScale
}

var legacyAutoscalerDescs = func() map[string]*prometheus.Desc {
	m := map[string]*prometheus.Desc{}
	for n, help := range map[string]string{
		"desired_pods":               "Number of pods autoscaler wants to allocate",
		"requested_pods":             "Number of pods autoscaler requested from Kubernetes",
		"actual_pods":                "Number of pods that are allocated currently",
		"excess_burst_capacity":      "Excess burst capacity overserved over the stable window",
		"panic_mode":                 "1 if autoscaler is in panic mode, 0 otherwise",
		"stable_request_concurrency": "Average of requests count per observed pod over the stable window",
		"panic_request_concurrency":  "Average of requests count per observed pod over the panic window",
		"target_concurrency_per_pod": "The desired number of concurrent requests for each pod",
		"stable_requests_per_second": "Average requests-per-second per observed pod over the stable window",
		"panic_requests_per_second":  "Average requests-per-second per observed pod over the panic window",
		"target_requests_per_second": "The desired requests-per-second for each pod",
	} {
		m[n] = prometheus.NewDesc("autoscaler_"+n, help, legacyRevisionLabels, nil)
	}
	return m
}()

func (c *legacyAutoscaler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range legacyAutoscalerDescs {
		ch <- d
	}
}

func (c *legacyAutoscaler) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.snapshot() {
		labels := []string{s.Namespace, s.Service, s.Configuration, s.Name}
		put := func(n string, v float64) {
			ch <- prometheus.MustNewConstMetric(legacyAutoscalerDescs[n], prometheus.GaugeValue, v, labels...)
		}
		put("desired_pods", float64(s.DesiredPods))
		put("requested_pods", float64(s.RequestedPods))
		put("actual_pods", float64(s.ActualPods))
		put("excess_burst_capacity", s.ExcessBurstCapacity)
		p := 0.0
		if s.Panic {
			p = 1
		}
		put("panic_mode", p)
		if s.RPS {
			put("stable_requests_per_second", s.Stable)
			put("panic_requests_per_second", s.PanicValue)
			put("target_requests_per_second", s.Target)
		} else {
			put("stable_request_concurrency", s.Stable)
			put("panic_request_concurrency", s.PanicValue)
			put("target_concurrency_per_pod", s.Target)
		}
	}
}

// ActivatorMetrics are what Knative's activator reports about the requests it holds:
// kn.revision.request.queued (held now) and kn.revision.request.active (released, not
// finished), by namespace and revision, and Skiff's skiff.activator.hold.duration. Safe for
// concurrent use.
type ActivatorMetrics struct {
	queued, active metric.Int64UpDownCounter
	hold           metric.Float64Histogram
	opts           sync.Map // cluster "ns/rev" → metric.MeasurementOption
}

// NewActivatorMetrics creates the activator instruments on t's providers.
func NewActivatorMetrics(t *Telemetry) (*ActivatorMetrics, error) {
	meter := t.MeterProvider().Meter(ScopeActivator)
	m := &ActivatorMetrics{}
	var err error
	if m.queued, err = meter.Int64UpDownCounter(MetricRequestQueued,
		metric.WithDescription("Number of requests currently queued in the activator waiting for capacity"),
		metric.WithUnit("{request}")); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricRequestQueued, err)
	}
	if m.active, err = meter.Int64UpDownCounter(MetricRequestActive,
		metric.WithDescription("Number of requests currently being proxied by the activator"),
		metric.WithUnit("{request}")); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricRequestActive, err)
	}
	if m.hold, err = meter.Float64Histogram(MetricHoldDuration,
		metric.WithDescription("How long the activator held a request before releasing or failing it"),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBounds...)); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricHoldDuration, err)
	}
	return m, nil
}

func (m *ActivatorMetrics) opt(namespace, revision string) metric.MeasurementOption {
	k := namespace + "/" + revision
	if v, ok := m.opts.Load(k); ok {
		return v.(metric.MeasurementOption)
	}
	v, _ := m.opts.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(KeyNamespace.String(namespace), KeyRevision.String(revision))))
	return v.(metric.MeasurementOption)
}

// Queued adds delta to the revision's held requests.
func (m *ActivatorMetrics) Queued(ctx context.Context, namespace, revision string, delta int64) {
	if m == nil {
		return
	}
	m.queued.Add(ctx, delta, m.opt(namespace, revision))
}

// Active adds delta to the revision's released requests still in flight.
func (m *ActivatorMetrics) Active(ctx context.Context, namespace, revision string, delta int64) {
	if m == nil {
		return
	}
	m.active.Add(ctx, delta, m.opt(namespace, revision))
}

// Held records how long a request was held and how that ended (released, timeout, ...).
func (m *ActivatorMetrics) Held(ctx context.Context, namespace, revision, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.hold.Record(ctx, d.Seconds(), metric.WithAttributes(KeyNamespace.String(namespace), KeyRevision.String(revision),
		KeyActivationOutcome.String(outcome)))
}
