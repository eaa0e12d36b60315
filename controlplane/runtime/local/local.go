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
package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// loopback is the address every instance is reached on.
const loopback = "127.0.0.1"

// ErrClosed is returned by Scale after Close.
var ErrClosed = errors.New("local runtime: closed")

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
// and stop it with Close.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // canceled by Close: aborts builds and probes
	cancel context.CancelFunc

	wg         sync.WaitGroup // every instance and build goroutine
	starts     *rate.Limiter  // paces process starts
	wake       chan struct{}  // a notification is pending
	stopNotify chan struct{}  // closed by Close: the notifier stops
	notifyDone chan struct{}  // closed when the notifier has stopped
	hurry      chan struct{}  // closed when Close runs out of time: stop without drain or grace
	closeOnce  sync.Once
	closeDone  chan struct{}

	mu      sync.Mutex
	closed  bool
	revs    map[key]*revision
	removed map[key][]*revision // removed revisions whose instances still drain
	used    int                 // instances whose goroutine runs: the slots of MaxInstances in use
	blocked int                 // revisions with blocked set
	ports   map[int]struct{}    // ports handed to running processes
	dirty   map[key]struct{}    // revisions whose change OnChange has not heard of yet
}

var _ runtime.Runtime = (*Runtime)(nil)

type key struct{ namespace, name string }

// revision is the runtime's record of one revision; guarded by Runtime.mu unless noted.
type revision struct {
	key    key
	plan   *plan // nil when failed at admission
	ctx    context.Context
	cancel context.CancelFunc
	logs   *logSink // has its own lock

	desired   int
	runnable  bool               // the program exists (command given, or build done)
	active    []*instance        // instances counted towards desired
	all       map[*instance]bool // instances whose goroutine still runs, draining ones too
	blocked   bool               // it wants more instances than it has and no slot is free
	drained   chan struct{}      // once removed: closed when its last instance has stopped
	nextIndex int
	restarts  int
	everReady bool
	failed    bool   // a terminal problem: nothing runs
	reason    string // of the terminal problem, or of the latest crash
	message   string
}

// New makes a Runtime; it starts no process until Scale is called.
func New(cfg Config) *Runtime {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "runtime/local"),
		ctx:        ctx,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		stopNotify: make(chan struct{}),
		notifyDone: make(chan struct{}),
		hurry:      make(chan struct{}),
		closeDone:  make(chan struct{}),
		revs:       map[key]*revision{},
		removed:    map[key][]*revision{},
		starts:     rate.NewLimiter(rate.Limit(cfg.StartRate), cfg.StartBurst),
		ports:      map[int]struct{}{},
		dirty:      map[key]struct{}{},
	}
	go r.notifier()
	return r
}

// Scale makes the revision run replicas instances. The first call for a revision checks its spec
// and, for a ko:// image, starts the build; instances start and stop in the background. A spec
// that cannot run is reported in State (Failed), not as an error; errors are for a nil or unnamed
// revision, a negative count, or a closed runtime. The spec is read on the first call only:
// revisions are immutable.
func (r *Runtime) Scale(ctx context.Context, rev *servingv1.Revision, replicas int) error {
	if rev == nil {
		return errors.New("scaling a revision: nil revision")
	}
	ns := cmp.Or(rev.Namespace, "default")
	if err := checkName(ns, rev.Name); err != nil {
		return fmt.Errorf("scaling revision %s/%s: %w", ns, rev.Name, err)
	}
	if replicas < 0 {
		return fmt.Errorf("scaling revision %s/%s: negative replicas %d", ns, rev.Name, replicas)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	k := key{ns, rev.Name}
	rv := r.revs[k]
	if rv == nil {
		rv = r.admitLocked(k, rev)
		r.revs[k] = rv
		r.markDirtyLocked(k)
	}
	if rv.desired != replicas {
		r.log.Info("scaling revision", "revision", ns+"/"+rev.Name, "from", rv.desired, "to", replicas)
		rv.desired = replicas
		r.markDirtyLocked(k)
	}
	r.reconcileLocked(rv)
	return nil
}

// checkName rejects names that would escape DataDir.
func checkName(ns, name string) error {
	for _, s := range []string{ns, name} {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
			return fmt.Errorf("invalid namespace or name %q", s)
		}
	}
	return nil
}

