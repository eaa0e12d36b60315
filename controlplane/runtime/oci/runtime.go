// Package oci runs Knative Revisions' container images on this machine with runc, for
// `skiff up`: the image is pulled into the content-addressed cache (controlplane/runtime/image)
// and each instance runs as an OCI bundle whose root filesystem is an overlay of the image's
// layers with a writable layer of its own, as a container in a pod would.
//
// What runs: the image named by the revision's status.containerStatuses[0].imageDigest (the
// digest the revision reconciler resolved, so a retagged image never changes a revision), else
// its spec image. The process is the image's entrypoint and cmd merged with the container's
// command and args by Kubernetes' rules; its environment is the image's, then HOST=127.0.0.1
// (runtime.ListenHost, as the process runtime gives it: the container shares the host's
// network, so an app that honours HOST is reached only through the gateway; it replaces an
// image's own HOST, written for a network namespace of its own), then the container's envFrom
// and env (ConfigMap and Secret references read at each start; these may override HOST), then
// PORT, K_SERVICE, K_CONFIGURATION and K_REVISION, which always win; its working directory and user come from
// workingDir and securityContext (runAsUser, runAsGroup, runAsNonRoot, capabilities,
// readOnlyRootFilesystem, allowPrivilegeEscalation) over the image's.
//
// Networking: instances share the host's network namespace, like the process runtime's. PORT is
// a free port the runtime picks (not containerPort, since every instance shares one port space)
// and the proxy reaches the instance on 127.0.0.1:PORT. That keeps what apps reach the same as
// for processes (the gateway and the broker ingress on loopback, K_SINK, the internet) without
// Skiff changing the host's firewall; an app that ignores HOST and binds every interface is
// reachable from the network as any local process is. The host's /etc/resolv.conf and /etc/hosts are mounted
// read-only.
//
// Volumes: configMap, secret and projected (of those) volumes are written under the instance's
// bundle and mounted read-only, as Knative mounts them; emptyDir is a writable directory (a
// tmpfs with medium Memory). A missing ConfigMap, Secret or key is the kubelet's
// CreateContainerConfigError, retried with the crash backoff so creating it later lets the
// instance start.
//
// Resources: resources.limits.memory and limits.cpu become cgroup limits, requests.cpu shares,
// when the host lets runc create cgroups (Check says); else they are ignored with a warning.
//
// Probes, restarts, stopping and logs behave as in the process runtime: readiness probes on
// 127.0.0.1:PORT (exec probes with runc exec) decide Endpoints; a liveness probe that fails
// failureThreshold times restarts the instance; a crash restarts it with the kubelet's
// CrashLoopBackOff (10s doubling to 5m; the first crash already shows as ExitCodeN on the
// revision) and a revision that crashes CrashLoopLimit times before ever being ready is Failed; a stopping instance leaves
// Endpoints, is drained, gets SIGTERM, then SIGKILL after its grace period; output goes to
// <DataDir>/logs/<ns>/<rev>.log with "[<instance>] " before each line and "[pull] " before the
// pull's progress. A pull that fails makes the revision Failed with a reason naming the cause
// (image.Reason*) and is retried with the kubelet's image backoff (10s doubling to 5m).
//
// Cleanup: an instance's container is deleted, its mounts detached and its bundle removed when
// it stops; containers, mounts and bundles a previous Skiff left (killed) are removed by New.
package oci

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/image"
	"github.com/skiff-dev/skiff/controlplane/runtime/ports"
	"github.com/skiff-dev/skiff/controlplane/runtime/probe"
	"github.com/skiff-dev/skiff/controlplane/runtime/runlog"
)

// loopback is the address every instance is reached on.
const loopback = "127.0.0.1"

// ErrClosed is returned by Scale after Close.
var ErrClosed = errors.New("oci runtime: closed")

