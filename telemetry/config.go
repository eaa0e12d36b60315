package telemetry

import (
	"fmt"
	"net"
	"strconv"
	"text/template"
	"time"

	"github.com/skiff-dev/skiff/api/configmap"
)

// ConfigName is the name of Knative's ConfigMap holding the observability settings, in
// knative-serving and knative-eventing alike; Skiff reads one from any namespace.
const ConfigName = "config-observability"

// Protocols of config-observability's metrics-protocol and tracing-protocol
// (knative.dev/pkg/observability/metrics and .../tracing).
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
	ProtocolPrometheus   = "prometheus"
	ProtocolNone         = "none"
	ProtocolStdout       = "stdout"
)

// Keys of config-observability that Knative Serving adds to knative.dev/pkg's
// (pkg/observability/config.go).
const (
	RequestLogTemplateKey    = "logging.request-log-template"
	EnableRequestLogKey      = "logging.enable-request-log"
	EnableProbeRequestLogKey = "logging.enable-probe-request-log"
	SamplingRateKey          = "tracing-sampling-rate"
)

// DefaultRequestLogTemplate is Knative Serving's default logging.request-log-template.
const DefaultRequestLogTemplate = `{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": "{{js .Request.RequestURI}}", "requestSize": "{{.Request.ContentLength}}", "status": {{.Response.Code}}, "responseSize": "{{.Response.Size}}", "userAgent": "{{js .Request.UserAgent}}", "remoteIp": "{{js .Request.RemoteAddr}}", "serverIp": "{{.Revision.PodIP}}", "referer": "{{js .Request.Referer}}", "latency": "{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "traceId": "{{.TraceID}}"}`

// MetricsConfig is one metrics export of config-observability
// (knative.dev/pkg/observability/metrics.Config).
type MetricsConfig struct {
	// Protocol is none, prometheus, grpc or http/protobuf.
	Protocol string
	// Endpoint is the OTLP endpoint (grpc, http/protobuf), or host:port the Prometheus
	// scrape endpoint listens on (prometheus, optional).
	Endpoint string
	// ExportInterval is how often OTLP exports; 0 is OpenTelemetry's default (60s).
	ExportInterval time.Duration
}

func (c MetricsConfig) validate(prefix string) error {
	switch c.Protocol {
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		if c.Endpoint == "" {
			return fmt.Errorf("%smetrics-endpoint: should be set when %smetrics-protocol is %q", prefix, prefix, c.Protocol)
		}
	case ProtocolNone:
		if c.Endpoint != "" {
			return fmt.Errorf("%smetrics-endpoint: should not be set when %smetrics-protocol is %q", prefix, prefix, c.Protocol)
		}
	case ProtocolPrometheus:
		if c.Endpoint != "" {
			if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
				return fmt.Errorf("%smetrics-endpoint: %q for the prometheus exporter should be \"host:port\"", prefix, c.Endpoint)
			}
		}
	default:
		return fmt.Errorf("%smetrics-protocol: unsupported protocol %q (want none, prometheus, grpc or http/protobuf)", prefix, c.Protocol)
	}
	if c.ExportInterval < 0 {
		return fmt.Errorf("%smetrics-export-interval: %s should be greater than zero", prefix, c.ExportInterval)
	}
	return nil
}

// TracingConfig is config-observability's trace export
// (knative.dev/pkg/observability/tracing.Config).
type TracingConfig struct {
	// Protocol is none, grpc, http/protobuf or stdout.
	Protocol string
	// Endpoint is the OTLP endpoint.
	Endpoint string
	// SamplingRate is the fraction of new traces sampled, 0 to 1.
	SamplingRate float64
	// SamplingRateSet says tracing-sampling-rate was given (Knative's default, when it is
	// not, is 0: nothing sampled).
	SamplingRateSet bool
}

func (c TracingConfig) validate() error {
	switch c.Protocol {
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		if c.Endpoint == "" {
			return fmt.Errorf("tracing-endpoint: should be set for tracing-protocol %q", c.Protocol)
		}
	case ProtocolNone, ProtocolStdout:
		if c.Endpoint != "" {
			return fmt.Errorf("tracing-endpoint: should not be set when tracing-protocol is %q", c.Protocol)
		}
	default:
		return fmt.Errorf("tracing-protocol: unsupported protocol %q (want none, grpc, http/protobuf or stdout)", c.Protocol)
	}
	if c.SamplingRate < 0 {
		return fmt.Errorf("%s: %g should be greater or equal to zero", SamplingRateKey, c.SamplingRate)
	}
	if c.SamplingRate > 1 {
		return fmt.Errorf("%s: %g should be less than or equal to one", SamplingRateKey, c.SamplingRate)
	}
	return nil
}

