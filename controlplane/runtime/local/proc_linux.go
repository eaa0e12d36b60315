package local

import "syscall"

// setParentDeathSignal has Linux kill the instance if Skiff itself dies without stopping it.
func setParentDeathSignal(a *syscall.SysProcAttr) {
	a.Pdeathsig = syscall.SIGKILL
}