// Config configures a Runtime. Zero values take the documented defaults.
type Config struct {
	// DataDir holds bundles (oci/bundles/<id>), runc's state (oci/runc) and logs
	// (logs/<ns>/<rev>.log).
	DataDir string
	// Images is the image cache instances run from. Required.
	Images *image.Store
	// Runc is the runc binary. Default "runc" (found in PATH).
	Runc string
	// Objects reads the ConfigMaps and Secrets env and volumes refer to; nil: none exist.
	Objects Objects
	// Keychain returns the credentials to pull with for a namespace's pull secrets (the
	// revision's imagePullSecrets). Default: the docker config only.
	Keychain func(ctx context.Context, namespace string, pullSecrets []string) (authn.Keychain, error)
	// Cgroups says runc may create cgroups, so resources become limits (Check tells).
	Cgroups bool
	// Logger receives the runtime's own logs. Default slog.Default().
	Logger *slog.Logger
	// OnChange is called whenever a revision's State changes, from one goroutine, never while
	// the runtime holds a lock; changes during a call are coalesced into the next.
	OnChange func(namespace, name string)
	// DrainTimeout is the time between taking an instance out of Endpoints and SIGTERM.
	// Default 1s; negative: none.
	DrainTimeout time.Duration
	// MaxGracePeriod caps terminationGracePeriodSeconds. Default 10s.
	MaxGracePeriod time.Duration
	// RestartBackoff doubles with every crash up to MaxRestartBackoff. Defaults: the kubelet's
	// CrashLoopBackOff, 10s and 5m.
	RestartBackoff, MaxRestartBackoff time.Duration
	// PullBackoff doubles with every failed pull up to MaxPullBackoff. Defaults: the kubelet's
	// image backoff, 10s and 5m.
	PullBackoff, MaxPullBackoff time.Duration
	// PullTimeout bounds one pull. Default 10m.
	PullTimeout time.Duration
	// CrashLoopLimit is how many crashes before any instance was ever ready make the revision
	// Failed. Default 3.
	CrashLoopLimit int
	// MaxInstances bounds the containers that exist at once across every revision. Default
	// 16 per CPU, at least 64.
	MaxInstances int
}

func (c Config) withDefaults() Config {
	if abs, err := filepath.Abs(cmp.Or(c.DataDir, filepath.Join(os.TempDir(), "skiff"))); err == nil {
		c.DataDir = abs
	}
	c.Runc = cmp.Or(c.Runc, "runc")
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.DrainTimeout == 0:
		c.DrainTimeout = time.Second
	case c.DrainTimeout < 0:
		c.DrainTimeout = 0
	}
	c.MaxGracePeriod = cmp.Or(c.MaxGracePeriod, 10*time.Second)
	c.RestartBackoff = cmp.Or(c.RestartBackoff, 10*time.Second)
	c.MaxRestartBackoff = max(cmp.Or(c.MaxRestartBackoff, 5*time.Minute), c.RestartBackoff)
	c.PullBackoff = cmp.Or(c.PullBackoff, 10*time.Second)
	c.MaxPullBackoff = max(cmp.Or(c.MaxPullBackoff, 5*time.Minute), c.PullBackoff)
	c.PullTimeout = cmp.Or(c.PullTimeout, 10*time.Minute)
	c.CrashLoopLimit = cmp.Or(c.CrashLoopLimit, 3)
	c.MaxInstances = cmp.Or(c.MaxInstances, max(64, 16*goruntime.NumCPU()))
	return c
}

// Runtime runs revisions as runc containers. It implements runtime.Runtime; create it with New
// and stop it with Close.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	runc    runc
	bundles string
	ports   *ports.Allocator
	ctx     context.Context // canceled by Close: aborts pulls and probes
	cancel  context.CancelFunc

	wg         sync.WaitGroup // every instance and pull goroutine
	wake       chan struct{}
	stopNotify chan struct{}
	notifyDone chan struct{}
	hurry      chan struct{} // closed when Close runs out of time: stop without drain or grace
	closeOnce  sync.Once
	closeDone  chan struct{}

	mu     sync.Mutex
	closed bool
	revs   map[key]*revision
	used   int // instances whose goroutine runs
	dirty  map[key]struct{}
}

var _ runtime.Runtime = (*Runtime)(nil)

type key struct{ namespace, name string }

func (k key) String() string { return k.namespace + "/" + k.name }

