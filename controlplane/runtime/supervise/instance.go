package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/probe"
)

// instance is one copy (a "pod") of a revision. Fields below the channels are guarded by
// Supervisor.mu.
type instance struct {
	index  int
	ctx    context.Context    // done once the instance is to be drained and stopped
	cancel context.CancelFunc // called (under Supervisor.mu) to stop the instance
	done   chan struct{}      // closed when the instance's goroutine has returned

	stopping bool
	port     int
	ready    bool
	served   bool   // it has been ready (in Endpoints) at some point: stopping it drains first
	reason   string // why it is not ready, if known; cleared when it becomes ready
	message  string
	since    time.Time // when reason was set
}

// startInstanceLocked makes one more instance of the revision, holding one slot until its
// goroutine ends; the goroutine starts it when the start rate allows.
func (s *Supervisor) startInstanceLocked(rv *revision) {
	ctx, cancel := context.WithCancel(s.ctx)
	in := &instance{index: rv.nextIndex, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	rv.nextIndex++
	rv.active = append(rv.active, in)
	rv.all[in] = true
	s.used++
	rv.logs.Acquire()
	s.wg.Add(1)
	go s.runInstance(rv, in)
}

// stopInstanceLocked takes an instance out of the active set and out of Endpoints at once and
// tells its goroutine to drain and stop it.
func (s *Supervisor) stopInstanceLocked(rv *revision, in *instance) {
	if in.stopping {
		return
	}
	in.stopping = true
	in.cancel()
	rv.active = slices.DeleteFunc(rv.active, func(x *instance) bool { return x == in })
	if in.ready {
		in.ready = false
		s.markDirtyLocked(rv.key)
	}
}

// instanceEnded gives back the slot of an instance whose goroutine is ending.
func (s *Supervisor) instanceEnded(rv *revision, in *instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(rv.all, in)
	s.used--
	s.releaseLocked(rv) // before drained closes: once WaitRemoved returns, the revision is released
	if len(rv.all) == 0 && rv.drained != nil {
		close(rv.drained)
		rv.drained = nil
		s.removed[rv.key] = slices.DeleteFunc(s.removed[rv.key], func(x *revision) bool { return x == rv })
		if len(s.removed[rv.key]) == 0 {
			delete(s.removed, rv.key)
		}
	}
	s.fillLocked()
}

// runInstance keeps one instance running until it is stopped: it starts it, restarts it with
// backoff when it exits, and drains and stops it at the end.
func (s *Supervisor) runInstance(rv *revision, in *instance) {
	defer s.wg.Done()
	defer func() {
		in.cancel()
		rv.logs.Release()
		s.instanceEnded(rv, in)
		close(in.done)
	}()
	log := s.log.With("revision", rv.key.String(), "instance", in.index)
	backoff := s.cfg.RestartBackoff
	for {
		ran, stopped := s.runOnce(rv, in, log)
		if stopped {
			return
		}
		if ran >= 2*s.cfg.MaxRestartBackoff { // it ran fine for a while: start over, as the kubelet does
			backoff = s.cfg.RestartBackoff
		}
		log.Info("restarting instance after backoff", "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-in.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.MaxRestartBackoff)
	}
}

// runOnce runs the instance once: until it exits (stopped false, with how long it ran) or until
// the instance is stopped (stopped true, the process gone). It starts when the start rate
// allows, and not at all if the instance is stopped first.
func (s *Supervisor) runOnce(rv *revision, in *instance, log *slog.Logger) (ran time.Duration, stopped bool) {
	if err := s.starts.Wait(in.ctx); err != nil {
		return 0, true // stopped while waiting for its turn
	}
	port, err := s.ports.Get()
	if err != nil {
		s.recordExit(rv, in, runtime.ReasonStartError, runtime.ContainerFailedMessage(err.Error()))
		return 0, false
	}
	defer s.ports.Release(port)
	s.mu.Lock()
	p := rv.plan
	in.port = port
	s.mu.Unlock()

	proc, err := p.Start(in.ctx, Instance{Index: in.index, Port: port, Logs: rv.logs})
	if err != nil {
		if in.ctx.Err() != nil {
			return 0, true // stopped meanwhile: it never started
		}
		f := &Failure{Reason: runtime.ReasonStartError, Message: runtime.ContainerFailedMessage(err.Error())}
		errors.As(err, &f)
		log.Warn("instance failed to start", "reason", f.Reason, "err", err)
		s.recordExit(rv, in, f.Reason, f.Message)
		return 0, false
	}
	started := time.Now()
	log.Info("instance started", "port", port)

	probeCtx, stopProbes := context.WithCancel(rv.ctx)
	probes, liveFail := s.probe(probeCtx, rv, in, p, port, proc)
	stopProbing := func() {
		stopProbes()
		<-probes
	}

	livenessMsg := ""
	select {
	case <-proc.Exited():
	case err := <-liveFail:
		livenessMsg = fmt.Sprintf("Liveness probe failed: %v", err)
		log.Warn("liveness probe failed; restarting the instance", "err", err)
		s.setReady(rv, in, false)
		s.terminate(proc, p.Grace, false, log)
	case <-in.ctx.Done():
		stopProbing()
		s.setReady(rv, in, false)
		s.mu.Lock()
		drain := in.served
		s.mu.Unlock()
		s.terminate(proc, p.Grace, drain, log)
		proc.Finish()
		log.Info("instance stopped")
		return 0, true
	}
	stopProbing()
	ex := proc.Finish()
	reason, message := exitReason(ex, livenessMsg)
	log.Warn("instance exited", "exitCode", ex.Code, "reason", reason, "ran", time.Since(started).Round(time.Millisecond))
	s.recordExit(rv, in, reason, message)
	return time.Since(started), false
}

// exitReason is the reason and message a run that ended gets: the liveness probe's failure
// when it killed it, else what the run says of itself, else its exit code and last output.
func exitReason(ex Exit, livenessMsg string) (reason, message string) {
	switch {
	case livenessMsg != "":
		return runtime.ExitCodeReason(ex.Code), runtime.ContainerFailedMessage(livenessMsg)
	case ex.Reason != "":
		return ex.Reason, ex.Message
	}
	out := ex.Output
	switch {
	case out == "" && ex.Code == 0:
		out = "container exited with no error"
	case out == "":
		out = "exit code " + strconv.Itoa(ex.Code)
	}
	return runtime.ExitCodeReason(ex.Code), runtime.ContainerFailedMessage(out)
}

// probe runs the instance's readiness probe, and its liveness probe if it has one, until ctx
// ends; the returned channel closes once they have stopped; a liveness failure is sent on
// liveFail.
func (s *Supervisor) probe(ctx context.Context, rv *revision, in *instance, p *Plan, port int, proc Process) (done <-chan struct{}, liveFail <-chan error) {
	stopped := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		defer close(stopped)
		var wg sync.WaitGroup
		wg.Go(func() {
			pr := probe.New(p.Readiness, loopback, port, proc.Exec)
			defer pr.Close()
			pr.Loop(ctx, true, func(res probe.Result, err error) {
				switch res {
				case probe.Ready:
					s.setReady(rv, in, true)
				case probe.Unready:
					s.setReady(rv, in, false)
					s.probeFailed(rv, in, err)
				case probe.NeverReady:
					s.probeFailed(rv, in, err)
				}
			})
		})
		if p.Liveness != nil {
			wg.Go(func() {
				pr := probe.New(*p.Liveness, loopback, port, proc.Exec)
				defer pr.Close()
				pr.Loop(ctx, false, func(res probe.Result, err error) {
					if res == probe.Unready || res == probe.NeverReady {
						select {
						case failed <- err:
						default:
						}
					}
				})
			})
		}
		wg.Wait()
	}()
	return stopped, failed
}

// terminate stops a run the way the kubelet stops a pod after the endpoint is gone: wait for
// the drain (when it was ever in Endpoints), SIGTERM, the grace period (capped), then SIGKILL.
// A Close that is out of time skips the waits.
func (s *Supervisor) terminate(proc Process, grace time.Duration, drain bool, log *slog.Logger) {
	wait := func(d time.Duration) bool { // reports whether the process exited
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-proc.Exited():
			return true
		case <-t.C:
		case <-s.hurry:
		}
		return false
	}
	if drain && s.cfg.DrainTimeout > 0 && wait(s.cfg.DrainTimeout) {
		return
	}
	if err := proc.Stop(); err != nil {
		log.Warn("sending SIGTERM", "err", err)
	}
	grace = min(grace, s.cfg.MaxGracePeriod)
	if wait(grace) {
		return
	}
	log.Warn("instance did not stop within its grace period; killing it", "grace", grace)
	if err := proc.Kill(); err != nil {
		log.Warn("sending SIGKILL", "err", err)
	}
	<-proc.Exited()
}

