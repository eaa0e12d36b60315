// Package probe runs a container's readiness and liveness probes the way Knative's queue-proxy
// and the kubelet do, against an instance that runs on this machine: httpGet and tcpSocket
// always go to the instance's own address and port (the port a probe names is the container
// port, which locally is whatever PORT the instance was given, as queue-proxy rewrites probes
// to the user port), exec runs through a function the runtime provides (in the container for
// the OCI runtime).
//
// Both local runtimes (processes and runc containers) probe through controlplane/runtime/supervise.
package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Defaults of a probe's timing, as the kubelet applies them.
const (
	DefaultPeriod   = time.Second
	DefaultTimeout  = time.Second
	DefaultFailures = 3
	// FastInterval is how often a readiness probe runs until the instance is first ready
	// (queue-proxy probes aggressively at start, so a cold start is not a period long).
	FastInterval = 50 * time.Millisecond
)

// Kinds of probe.
const (
	HTTP = "http"
	TCP  = "tcp"
	Exec = "exec"
)

// Spec is a probe ready to run: what it checks and its timing.
type Spec struct {
	Kind    string // HTTP, TCP or Exec
	Scheme  string // http or https
	Path    string // path and query
	Host    string // Host header, if the probe sets one
	Headers []corev1.HTTPHeader
	Command []string

	InitialDelay time.Duration
	Period       time.Duration
	Timeout      time.Duration
	Successes    int
	Failures     int
}

// Error is a probe that cannot run as specified; Field names it.
type Error struct {
	Field, Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

// Parse prepares spec; nil means Knative's readiness default: TCP on the user port. field names
// the probe in errors (e.g. "spec.containers[0].readinessProbe"). gRPC probes are refused.
func Parse(spec *corev1.Probe, field string) (Spec, error) {
	p := Spec{Kind: TCP, Period: DefaultPeriod, Timeout: DefaultTimeout, Successes: 1, Failures: DefaultFailures}
	if spec == nil {
		return p, nil
	}
	switch {
	case spec.HTTPGet != nil:
		p.Kind, p.Scheme = HTTP, "http"
		if spec.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			p.Scheme = "https"
		}
		p.Path = spec.HTTPGet.Path
		if !strings.HasPrefix(p.Path, "/") {
			p.Path = "/" + p.Path
		}
		if _, err := url.ParseRequestURI(p.Path); err != nil {
			return p, &Error{field + ".httpGet.path", fmt.Sprintf("%q is not a valid path: %v", spec.HTTPGet.Path, err)}
		}
		for _, h := range spec.HTTPGet.HTTPHeaders {
			if strings.EqualFold(h.Name, "Host") {
				p.Host = h.Value
				continue
			}
			p.Headers = append(p.Headers, h)
		}
	case spec.TCPSocket != nil:
		p.Kind = TCP
	case spec.Exec != nil:
		if len(spec.Exec.Command) == 0 {
			return p, &Error{field + ".exec.command", "is empty"}
		}
		p.Kind, p.Command = Exec, spec.Exec.Command
	case spec.GRPC != nil:
		return p, &Error{field + ".grpc", "is not supported locally; use httpGet, tcpSocket or exec"}
	}
	if spec.InitialDelaySeconds > 0 {
		p.InitialDelay = time.Duration(spec.InitialDelaySeconds) * time.Second
	}
	if spec.PeriodSeconds > 0 {
		p.Period = time.Duration(spec.PeriodSeconds) * time.Second
	}
	if spec.TimeoutSeconds > 0 {
		p.Timeout = time.Duration(spec.TimeoutSeconds) * time.Second
	}
	if spec.SuccessThreshold > 0 {
		p.Successes = int(spec.SuccessThreshold)
	}
	if spec.FailureThreshold > 0 {
		p.Failures = int(spec.FailureThreshold)
	}
	return p, nil
}

// ExecFunc runs an exec probe's command for the instance, within ctx; an error (with the
// command's output) means failure.
type ExecFunc func(ctx context.Context, command []string) error

// Prober checks one running instance.
type Prober struct {
	spec   Spec
	addr   string
	exec   ExecFunc
	client *http.Client
}

// New makes a Prober of spec for the instance at host:port; exec runs exec probes.
func New(spec Spec, host string, port int, exec ExecFunc) *Prober {
	pr := &Prober{spec: spec, addr: net.JoinHostPort(host, strconv.Itoa(port)), exec: exec}
	if spec.Kind == HTTP {
		pr.client = &http.Client{
			Timeout: spec.Timeout,
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

// Spec is the probe the Prober runs.
func (pr *Prober) Spec() Spec { return pr.spec }

// Close releases the prober's connections.
func (pr *Prober) Close() {
	if pr.client != nil {
		pr.client.CloseIdleConnections()
	}
}

// Check runs the probe once; nil means success.
func (pr *Prober) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pr.spec.Timeout)
	defer cancel()
	switch pr.spec.Kind {
	case HTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.spec.Scheme+"://"+pr.addr+pr.spec.Path, nil)
		if err != nil {
			return fmt.Errorf("building the HTTP probe request: %w", err)
		}
		req.Header.Set("User-Agent", "kube-probe/skiff")
		for _, h := range pr.spec.Headers {
			req.Header.Add(h.Name, h.Value)
		}
		if pr.spec.Host != "" {
			req.Host = pr.spec.Host
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
	case Exec:
		if pr.exec == nil {
			return fmt.Errorf("exec probe %q: no way to run it", strings.Join(pr.spec.Command, " "))
		}
		return pr.exec(ctx, pr.spec.Command)
	default:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", pr.addr)
		if err != nil {
			return fmt.Errorf("TCP probe failed: %w", err)
		}
		return conn.Close()
	}
}

// Result is a change a Loop reports.
type Result int

// Changes a Loop reports.
const (
	// Ready: the probe passed Successes times in a row (after failing, or at first).
	Ready Result = iota
	// Unready: the probe failed Failures times in a row after passing.
	Unready
	// NeverReady: the probe has failed for Failures periods since the start and never passed.
	NeverReady
)

// Loop probes until ctx is done, calling report on each change: every FastInterval until the
// first success when fast (readiness), else every period; Failures failures in a row after a
// success report Unready; an instance that never passed within InitialDelay + Failures*Period
// is reported NeverReady once, with the last error.
func (pr *Prober) Loop(ctx context.Context, fast bool, report func(r Result, err error)) {
	p := pr.spec
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	if p.InitialDelay > 0 && !sleep(p.InitialDelay) {
		return
	}
	start := time.Now()
	everReady, ready, reported := false, false, false
	successes, failures := 0, 0
	for {
		err := pr.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			successes++
			if !ready && successes >= p.Successes {
				ready, everReady, reported = true, true, false
				report(Ready, nil)
			}
		} else {
			successes = 0
			failures++
			switch {
			case ready && failures >= p.Failures:
				ready = false
				report(Unready, err)
			case !everReady && !reported && time.Since(start) >= time.Duration(p.Failures)*p.Period:
				reported = true
				report(NeverReady, err)
			}
		}
		interval := p.Period
		if fast && !everReady {
			interval = FastInterval
		}
		if !sleep(interval) {
			return
		}
	}
}