// revision is the runtime's record of one revision; guarded by Runtime.mu.
type revision struct {
	key    key
	plan   *plan // nil when failed at admission
	ctx    context.Context
	cancel context.CancelFunc
	logs   *runlog.Sink

	desired   int
	runnable  bool // the image is pulled
	active    []*instance
	all       map[*instance]bool
	nextIndex int
	restarts  int
	everReady bool
	failed    bool   // the spec cannot run, or the pull failed (pullFailed)
	pullFail  bool   // failed because of the pull, which is retried
	blocked   bool   // wants instances and MaxInstances are taken
	reason    string // of the failure, or of the latest crash
	message   string
}

// instance is one container of a revision. Fields below the channels are guarded by Runtime.mu.
type instance struct {
	index int
	stop  chan struct{} // closed once, under Runtime.mu, to drain and stop the instance
	done  chan struct{} // closed when the instance's goroutine has returned

	stopping bool
	port     int
	ready    bool
	reason   string
	message  string
	since    time.Time
}

// New makes a Runtime after removing what a previous run left: containers in its runc state
// directory, mounts and bundles. It starts no container until Scale.
func New(cfg Config) (*Runtime, error) {
	cfg = cfg.withDefaults()
	if cfg.Images == nil {
		return nil, errors.New("oci runtime: no image store")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		cfg: cfg, log: cfg.Logger.With("component", "runtime/oci"),
		runc:    runc{bin: cfg.Runc, root: filepath.Join(cfg.DataDir, "oci", "runc")},
		bundles: filepath.Join(cfg.DataDir, "oci", "bundles"),
		ports:   ports.New(), ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), stopNotify: make(chan struct{}), notifyDone: make(chan struct{}),
		hurry: make(chan struct{}), closeDone: make(chan struct{}),
		revs: map[key]*revision{}, dirty: map[key]struct{}{},
	}
	if err := r.sweep(ctx); err != nil {
		cancel()
		return nil, err
	}
	for _, d := range []string{r.runc.root, r.bundles} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			cancel()
			return nil, fmt.Errorf("oci runtime: %w", err)
		}
	}
	go r.notifier()
	return r, nil
}

// sweep removes every container, mount and bundle under the runtime's directories.
func (r *Runtime) sweep(ctx context.Context) error {
	if _, err := os.Stat(r.runc.root); err == nil {
		ids, err := r.runc.list(ctx)
		if err != nil {
			r.log.Warn("listing containers left by a previous run", "err", err)
		}
		for _, id := range ids {
			r.log.Info("removing a container left by a previous run", "id", id)
			_ = r.runc.kill(ctx, id, syscall.SIGKILL, true)
			if err := r.runc.delete(ctx, id); err != nil {
				r.log.Warn("removing a container left by a previous run", "id", id, "err", err)
			}
		}
	}
	if err := unmountUnder(r.bundles); err != nil {
		return fmt.Errorf("oci runtime: unmounting what a previous run left: %w", err)
	}
	if err := os.RemoveAll(r.bundles); err != nil {
		return fmt.Errorf("oci runtime: removing bundles a previous run left: %w", err)
	}
	return nil
}

// Scale makes the revision run replicas instances. The first call checks its spec and starts
// pulling its image; containers start and stop in the background. A spec or image that cannot
// run is reported in State; errors are for a nil or unnamed revision, a negative count or a
// closed runtime. The spec is read on the first call only: revisions are immutable.
func (r *Runtime) Scale(_ context.Context, rev *servingv1.Revision, replicas int) error {
	if rev == nil {
		return errors.New("scaling a revision: nil revision")
	}
	k := key{cmp.Or(rev.Namespace, "default"), rev.Name}
	for _, s := range []string{k.namespace, k.name} {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
			return fmt.Errorf("scaling revision %s: invalid namespace or name %q", k, s)
		}
	}
	if replicas < 0 {
		return fmt.Errorf("scaling revision %s: negative replicas %d", k, replicas)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	rv := r.revs[k]
	if rv == nil {
		rv = r.admitLocked(k, rev)
		r.revs[k] = rv
		r.markDirtyLocked(k)
	}
	if rv.desired != replicas {
		r.log.Info("scaling revision", "revision", k.String(), "from", rv.desired, "to", replicas)
		rv.desired = replicas
		r.markDirtyLocked(k)
	}
	r.reconcileLocked(rv)
	return nil
}

