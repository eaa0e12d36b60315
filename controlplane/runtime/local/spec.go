package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/containerenv"
	"github.com/skiff-dev/skiff/controlplane/runtime/probe"
	"github.com/skiff-dev/skiff/controlplane/runtime/supervise"
)

// koPrefix marks an image that is a Go import path to build from source, as ko does.
const koPrefix = "ko://"

// defaultGracePeriodSec is the pod spec's terminationGracePeriodSeconds default.
const defaultGracePeriodSec = 30

// plan is what the runtime needs to run one instance of a revision, derived once from its spec.
type plan struct {
	// program is the executable and its arguments, with $(VAR) references not yet expanded;
	// for a ko:// image program is empty until the build sets it.
	program    []string
	importPath string
	args       []string        // of a ko:// image's program
	env        []corev1.EnvVar // the container's env, all plain values
	reserved   containerenv.Reserved
	probe      probe.Spec
	grace      time.Duration
	ignored    []string // fields of the spec the local runtime does not honour
}

// newPlan checks that the local runtime can run rev and prepares how: which program, which
// environment, which probe. workDir resolves relative command paths. A spec it cannot run is a
// *supervise.Failure.
func newPlan(rev *servingv1.Revision, workDir string) (*plan, error) {
	spec := &rev.Spec
	c := spec.ServingContainer()
	if c == nil {
		return nil, failure(runtime.ReasonUnsupported, "spec.containers: the revision has no container to serve requests")
	}
	idx := 0
	for i := range spec.Containers {
		if &spec.Containers[i] == c {
			idx = i
		}
	}
	field := fmt.Sprintf("spec.containers[%d]", idx)
	if len(spec.Containers) > 1 {
		return nil, failure(runtime.ReasonUnsupported, fmt.Sprintf(
			"spec.containers: the local runtime runs one container per revision, this one has %d; run sidecars yourself or remove them",
			len(spec.Containers)))
	}
	p := &plan{
		reserved: containerenv.ReservedOf(rev),
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
		return nil, failure(runtime.ReasonImageUnsupported, fmt.Sprintf(
			"%s.image %q cannot run locally: set %s.command to a local program, or use an image "+
				`"ko://<Go import path>" to build it from source`, field, c.Image, field))
	}

	for i, e := range c.Env {
		if e.ValueFrom != nil {
			return nil, failure(runtime.ReasonUnsupported, fmt.Sprintf(
				"%s.env[%d].valueFrom (%s) is not supported by the local runtime; set value instead", field, i, e.Name))
		}
		p.env = append(p.env, e)
	}
	if len(c.EnvFrom) > 0 {
		return nil, failure(runtime.ReasonUnsupported, fmt.Sprintf(
			"%s.envFrom is not supported by the local runtime; list the variables in env", field))
	}

	pr, err := probe.Parse(c.ReadinessProbe, field+".readinessProbe")
	if err != nil {
		return nil, &supervise.Failure{Reason: runtime.ReasonUnsupported, Message: err.Error()}
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

// failure is a spec the local runtime cannot run: the revision fails with reason at once.
func failure(reason, message string) error {
	return &supervise.Failure{Reason: reason, Message: message}
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
		if !containerenv.IsReserved(name) && name != "HOST" { // shells such as zsh set HOST to the machine's name
			out = append(out, kv)
		}
	}
	out = append(out, "HOST="+ListenHost)
	vars := p.reserved.Vars(port)
	lookup := containerenv.Lookup(vars)
	for _, e := range p.env {
		v := containerenv.Expand(e.Value, lookup)
		vars[e.Name] = v
		out = append(out, e.Name+"="+v)
	}
	reserved := p.reserved.Vars(port)
	for _, name := range containerenv.Names() {
		out = append(out, name+"="+reserved[name])
	}
	return out
}

// argv is the program and arguments of one instance, with $(VAR) references to the container's
// env and the reserved variables expanded as the kubelet does.
func (p *plan) argv(port int) []string {
	vars := p.reserved.Vars(port)
	lookup := containerenv.Lookup(vars)
	for _, e := range p.env {
		vars[e.Name] = containerenv.Expand(e.Value, lookup)
	}
	for name, v := range p.reserved.Vars(port) {
		vars[name] = v
	}
	out := make([]string, len(p.program))
	for i, a := range p.program {
		out[i] = containerenv.Expand(a, lookup)
	}
	return out
}
