package telemetry

import (
	"strings"
	"testing"
	"time"
)

// From knative.dev/pkg observability/metrics/config_test.go TestNewFromMap,
// observability/tracing/config_test.go TestNewFromMap and serving
// pkg/observability/config_test.go TestNewFromMap: no data is Knative's defaults.
func TestApplyNothingIsDefaults(t *testing.T) {
	c := DefaultConfig()
	if err := c.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if c != DefaultConfig() {
		t.Fatalf("got %+v, want the defaults", c)
	}
	if c.Metrics.Protocol != ProtocolNone || c.Tracing.Protocol != ProtocolNone || c.EnableRequestLog {
		t.Fatalf("defaults export or log: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
}

// The cases of knative.dev/pkg's metrics and tracing TestNewFromMapBadInput and serving's
// pkg/observability TestNewFromMapBadInput, plus Skiff's refusal of unknown keys; each
// error names the key at fault.
func TestApplyBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		data map[string]string
		key  string
	}{
		{"metrics: unexpected endpoint set", map[string]string{"metrics-endpoint": "https://blah.example.com"}, "metrics-endpoint"},
		{"metrics: missing endpoint", map[string]string{"metrics-protocol": "grpc"}, "metrics-endpoint"},
		{"metrics: unsupported protocol", map[string]string{"metrics-protocol": "bad-protocol"}, "metrics-protocol"},
		{"metrics: negative export interval", map[string]string{"metrics-export-interval": "-1s"}, "metrics-export-interval"},
		{"metrics: export interval not a duration", map[string]string{"metrics-export-interval": "bad-interval"}, "metrics-export-interval"},
		{"request metrics: missing endpoint", map[string]string{"request-metrics-protocol": "http/protobuf"}, "request-metrics-endpoint"},
		{"prometheus endpoint not host:port", map[string]string{"metrics-protocol": "prometheus", "metrics-endpoint": "9090"}, "metrics-endpoint"},
		{"tracing: unexpected endpoint set", map[string]string{"tracing-endpoint": "https://blah.example.com"}, "tracing-endpoint"},
		{"tracing: missing endpoint", map[string]string{"tracing-protocol": "grpc"}, "tracing-endpoint"},
		{"tracing: unsupported protocol", map[string]string{"tracing-protocol": "bad-protocol"}, "tracing-protocol"},
		{"tracing: sampling rate below zero", map[string]string{"tracing-sampling-rate": "-1"}, "tracing-sampling-rate"},
		{"tracing: sampling rate above one", map[string]string{"tracing-sampling-rate": "1.1"}, "tracing-sampling-rate"},
		{"tracing: sampling rate not a float", map[string]string{"tracing-sampling-rate": "bad-rate"}, "tracing-sampling-rate"},
		{"request log template is not set", map[string]string{RequestLogTemplateKey: "", EnableRequestLogKey: "true"}, RequestLogTemplateKey},
		{"bad request template", map[string]string{EnableRequestLogKey: "true", RequestLogTemplateKey: "{{}/* a comment */}}"}, RequestLogTemplateKey},
		{"runtime profiling", map[string]string{"runtime-profiling": "sometimes"}, "runtime-profiling"},
		{"unknown key", map[string]string{"metrics-protocoll": "grpc"}, "metrics-protocoll"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			err := c.Apply(tc.data)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("error %q does not name %s", err, tc.key)
			}
			if c != DefaultConfig() {
				t.Fatalf("a refused ConfigMap changed the settings: %+v", c)
			}
		})
	}
}

// From knative.dev/pkg observability/metrics/config_test.go TestNewFromMapWithPrefix and
// tracing's TestNewFromMapWithPrefix, with Serving's and Eventing's keys beside them.
func TestApplyEveryKey(t *testing.T) {
	c := DefaultConfig()
	err := c.Apply(map[string]string{
		"_example":                          "ignored",
		"metrics-protocol":                  "grpc",
		"metrics-endpoint":                  "https://blah.example.com",
		"metrics-export-interval":           "15s",
		"request-metrics-protocol":          "prometheus",
		"request-metrics-endpoint":          "0.0.0.0:9091",
		"tracing-protocol":                  "http/protobuf",
		"tracing-endpoint":                  "http://jaeger-collector.observability:4318/v1/traces",
		"tracing-sampling-rate":             "0.8",
		"runtime-profiling":                 "enabled",
		"runtime-export-interval":           "20s",
		"logging.enable-request-log":        "true",
		"logging.enable-probe-request-log":  "true",
		"logging.enable-var-log-collection": "false",
		"logging.revision-url-template":     "http://logging.example.com/?revisionUID=${REVISION_UID}",
		"sink-event-error-reporting.enable": "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Metrics = MetricsConfig{Protocol: ProtocolGRPC, Endpoint: "https://blah.example.com", ExportInterval: 15 * time.Second}
	want.RequestMetrics = MetricsConfig{Protocol: ProtocolPrometheus, Endpoint: "0.0.0.0:9091"}
	want.Tracing = TracingConfig{Protocol: ProtocolHTTPProtobuf, Endpoint: "http://jaeger-collector.observability:4318/v1/traces", SamplingRate: 0.8, SamplingRateSet: true}
	want.RuntimeProfiling, want.RuntimeExportInterval = "enabled", 20*time.Second
	want.EnableRequestLog, want.EnableProbeRequestLog, want.SinkEventErrorReporting = true, true, true
	want.LoggingURLTemplate = "http://logging.example.com/?revisionUID=${REVISION_UID}"
	if c != want {
		t.Fatalf("got\n%+v\nwant\n%+v", c, want)
	}
}