// admitLocked makes the record of a revision seen for the first time and starts its pull.
func (r *Runtime) admitLocked(k key, rev *servingv1.Revision) *revision {
	ctx, cancel := context.WithCancel(r.ctx)
	rv := &revision{key: k, ctx: ctx, cancel: cancel, all: map[*instance]bool{},
		logs: runlog.NewSink(runlog.Path(r.cfg.DataDir, k.namespace, k.name), r.log)}
	p, perr := newPlan(rev)
	if perr != nil {
		rv.failed, rv.reason, rv.message = true, perr.reason, perr.message
		r.log.Warn("revision cannot run in the OCI runtime", "revision", k.String(), "reason", perr.reason, "message", perr.message)
		return rv
	}
	p.namespace = k.namespace
	rv.plan = p
	if len(p.ignored) > 0 {
		r.log.Warn("the OCI runtime ignores these fields", "revision", k.String(), "fields", strings.Join(p.ignored, ", "))
	}
	var secrets []string
	for _, s := range rev.Spec.ImagePullSecrets {
		secrets = append(secrets, s.Name)
	}
	r.wg.Add(1)
	go r.pull(rv, secrets)
	return rv
}

// pull pulls the revision's image, retrying with backoff until it succeeds or the revision
// is removed; meanwhile the revision is Failed with the pull's reason.
func (r *Runtime) pull(rv *revision, secrets []string) {
	defer r.wg.Done()
	ref := rv.plan.ref
	log := r.log.With("revision", rv.key.String(), "image", ref)
	logf := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		log.Info(msg)
		rv.logs.Line("[pull] ", msg)
	}
	backoff := r.cfg.PullBackoff
	for {
		var kc authn.Keychain
		var err error
		if r.cfg.Keychain != nil {
			kc, err = r.cfg.Keychain(rv.ctx, rv.key.namespace, secrets)
		}
		var img *image.Image
		if err == nil {
			ctx, cancel := context.WithTimeout(rv.ctx, r.cfg.PullTimeout)
			img, err = r.cfg.Images.Pull(ctx, ref, kc, logf)
			cancel()
		} else {
			err = &image.Error{Reason: image.ReasonUnauthorized, Image: ref, Err: err}
		}
		r.mu.Lock()
		if rv.ctx.Err() != nil || r.revs[rv.key] != rv {
			r.mu.Unlock()
			if img != nil {
				img.Release()
			}
			return
		}
		if err == nil {
			rv.plan.img = img
			rv.runnable = true
			if rv.pullFail {
				rv.failed, rv.pullFail, rv.reason, rv.message = false, false, "", ""
			}
			r.markDirtyLocked(rv.key)
			r.reconcileLocked(rv)
			r.mu.Unlock()
			return
		}
		rv.failed, rv.pullFail, rv.reason, rv.message = true, true, image.Reason(err), image.Message(ref, err)
		r.markDirtyLocked(rv.key)
		r.mu.Unlock()
		log.Warn("pulling the image failed; retrying after backoff", "reason", image.Reason(err), "err", err, "backoff", backoff)
		rv.logs.Line("[pull] ", fmt.Sprintf("failed (%s): %v; retrying in %s", image.Reason(err), err, backoff))
		t := time.NewTimer(backoff)
		select {
		case <-rv.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, r.cfg.MaxPullBackoff)
	}
}

// reconcileLocked starts or stops instances until as many as desired are active, within
// MaxInstances.
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
	for len(rv.active) < rv.desired && r.used < r.cfg.MaxInstances {
		in := &instance{index: rv.nextIndex, stop: make(chan struct{}), done: make(chan struct{})}
		rv.nextIndex++
		rv.active = append(rv.active, in)
		rv.all[in] = true
		r.used++
		rv.logs.Acquire()
		r.wg.Add(1)
		go r.runInstance(rv, in)
	}
	blocked := len(rv.active) < rv.desired
	if blocked != rv.blocked {
		rv.blocked = blocked
		if blocked {
			r.log.Warn("instances wait for a slot: the OCI runtime's bound on instances is reached",
				"revision", rv.key.String(), "maxInstances", r.cfg.MaxInstances)
		}
		r.markDirtyLocked(rv.key)
	}
}

