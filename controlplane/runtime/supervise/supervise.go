// Package supervise keeps Knative Revisions' instances running on this machine, for both
// runtimes of `skiff up` (controlplane/runtime/local runs processes, controlplane/runtime/oci
// runc containers): they differ only in how a revision is prepared and how one instance is
// started and stopped (a Driver), and a Supervisor does the rest the same way for both.
//
// What it does, as a kubelet and a ReplicaSet would:
//   - Bounds (issue 13): at most Config.MaxInstances instances exist at once across every
//     revision (starting, running or draining; one goroutine each), and instances start at no
//     more than Config.StartRate per second (restarts included). Instances beyond the bound wait
//     unmaterialised, free slots go first to the revision with the fewest, and a revision none of
//     whose instances could start is Failed with reason Unschedulable until one starts. An
//     instance stopped before its turn never starts.
//   - Each instance gets a free loopback port (its PORT) and is probed there for readiness
//     (controlplane/runtime/probe), and for liveness when the plan has one.
//   - A run that ends is restarted with CrashLoopBackOff's doubling backoff and counted in
//     State.Restarts; the revision is Failed only if it crashed Config.CrashLoopLimit times
//     before any instance was ever ready.
//   - Stopping (scale down, Remove, Close): the instance leaves Endpoints at once (OnChange),
//     is drained for Config.DrainTimeout if it was ever ready, gets SIGTERM, then SIGKILL after
//     its grace period capped by Config.MaxGracePeriod. Scale-down stops unready instances
//     first, then the newest. Remove returns at once: the Supervisor owns the drain.
//   - Output goes to the revision's log file (controlplane/runtime/runlog), one per revision.
package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/ports"
	"github.com/skiff-dev/skiff/controlplane/runtime/runlog"
)

// loopback is the address every instance is reached on.
const loopback = "127.0.0.1"

// ErrClosed is returned by Scale after Close.
var ErrClosed = errors.New("runtime closed")

// Config configures a Supervisor. Every field must be set (the runtimes apply their defaults),
// except OnChange.
type Config struct {
	// Name names the runtime in messages, e.g. "local" or "OCI".
	Name string
	// DataDir holds the revisions' logs (runlog.Path).
	DataDir string
	// Logger receives the Supervisor's own logs (not the apps').
	Logger *slog.Logger
	// OnChange is called whenever a revision's State changes. Calls come from one goroutine,
	// never while the Supervisor holds a lock and never from inside Scale or Remove; changes
	// that happen while a call runs are coalesced into the next one.
	OnChange func(namespace, name string)
	// DrainTimeout is the time between taking an ever-ready instance out of Endpoints and
	// sending it SIGTERM; 0: none.
	DrainTimeout time.Duration
	// MaxGracePeriod caps Plan.Grace, the time between SIGTERM and SIGKILL.
	MaxGracePeriod time.Duration
	// RestartBackoff is the wait before restarting a crashed instance the first time; it
	// doubles with every crash up to MaxRestartBackoff.
	RestartBackoff, MaxRestartBackoff time.Duration
	// CrashLoopLimit is how many crashes, before any instance was ever ready, make the revision
	// Failed.
	CrashLoopLimit int
	// MaxInstances bounds the instances that exist at once, across every revision.
	MaxInstances int
	// StartRate bounds how many instances start per second (restarts included), in bursts of
	// up to StartBurst.
	StartRate  float64
	StartBurst int
}

// Key names a revision.
type Key struct{ Namespace, Name string }

// String is "namespace/name", as logs name a revision.
func (k Key) String() string { return k.Namespace + "/" + k.Name }

// Supervisor runs revisions' instances through a Driver. Create it with New and stop it with
// Close.
type Supervisor struct {
	cfg    Config
	driver Driver
	log    *slog.Logger
	ports  *ports.Allocator
	starts *rate.Limiter   // paces starts
	ctx    context.Context // canceled by Close: aborts preparations and probes
	cancel context.CancelFunc

	wg         sync.WaitGroup // every instance and preparation goroutine
	wake       chan struct{}  // a notification is pending
	stopNotify chan struct{}  // closed by Close: the notifier stops
	notifyDone chan struct{}  // closed when the notifier has stopped
	hurry      chan struct{}  // closed when Close runs out of time: stop without drain or grace
	closeOnce  sync.Once
	closeDone  chan struct{}

	mu      sync.Mutex
	closed  bool
	revs    map[Key]*revision
	removed map[Key][]*revision // removed revisions whose instances still run
	used    int                 // instances whose goroutine runs: the slots of MaxInstances in use
	blocked int                 // revisions with blocked set
	dirty   map[Key]struct{}    // revisions whose change OnChange has not heard of yet
}

