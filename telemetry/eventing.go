package telemetry

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// EventingMetrics are the broker's metrics, as Knative's broker ingress and filter report
// them: kn.eventing.dispatch.duration (ingress: storing an event; trigger: one delivery
// attempt to the subscriber) and kn.eventing.process.duration (trigger: from the ingress
// accepting the event to the attempt), plus the mt_broker_* OpenCensus-era metrics with
// Legacy. Safe for concurrent use; a nil *EventingMetrics records nothing.
type EventingMetrics struct {
	ingressDispatch, filterDispatch, filterProcess metric.Float64Histogram
	legacy                                         *Legacy
	// sets caches each attribute set recorded (a set hashes its attributes when made, the
	// larger part of a recording's cost), up to maxCachedAttributeSets of them: one per
	// broker, trigger, event type and status code seen, as many as the SDK keeps series.
	sets  sync.Map // attrKey -> metric.MeasurementOption
	nsets atomic.Int64
}

// maxCachedAttributeSets bounds EventingMetrics.sets; past it, sets are made per recording.
const maxCachedAttributeSets = 4096

// attrKey names one attribute set of EventingMetrics.
type attrKey struct {
	instrument                                 uint8
	namespace, broker, trigger, eventType, str string
	code                                       int
}

// Instruments of attrKey.
const (
	attrIngress uint8 = iota
	attrAttempt
	attrProcessed
)

// attributes is the recording option carrying the set k names, made by build when it is
// not cached.
func (m *EventingMetrics) attributes(k attrKey, build func() []attribute.KeyValue) metric.MeasurementOption {
	if o, ok := m.sets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(build()...))
	if m.nsets.Load() < maxCachedAttributeSets {
		if _, loaded := m.sets.LoadOrStore(k, o); !loaded {
			m.nsets.Add(1)
		}
	}
	return o
}

// NewEventingMetrics creates the broker instruments on t's providers.
func NewEventingMetrics(t *Telemetry) (*EventingMetrics, error) {
	mp := t.MeterProvider()
	m := &EventingMetrics{legacy: t.Legacy()}
	var err error
	if m.ingressDispatch, err = mp.Meter(ScopeIngress).Float64Histogram(MetricDispatchDuration,
		metric.WithDescription("The duration to dispatch the event"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(latencyBounds...)); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricDispatchDuration, err)
	}
	filter := mp.Meter(ScopeFilter)
	if m.filterDispatch, err = filter.Float64Histogram(MetricDispatchDuration,
		metric.WithDescription("The duration to dispatch the event"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(latencyBounds...)); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricDispatchDuration, err)
	}
	if m.filterProcess, err = filter.Float64Histogram(MetricProcessDuration,
		metric.WithDescription("The duration of processing an event before dispatching it"), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(latencyBounds...)); err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", MetricProcessDuration, err)
	}
	return m, nil
}

// Ingress records an event the ingress stored (or failed to) for broker namespace/name,
// answered code after d.
func (m *EventingMetrics) Ingress(ctx context.Context, namespace, broker, eventType, scheme string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.ingressDispatch.Record(ctx, d.Seconds(), m.attributes(attrKey{attrIngress, namespace, broker, "", eventType, scheme, code}, func() []attribute.KeyValue {
		return []attribute.KeyValue{KeyURLScheme.String(scheme), KeyBrokerName.String(broker), KeyBrokerNamespace.String(namespace),
			KeyEventType.String(eventType), KeyHTTPStatus.Int(code)}
	}))
	if l := m.legacy; l != nil {
		l.init()
		labels := []string{namespace, broker, eventType, strconv.Itoa(code), codeClass(code)}
		l.ingressCount.WithLabelValues(labels...).Inc()
		l.ingressDispatch.WithLabelValues(labels...).Observe(float64(d.Milliseconds()))
	}
}

// TriggerAttempt records one delivery attempt of a trigger's event to its subscriber (or
// dead letter sink) that got code (0 when the request failed) after d. filterType is the
// trigger's type filter, "" when it has none (legacy filter_type "any").
func (m *EventingMetrics) TriggerAttempt(ctx context.Context, namespace, broker, trigger, eventType, filterType string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.filterDispatch.Record(ctx, d.Seconds(), m.attributes(attrKey{attrAttempt, namespace, broker, trigger, eventType, "", code}, func() []attribute.KeyValue {
		return m.triggerAttrs(namespace, broker, trigger, eventType, KeyHTTPStatus.Int(code))
	}))
	if l := m.legacy; l != nil {
		l.init()
		if filterType == "" {
			filterType = "any"
		}
		labels := []string{namespace, broker, trigger, filterType, strconv.Itoa(code), codeClass(code)}
		l.filterCount.WithLabelValues(labels...).Inc()
		l.filterDispatch.WithLabelValues(labels...).Observe(float64(d.Milliseconds()))
	}
}

// TriggerProcessed records the time from the ingress accepting an event to the start of
// a delivery attempt to the trigger's subscriber.
func (m *EventingMetrics) TriggerProcessed(ctx context.Context, namespace, broker, trigger, eventType, filterType string, d time.Duration) {
	if m == nil {
		return
	}
	m.filterProcess.Record(ctx, d.Seconds(), m.attributes(attrKey{attrProcessed, namespace, broker, trigger, eventType, "", 0}, func() []attribute.KeyValue {
		return m.triggerAttrs(namespace, broker, trigger, eventType)
	}))
	if l := m.legacy; l != nil {
		l.init()
		if filterType == "" {
			filterType = "any"
		}
		l.filterProcessing.WithLabelValues(namespace, broker, trigger, filterType).Observe(float64(d.Milliseconds()))
	}
}

func (m *EventingMetrics) triggerAttrs(namespace, broker, trigger, eventType string, more ...attribute.KeyValue) []attribute.KeyValue {
	return append([]attribute.KeyValue{
		KeyURLScheme.String("http"),
		KeyMessagingDest.String(TriggerDestination(namespace, trigger)),
		KeyMessagingOp.String("send"),
		KeyMessagingSystem.String(MessagingSystem),
		KeyEventType.String(eventType),
		KeyBrokerName.String(broker), KeyBrokerNamespace.String(namespace),
	}, more...)
}
