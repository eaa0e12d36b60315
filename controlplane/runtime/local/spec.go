package local

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// koPrefix marks an image that is a Go import path to build from source, as ko does.
const koPrefix = "ko://"

// Defaults of a readiness probe's timing, as the runtime applies them.
const (
	defaultProbePeriod    = time.Second
	defaultProbeTimeout   = time.Second
	defaultProbeFailures  = 3
	fastProbeInterval     = 50 * time.Millisecond
	defaultGracePeriodSec = 30
)

// plan is what the runtime needs to run one instance of a revision, derived once from its spec.
type plan struct {
	// program is the executable and its arguments, with $(VAR) references not yet expanded;
	// for a ko:// image program is empty until the build sets it.
	program    []string
	importPath string
	args       []string        // of a ko:// image's program
	env        []corev1.EnvVar // the container's env, all plain values
	service    string
	config     string
	revision   string
	probe      probe
	grace      time.Duration
	ignored    []string // fields of the spec the local runtime does not honour
}

// planError is a problem with the spec that makes the revision fail without running anything.
type planError struct {
	reason, message string
}

func (e *planError) Error() string { return e.reason + ": " + e.message }

// newPlan checks that the local runtime can run rev and prepares how: which program, which
// environment, which probe. workDir resolves relative command paths.
func newPlan(rev *servingv1.Revision, workDir string) (*plan, *planError) {
	spec := &rev.Spec
	c := spec.ServingContainer()
	if c == nil {
		return nil, &planError{runtime.ReasonUnsupported, "spec.containers: the revision has no container to serve requests"}
	}
	idx := 0
	for i := range spec.Containers {
		if &spec.Containers[i] == c {
			idx = i
		}
	}
	field := fmt.Sprintf("spec.containers[%d]", idx)
	if len(spec.Containers) > 1 {
		return nil, &planError{runtime.ReasonUnsupported, fmt.Sprintf(
			"spec.containers: the local runtime runs one container per revision, this one has %d; run sidecars yourself or remove them",
			len(spec.Containers))}
	}
	p := &plan{
		revision: rev.Name,
		service:  rev.Labels[servingv1.ServiceLabel],
		config:   rev.Labels[servingv1.ConfigurationLabel],
		grace:    defaultGracePeriodSec * time.Second,
	}
	if s := spec.TerminationGracePeriodSeconds; s != nil && *s >= 0 {
		p.grace = time.Duration(*s) * time.Second
	}

	switch {
	case len(c.Command) > 0:
		cmd := c.Command[0]
		if !filepath.IsAbs(cmd) && strings.ContainsRune(cmd, os.PathSeparator) {
			cmd = filepath.Join(workDir, cmd)
		}
		p.program = append(append([]string{cmd}, c.Command[1:]...), c.Args...)
	case strings.HasPrefix(c.Image, koPrefix) && strings.TrimPrefix(c.Image, koPrefix) != "":
		p.importPath = strings.TrimPrefix(c.Image, koPrefix)
		p.args = c.Args
	default:
		return nil, &planError{runtime.ReasonImageUnsupported, fmt.Sprintf(
			"%s.image %q cannot run locally: set %s.command to a local program, or use an image "+
				`"ko://<Go import path>" to build it from source`, field, c.Image, field)}
	}

	for i, e := range c.Env {
		if e.ValueFrom != nil {
			return nil, &planError{runtime.ReasonUnsupported, fmt.Sprintf(
				"%s.env[%d].valueFrom (%s) is not supported by the local runtime; set value instead", field, i, e.Name)}
		}
		p.env = append(p.env, e)
	}
	if len(c.EnvFrom) > 0 {
		return nil, &planError{runtime.ReasonUnsupported, fmt.Sprintf(
			"%s.envFrom is not supported by the local runtime; list the variables in env", field)}
	}

	pr, perr := newProbe(c.ReadinessProbe, field+".readinessProbe")
	if perr != nil {
		return nil, perr
	}
	p.probe = pr

	for name, set := range map[string]bool{
		"livenessProbe": c.LivenessProbe != nil, "startupProbe": c.StartupProbe != nil,
		"volumeMounts": len(c.VolumeMounts) > 0, "workingDir": c.WorkingDir != "",
		"securityContext": c.SecurityContext != nil,
		"resources":       len(c.Resources.Limits)+len(c.Resources.Requests) > 0,
	} {
		if set {
			p.ignored = append(p.ignored, field+"."+name)
		}
	}
	return p, nil
}

// ListenHost is the HOST every local instance gets (runtime.ListenHost): apps that honour it
// (Skiff's examples and function runners do) listen on loopback only, so they are reached
// through the gateway and not from the network. A container env HOST overrides it.
const ListenHost = runtime.ListenHost