// revision is the Supervisor's record of one revision; guarded by Supervisor.mu.
type revision struct {
	key    Key
	plan   *Plan // nil when it failed at admission
	ctx    context.Context
	cancel context.CancelFunc
	logs   *runlog.Sink

	desired   int
	runnable  bool               // prepared: instances may start
	preparing bool               // Plan.Prepare runs
	active    []*instance        // instances counted towards desired
	all       map[*instance]bool // instances whose goroutine still runs, stopping ones too
	blocked   bool               // it wants more instances than it has and no slot is free
	gone      bool               // removed, or the Supervisor closed
	released  bool               // Plan.Release was called
	drained   chan struct{}      // once removed: closed when its last instance has stopped
	nextIndex int
	restarts  int
	everReady bool
	failed    bool   // a problem that lets nothing run (spec, build, pull)
	reason    string // of that problem, or of the latest crash
	message   string
}

// New makes a Supervisor running revisions with driver; it starts nothing until Scale.
func New(cfg Config, driver Driver) *Supervisor {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{
		cfg:        cfg,
		driver:     driver,
		log:        cfg.Logger,
		ports:      ports.New(),
		starts:     rate.NewLimiter(rate.Limit(cfg.StartRate), cfg.StartBurst),
		ctx:        ctx,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		stopNotify: make(chan struct{}),
		notifyDone: make(chan struct{}),
		hurry:      make(chan struct{}),
		closeDone:  make(chan struct{}),
		revs:       map[Key]*revision{},
		removed:    map[Key][]*revision{},
		dirty:      map[Key]struct{}{},
	}
	go s.notifier()
	return s
}

// KeyOf names rev, its namespace defaulted, and checks that neither name could escape a
// directory (they name log files and more).
func KeyOf(rev *servingv1.Revision) (Key, error) {
	k := Key{cmp.Or(rev.Namespace, "default"), rev.Name}
	for _, s := range []string{k.Namespace, k.Name} {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
			return k, fmt.Errorf("invalid namespace or name %q", s)
		}
	}
	return k, nil
}

