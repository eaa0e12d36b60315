package local

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// instance is one running copy (a "pod") of a revision. Fields below the channels are guarded by
// Runtime.mu.
type instance struct {
	index  int
	ctx    context.Context    // done once the instance is to be drained and stopped
	cancel context.CancelFunc // called (under Runtime.mu) to stop the instance
	done   chan struct{}      // closed when the instance's goroutine has returned

	stopping bool
	port     int
	ready    bool
	served   bool   // it has been ready (in Endpoints) at some point: stopping it drains first
	reason   string // why it is not ready, if known; cleared when it becomes ready
	message  string
	since    time.Time // when reason was set
}

// runInstance keeps one instance's process running until the instance is stopped: it starts
// the process, restarts it with backoff when it exits, and drains and stops it at the end.
func (r *Runtime) runInstance(rv *revision, in *instance) {
	defer r.wg.Done()
	defer func() {
		in.cancel()
		rv.logs.release()
		r.instanceEnded(rv, in)
		close(in.done)
	}()
	log := r.log.With("revision", rv.key.namespace+"/"+rv.key.name, "instance", in.index)
	backoff := r.cfg.RestartBackoff
	for {
		ran, stopped := r.runOnce(rv, in, log)
		if stopped {
			return
		}
		if ran >= 2*r.cfg.MaxRestartBackoff { // it ran fine for a while: start over, as the kubelet does
			backoff = r.cfg.RestartBackoff
		}
		log.Info("restarting instance after backoff", "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-in.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, r.cfg.MaxRestartBackoff)
	}
}

// runOnce runs the instance's process once: until it exits (stopped false, with how long it
// ran) or until the instance is stopped (stopped true, the process gone). The process starts
// when the runtime's start rate allows, and not at all if the instance is stopped first.
func (r *Runtime) runOnce(rv *revision, in *instance, log *slog.Logger) (ran time.Duration, stopped bool) {
	if err := r.starts.Wait(in.ctx); err != nil {
		return 0, true // stopped while waiting for its turn
	}
	port, err := r.allocPort()
	if err != nil {
		r.recordExit(rv, in, runtime.ReasonStartError, runtime.ContainerFailedMessage(err.Error()))
		return 0, false
	}
	defer r.releasePort(port)

	r.mu.Lock()
	p := rv.plan
	in.port = port
	r.mu.Unlock()

	env := p.envFor(r.cfg.Env, port)
	argv := p.argv(port)
	prefix := "[" + strconv.Itoa(in.index) + "] "
	stdout := &lineWriter{sink: rv.logs, prefix: prefix}
	stderr := &lineWriter{sink: rv.logs, prefix: prefix}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = r.cfg.WorkDir, env
	setProcessGroup(cmd)
	outR, outW, err := os.Pipe()
	if err != nil {
		r.recordExit(rv, in, runtime.ReasonStartError, runtime.ContainerFailedMessage("creating the stdout pipe: "+err.Error()))
		return 0, false
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outR.Close()
		_ = outW.Close()
		r.recordExit(rv, in, runtime.ReasonStartError, runtime.ContainerFailedMessage("creating the stderr pipe: "+err.Error()))
		return 0, false
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	r.mu.Lock()
	stopping := in.stopping
	r.mu.Unlock()
	if stopping {
		// Stopped meanwhile: never start it. (A stop from here on is seen by the select below.)
		for _, f := range []*os.File{outR, outW, errR, errW} {
			_ = f.Close()
		}
		return 0, true
	}
	err = cmd.Start()
	_ = outW.Close() // the child holds its own copies
	_ = errW.Close()
	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); _, _ = outR.WriteTo(stdout) }()
	go func() { defer copiers.Done(); _, _ = errR.WriteTo(stderr) }()
	// finishOutput waits for the output of the process (and its group) to end, but not forever:
	// a child that left the group may hold the pipes.
	finishOutput := func() {
		copied := make(chan struct{})
		go func() { copiers.Wait(); close(copied) }()
		select {
		case <-copied:
		case <-time.After(time.Second):
		}
		_ = outR.Close()
		_ = errR.Close()
		<-copied
		stdout.flush()
		stderr.flush()
	}
	if err != nil {
		finishOutput()
		log.Warn("instance failed to start", "err", err)
		r.recordExit(rv, in, runtime.ReasonStartError, runtime.ContainerFailedMessage(err.Error()))
		return 0, false
	}
	started := time.Now()
	log.Info("instance started", "pid", cmd.Process.Pid, "port", port)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	probeCtx, stopProbe := context.WithCancel(rv.ctx)
	probing := make(chan struct{})
	go func() {
		defer close(probing)
		r.probeLoop(probeCtx, rv, in, newProber(p.probe, port, env, r.cfg.WorkDir))
	}()

	select {
	case <-exited:
		stopProbe()
		<-probing
		_ = signalGroup(cmd.Process, syscall.SIGKILL) // what the process left behind
		finishOutput()
		code := exitCode(cmd.ProcessState)
		out := stderr.lastLines()
		if out == "" {
			out = stdout.lastLines()
		}
		if out == "" && code == 0 {
			out = "container exited with no error"
		} else if out == "" {
			out = "exit code " + strconv.Itoa(code)
		}
		log.Warn("instance exited", "exitCode", code, "ran", time.Since(started).Round(time.Millisecond))
		r.recordExit(rv, in, runtime.ExitCodeReason(code), runtime.ContainerFailedMessage(out))
		return time.Since(started), false
	case <-in.ctx.Done():
		stopProbe()
		<-probing
		r.setReady(rv, in, false)
		r.mu.Lock()
		drain := in.served
		r.mu.Unlock()
		r.terminate(cmd, p.grace, drain, exited, log)
		finishOutput()
		log.Info("instance stopped")
		return 0, true
	}
}