// admitLocked makes the record of a revision seen for the first time: checks its spec and starts
// its build if it needs one.
func (r *Runtime) admitLocked(k key, rev *servingv1.Revision) *revision {
	ctx, cancel := context.WithCancel(r.ctx)
	rv := &revision{
		key:    k,
		ctx:    ctx,
		cancel: cancel,
		all:    map[*instance]bool{},
		logs: &logSink{
			path: filepath.Join(r.cfg.DataDir, "logs", k.namespace, k.name+".log"),
			log:  r.log,
		},
	}
	name := k.namespace + "/" + k.name
	p, perr := newPlan(rev, r.cfg.WorkDir)
	if perr != nil {
		rv.failed, rv.reason, rv.message = true, perr.reason, perr.message
		r.log.Warn("revision cannot run locally", "revision", name, "reason", perr.reason, "message", perr.message)
		return rv
	}
	rv.plan = p
	if len(p.ignored) > 0 {
		r.log.Warn("the local runtime ignores these fields", "revision", name, "fields", strings.Join(p.ignored, ", "))
	}
	if p.importPath == "" {
		rv.runnable = true
		return rv
	}
	r.wg.Add(1)
	go r.build(rv, p.importPath)
	return rv
}

// reconcileLocked starts or stops instances until as many as desired are active, within the
// runtime's bound on instances.
func (r *Runtime) reconcileLocked(rv *revision) {
	if rv.failed || !rv.runnable || r.closed || r.revs[rv.key] != rv {
		return
	}
	if extra := len(rv.active) - rv.desired; extra > 0 {
		// Like a ReplicaSet: unready instances go first, then the newest.
		victims := slices.Clone(rv.active)
		slices.SortFunc(victims, func(a, b *instance) int {
			if a.ready != b.ready {
				if a.ready {
					return 1
				}
				return -1
			}
			return b.index - a.index
		})
		for _, in := range victims[:extra] {
			r.stopInstanceLocked(rv, in)
		}
	}
	if rv.wants() > 0 {
		r.fillLocked()
	} else {
		r.setBlockedLocked(rv, false)
	}
}

// wants is how many more instances the revision should have than it has.
func (rv *revision) wants() int {
	if rv.failed || !rv.runnable {
		return 0
	}
	return max(0, rv.desired-len(rv.active))
}

// fillLocked hands free slots to revisions that want instances, one at a time to the one with
// the fewest, so a revision asking for a huge count cannot starve the others; then marks the
// revisions left wanting as blocked.
func (r *Runtime) fillLocked() {
	if r.closed {
		return
	}
	for r.used < r.cfg.MaxInstances {
		var next *revision
		for _, rv := range r.revs {
			if rv.wants() > 0 && (next == nil || len(rv.active) < len(next.active)) {
				next = rv
			}
		}
		if next == nil {
			break
		}
		r.startInstanceLocked(next)
	}
	if r.used < r.cfg.MaxInstances && r.blocked == 0 {
		return
	}
	for _, rv := range r.revs {
		r.setBlockedLocked(rv, rv.wants() > 0 && r.used >= r.cfg.MaxInstances)
	}
}

// setBlockedLocked records whether the revision waits for a slot; State reports it.
func (r *Runtime) setBlockedLocked(rv *revision, blocked bool) {
	if rv.blocked == blocked {
		return
	}
	rv.blocked = blocked
	if blocked {
		r.blocked++
		r.log.Warn("instances wait for a slot: the local runtime's bound on instances is reached",
			"revision", rv.key.namespace+"/"+rv.key.name, "waiting", rv.wants(), "maxInstances", r.cfg.MaxInstances)
	} else {
		r.blocked--
	}
	r.markDirtyLocked(rv.key)
}

