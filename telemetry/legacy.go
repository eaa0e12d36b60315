package telemetry

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Legacy is the OpenCensus-era Prometheus metrics of Knative before knative-v1.19, which
// older dashboards still query (revision_request_count, autoscaler_desired_pods,
// mt_broker_ingress_event_count, ...). They are Prometheus-only (OpenCensus exported them
// with these names; OTLP carries the current names), registered on the same scrape
// endpoint. A nil *Legacy records nothing.
type Legacy struct {
	reg prometheus.Registerer

	once sync.Once

	requestCount     *prometheus.CounterVec
	requestLatencies *prometheus.HistogramVec

	ingressCount, filterCount       *prometheus.CounterVec
	ingressDispatch, filterDispatch *prometheus.HistogramVec
	filterProcessing                *prometheus.HistogramVec
}

// legacyLatencyMS are the OpenCensus-era latency buckets, in milliseconds
// (serving pkg/queue/request_metric.go before the move to OpenTelemetry).
var legacyLatencyMS = []float64{5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600,
	700, 800, 900, 1000, 2000, 5000, 10000, 20000, 50000, 100000}

// legacyEventLatencyMS are eventing's OpenCensus-era buckets (exponential, 1ms to 10s).
var legacyEventLatencyMS = prometheus.ExponentialBuckets(1, 2, 15)

var (
	legacyRevisionLabels = []string{"namespace_name", "service_name", "configuration_name", "revision_name"}
	legacyRequestLabels  = append(append([]string{}, legacyRevisionLabels...), "response_code", "response_code_class")
	legacyIngressLabels  = []string{"namespace_name", "broker_name", "event_type", "response_code", "response_code_class"}
	legacyFilterLabels   = []string{"namespace_name", "broker_name", "trigger_name", "filter_type", "response_code", "response_code_class"}
)

func newLegacy(reg prometheus.Registerer) *Legacy {
	return &Legacy{reg: reg}
}

func (l *Legacy) init() {
	l.once.Do(func() {
		l.requestCount = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "revision_request_count", Help: "The number of requests that are routed to the revision",
		}, legacyRequestLabels)
		l.requestLatencies = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "revision_request_latencies", Help: "The response time in millisecond", Buckets: legacyLatencyMS,
		}, legacyRequestLabels)
		l.ingressCount = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mt_broker_ingress_event_count", Help: "Number of events received by a Broker",
		}, legacyIngressLabels)
		l.ingressDispatch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mt_broker_ingress_event_dispatch_latencies", Help: "The time spent dispatching an event to a Channel",
			Buckets: legacyEventLatencyMS,
		}, legacyIngressLabels)
		l.filterCount = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mt_broker_filter_event_count", Help: "Number of events received by a Trigger",
		}, legacyFilterLabels)
		l.filterDispatch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mt_broker_filter_event_dispatch_latencies", Help: "The time spent dispatching an event to a Trigger subscriber",
			Buckets: legacyEventLatencyMS,
		}, legacyFilterLabels)
		l.filterProcessing = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mt_broker_filter_event_processing_latencies", Help: "The time spent processing an event before it is dispatched to a Trigger subscriber",
			Buckets: legacyEventLatencyMS,
		}, legacyFilterLabels[:4])
		for _, c := range []prometheus.Collector{l.requestCount, l.requestLatencies, l.ingressCount, l.ingressDispatch,
			l.filterCount, l.filterDispatch, l.filterProcessing} {
			l.reg.MustRegister(c)
		}
	})
}

// codeClass is Knative's response_code_class: "2xx" for 200 to 299 and so on.
func codeClass(code int) string {
	return strconv.Itoa(code/100) + "xx"
}

// legacyRequest is one revision's request counter and latency histogram for one code.
type legacyRequest struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

func (l *Legacy) request(ns, svc, cfg, rev string, code int) *legacyRequest {
	if l == nil {
		return nil
	}
	l.init()
	labels := []string{ns, svc, cfg, rev, strconv.Itoa(code), codeClass(code)}
	return &legacyRequest{count: l.requestCount.WithLabelValues(labels...), latency: l.requestLatencies.WithLabelValues(labels...)}
}

// forgetRevision drops a revision's request series.
func (l *Legacy) forgetRevision(ns, svc, cfg, rev string) {
	if l == nil {
		return
	}
	l.init()
	match := prometheus.Labels{"namespace_name": ns, "service_name": svc, "configuration_name": cfg, "revision_name": rev}
	l.requestCount.DeletePartialMatch(match)
	l.requestLatencies.DeletePartialMatch(match)
}