// terminate stops a process the way the kubelet stops a pod after the endpoint is gone: wait for
// the drain (when it was ever in Endpoints), SIGTERM to the process group, the grace period
// (capped), then SIGKILL. A closing runtime that is out of time skips the waits.
func (r *Runtime) terminate(cmd *exec.Cmd, grace time.Duration, drain bool, exited <-chan error, log *slog.Logger) {
	wait := func(d time.Duration) bool { // reports whether the process exited
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-exited:
			return true
		case <-t.C:
		case <-r.hurry:
		}
		return false
	}
	gone := drain && r.cfg.DrainTimeout > 0 && wait(r.cfg.DrainTimeout)
	if !gone {
		if err := signalGroup(cmd.Process, syscall.SIGTERM); err != nil {
			log.Warn("sending SIGTERM", "err", err)
		}
		gone = wait(min(grace, r.cfg.MaxGracePeriod))
		if !gone {
			log.Warn("instance did not stop within its grace period; killing it", "grace", min(grace, r.cfg.MaxGracePeriod))
		}
	}
	if err := signalGroup(cmd.Process, syscall.SIGKILL); err != nil {
		log.Warn("sending SIGKILL", "err", err)
	}
	if !gone {
		<-exited
	}
}

// probeLoop probes a running process until ctx is done: every fastProbeInterval until it is
// first ready, then every period; failureThreshold failures in a row make it unready again.
// A process that has not become ready within initialDelay + failureThreshold*period gets a
// ReadinessProbeFailed reason, so a stuck revision says why.
func (r *Runtime) probeLoop(ctx context.Context, rv *revision, in *instance, pr *prober) {
	defer pr.close()
	p := pr.probe
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
	if p.initialDelay > 0 && !sleep(p.initialDelay) {
		return
	}
	start := time.Now()
	everReady, ready, reported := false, false, false
	successes, failures := 0, 0
	for {
		err := pr.check(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			successes++
			if !ready && successes >= p.successes {
				ready, everReady, reported = true, true, false
				r.setReady(rv, in, true)
			}
		} else {
			successes = 0
			failures++
			switch {
			case ready && failures >= p.failures:
				ready = false
				r.setReady(rv, in, false)
				r.probeFailed(rv, in, err)
				reported = true
			case !ready && !everReady && !reported && time.Since(start) >= time.Duration(p.failures)*p.period:
				r.probeFailed(rv, in, err)
				reported = true
			}
		}
		interval := p.period
		if !everReady {
			interval = fastProbeInterval
		}
		if !sleep(interval) {
			return
		}
	}
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
		rv.everReady, in.served = true, true
		in.reason, in.message = "", ""
		r.log.Info("instance ready", "revision", rv.key.namespace+"/"+rv.key.name, "instance", in.index, "port", in.port)
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

// recordExit records that the instance's process ended (or never started) on its own; it will
// be restarted.
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