// env is the environment of one instance listening on port: base (the runtime's own environment,
// so PATH, HOME and GOCACHE reach the app) without Knative's reserved names and HOST, then
// HOST=ListenHost, then the container's env, then PORT, K_SERVICE, K_CONFIGURATION and
// K_REVISION (the last value of a name wins).
func (p *plan) envFor(base []string, port int) []string {
	out := make([]string, 0, len(base)+len(p.env)+5)
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !isReserved(name) && name != "HOST" { // shells such as zsh set HOST to the machine's name
			out = append(out, kv)
		}
	}
	out = append(out, "HOST="+ListenHost)
	vars := p.reservedVars(port)
	lookup := func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
	for _, e := range p.env {
		v := expand(e.Value, lookup)
		vars[e.Name] = v
		out = append(out, e.Name+"="+v)
	}
	r := p.reservedVars(port)
	return append(out, "PORT="+r["PORT"], "K_SERVICE="+r["K_SERVICE"],
		"K_CONFIGURATION="+r["K_CONFIGURATION"], "K_REVISION="+r["K_REVISION"])
}

// argv is the program and arguments of one instance, with $(VAR) references to the container's
// env and the reserved variables expanded as the kubelet does.
func (p *plan) argv(port int) []string {
	vars := p.reservedVars(port)
	lookup := func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
	for _, e := range p.env {
		vars[e.Name] = expand(e.Value, lookup)
	}
	for name, v := range p.reservedVars(port) {
		vars[name] = v
	}
	out := make([]string, len(p.program))
	for i, a := range p.program {
		out[i] = expand(a, lookup)
	}
	return out
}

func (p *plan) reservedVars(port int) map[string]string {
	return map[string]string{
		"PORT":            fmt.Sprint(port),
		"K_SERVICE":       p.service,
		"K_CONFIGURATION": p.config,
		"K_REVISION":      p.revision,
	}
}

// isReserved reports whether Knative sets name on the user container itself.
func isReserved(name string) bool {
	switch name {
	case "PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION":
		return true
	}
	return false
}

// expand replaces $(NAME) with NAME's value when lookup knows it, leaves unknown references as
// they are, and turns $$ into $, as Kubernetes does for env values, command and args.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			switch s[i+1] {
			case '$':
				b.WriteByte('$')
				i++
				continue
			case '(':
				if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
					name := s[i+2 : i+2+end]
					if v, ok := lookup(name); ok {
						b.WriteString(v)
					} else {
						b.WriteString("$(" + name + ")")
					}
					i += 2 + end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// probe is a readiness probe rewritten to the instance's PORT, as Knative's queue-proxy does.
type probe struct {
	kind         string // "http", "tcp" or "exec"
	scheme       string
	path         string // path and query
	host         string // Host header, if the probe sets one
	headers      []corev1.HTTPHeader
	command      []string
	initialDelay time.Duration
	period       time.Duration
	timeout      time.Duration
	successes    int
	failures     int
}

// newProbe prepares spec (nil means Knative's default: TCP on the user port) for the instance's
// PORT; field names the probe in errors.
func newProbe(spec *corev1.Probe, field string) (probe, *planError) {
	p := probe{kind: "tcp", period: defaultProbePeriod, timeout: defaultProbeTimeout, successes: 1, failures: defaultProbeFailures}
	if spec == nil {
		return p, nil
	}
	switch {
	case spec.HTTPGet != nil:
		p.kind = "http"
		p.scheme = "http"
		if spec.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			p.scheme = "https"
		}
		p.path = spec.HTTPGet.Path
		if !strings.HasPrefix(p.path, "/") {
			p.path = "/" + p.path
		}
		if _, err := url.ParseRequestURI(p.path); err != nil {
			return p, &planError{runtime.ReasonUnsupported, fmt.Sprintf("%s.httpGet.path %q is not a valid path: %v", field, spec.HTTPGet.Path, err)}
		}
		for _, h := range spec.HTTPGet.HTTPHeaders {
			if strings.EqualFold(h.Name, "Host") {
				p.host = h.Value
				continue
			}
			p.headers = append(p.headers, h)
		}
	case spec.TCPSocket != nil:
		p.kind = "tcp"
	case spec.Exec != nil:
		if len(spec.Exec.Command) == 0 {
			return p, &planError{runtime.ReasonUnsupported, field + ".exec.command is empty"}
		}
		p.kind = "exec"
		p.command = spec.Exec.Command
	case spec.GRPC != nil:
		return p, &planError{runtime.ReasonUnsupported, field + ".grpc is not supported by the local runtime; use httpGet, tcpSocket or exec"}
	}
	if spec.InitialDelaySeconds > 0 {
		p.initialDelay = time.Duration(spec.InitialDelaySeconds) * time.Second
	}
	if spec.PeriodSeconds > 0 {
		p.period = time.Duration(spec.PeriodSeconds) * time.Second
	}
	if spec.TimeoutSeconds > 0 {
		p.timeout = time.Duration(spec.TimeoutSeconds) * time.Second
	}
	if spec.SuccessThreshold > 0 {
		p.successes = int(spec.SuccessThreshold)
	}
	if spec.FailureThreshold > 0 {
		p.failures = int(spec.FailureThreshold)
	}
	return p, nil
}
