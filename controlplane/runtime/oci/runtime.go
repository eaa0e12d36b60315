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
// Probes, restarts, stopping, bounds and logs behave as in the process runtime: readiness
// probes on 127.0.0.1:PORT (exec probes with runc exec) decide Endpoints; a liveness probe that
// fails failureThreshold times restarts the instance; a crash restarts it with the kubelet's
// CrashLoopBackOff (10s doubling to 5m; the first crash already shows as ExitCodeN on the
// revision) and a revision that crashes CrashLoopLimit times before ever being ready is Failed;
// at most MaxInstances containers exist at once and at most StartRate start a second (a
// revision with none is Unschedulable); a stopping instance leaves Endpoints, is drained (if it
// was ever ready), gets SIGTERM, then SIGKILL after its grace period; output goes to
// <DataDir>/logs/<ns>/<rev>.log with "[<instance>] " before each line and "[pull] " before the
// pull's progress. A pull that fails makes the revision Failed with a reason naming the cause
// (image.Reason*) and is retried with the kubelet's image backoff (10s doubling to 5m).
//
// Cleanup: an instance's container is deleted, its mounts detached and its bundle removed when
// it stops; containers, mounts and bundles a previous Skiff left (killed) are removed by New.
//
// Bounds, restarts, stopping, probes and State are controlplane/runtime/supervise's, shared
// with the process runtime: this package pulls (the plan's Prepare) and makes, starts, signals
// and removes one container (container.go).
package oci

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/image"
	"github.com/skiff-dev/skiff/controlplane/runtime/supervise"
)

// ErrClosed is returned by Scale after Close.
var ErrClosed = supervise.ErrClosed

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
	// StartRate bounds how many containers start per second (restarts included), in bursts of
	// up to StartBurst. Defaults: the process runtime's, 20 and 20.
	StartRate  float64
	StartBurst int
}

// Defaults of Config.StartRate and Config.StartBurst, as the process runtime's.
const (
	defaultStartRate  = 20
	defaultStartBurst = 20
)

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
	c.StartRate = cmp.Or(c.StartRate, defaultStartRate)
	c.StartBurst = cmp.Or(c.StartBurst, defaultStartBurst)
	return c
}

// Runtime runs revisions as runc containers. It implements runtime.Runtime; create it with New
// and stop it with Close.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	runc    runc
	bundles string
	// Scale, Remove, WaitRemoved, State and Close are the Supervisor's, whose Driver here
	// pulls images and runs containers.
	*supervise.Supervisor
}

var _ runtime.Runtime = (*Runtime)(nil)

// New makes a Runtime after removing what a previous run left: containers in its runc state
// directory, mounts and bundles. It starts no container until Scale.
func New(cfg Config) (*Runtime, error) {
	cfg = cfg.withDefaults()
	if cfg.Images == nil {
		return nil, errors.New("oci runtime: no image store")
	}
	r := &Runtime{
		cfg: cfg, log: cfg.Logger.With("component", "runtime/oci"),
		runc:    runc{bin: cfg.Runc, root: filepath.Join(cfg.DataDir, "oci", "runc")},
		bundles: filepath.Join(cfg.DataDir, "oci", "bundles"),
	}
	if err := r.sweep(context.Background()); err != nil {
		return nil, err
	}
	for _, d := range []string{r.runc.root, r.bundles} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("oci runtime: %w", err)
		}
	}
	r.Supervisor = supervise.New(supervise.Config{
		Name: "OCI", DataDir: cfg.DataDir, Logger: r.log, OnChange: cfg.OnChange,
		DrainTimeout: cfg.DrainTimeout, MaxGracePeriod: cfg.MaxGracePeriod,
		RestartBackoff: cfg.RestartBackoff, MaxRestartBackoff: cfg.MaxRestartBackoff,
		CrashLoopLimit: cfg.CrashLoopLimit, MaxInstances: cfg.MaxInstances,
		StartRate: cfg.StartRate, StartBurst: cfg.StartBurst,
	}, (*driver)(r))
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

// Running reports how many of the revision's containers still exist, stopping ones included:
// after Remove it reaches zero once every one is stopped and cleaned up.
func (r *Runtime) Running(namespace, name string) int {
	id := containerPrefix(supervise.Key{Namespace: cmp.Or(namespace, "default"), Name: name})
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

// driver is the Runtime as the Supervisor sees it: it plans revisions and starts containers.
type driver Runtime

// Plan checks that the runtime can run rev and says how: pull its image first, then run
// containers of it.
func (d *driver) Plan(k supervise.Key, rev *servingv1.Revision) (*supervise.Plan, error) {
	r := (*Runtime)(d)
	p, perr := newPlan(rev)
	if perr != nil {
		return nil, &supervise.Failure{Reason: perr.reason, Message: perr.message}
	}
	p.namespace = k.Namespace
	if len(p.ignored) > 0 {
		r.log.Warn("the OCI runtime ignores these fields", "revision", k.String(), "fields", strings.Join(p.ignored, ", "))
	}
	var secrets []string
	for _, s := range rev.Spec.ImagePullSecrets {
		secrets = append(secrets, s.Name)
	}
	return &supervise.Plan{
		Readiness: p.readiness, Liveness: p.liveness, Grace: p.grace,
		Prepare: r.puller(k, p, secrets),
		Start:   r.starter(k, p),
		Release: func() { // the cache may evict the image once nothing runs it
			if p.img != nil {
				p.img.Release()
				p.img = nil
			}
		},
	}, nil
}

// puller is the Prepare of a revision: it pulls the image, retrying with backoff until it
// succeeds or the revision is removed; meanwhile the revision is Failed with the pull's reason.
func (r *Runtime) puller(k supervise.Key, p *plan, secrets []string) func(context.Context, *supervise.Preparation) {
	return func(ctx context.Context, prep *supervise.Preparation) {
		r.pull(ctx, prep, k, p, secrets)
	}
}

func (r *Runtime) pull(ctx context.Context, prep *supervise.Preparation, k supervise.Key, p *plan, secrets []string) {
	ref := p.ref
	log := r.log.With("revision", k.String(), "image", ref)
	logf := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		log.Info(msg)
		prep.Logs().Line("[pull] ", msg)
	}
	backoff := r.cfg.PullBackoff
	for {
		var kc authn.Keychain
		var err error
		if r.cfg.Keychain != nil {
			kc, err = r.cfg.Keychain(ctx, k.Namespace, secrets)
		}
		var img *image.Image
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, r.cfg.PullTimeout)
			img, err = r.cfg.Images.Pull(pctx, ref, kc, logf)
			cancel()
		} else {
			err = &image.Error{Reason: image.ReasonUnauthorized, Image: ref, Err: err}
		}
		if ctx.Err() != nil { // removed meanwhile
			if img != nil {
				img.Release()
			}
			return
		}
		if err == nil {
			p.img = img // Release gives it back once the revision is removed
			prep.Ready()
			return
		}
		prep.Fail(image.Reason(err), image.Message(ref, err))
		log.Warn("pulling the image failed; retrying after backoff", "reason", image.Reason(err), "err", err, "backoff", backoff)
		prep.Logs().Line("[pull] ", fmt.Sprintf("failed (%s): %v; retrying in %s", image.Reason(err), err, backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, r.cfg.MaxPullBackoff)
	}
}