// stopInstanceLocked takes an instance out of the active set and Endpoints and has its
// goroutine drain and stop it.
func (r *Runtime) stopInstanceLocked(rv *revision, in *instance) {
	if in.stopping {
		return
	}
	in.stopping = true
	close(in.stop)
	rv.active = slices.DeleteFunc(rv.active, func(x *instance) bool { return x == in })
	if in.ready {
		in.ready = false
		r.markDirtyLocked(rv.key)
	}
}

// Remove stops every instance of the revision and returns without waiting: they leave
// Endpoints at once and are drained, stopped and cleaned up by the runtime (Close waits for
// them). State is the zero State from the start.
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
	for _, in := range slices.Clone(rv.active) {
		r.stopInstanceLocked(rv, in)
	}
	r.log.Info("removing revision", "revision", k.String(), "instances", len(rv.all))
	if len(rv.all) == 0 {
		r.releaseImageLocked(rv)
	}
	r.markDirtyLocked(k)
	return nil
}

// releaseImageLocked lets the cache evict a removed revision's image once nothing runs it.
func (r *Runtime) releaseImageLocked(rv *revision) {
	if rv.plan != nil && rv.plan.img != nil {
		rv.plan.img.Release()
		rv.plan.img = nil
	}
}

// Running reports how many of the revision's containers still exist, stopping ones included:
// after Remove it reaches zero once every one is stopped and cleaned up.
func (r *Runtime) Running(namespace, name string) int {
	id := containerPrefix(key{cmp.Or(namespace, "default"), name})
	ids, err := r.runc.list(context.Background())
	if err != nil {
		return -1
	}
	n := 0
	for _, c := range ids {
		if strings.HasPrefix(c, id) {
			n++
		}
	}
	return n
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
	case latest != nil:
		st.Reason, st.Message = latest.reason, latest.message
	case rv.blocked && len(rv.active) == 0:
		st.Failed, st.Reason = true, runtime.ReasonUnschedulable
		st.Message = fmt.Sprintf("the OCI runtime runs as many containers as it may (%d)", r.cfg.MaxInstances)
	}
	return st
}

// Close stops every instance (drain, SIGTERM, grace period, SIGKILL) and every goroutine; when
// ctx is done first the rest are killed at once. No OnChange call starts after Close returns.
func (r *Runtime) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		for k, rv := range r.revs {
			rv.cancel()
			for _, in := range slices.Clone(rv.active) {
				r.stopInstanceLocked(rv, in)
			}
			if len(rv.all) == 0 {
				r.releaseImageLocked(rv)
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
	<-r.closeDone
	return fmt.Errorf("closing the OCI runtime: %w", ctx.Err())
}

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

// containerPrefix starts the runc ids of a revision's containers.
func containerPrefix(k key) string { return k.namespace + "_" + k.name + "_" }

// runInstance keeps one instance's container running until the instance is stopped,
// restarting it with backoff when it exits.
func (r *Runtime) runInstance(rv *revision, in *instance) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(rv.all, in)
		r.used--
		if r.revs[rv.key] != rv && len(rv.all) == 0 {
			r.releaseImageLocked(rv) // removed, and this was its last container
		}
		for _, other := range r.revs {
			if other.blocked {
				r.reconcileLocked(other)
			}
		}
		r.mu.Unlock()
		rv.logs.Release()
		close(in.done)
	}()
	log := r.log.With("revision", rv.key.String(), "instance", in.index)
	backoff := r.cfg.RestartBackoff
	for {
		ran, stopped := r.runOnce(rv, in, log)
		if stopped {
			return
		}
		if ran >= 2*r.cfg.MaxRestartBackoff {
			backoff = r.cfg.RestartBackoff // it ran fine for a while: start over, as the kubelet does
		}
		log.Info("restarting instance after backoff", "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-in.stop:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, r.cfg.MaxRestartBackoff)
	}
}

