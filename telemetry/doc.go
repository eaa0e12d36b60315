// Package telemetry is every Skiff process's observability: OpenTelemetry metrics and traces
// with Knative's names and attributes (so dashboards built for Knative keep working), a
// Prometheus scrape endpoint, OTLP export over gRPC or HTTP, Knative's config-observability,
// and slog handlers that put trace ids on log lines. The instruments of each component
// (RequestMetrics for proxies, RegisterAutoscaler, ActivatorMetrics, EventingMetrics,
// XDSMetrics, WorkqueueMetrics) are defined here, in one place, so names cannot drift; see
// README.md for the names, the labels and the OpenCensus-era names they replace.
package telemetry