// startInstanceLocked makes one more instance of the revision, holding one slot until its
// goroutine ends; the goroutine starts the process when the start rate allows.
func (r *Runtime) startInstanceLocked(rv *revision) {
	ctx, cancel := context.WithCancel(r.ctx)
	in := &instance{index: rv.nextIndex, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	rv.nextIndex++
	rv.active = append(rv.active, in)
	rv.all[in] = true
	r.used++
	rv.logs.acquire()
	r.wg.Add(1)
	go r.runInstance(rv, in)
}

// instanceEnded gives back the slot of an instance whose goroutine is ending.
func (r *Runtime) instanceEnded(rv *revision, in *instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(rv.all, in)
	r.used--
	if len(rv.all) == 0 && rv.drained != nil {
		close(rv.drained)
		rv.drained = nil
		r.removed[rv.key] = slices.DeleteFunc(r.removed[rv.key], func(x *revision) bool { return x == rv })
		if len(r.removed[rv.key]) == 0 {
			delete(r.removed, rv.key)
		}
	}
	r.fillLocked()
}

// stopInstanceLocked takes an instance out of the active set and out of Endpoints at once and
// tells its goroutine to drain and stop it.
func (r *Runtime) stopInstanceLocked(rv *revision, in *instance) {
	if in.stopping {
		return
	}
	in.stopping = true
	in.cancel()
	rv.active = slices.DeleteFunc(rv.active, func(x *instance) bool { return x == in })
	if in.ready {
		in.ready = false
		r.markDirtyLocked(rv.key)
	}
}

// Remove stops every instance of the revision and returns without waiting for them: they leave
// Endpoints at once, instances not started yet never start, and each running one is drained,
// sent SIGTERM, given its grace period and killed by the runtime, which owns that work
// (WaitRemoved waits for it; Close too). State is the zero State from the start.
func (r *Runtime) Remove(_ context.Context, namespace, name string) error {
	k := key{cmp.Or(namespace, "default"), name}
	r.mu.Lock()
	defer r.mu.Unlock()
	rv := r.revs[k]
	if rv == nil {
		return nil
	}
	delete(r.revs, k)
	rv.cancel()
	r.setBlockedLocked(rv, false)
	for _, in := range slices.Clone(rv.active) {
		r.stopInstanceLocked(rv, in)
	}
	if len(rv.all) > 0 {
		rv.drained = make(chan struct{})
		r.removed[k] = append(r.removed[k], rv)
	}
	r.markDirtyLocked(k)
	r.log.Info("removing revision", "revision", k.namespace+"/"+k.name, "instances", len(rv.all))
	return nil
}

// WaitRemoved waits until every instance of the removed revisions named namespace/name has
// stopped, or ctx is done.
func (r *Runtime) WaitRemoved(ctx context.Context, namespace, name string) error {
	k := key{cmp.Or(namespace, "default"), name}
	r.mu.Lock()
	var drained []chan struct{}
	for _, rv := range r.removed[k] {
		drained = append(drained, rv.drained)
	}
	r.mu.Unlock()
	for _, d := range drained {
		select {
		case <-d:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the instances of removed revision %s/%s to stop: %w", k.namespace, k.name, ctx.Err())
		}
	}
	return nil
}

// State is what the runtime observes of the revision now.
func (r *Runtime) State(namespace, name string) runtime.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	rv := r.revs[key{cmp.Or(namespace, "default"), name}]
	if rv == nil {
		return runtime.State{}
	}
	st := runtime.State{Desired: rv.desired, Restarts: rv.restarts}
	active := slices.Clone(rv.active)
	slices.SortFunc(active, func(a, b *instance) int { return a.index - b.index })
	var latest *instance
	for _, in := range active {
		if in.ready {
			st.Ready++
			st.Endpoints = append(st.Endpoints, runtime.Endpoint{Address: loopback, Port: uint32(in.port)})
		}
		if in.reason != "" && (latest == nil || in.since.After(latest.since)) {
			latest = in
		}
	}
	switch {
	case rv.failed:
		st.Failed, st.Reason, st.Message = true, rv.reason, rv.message
	case !rv.everReady && rv.restarts >= r.cfg.CrashLoopLimit:
		st.Failed, st.Reason, st.Message = true, rv.reason, rv.message
	case rv.blocked && len(rv.active) == 0:
		st.Failed, st.Reason = true, runtime.ReasonUnschedulable
		st.Message = fmt.Sprintf("none of the %d instances can start: the local runtime runs at most %d instances at once (max-instances), and they are taken",
			rv.desired, r.cfg.MaxInstances)
	case latest != nil:
		st.Reason, st.Message = latest.reason, latest.message
	}
	return st
}