// runOnce runs the instance's container once: until it exits (stopped false, with how long it
// ran) or the instance is stopped (stopped true). Either way the container, its mounts and its
// bundle are gone when it returns.
func (r *Runtime) runOnce(rv *revision, in *instance, log *slog.Logger) (ran time.Duration, stopped bool) {
	port, err := r.ports.Get()
	if err != nil {
		r.recordExit(rv, in, runtime.ReasonStartError, runtime.ContainerFailedMessage(err.Error()))
		return 0, false
	}
	defer r.ports.Release(port)
	r.mu.Lock()
	p := rv.plan
	in.port = port
	r.mu.Unlock()

	id := containerPrefix(rv.key) + strconv.Itoa(in.index)
	bundle := filepath.Join(r.bundles, id)
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := os.Stat(filepath.Join(r.runc.root, id)); err == nil { // runc's state of it
			if err := r.runc.delete(ctx, id); err != nil {
				log.Warn("deleting the container", "err", err)
			}
		}
		if err := unmountUnder(bundle); err != nil {
			log.Warn("unmounting the container's filesystems", "err", err)
		}
		if err := os.RemoveAll(bundle); err != nil {
			log.Warn("removing the container's bundle", "err", err)
		}
	}
	cleanup() // what a previous attempt of this instance may have left
	defer cleanup()

	logFile := filepath.Join(bundle, "runc.log")
	if err := r.prepare(rv.ctx, p, in.index, port, bundle); err != nil {
		reason := runtime.ReasonStartError
		var ce *configError
		if errors.As(err, &ce) {
			reason = ReasonCreateContainerConfigError
		}
		log.Warn("preparing the container failed", "reason", reason, "err", err)
		rv.logs.Line(fmt.Sprintf("[%d] ", in.index), "skiff: "+err.Error())
		r.recordExit(rv, in, reason, err.Error())
		return 0, r.isStopping(in)
	}

	prefix := "[" + strconv.Itoa(in.index) + "] "
	stdout, stderr := runlog.NewLineWriter(rv.logs, prefix), runlog.NewLineWriter(rv.logs, prefix)
	cmd := r.runc.run(bundle, id, logFile)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		r.recordExit(rv, in, runtime.ReasonStartError, runtime.ContainerFailedMessage(err.Error()))
		return 0, false
	}
	started := time.Now()
	log.Info("instance started", "container", id, "port", port)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	execProbe := func(ctx context.Context, command []string) error { return r.runc.exec(ctx, id, command) }
	probeCtx, stopProbes := context.WithCancel(rv.ctx)
	var probes sync.WaitGroup
	probes.Go(func() {
		pr := probe.New(p.readiness, loopback, port, execProbe)
		defer pr.Close()
		pr.Loop(probeCtx, true, func(res probe.Result, err error) {
			switch res {
			case probe.Ready:
				r.setReady(rv, in, true)
			case probe.Unready:
				r.setReady(rv, in, false)
				r.probeFailed(rv, in, err)
			case probe.NeverReady:
				r.probeFailed(rv, in, err)
			}
		})
	})
	liveFail := make(chan error, 1)
	if p.liveness != nil {
		probes.Go(func() {
			pr := probe.New(*p.liveness, loopback, port, execProbe)
			defer pr.Close()
			pr.Loop(probeCtx, false, func(res probe.Result, err error) {
				if res == probe.Unready || res == probe.NeverReady {
					select {
					case liveFail <- err:
					default:
					}
				}
			})
		})
	}
	finish := func() {
		stopProbes()
		probes.Wait()
		stdout.Flush()
		stderr.Flush()
	}

	var waitErr error
	livenessMsg := ""
	select {
	case waitErr = <-exited:
	case err := <-liveFail:
		livenessMsg = fmt.Sprintf("Liveness probe failed: %v", err)
		log.Warn("liveness probe failed; restarting the container", "err", err)
		r.setReady(rv, in, false)
		waitErr = r.terminate(id, cmd, p.grace, exited, false, log)
	case <-in.stop:
		finish()
		r.setReady(rv, in, false)
		r.terminate(id, cmd, p.grace, exited, true, log)
		log.Info("instance stopped")
		return 0, true
	}
	finish()
	code := exitCode(cmd, waitErr)
	if msg := startError(logFile); msg != "" && livenessMsg == "" {
		log.Warn("the container did not start", "err", msg)
		rv.logs.Line(prefix, "runc: "+msg)
		r.recordExit(rv, in, runtime.ReasonStartError, runtime.ContainerFailedMessage(msg))
		return time.Since(started), false
	}
	out := stderr.LastLines()
	if out == "" {
		out = stdout.LastLines()
	}
	switch {
	case livenessMsg != "":
		out = livenessMsg
	case out == "" && code == 0:
		out = "container exited with no error"
	case out == "":
		out = "exit code " + strconv.Itoa(code)
	}
	log.Warn("instance exited", "exitCode", code, "ran", time.Since(started).Round(time.Millisecond))
	r.recordExit(rv, in, runtime.ExitCodeReason(code), runtime.ContainerFailedMessage(out))
	return time.Since(started), false
}