// Scale makes the revision run replicas instances. The first call asks the Driver for its Plan
// and starts its preparation; instances start and stop in the background. A revision that
// cannot run is reported in State (Failed), not as an error; errors are for a nil or unnamed
// revision, a negative count, or a closed Supervisor. The spec is read on the first call only:
// revisions are immutable.
func (s *Supervisor) Scale(_ context.Context, rev *servingv1.Revision, replicas int) error {
	if rev == nil {
		return errors.New("scaling a revision: nil revision")
	}
	k, err := KeyOf(rev)
	if err != nil {
		return fmt.Errorf("scaling revision %s: %w", k, err)
	}
	if replicas < 0 {
		return fmt.Errorf("scaling revision %s: negative replicas %d", k, replicas)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	rv := s.revs[k]
	if rv == nil {
		rv = s.admitLocked(k, rev)
		s.revs[k] = rv
		s.markDirtyLocked(k)
	}
	if rv.desired != replicas {
		s.log.Info("scaling revision", "revision", k.String(), "from", rv.desired, "to", replicas)
		rv.desired = replicas
		s.markDirtyLocked(k)
	}
	s.reconcileLocked(rv)
	return nil
}

// admitLocked makes the record of a revision seen for the first time: its plan, and its
// preparation if it needs one.
func (s *Supervisor) admitLocked(k Key, rev *servingv1.Revision) *revision {
	ctx, cancel := context.WithCancel(s.ctx)
	rv := &revision{key: k, ctx: ctx, cancel: cancel, all: map[*instance]bool{},
		logs: runlog.NewSink(runlog.Path(s.cfg.DataDir, k.Namespace, k.Name), s.log)}
	p, err := s.driver.Plan(k, rev)
	if err != nil {
		f := &Failure{Reason: runtime.ReasonUnsupported, Message: err.Error()}
		errors.As(err, &f)
		rv.failed, rv.reason, rv.message = true, f.Reason, f.Message
		s.log.Warn("revision cannot run", "runtime", s.cfg.Name, "revision", k.String(), "reason", f.Reason, "message", f.Message)
		return rv
	}
	rv.plan = p
	if p.Prepare == nil {
		rv.runnable = true
		return rv
	}
	rv.preparing = true
	s.wg.Add(1)
	go s.prepare(rv)
	return rv
}

// Preparation is how a Plan.Prepare reports on the revision it prepares.
type Preparation struct {
	s  *Supervisor
	rv *revision
}

// Logs is the revision's log file, e.g. for a build's output.
func (p *Preparation) Logs() *runlog.Sink { return p.rv.logs }

// Fail makes the revision Failed with reason and message until Ready is called.
func (p *Preparation) Fail(reason, message string) {
	s, rv := p.s, p.rv
	s.mu.Lock()
	defer s.mu.Unlock()
	if rv.gone {
		return
	}
	rv.failed, rv.reason, rv.message = true, reason, message
	s.markDirtyLocked(rv.key)
}

// Ready lets the revision's instances start, clearing a failure Fail reported.
func (p *Preparation) Ready() {
	s, rv := p.s, p.rv
	s.mu.Lock()
	defer s.mu.Unlock()
	if rv.gone {
		return
	}
	rv.runnable = true
	rv.failed, rv.reason, rv.message = false, "", ""
	s.markDirtyLocked(rv.key)
	s.reconcileLocked(rv)
}

// prepare runs the revision's Plan.Prepare.
func (s *Supervisor) prepare(rv *revision) {
	defer s.wg.Done()
	rv.plan.Prepare(rv.ctx, &Preparation{s: s, rv: rv})
	s.mu.Lock()
	defer s.mu.Unlock()
	rv.preparing = false
	s.releaseLocked(rv)
}

// reconcileLocked starts or stops instances until as many as desired are active, within the
// bound on instances.
func (s *Supervisor) reconcileLocked(rv *revision) {
	if rv.failed || !rv.runnable || rv.gone {
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
			s.stopInstanceLocked(rv, in)
		}
	}
	if rv.wants() > 0 {
		s.fillLocked()
	} else {
		s.setBlockedLocked(rv, false)
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
func (s *Supervisor) fillLocked() {
	if s.closed {
		return
	}
	for s.used < s.cfg.MaxInstances {
		var next *revision
		for _, rv := range s.revs {
			if rv.wants() > 0 && (next == nil || len(rv.active) < len(next.active)) {
				next = rv
			}
		}
		if next == nil {
			break
		}
		s.startInstanceLocked(next)
	}
	if s.used < s.cfg.MaxInstances && s.blocked == 0 {
		return
	}
	for _, rv := range s.revs {
		s.setBlockedLocked(rv, rv.wants() > 0 && s.used >= s.cfg.MaxInstances)
	}
}

// setBlockedLocked records whether the revision waits for a slot; State reports it.
func (s *Supervisor) setBlockedLocked(rv *revision, blocked bool) {
	if rv.blocked == blocked {
		return
	}
	rv.blocked = blocked
	if blocked {
		s.blocked++
		s.log.Warn("instances wait for a slot: the runtime's bound on instances is reached", "runtime", s.cfg.Name,
			"revision", rv.key.String(), "waiting", rv.wants(), "maxInstances", s.cfg.MaxInstances)
	} else {
		s.blocked--
	}
	s.markDirtyLocked(rv.key)
}

// Remove stops every instance of the revision and returns without waiting for them: they leave
// Endpoints at once, instances not started yet never start, and each running one is drained,
// sent SIGTERM, given its grace period and killed by the Supervisor, which owns that work
// (WaitRemoved waits for it; Close too). State is the zero State from the start.
func (s *Supervisor) Remove(_ context.Context, namespace, name string) error {
	k := Key{cmp.Or(namespace, "default"), name}
	s.mu.Lock()
	defer s.mu.Unlock()
	rv := s.revs[k]
	if rv == nil {
		return nil
	}
	delete(s.revs, k)
	s.setBlockedLocked(rv, false)
	s.retireLocked(rv)
	if len(rv.all) > 0 {
		rv.drained = make(chan struct{})
		s.removed[k] = append(s.removed[k], rv)
	}
	s.markDirtyLocked(k)
	s.log.Info("removing revision", "runtime", s.cfg.Name, "revision", k.String(), "instances", len(rv.all))
	return nil
}

// retireLocked stops all of a revision that is removed or closed.
func (s *Supervisor) retireLocked(rv *revision) {
	rv.gone = true
	rv.cancel()
	for _, in := range slices.Clone(rv.active) {
		s.stopInstanceLocked(rv, in)
	}
	s.releaseLocked(rv)
}

// releaseLocked calls the plan's Release once nothing of a retired revision runs.
func (s *Supervisor) releaseLocked(rv *revision) {
	if !rv.gone || rv.released || rv.preparing || len(rv.all) > 0 || rv.plan == nil {
		return
	}
	rv.released = true
	if rv.plan.Release != nil {
		rv.plan.Release()
	}
}

// WaitRemoved waits until every instance of the removed revisions named namespace/name has
// stopped, or ctx is done.
func (s *Supervisor) WaitRemoved(ctx context.Context, namespace, name string) error {
	k := Key{cmp.Or(namespace, "default"), name}
	s.mu.Lock()
	var drained []chan struct{}
	for _, rv := range s.removed[k] {
		drained = append(drained, rv.drained)
	}
	s.mu.Unlock()
	for _, d := range drained {
		select {
		case <-d:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the instances of removed revision %s to stop: %w", k, ctx.Err())
		}
	}
	return nil
}

// State is what the Supervisor observes of the revision now.
func (s *Supervisor) State(namespace, name string) runtime.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	rv := s.revs[Key{cmp.Or(namespace, "default"), name}]
	if rv == nil {
		return runtime.State{}
	}
	return s.stateLocked(rv)
}

// stateLocked is the revision's State: its ready instances' endpoints in index order; Failed
// when it cannot run, crash-loops before ever being ready, or has no slot for any instance;
// else the reason of the instance that went wrong last.
func (s *Supervisor) stateLocked(rv *revision) runtime.State {
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
	case !rv.everReady && rv.restarts >= s.cfg.CrashLoopLimit:
		st.Failed, st.Reason, st.Message = true, rv.reason, rv.message
	case rv.blocked && len(rv.active) == 0:
		st.Failed, st.Reason = true, runtime.ReasonUnschedulable
		st.Message = fmt.Sprintf("none of the %d instances can start: the %s runtime runs at most %d instances at once (max-instances), and they are taken",
			rv.desired, s.cfg.Name, s.cfg.MaxInstances)
	case latest != nil:
		st.Reason, st.Message = latest.reason, latest.message
	}
	return st
}

