package supervise

import (
	"context"
	"strconv"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime/probe"
	"github.com/skiff-dev/skiff/controlplane/runtime/runlog"
)

// Driver is what a runtime does its own way: it says how a revision runs (a Plan), made once,
// the first time the revision is scaled.
type Driver interface {
	// Plan checks that the runtime can run rev (named key) and prepares how. A *Failure error
	// makes the revision Failed with its reason at once, running nothing; any other error is
	// reported as ReasonUnsupported. Plan runs under the Supervisor's lock: it must not block.
	Plan(key Key, rev *servingv1.Revision) (*Plan, error)
}

// Plan is how a runtime runs one revision's instances.
type Plan struct {
	// Readiness decides when an instance is in Endpoints.
	Readiness probe.Spec
	// Liveness, when set, restarts an instance that fails it FailureThreshold times.
	Liveness *probe.Spec
	// Grace is the revision's terminationGracePeriodSeconds: from SIGTERM to SIGKILL, capped by
	// Config.MaxGracePeriod.
	Grace time.Duration
	// Prepare, when set, is what must happen before the first instance starts (a build, an image
	// pull). It runs on a goroutine of the Supervisor, with a ctx that ends when the revision is
	// removed or the Supervisor closed, and reports through p. Until it calls p.Ready no
	// instance starts.
	Prepare func(ctx context.Context, p *Preparation)
	// Start starts one run of an instance. ctx ends when the instance is to stop: Start must not
	// start anything once it has ended (returning ctx's error). An error is recorded as the run's
	// exit (a *Failure with its reason, anything else as runtime.ReasonStartError) and the
	// instance is started again after the crash backoff.
	Start func(ctx context.Context, in Instance) (Process, error)
	// Release, when set, is called once, after the revision was removed (or the Supervisor
	// closed), its Prepare has returned and its last instance has stopped: what the revision
	// held (an image) may go.
	Release func()
}

// Instance is one instance to start, as Plan.Start gets it.
type Instance struct {
	// Index numbers the revision's instances from 0; never reused within a revision.
	Index int
	// Port is the loopback port the instance is to listen on (its PORT).
	Port int
	// Logs is the revision's log file, held for as long as the instance lives.
	Logs *runlog.Sink
}

// LogPrefix is what goes before each output line of the instance in the revision's log.
func (in Instance) LogPrefix() string { return "[" + strconv.Itoa(in.Index) + "] " }

// Process is one run of an instance, as Plan.Start started it.
type Process interface {
	// Exited is closed once the process (the container) has exited.
	Exited() <-chan struct{}
	// Stop asks the process to stop: SIGTERM.
	Stop() error
	// Kill kills the process and all it started (SIGKILL); Exited closes soon after.
	Kill() error
	// Exec runs an exec probe's command for the instance within ctx; an error (with the
	// command's output) is a failed probe.
	Exec(ctx context.Context, command []string) error
	// Finish is called once, after Exited is closed and the probes have stopped: it waits for
	// the process's output to end, releases what the run held and says how the run ended.
	Finish() Exit
}

// Exit is how one run of an instance ended.
type Exit struct {
	// Code is the exit code as the kubelet reports it (128+signal for a signal).
	Code int
	// Output is the last lines of the process's output (stderr, else stdout), "" if none.
	Output string
	// Reason and Message, when Reason is set, say why the run ended better than Code can (the
	// container could not start at all).
	Reason, Message string
}

// Failure is a reason (Knative's or the kubelet's CamelCase) and a message for humans: a
// revision that cannot run (from Driver.Plan) or a run that could not start (from Plan.Start).
type Failure struct {
	Reason, Message string
}

// Error is the reason and the message, for logs.
func (f *Failure) Error() string { return f.Reason + ": " + f.Message }