// exitCode is the code the kubelet would report: runc exits with the container's status
// (128+signal for a signal).
func exitCode(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return 128
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// prepare makes the instance's bundle: the overlay root filesystem, volumes, /etc files and
// config.json.
func (r *Runtime) prepare(ctx context.Context, p *plan, index, port int, bundle string) error {
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{rootfs, filepath.Join(bundle, "upper"), filepath.Join(bundle, "work"), filepath.Join(bundle, "volumes")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("making the bundle: %w", err)
		}
	}
	// The overlay's root directory takes the upper directory's mode: the image's "/" is 0755.
	for _, d := range []string{rootfs, filepath.Join(bundle, "upper")} {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	layers := p.img.Layers
	if len(layers) == 0 { // overlayfs needs one lower directory
		empty := filepath.Join(bundle, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			return err
		}
		layers = []string{empty}
	}
	if err := mountOverlay(layers, filepath.Join(bundle, "upper"), filepath.Join(bundle, "work"), rootfs); err != nil {
		return fmt.Errorf("mounting the root filesystem: %w", err)
	}
	c := &p.container
	cfg := p.img.Config.Config
	u, err := resolveUser(rootfs, cfg.User, c.SecurityContext, p.podSC)
	if err != nil {
		return &configError{err.Error()}
	}
	host := hostname(p.revision, index)
	src := &envSources{ctx: ctx, objects: r.cfg.Objects, ns: p.namespace}
	reserved := p.reservedVars(port)
	vars := map[string]string{}
	for k, v := range reserved {
		vars[k] = v
	}
	own, err := containerEnv(src, c, podInfo{name: host, namespace: p.namespace, serviceAccount: p.account, hostname: host, limits: c.Resources.Limits}, vars)
	if err != nil {
		return err
	}
	env := mergeEnv(cfg.Env, own, reserved, host, u.home)
	lookup := func(name string) (string, bool) {
		for i := len(own) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(own[i], "="); k == name {
				return v, true
			}
		}
		v, ok := reserved[name]
		return v, ok
	}
	args, err := commandLine(cfg, c, lookup)
	if err != nil {
		return &configError{err.Error()}
	}
	mounts, err := hostFiles(bundle, host)
	if err != nil {
		return err
	}
	vm, err := volumeMounts(src, p.volumes, c.VolumeMounts, filepath.Join(bundle, "volumes"), u)
	if err != nil {
		return err
	}
	mounts = append(mounts, vm...)
	cwd := cmp.Or(c.WorkingDir, cfg.WorkingDir, "/")
	in := instanceSpec{
		hostname: host, args: args, env: env, cwd: cwd, user: u, caps: capabilities(c.SecurityContext),
		mounts: mounts,
	}
	if sc := c.SecurityContext; sc != nil {
		in.readOnlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		in.noNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	}
	if r.cfg.Cgroups {
		in.resources = resources(c)
		in.cgroupsPath = "/skiff/" + filepath.Base(bundle)
	}
	data, err := json.Marshal(ociSpec(in))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600)
}

