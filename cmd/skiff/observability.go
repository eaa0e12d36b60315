package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/telemetry"
)

// DefaultMetricsAddr is where `skiff up` serves its Prometheus scrape endpoint: the
// OpenTelemetry Prometheus exporter's usual port, on loopback.
const DefaultMetricsAddr = "127.0.0.1:9464"

// addObservabilityFlags adds the metrics and tracing flags; metricsAddr is --metrics-addr's
// default.
func addObservabilityFlags(f *pflag.FlagSet, metricsAddr string) {
	f.String("metrics-addr", metricsAddr, "address of the Prometheus scrape endpoint (/metrics, cleartext); empty: none (skiff controller serves /metrics on --http-addr as well)")
	f.String("otlp-endpoint", "", "OpenTelemetry collector to export metrics and traces to over OTLP: host:port or a base URL (as OTEL_EXPORTER_OTLP_ENDPOINT, which is read when this is empty, as the other OTEL_EXPORTER_OTLP_* variables are)")
	f.String("otlp-protocol", "", "OTLP protocol of --otlp-endpoint: grpc or http/protobuf (default: $OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)")
	f.Float64("trace-sampling-rate", 1, "fraction of new traces sampled, 0 to 1, unless config-observability sets tracing-sampling-rate")
	f.Bool("metrics-legacy-names", true, "also serve Knative's OpenCensus-era Prometheus metrics (revision_request_count, autoscaler_desired_pods, mt_broker_ingress_event_count, ...) beside the current OpenTelemetry names")
	f.StringArray("config-observability", nil, "a config-observability setting as KEY=VALUE, e.g. tracing-sampling-rate=0.1 (repeatable; over the ConfigMap's)")
}

// observabilityConfig reads config-observability: the ConfigMaps named so among docs (any
// namespace; later ones win key by key), then --config-observability.
func observabilityConfig(f *pflag.FlagSet, docs []apiclient.Document) (telemetry.Config, error) {
	cfg := telemetry.DefaultConfig()
	for _, d := range docs {
		data, ok, err := observabilityData(d.Data)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", d.Source, err)
		}
		if !ok {
			continue
		}
		if err := cfg.Apply(data); err != nil {
			return cfg, fmt.Errorf("%s: %w", d.Source, err)
		}
	}
	kvs, _ := f.GetStringArray("config-observability")
	data := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return cfg, fmt.Errorf("--config-observability %q: want KEY=VALUE", kv)
		}
		data[strings.TrimSpace(k)] = v
	}
	if len(data) > 0 {
		if err := cfg.Apply(data); err != nil {
			return cfg, fmt.Errorf("--config-observability: %w", err)
		}
	}
	return cfg, nil
}

// observabilityData is the data of a config-observability ConfigMap document.
func observabilityData(doc []byte) (map[string]string, bool, error) {
	var cm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(doc, &cm); err != nil {
		return nil, false, nil
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Metadata.Name != telemetry.ConfigName {
		return nil, false, nil
	}
	return cm.Data, true, nil
}

// isObservabilityDoc reports whether doc is a config-observability ConfigMap.
func isObservabilityDoc(doc []byte) bool {
	_, ok, _ := observabilityData(doc)
	return ok
}

// setupTelemetry builds the process's telemetry from the flags and config-observability;
// prometheus makes the scrape endpoint.
func setupTelemetry(ctx context.Context, f *pflag.FlagSet, service string, cfg telemetry.Config, prometheus bool) (*telemetry.Telemetry, error) {
	endpoint, _ := f.GetString("otlp-endpoint")
	protocol, _ := f.GetString("otlp-protocol")
	rate, _ := f.GetFloat64("trace-sampling-rate")
	if rate < 0 || rate > 1 {
		return nil, fmt.Errorf("--trace-sampling-rate %g: must be between 0 and 1", rate)
	}
	legacy, _ := f.GetBool("metrics-legacy-names")
	t, err := telemetry.Setup(ctx, telemetry.Options{
		ServiceName: service, Config: cfg, Prometheus: prometheus, LegacyNames: legacy,
		OTLPEndpoint: endpoint, OTLPProtocol: protocol, SamplingRate: rate,
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// metricsAddr is where the scrape endpoint listens: --metrics-addr when given, else
// config-observability's metrics-endpoint with metrics-protocol prometheus, else the flag's
// default. explicit says it was asked for (not the default).
func metricsAddr(f *pflag.FlagSet, t *telemetry.Telemetry) (addr string, explicit bool) {
	addr, _ = f.GetString("metrics-addr")
	if f.Changed("metrics-addr") {
		return addr, true
	}
	if ep := t.PrometheusEndpoint(); ep != "" {
		return ep, true
	}
	return addr, false
}

// serveMetrics serves t's scrape endpoint at /metrics on addr until ctx ends; it returns
// the bound address, or nil when addr is empty. An address that was asked for and cannot be
// bound is an error; the default one (another skiff up may hold it) is logged and skipped.
func serveMetrics(ctx context.Context, addr string, explicit bool, t *telemetry.Telemetry, log *slog.Logger) (net.Addr, error) {
	h := t.MetricsHandler()
	if addr == "" || h == nil {
		return nil, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil && !explicit {
		log.Warn("no Prometheus scrape endpoint: the default --metrics-addr is taken (pass --metrics-addr to choose another)", "address", addr, "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	log.Info("metrics endpoint serving", "address", lis.Addr().String())
	return lis.Addr(), nil
}

// shutdownTelemetry flushes t, bounded in time.
func shutdownTelemetry(t *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("flushing telemetry", "err", err)
	}
}

// clusterObservability reads config-observability from ns, as Knative reads its own from
// knative-serving; a missing one is Knative's defaults.
func clusterObservability(ctx context.Context, rc *rest.Config, ns string) ([]apiclient.Document, error) {
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", telemetry.ConfigName, err)
	}
	cm, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, telemetry.ConfigName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read ConfigMap %s/%s: %w", ns, telemetry.ConfigName, err)
	}
	data, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]string{"name": telemetry.ConfigName, "namespace": ns}, "data": cm.Data})
	if err != nil {
		return nil, err
	}
	return []apiclient.Document{{Source: "ConfigMap " + ns + "/" + telemetry.ConfigName, Data: data}}, nil
}

// logFormatFlag reads --log-format.
func logFormatFlag(cmd *cobra.Command) string {
	v, _ := cmd.Flags().GetString("log-format")
	return v
}

// startTelemetry sets up a process's telemetry from its flags and the config-observability
// among docs, and serves its scrape endpoint until ctx ends. The returned function flushes
// it; the address is the scrape endpoint's (nil when none is served).
func startTelemetry(ctx context.Context, f *pflag.FlagSet, service string, docs []apiclient.Document, log *slog.Logger) (*telemetry.Telemetry, telemetry.Config, net.Addr, func(), error) {
	ocfg, err := observabilityConfig(f, docs)
	if err != nil {
		return nil, ocfg, nil, nil, err
	}
	t, err := setupTelemetry(ctx, f, service, ocfg, true)
	if err != nil {
		return nil, ocfg, nil, nil, err
	}
	maddr, explicit := metricsAddr(f, t)
	addr, err := serveMetrics(ctx, maddr, explicit, t, log)
	if err != nil {
		shutdownTelemetry(t, log)
		return nil, ocfg, nil, nil, err
	}
	return t, ocfg, addr, func() { shutdownTelemetry(t, log) }, nil
}