// setReady records an instance's readiness; a stopping instance never becomes ready again.
func (s *Supervisor) setReady(rv *revision, in *instance, ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.ready == ready || (ready && in.stopping) {
		return
	}
	in.ready = ready
	if ready {
		rv.everReady, in.served = true, true
		in.reason, in.message = "", ""
		s.log.Info("instance ready", "revision", rv.key.String(), "instance", in.index, "port", in.port)
	}
	s.markDirtyLocked(rv.key)
}

// probeFailed gives a running, unready instance the probe's error as its reason, unless it has a
// better one (its last crash).
func (s *Supervisor) probeFailed(rv *revision, in *instance, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.stopping || (in.reason != "" && in.reason != runtime.ReasonReadinessProbeFailed) {
		return
	}
	in.reason, in.message, in.since = runtime.ReasonReadinessProbeFailed, fmt.Sprintf("Readiness probe failed: %v", err), time.Now()
	s.markDirtyLocked(rv.key)
}

// recordExit records that the instance's run ended (or never started) on its own; it will be
// restarted.
func (s *Supervisor) recordExit(rv *revision, in *instance, reason, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in.ready = false
	if in.stopping {
		return
	}
	in.reason, in.message, in.since = reason, message, time.Now()
	rv.restarts++
	rv.reason, rv.message = reason, message
	s.markDirtyLocked(rv.key)
}
