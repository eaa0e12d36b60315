//go:build !unix

package local

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup does nothing where there are no process groups.
func setProcessGroup(*exec.Cmd) {}

// signalGroup kills the process itself: without process groups or SIGTERM there is no graceful stop.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return p.Kill()
	}
	return p.Signal(os.Interrupt)
}

// exitCode is the process's exit status.
func exitCode(ps *os.ProcessState) int { return ps.ExitCode() }