// Config is Knative's config-observability: knative.dev/pkg's metrics, tracing and runtime
// keys, Serving's request-metrics and logging keys, Eventing's sink error reporting.
type Config struct {
	Metrics MetricsConfig
	// RequestMetrics is Serving's request-metrics-* (queue-proxy's export). Skiff has no
	// queue-proxy: request metrics come from the proxy and go out with Metrics; these keys
	// are checked as Knative checks them and otherwise unused.
	RequestMetrics MetricsConfig
	Tracing        TracingConfig
	// RuntimeProfiling is runtime-profiling: enabled or disabled (Skiff serves no pprof).
	RuntimeProfiling string
	// RuntimeExportInterval is runtime-export-interval.
	RuntimeExportInterval time.Duration
	// EnableRequestLog turns on per-revision request logs (logging.enable-request-log).
	EnableRequestLog bool
	// RequestLogTemplate is logging.request-log-template, parsed as Knative does; Skiff's
	// proxy writes Envoy's access log format instead.
	RequestLogTemplate string
	// EnableProbeRequestLog is logging.enable-probe-request-log.
	EnableProbeRequestLog bool
	// EnableVarLogCollection and LoggingURLTemplate are Serving's logging keys Skiff has no
	// use for.
	EnableVarLogCollection bool
	LoggingURLTemplate     string
	// SinkEventErrorReporting is Eventing's sink-event-error-reporting.enable.
	SinkEventErrorReporting bool
}

// DefaultConfig is config-observability with every key at Knative's default: nothing
// exported, request logs off.
func DefaultConfig() Config {
	return Config{
		Metrics:               MetricsConfig{Protocol: ProtocolNone},
		RequestMetrics:        MetricsConfig{Protocol: ProtocolNone},
		Tracing:               TracingConfig{Protocol: ProtocolNone},
		RuntimeProfiling:      "disabled",
		RuntimeExportInterval: 15 * time.Second,
		RequestLogTemplate:    DefaultRequestLogTemplate,
	}
}

// Apply reads config-observability's data over c, naming the key at fault when a value is
// wrong or a key is unknown, with Knative's rules (knative.dev/pkg/observability and
// knative.dev/serving/pkg/observability).
func (c *Config) Apply(data map[string]string) error {
	n := *c
	metrics := func(prefix string, m *MetricsConfig) []configmap.Parser {
		return []configmap.Parser{
			configmap.String(prefix+"metrics-protocol", &m.Protocol),
			configmap.String(prefix+"metrics-endpoint", &m.Endpoint),
			configmap.Duration(prefix+"metrics-export-interval", &m.ExportInterval),
		}
	}
	parsers := append(metrics("", &n.Metrics), metrics("request-", &n.RequestMetrics)...)
	parsers = append(parsers,
		configmap.String("tracing-protocol", &n.Tracing.Protocol),
		configmap.String("tracing-endpoint", &n.Tracing.Endpoint),
		configmap.Custom(SamplingRateKey, func(raw string) error {
			v, err := strconv.ParseFloat(raw, 64)
			if err != nil {
				return fmt.Errorf("not a number")
			}
			n.Tracing.SamplingRate, n.Tracing.SamplingRateSet = v, true
			return nil
		}),
		configmap.Custom("runtime-profiling", func(raw string) error {
			if raw != "enabled" && raw != "disabled" {
				return fmt.Errorf("unsupported profile setting (want enabled or disabled)")
			}
			n.RuntimeProfiling = raw
			return nil
		}),
		configmap.Duration("runtime-export-interval", &n.RuntimeExportInterval),
		configmap.String(RequestLogTemplateKey, &n.RequestLogTemplate),
		configmap.Bool(EnableRequestLogKey, &n.EnableRequestLog),
		configmap.Bool(EnableProbeRequestLogKey, &n.EnableProbeRequestLog),
		configmap.Bool("logging.enable-var-log-collection", &n.EnableVarLogCollection),
		configmap.String("logging.revision-url-template", &n.LoggingURLTemplate),
		configmap.Bool("sink-event-error-reporting.enable", &n.SinkEventErrorReporting),
	)
	if err := configmap.Parse(ConfigName, data, parsers...); err != nil {
		return err
	}
	if err := n.Validate(); err != nil {
		return fmt.Errorf("%s: %w", ConfigName, err)
	}
	*c = n
	return nil
}

// Validate checks the settings together, with Knative's rules.
func (c *Config) Validate() error {
	if err := c.Metrics.validate(""); err != nil {
		return err
	}
	if err := c.RequestMetrics.validate("request-"); err != nil {
		return err
	}
	if err := c.Tracing.validate(); err != nil {
		return err
	}
	if c.RuntimeExportInterval < 0 {
		return fmt.Errorf("runtime-export-interval: %s should be greater than zero", c.RuntimeExportInterval)
	}
	if c.RequestLogTemplate == "" && c.EnableRequestLog {
		return fmt.Errorf("%q was set to true, but no %q was specified", EnableRequestLogKey, RequestLogTemplateKey)
	}
	if c.RequestLogTemplate != "" {
		if _, err := template.New("requestLog").Parse(c.RequestLogTemplate); err != nil {
			return fmt.Errorf("%s: %w", RequestLogTemplateKey, err)
		}
	}
	return nil
}
