// Package local runs Knative Revisions as local processes, for `skiff up`: each instance is a
// process listening on a free loopback port given in PORT, probed for readiness the way Knative's
// queue-proxy probes a pod, restarted with backoff when it crashes and drained before it is
// stopped.
//
// What runs: the serving container's `command` and `args` (relative paths resolve against
// Config.WorkDir), or, for an image `ko://<Go import path>`, the program `go build` makes of that
// path in WorkDir (built once per revision). Any other image makes the revision fail at once.
//
// Failure: a revision whose spec cannot run locally (image, valueFrom, multiple containers, gRPC
// probes) or whose build fails is Failed at once and runs nothing. A crashing instance is
// restarted with CrashLoopBackOff's backoff and counted in State.Restarts; the revision becomes
// Failed only if it crashes Config.CrashLoopLimit times before any of its instances was ever
// ready (it is still restarted, and stops being Failed once an instance becomes ready). Once a
// revision has been ready, crashes only show in Restarts, Reason and Message (ExitCodeN and
// "Container failed with: <last stderr lines>", cleared when that instance is ready again).
//
// Environment: the runtime's own (Config.Env, so PATH, HOME and GOCACHE reach the app), then
// HOST=127.0.0.1 (ListenHost: an app that honours it listens on loopback, reachable only through
// the gateway; the container's env may override it), then the container's env, then PORT,
// K_SERVICE, K_CONFIGURATION and K_REVISION, which always win.
// $(VAR) references in env values, command and args are expanded as Kubernetes does ($$ is $).
//
// Readiness: the container's readinessProbe (httpGet, tcpSocket or exec; Knative's default is TCP)
// is always run against the instance's PORT, as queue-proxy rewrites probes to the user port:
// every 50ms until first ready, then every periodSeconds (default 1s); failureThreshold (default
// 3) failures in a row take the instance out of Endpoints. livenessProbe, startupProbe,
// volumeMounts, workingDir, securityContext and resources are ignored, with a warning.
//
// Bounds: at most Config.MaxInstances instances exist at once across every revision (starting,
// running or draining; one process group and one goroutine each), and processes start at no more
// than Config.StartRate per second (restarts included), so no desired count, however large,
// makes the runtime fork without bound. Instances beyond the bound are not materialised: they
// wait, and free slots go first to the revision with the fewest instances. A revision none of
// whose instances could start for want of a slot is Failed with reason Unschedulable (as a
// Knative revision whose pod cannot be scheduled) until one starts.
//
// Stopping (scale down, Remove, Close): the instance leaves Endpoints at once (OnChange), then
// after Config.DrainTimeout (skipped for an instance that was never ready) its process group gets
// SIGTERM, then SIGKILL after terminationGracePeriodSeconds capped by Config.MaxGracePeriod.
// Scale-down stops unready instances first, then the newest. Remove returns at once: the runtime
// owns the drain (WaitRemoved waits for it, Close too), so a caller never waits on a process.
//
// Output: each instance's stdout and stderr go to <DataDir>/logs/<ns>/<rev>.log, each line
// prefixed with "[<instance index>] "; indexes are never reused within a revision. A failed
// build's output is there too, prefixed "[build] ".
//
// All but starting and stopping one process is controlplane/runtime/supervise's, which the OCI
// runtime shares: this package says what runs (spec.go, build.go) and how a process is started,
// signalled and read (process.go, logs.go).
package local

import (
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/supervise"
)

// ErrClosed is returned by Scale after Close.
var ErrClosed = supervise.ErrClosed

// Config configures a local Runtime. Zero values take the documented defaults.
type Config struct {
	// DataDir holds built programs (bin/<ns>/<rev>/app) and logs (logs/<ns>/<rev>.log).
	// Default: <os.TempDir()>/skiff.
	DataDir string
	// WorkDir is where programs run and `go build` runs: the user's module. Default: the
	// current directory.
	WorkDir string
	// Logger receives the runtime's own logs (not the apps'). Default: slog.Default().
	Logger *slog.Logger
	// OnChange is called whenever a revision's State changes. Calls come from one goroutine of
	// the runtime, never while it holds a lock and never from inside Scale or Remove; changes
	// that happen while a call runs are coalesced into the next one.
	OnChange func(namespace, name string)
	// DrainTimeout is the time between taking an instance out of Endpoints and sending it
	// SIGTERM, so that proxies stop sending it requests first. Default 1s; negative: none.
	DrainTimeout time.Duration
	// MaxGracePeriod caps the pod spec's terminationGracePeriodSeconds (default 30s), the time
	// between SIGTERM and SIGKILL. Default 10s.
	MaxGracePeriod time.Duration
	// RestartBackoff is the wait before restarting a crashed instance the first time; it
	// doubles with every crash up to MaxRestartBackoff. Defaults 1s and 30s, as the kubelet's.
	RestartBackoff, MaxRestartBackoff time.Duration
	// CrashLoopLimit is how many crashes, before any instance was ever ready, make the revision
	// Failed. Default 3.
	CrashLoopLimit int
	// BuildTimeout bounds `go build` of a ko:// image. Default 5m.
	BuildTimeout time.Duration
	// GoCommand is the go tool used to build ko:// images. Default "go" (found in PATH).
	GoCommand string
	// Env is the environment every instance and build starts from, before the container's env
	// and Knative's PORT, K_SERVICE, K_CONFIGURATION and K_REVISION. Default: os.Environ().
	Env []string
	// MaxInstances bounds the instances that exist at once, across every revision: starting,
	// running and draining ones. Default DefaultMaxInstances().
	MaxInstances int
	// StartRate bounds how many processes start per second (restarts included), in bursts of
	// up to StartBurst. Defaults DefaultStartRate and DefaultStartBurst.
	StartRate  float64
	StartBurst int
}

