package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Debian's Prometheus scrapes a `skiff up` (the binary, its --metrics-addr endpoint) and,
// after 100 requests to a Service, counts 100 under Knative's names and labels. The
// config-observability given to `skiff up -f` turns the request logs on, which
// `skiff logs ksvc` prints.
func TestPrometheusScrapesSkiffUp(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("Debian's prometheus is not installed (`make test` installs it when run as root: apt-get install prometheus); the Prometheus scrape of skiff up is not tested")
	}
	bin, root, data := skiffBinary(t), moduleRoot(t), t.TempDir()
	apiAddr, httpAddr, metricsAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	manifest := filepath.Join(t.TempDir(), "scraped.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: config-observability
  namespace: knative-serving
data:
  logging.enable-request-log: "true"
  metrics-export-interval: 30s
---
`+serviceYAML("scraped", "Prometheus", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	up := startUp(t, bin, []string{"up", "--data-dir", data, "--work-dir", root, "--eventing=false",
		"--api-addr", apiAddr, "--xds-addr", freeAddr(t), "--http-addr", httpAddr, "--admin-addr", freeAddr(t),
		"--extproc-addr", freeAddr(t), "--metrics-addr", metricsAddr, "-f", manifest})
	up.stopOnCleanup(t)

	promDir := t.TempDir()
	promConfig := filepath.Join(promDir, "prometheus.yml")
	if err := os.WriteFile(promConfig, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: skiff
    static_configs:
      - targets: [%q]
`, metricsAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := exec.Command(prom, "--config.file", promConfig, "--storage.tsdb.path", filepath.Join(promDir, "data"),
		"--web.listen-address", promAddr)
	var promOut bytes.Buffer
	p.Stdout, p.Stderr = &promOut, &promOut
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	promExited := make(chan error, 1)
	go func() { promExited <- p.Wait() }()
	defer func() {
		_ = p.Process.Signal(syscall.SIGTERM)
		select {
		case <-promExited:
		case <-time.After(30 * time.Second):
			_ = p.Process.Kill()
			<-promExited
		}
	}()

	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--api-addr", apiAddr)...).CombinedOutput()
		return string(out), err
	}
	eventually(t, 90*time.Second, "skiff wait ksvc scraped", func() bool {
		_, err := run("wait", "ksvc", "scraped", "--timeout", "5s")
		return err == nil
	})
	s := &skiff{t: t, http: httpAddr}
	for i := range 100 {
		if code, _, body := s.get("scraped.default.localhost", "/"); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
	}

	query := func(q string) string {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Result) != 1 {
			return ""
		}
		return fmt.Sprint(r.Data.Result[0].Value[1])
	}
	current := `sum(http_server_request_duration_seconds_count{job="skiff",k8s_namespace_name="default",kn_service_name="scraped",kn_configuration_name="scraped",kn_revision_name="scraped-00001",http_response_status_code="200"})`
	legacy := `sum(revision_request_count{job="skiff",namespace_name="default",service_name="scraped",configuration_name="scraped",revision_name="scraped-00001",response_code_class="2xx"})`
	var got, gotLegacy string
	deadline := time.Now().Add(30 * time.Second)
	for got, gotLegacy = query(current), query(legacy); got != "100" || gotLegacy != "100"; got, gotLegacy = query(current), query(legacy) {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has %q (current names) and %q (OpenCensus-era names), want 100 and 100\nprometheus:\n%s", got, gotLegacy, promOut.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := query(`kn_revision_pods_count{job="skiff",kn_revision_name="scraped-00001"}`); v != "1" {
		t.Errorf("kn_revision_pods_count = %q, want 1", v)
	}

	out, err := run("logs", "ksvc", "scraped", "--data-dir", data)
	if err != nil {
		t.Fatalf("skiff logs: %v\n%s", err, out)
	}
	if n := strings.Count(out, `scraped-00001 [proxy] [`) - strings.Count(out, `"GET /healthz`); n != 100 || !strings.Contains(out, `"GET / HTTP/1.1" 200 - 0 `) {
		t.Errorf("skiff logs ksvc scraped: %d request log lines, want 100:\n%s", n, out)
	}
}
