package telemetry

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The config-observability example in deploy/ is one Skiff accepts.
func TestDeployConfigObservability(t *testing.T) {
	b, err := os.ReadFile("../deploy/observability/config-observability.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Metadata struct{ Name string }
		Data     map[string]string
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if cm.Metadata.Name != ConfigName {
		t.Fatalf("name %q", cm.Metadata.Name)
	}
	if err := c.Apply(cm.Data); err != nil {
		t.Fatal(err)
	}
	if c.Tracing.Protocol != ProtocolGRPC || c.Metrics.Protocol != ProtocolGRPC || c.Tracing.SamplingRate != 0.1 {
		t.Fatalf("parsed %+v", c)
	}
}

// Every metric the Grafana dashboard in deploy/ queries is one Skiff's scrape endpoint serves.
func TestDeployDashboardQueriesExistingMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/observability/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Definition string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	tel, err := Setup(context.Background(), Options{Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	ctx := context.Background()
	rm, _ := NewRequestMetrics(tel)
	rm.Record(ctx, hello, "GET", "http", 1, 200, time.Millisecond)
	byRPS := Revision{Namespace: "default", Service: "rps", Configuration: "rps", Name: "rps-00001"}
	stop, err := RegisterAutoscaler(tel, func() []RevisionScale {
		return []RevisionScale{{Revision: hello}, {Revision: byRPS, RPS: true}}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	am, _ := NewActivatorMetrics(tel)
	am.Queued(ctx, "default", "r", 1)
	am.Active(ctx, "default", "r", 1)
	am.Held(ctx, "default", "r", "released", time.Millisecond)
	em, _ := NewEventingMetrics(tel)
	em.Ingress(ctx, "default", "b", "t", "http", 202, time.Millisecond)
	em.TriggerAttempt(ctx, "default", "b", "tr", "t", "", 200, time.Millisecond)
	em.TriggerProcessed(ctx, "default", "b", "tr", "t", "", time.Millisecond)
	xm, _ := NewXDSMetrics(tel)
	xm.Answered(ctx, "n", "t", true, time.Millisecond)
	wq, _ := NewWorkqueueMetrics(tel)
	wq.NewDepthMetric("q").Inc()
	wq.NewAddsMetric("q").Inc()
	wq.NewLatencyMetric("q").Observe(1)
	wq.NewWorkDurationMetric("q").Observe(1)

	served := map[string]bool{}
	for name, f := range scrape(t, tel) {
		served[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				served[name+s] = true
			}
		}
	}
	metricRe := regexp.MustCompile(`\b((?:kn|http|skiff|revision|autoscaler|mt_broker)_[a-z_]+)\b`)
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	checked := 0
	for _, e := range exprs {
		// Label names (kn_revision_name, ...) sit inside braces or by(); metric names do not.
		noLabels := regexp.MustCompile(`\{[^}]*\}|by \([^)]*\)|, [a-z_]+\)`).ReplaceAllString(e, "")
		for _, m := range metricRe.FindAllString(noLabels, -1) {
			checked++
			if !served[m] {
				t.Errorf("the dashboard queries %s, which Skiff does not serve (in %s)", m, strings.TrimSpace(e))
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d metric references found in the dashboard", checked)
	}
}
