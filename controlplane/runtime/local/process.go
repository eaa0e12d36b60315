package local

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime/supervise"
)

// process is one run of an instance: a process in a group of its own, so that signals reach
// the children it starts too (a shell, `go run`). It implements supervise.Process.
type process struct {
	cmd    *exec.Cmd
	out    *output
	exited chan struct{} // closed once cmd.Wait has returned
}

// starter is the Start of a revision's plan: the program with the instance's environment, run
// in WorkDir.
func (d *driver) starter(p *plan) func(context.Context, supervise.Instance) (supervise.Process, error) {
	return func(ctx context.Context, in supervise.Instance) (supervise.Process, error) {
		env := p.envFor(d.cfg.Env, in.Port)
		argv := p.argv(in.Port)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir, cmd.Env = d.cfg.WorkDir, env
		setProcessGroup(cmd)
		out, err := newOutput(in.Logs, in.LogPrefix())
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = out.outW, out.errW
		if err := ctx.Err(); err != nil {
			// Stopped meanwhile: never start it. (A stop from here on is the Supervisor's to see.)
			out.abandon()
			return nil, err
		}
		err = cmd.Start()
		out.copy()
		if err != nil {
			out.finish()
			return nil, err
		}
		pr := &process{cmd: cmd, out: out, exited: make(chan struct{})}
		go func() {
			_ = cmd.Wait()
			close(pr.exited)
		}()
		return pr, nil
	}
}

// Exited implements supervise.Process.
func (pr *process) Exited() <-chan struct{} { return pr.exited }

// Stop sends SIGTERM to the process group.
func (pr *process) Stop() error { return signalGroup(pr.cmd.Process, syscall.SIGTERM) }

// Kill sends SIGKILL to the process group.
func (pr *process) Kill() error { return signalGroup(pr.cmd.Process, syscall.SIGKILL) }

// Exec runs an exec probe's command on this machine, in the instance's directory and
// environment.
func (pr *process) Exec(ctx context.Context, command []string) error {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Dir, cmd.Env, cmd.WaitDelay = pr.cmd.Dir, pr.cmd.Env, 100*time.Millisecond
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("exec probe %q failed: %w: %s", strings.Join(command, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Finish kills what the process left behind in its group, waits for its output and says how
// it ended.
func (pr *process) Finish() supervise.Exit {
	_ = signalGroup(pr.cmd.Process, syscall.SIGKILL)
	pr.out.finish()
	return supervise.Exit{Code: exitCode(pr.cmd.ProcessState), Output: pr.out.lastLines()}
}
