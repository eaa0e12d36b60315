package local

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// prober checks one running process's readiness, always on the instance's own PORT: the
// port a probe names in the spec is the container port, which locally is whatever PORT is.
type prober struct {
	probe  probe
	port   int
	env    []string
	dir    string
	client *http.Client
}

func newProber(p probe, port int, env []string, dir string) *prober {
	pr := &prober{probe: p, port: port, env: env, dir: dir}
	if p.kind == "http" {
		pr.client = &http.Client{
			Timeout: p.timeout,
			// Like the kubelet: a fresh connection per probe, and no certificate checks.
			Transport: &http.Transport{
				DisableKeepAlives: true,
				TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return pr
}

// close releases the prober's idle connections.
func (pr *prober) close() {
	if pr.client != nil {
		pr.client.CloseIdleConnections()
	}
}

// check runs the probe once; nil means the instance is ready.
func (pr *prober) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pr.probe.timeout)
	defer cancel()
	addr := net.JoinHostPort(loopback, strconv.Itoa(pr.port))
	switch pr.probe.kind {
	case "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.probe.scheme+"://"+addr+pr.probe.path, nil)
		if err != nil {
			return fmt.Errorf("building the HTTP probe request: %w", err)
		}
		req.Header.Set("User-Agent", "kube-probe/skiff")
		for _, h := range pr.probe.headers {
			req.Header.Add(h.Name, h.Value)
		}
		if pr.probe.host != "" {
			req.Host = pr.probe.host
		}
		resp, err := pr.client.Do(req)
		if err != nil {
			return fmt.Errorf("HTTP probe failed: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case "exec":
		cmd := exec.CommandContext(ctx, pr.probe.command[0], pr.probe.command[1:]...)
		cmd.Dir, cmd.Env, cmd.WaitDelay = pr.dir, pr.env, 100*time.Millisecond
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("exec probe %q failed: %w: %s", strings.Join(pr.probe.command, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	default:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("TCP probe failed: %w", err)
		}
		return conn.Close()
	}
}
