package telemetry

import "go.opentelemetry.io/otel/attribute"

// Attribute keys, as Knative names them (knative.dev/serving/pkg/metrics/key.go,
// knative.dev/eventing/pkg/observability/key.go, OpenTelemetry's semantic conventions).
const (
	KeyNamespace         = attribute.Key("k8s.namespace.name")
	KeyService           = attribute.Key("kn.service.name")
	KeyConfiguration     = attribute.Key("kn.configuration.name")
	KeyRevision          = attribute.Key("kn.revision.name")
	KeyRouteTag          = attribute.Key("kn.route.tag")
	KeyBrokerName        = attribute.Key("kn.broker.name")
	KeyBrokerNamespace   = attribute.Key("kn.broker.namespace")
	KeyEventType         = attribute.Key("cloudevents.type")
	KeyEventSource       = attribute.Key("cloudevents.source")
	KeyEventID           = attribute.Key("cloudevents.id")
	KeyEventSpecVersion  = attribute.Key("cloudevents.specversion")
	KeyMessagingSystem   = attribute.Key("messaging.system")
	KeyMessagingOp       = attribute.Key("messaging.operation.name")
	KeyMessagingDest     = attribute.Key("messaging.destination.name")
	KeyHTTPMethod        = attribute.Key("http.request.method")
	KeyHTTPStatus        = attribute.Key("http.response.status_code")
	KeyURLScheme         = attribute.Key("url.scheme")
	KeyProtocolVersion   = attribute.Key("network.protocol.version")
	KeyWorkqueueName     = attribute.Key("name")
	KeyXDSNode           = attribute.Key("skiff.xds.node")
	KeyXDSType           = attribute.Key("skiff.xds.type")
	KeyXDSResult         = attribute.Key("skiff.xds.result")
	KeyActivationOutcome = attribute.Key("skiff.activation.outcome")
)

// MessagingSystem is the messaging.system of Knative's eventing spans and metrics.
const MessagingSystem = "knative"

// Instrumentation scopes: Knative's, so a query filtering on otel_scope_name finds the same
// metrics (Skiff's own metrics use ScopeSkiff).
const (
	ScopeActivator  = "knative.dev/serving/pkg/activator"
	ScopeAutoscaler = "knative.dev/serving/pkg/autoscaler"
	ScopeIngress    = "knative.dev/eventing/pkg/broker/ingress"
	ScopeFilter     = "knative.dev/eventing/pkg/broker/filter"
	ScopeWorkqueue  = "knative.dev/pkg/observability/metrics/k8s"
	ScopeSkiff      = "github.com/skiff-dev/skiff"
)

// Metric names. Knative's (OpenTelemetry, knative-v1.19 and later) unless the comment says
// it is Skiff's own; see README.md for the Prometheus names and the OpenCensus-era names they
// replace.
const (
	// MetricRequestDuration is what Knative's activator and queue-proxy record through
	// otelhttp (semantic conventions' HTTP server duration), per revision.
	MetricRequestDuration = "http.server.request.duration"

	MetricPodsDesired       = "kn.revision.pods.desired"
	MetricPodsRequested     = "kn.revision.pods.requested"
	MetricPodsCount         = "kn.revision.pods.count"
	MetricCapacityExcess    = "kn.revision.capacity.excess"
	MetricPanicMode         = "kn.revision.panic.mode"
	MetricConcurrencyStable = "kn.revision.concurrency.stable"
	MetricConcurrencyPanic  = "kn.revision.concurrency.panic"
	MetricConcurrencyTarget = "kn.revision.concurrency.target"
	MetricRPSStable         = "kn.revision.rps.stable"
	MetricRPSPanic          = "kn.revision.rps.panic"
	MetricRPSTarget         = "kn.revision.rps.target"

	MetricRequestQueued = "kn.revision.request.queued"
	MetricRequestActive = "kn.revision.request.active"
	// MetricHoldDuration is Skiff's: how long the activator held a request (Knative has no
	// such metric; its throttler_try span measures the same wait).
	MetricHoldDuration = "skiff.activator.hold.duration"

	MetricDispatchDuration = "kn.eventing.dispatch.duration"
	MetricProcessDuration  = "kn.eventing.process.duration"

	MetricWorkqueueDepth   = "kn.workqueue.depth"
	MetricWorkqueueAdds    = "kn.workqueue.adds"
	MetricWorkqueueLatency = "kn.workqueue.queue.duration"
	MetricWorkqueueWork    = "kn.workqueue.process.duration"
	MetricWorkqueueUnfin   = "kn.workqueue.unfinished_work"
	MetricWorkqueueLongest = "kn.workqueue.longest_running_processor"
	MetricWorkqueueRetries = "kn.workqueue.retries"

	// MetricXDSPush and MetricXDSNACKs are Skiff's: how long a proxy took to ACK (or NACK)
	// a response, and the responses it rejected, per node and resource type.
	MetricXDSPush  = "skiff.xds.push.duration"
	MetricXDSNACKs = "skiff.xds.nacks"
)

// Span names, as Knative's components name theirs.
const (
	// SpanHold is the activator's wait for capacity (Knative's activator "throttler_try").
	SpanHold = "throttler_try"
)

// latencyBounds are Knative's histogram bounds in seconds (the queue-proxy's, the broker's,
// the work queue's, and the semantic conventions' advice for http.server.request.duration).
var latencyBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// BrokerDestination is the messaging.destination.name of a broker: Knative's
// "broker:<name>.<namespace>" (eventing pkg/tracing BrokerMessagingDestination).
func BrokerDestination(namespace, name string) string { return "broker:" + name + "." + namespace }

// TriggerDestination is the messaging.destination.name of a trigger: Knative's
// "trigger:<name>.<namespace>".
func TriggerDestination(namespace, name string) string { return "trigger:" + name + "." + namespace }