// Defaults of Config.StartRate and Config.StartBurst.
const (
	DefaultStartRate  = 20
	DefaultStartBurst = 20
)

// DefaultMaxInstances is Config.MaxInstances' default: 64 per CPU, at least 128. It bounds
// what a machine is asked to run (the issue it fixes saw 2,418 processes and a load of 204 on
// a small machine) while leaving room for a hundred-odd Services with an instance each.
func DefaultMaxInstances() int {
	return max(128, 64*goruntime.NumCPU())
}

func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = filepath.Join(os.TempDir(), "skiff")
	}
	if c.WorkDir == "" {
		c.WorkDir = "."
	}
	if abs, err := filepath.Abs(c.WorkDir); err == nil {
		c.WorkDir = abs
	}
	if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = time.Second
	}
	if c.DrainTimeout < 0 {
		c.DrainTimeout = 0
	}
	if c.MaxGracePeriod <= 0 {
		c.MaxGracePeriod = 10 * time.Second
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = time.Second
	}
	if c.MaxRestartBackoff <= 0 {
		c.MaxRestartBackoff = 30 * time.Second
	}
	if c.MaxRestartBackoff < c.RestartBackoff {
		c.MaxRestartBackoff = c.RestartBackoff
	}
	if c.CrashLoopLimit <= 0 {
		c.CrashLoopLimit = 3
	}
	if c.BuildTimeout <= 0 {
		c.BuildTimeout = 5 * time.Minute
	}
	if c.GoCommand == "" {
		c.GoCommand = "go"
	}
	if c.Env == nil {
		c.Env = os.Environ()
	}
	if c.MaxInstances <= 0 {
		c.MaxInstances = DefaultMaxInstances()
	}
	if c.StartRate <= 0 {
		c.StartRate = DefaultStartRate
	}
	if c.StartBurst <= 0 {
		c.StartBurst = DefaultStartBurst
	}
	return c
}

// Runtime runs revisions as local processes. It implements runtime.Runtime; create it with New
// and stop it with Close. Scale, Remove, WaitRemoved, State and Close are the Supervisor's,
// whose Driver here starts processes.
type Runtime struct {
	*supervise.Supervisor
}

var _ runtime.Runtime = (*Runtime)(nil)

// New makes a Runtime; it starts no process until Scale is called.
func New(cfg Config) *Runtime {
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "runtime/local")
	return &Runtime{Supervisor: supervise.New(supervise.Config{
		Name: "local", DataDir: cfg.DataDir, Logger: log, OnChange: cfg.OnChange,
		DrainTimeout: cfg.DrainTimeout, MaxGracePeriod: cfg.MaxGracePeriod,
		RestartBackoff: cfg.RestartBackoff, MaxRestartBackoff: cfg.MaxRestartBackoff,
		CrashLoopLimit: cfg.CrashLoopLimit, MaxInstances: cfg.MaxInstances,
		StartRate: cfg.StartRate, StartBurst: cfg.StartBurst,
	}, &driver{cfg: cfg, log: log})}
}

// driver is what the local runtime does its own way: plans (spec.go), builds (build.go) and
// processes (process.go).
type driver struct {
	cfg Config
	log *slog.Logger
}

// Plan checks that the local runtime can run rev and says how.
func (d *driver) Plan(k supervise.Key, rev *servingv1.Revision) (*supervise.Plan, error) {
	p, err := newPlan(rev, d.cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	if len(p.ignored) > 0 {
		d.log.Warn("the local runtime ignores these fields", "revision", k.String(), "fields", strings.Join(p.ignored, ", "))
	}
	sp := &supervise.Plan{Readiness: p.probe, Grace: p.grace, Start: d.starter(p)}
	if p.importPath != "" {
		sp.Prepare = d.builder(k, p)
	}
	return sp, nil
}