// ReadyInstance is one ready instance, as ReadyInstances lists it.
type ReadyInstance struct {
	Revision Key
	Index    int
	Port     int
}

// ReadyInstances lists the instances that are ready now (in Endpoints).
func (s *Supervisor) ReadyInstances() []ReadyInstance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ReadyInstance
	for k, rv := range s.revs {
		for _, in := range rv.active {
			if in.ready && in.port != 0 {
				out = append(out, ReadyInstance{Revision: k, Index: in.index, Port: in.port})
			}
		}
	}
	return out
}

// Close stops every instance (drain, SIGTERM, grace period, SIGKILL) and every goroutine of the
// Supervisor. When ctx is done first, the remaining instances are killed at once and Close
// returns ctx's error once they are gone. Close waits for an OnChange call that is running; no
// call starts after Close has returned.
func (s *Supervisor) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.blocked = 0
		for k, rv := range s.revs {
			s.retireLocked(rv)
			delete(s.revs, k)
		}
		s.mu.Unlock()
		s.cancel()
		go func() {
			s.wg.Wait()
			close(s.stopNotify)
			<-s.notifyDone
			close(s.closeDone)
		}()
	})
	select {
	case <-s.closeDone:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	select {
	case <-s.hurry:
	default:
		close(s.hurry)
	}
	s.mu.Unlock()
	<-s.closeDone // quick now: every instance is being killed
	return fmt.Errorf("closing the %s runtime: %w", s.cfg.Name, ctx.Err())
}

// markDirtyLocked records that the revision's State changed and wakes the notifier.
func (s *Supervisor) markDirtyLocked(k Key) {
	if s.cfg.OnChange == nil {
		return
	}
	s.dirty[k] = struct{}{}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// notifier calls OnChange for changed revisions, outside any lock, until Close.
func (s *Supervisor) notifier() {
	defer close(s.notifyDone)
	for {
		select {
		case <-s.stopNotify:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		dirty := s.dirty
		s.dirty = map[Key]struct{}{}
		s.mu.Unlock()
		for k := range dirty {
			select {
			case <-s.stopNotify:
				return
			default:
			}
			s.cfg.OnChange(k.Namespace, k.Name)
		}
	}
}