// mergeEnv is the process's environment: the image's, then HOST=runtime.ListenHost, then the
// container's own (envFrom and env), then the reserved variables; a later name wins. PATH,
// HOSTNAME and HOME get defaults as containerd gives them. HOST comes after the image's env
// because an image's HOST (often 0.0.0.0) assumes a network namespace of its own, which the
// instance does not have; the container's env is the user's explicit choice and wins.
func mergeEnv(imageEnv, own []string, reserved map[string]string, host, home string) []string {
	var names []string
	vals := map[string]string{}
	set := func(kv string) {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := vals[k]; !ok {
			names = append(names, k)
		}
		vals[k] = v
	}
	set("PATH=" + defaultPath)
	set("HOSTNAME=" + host)
	for _, kv := range imageEnv {
		set(kv)
	}
	set("HOST=" + runtime.ListenHost)
	for _, kv := range own {
		set(kv)
	}
	if _, ok := vals["HOME"]; !ok {
		set("HOME=" + cmp.Or(home, "/"))
	}
	for _, k := range []string{"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"} {
		set(k + "=" + reserved[k])
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + "=" + vals[n]
	}
	return out
}

// terminate stops a container as the kubelet stops a pod once its endpoint is gone: the drain
// (when drain), SIGTERM, the grace period (capped), then SIGKILL to every process in it. It
// returns runc's wait error. A Close out of time skips the waits.
func (r *Runtime) terminate(id string, cmd *exec.Cmd, grace time.Duration, exited <-chan error, drain bool, log *slog.Logger) error {
	var waitErr error
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case waitErr = <-exited:
			return true
		case <-t.C:
		case <-r.hurry:
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gone := drain && r.cfg.DrainTimeout > 0 && wait(r.cfg.DrainTimeout)
	if !gone {
		if err := r.runc.kill(ctx, id, syscall.SIGTERM, false); err != nil {
			log.Warn("sending SIGTERM", "err", err)
		}
		gone = wait(min(grace, r.cfg.MaxGracePeriod))
		if !gone {
			log.Warn("instance did not stop within its grace period; killing it", "grace", min(grace, r.cfg.MaxGracePeriod))
		}
	}
	if !gone {
		if err := r.runc.kill(ctx, id, syscall.SIGKILL, true); err != nil {
			log.Warn("sending SIGKILL", "err", err)
		}
		select {
		case waitErr = <-exited:
		case <-time.After(5 * time.Second):
			// runc itself is stuck: kill it; cleanup deletes what is left of the container.
			_ = cmd.Process.Kill()
			waitErr = <-exited
		}
	}
	return waitErr
}

func (r *Runtime) isStopping(in *instance) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return in.stopping
}

// setReady records an instance's readiness; a stopping instance never becomes ready again.
func (r *Runtime) setReady(rv *revision, in *instance, ready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in.ready == ready || (ready && in.stopping) {
		return
	}
	in.ready = ready
	if ready {
		rv.everReady = true
		in.reason, in.message = "", ""
		r.log.Info("instance ready", "revision", rv.key.String(), "instance", in.index, "port", in.port)
	}
	r.markDirtyLocked(rv.key)
}

// probeFailed gives a running, unready instance the probe's error as its reason, unless it has a
// better one (its last crash).
func (r *Runtime) probeFailed(rv *revision, in *instance, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in.stopping || (in.reason != "" && in.reason != runtime.ReasonReadinessProbeFailed) {
		return
	}
	in.reason, in.message, in.since = runtime.ReasonReadinessProbeFailed, fmt.Sprintf("Readiness probe failed: %v", err), time.Now()
	r.markDirtyLocked(rv.key)
}

// recordExit records that the instance's container ended (or never started) on its own; it
// will be restarted.
func (r *Runtime) recordExit(rv *revision, in *instance, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in.ready = false
	if in.stopping {
		return
	}
	in.reason, in.message, in.since = reason, message, time.Now()
	rv.restarts++
	rv.reason, rv.message = reason, message
	r.markDirtyLocked(rv.key)
}