// Close stops every instance (drain, SIGTERM, grace period, SIGKILL) and every goroutine of the
// runtime. When ctx is done first, the remaining instances are killed at once and Close returns
// ctx's error once they are gone. Close waits for an OnChange call that is running; no call
// starts after Close has returned.
func (r *Runtime) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.blocked = 0
		for k, rv := range r.revs {
			for _, in := range slices.Clone(rv.active) {
				r.stopInstanceLocked(rv, in)
			}
			delete(r.revs, k)
		}
		r.mu.Unlock()
		r.cancel()
		go func() {
			r.wg.Wait()
			close(r.stopNotify)
			<-r.notifyDone
			close(r.closeDone)
		}()
	})
	select {
	case <-r.closeDone:
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	select {
	case <-r.hurry:
	default:
		close(r.hurry)
	}
	r.mu.Unlock()
	<-r.closeDone // quick now: every instance is being killed
	return fmt.Errorf("closing the local runtime: %w", ctx.Err())
}

// markDirtyLocked records that the revision's State changed and wakes the notifier.
func (r *Runtime) markDirtyLocked(k key) {
	if r.cfg.OnChange == nil {
		return
	}
	r.dirty[k] = struct{}{}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// notifier calls OnChange for changed revisions, outside any lock, until Close.
func (r *Runtime) notifier() {
	defer close(r.notifyDone)
	for {
		select {
		case <-r.stopNotify:
			return
		case <-r.wake:
		}
		r.mu.Lock()
		dirty := r.dirty
		r.dirty = map[key]struct{}{}
		r.mu.Unlock()
		for k := range dirty {
			select {
			case <-r.stopNotify:
				return
			default:
			}
			r.cfg.OnChange(k.namespace, k.name)
		}
	}
}

// allocPort picks a free port that no other instance of this runtime holds. It draws at
// random from below the kernel's ephemeral range (ip_local_port_range), where outgoing
// connections take their local ports: a port found free inside that range can be taken by a
// new connection between the check and the app's own bind, which showed up as EADDRINUSE
// crashes when many connections were opened. Free means bindable on the wildcard address, as
// apps listen on ":$PORT". Without room below the range it asks the kernel for any port.
func (r *Runtime) allocPort() (int, error) {
	lo, hi := portRange()
	for range 50 {
		port := 0
		if hi > lo {
			port = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
		if err != nil {
			if port == 0 {
				return 0, fmt.Errorf("picking a free port: %w", err)
			}
			continue // in use
		}
		port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		r.mu.Lock()
		_, taken := r.ports[port]
		if !taken {
			r.ports[port] = struct{}{}
		}
		r.mu.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, errors.New("picking a free port: every port tried is taken")
}

// instancePortsFrom is the lowest port allocPort hands out.
const instancePortsFrom = 10000

// portRange is where allocPort draws ports from: [instancePortsFrom, start of the ephemeral
// range), or an empty range when the system's range cannot be read or leaves too little room.
func portRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start-instancePortsFrom < 1000 {
		return 0, 0
	}
	return instancePortsFrom, start
}

func (r *Runtime) releasePort(port int) {
	r.mu.Lock()
	delete(r.ports, port)
	r.mu.Unlock()
}
