package oci

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runc runs the runc binary against Skiff's own state directory, so `runc list` shows only
// Skiff's containers and a restart can find what it left.
type runc struct {
	bin  string
	root string
}

func (r runc) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"--root", r.root}, args...)...)
	cmd.WaitDelay = time.Second
	return cmd
}

// run starts `runc run` for the bundle in the foreground: runc stays the container's parent,
// forwards signals to it and exits with its status. runc's own log (not the app's output) goes
// to logFile as JSON, so a start failure can be told from the app's output. A Skiff that dies
// takes runc with it (parent-death signal); the container itself is cleaned up at next start.
func (r runc) run(bundle, id, logFile string) *exec.Cmd {
	cmd := exec.Command(r.bin, "--root", r.root, "--log", logFile, "--log-format", "json",
		"run", "--bundle", bundle, id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// kill sends sig to the container's init process, or with all to every process in it.
func (r runc) kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, id, fmt.Sprint(int(sig)))
	out, err := r.command(ctx, args...).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "does not exist") && !strings.Contains(string(out), "not running") &&
		!strings.Contains(string(out), "process already finished") {
		return fmt.Errorf("runc kill %s %d: %w: %s", id, sig, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// delete removes the container's state, killing what is left of it.
func (r runc) delete(ctx context.Context, id string) error {
	out, err := r.command(ctx, "delete", "--force", id).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "does not exist") {
		return fmt.Errorf("runc delete %s: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// exec runs command in the running container (an exec probe), within ctx.
func (r runc) exec(ctx context.Context, id string, command []string) error {
	cmd := r.command(ctx, append([]string{"exec", id}, command...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("exec probe %q failed: %w: %s", strings.Join(command, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// list returns the ids of the containers in the state directory.
func (r runc) list(ctx context.Context) ([]string, error) {
	out, err := r.command(ctx, "list", "--quiet").Output()
	if err != nil {
		return nil, fmt.Errorf("runc list: %w", err)
	}
	return strings.Fields(string(out)), nil
}

// startError reads runc's own error from its JSON log: why the container did not start
// (e.g. `exec: "/app": stat /app: no such file or directory`, `exec format error`), or "".
func startError(logFile string) string {
	f, err := os.Open(logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Level, Msg string
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && (l.Level == "error" || l.Level == "fatal") {
			last = l.Msg
		}
	}
	return last
}

// Check reports whether runc can run containers here and, when it can, whether cgroup
// limits can be set: runc runs, Skiff runs as root (runc's rootful mode), overlayfs mounts in
// dir. The error says what is missing.
func Check(ctx context.Context, runcBin, dir string) (cgroups bool, err error) {
	if os.Geteuid() != 0 {
		return false, fmt.Errorf("the OCI runtime needs root (runc in rootful mode); skiff runs as uid %d", os.Geteuid())
	}
	path, err := exec.LookPath(runcBin)
	if err != nil {
		return false, fmt.Errorf("runc not found (%w); install it, e.g. apt-get install -y runc", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput(); err != nil {
		return false, fmt.Errorf("%s --version: %w: %s", path, err, bytes.TrimSpace(out))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	probe, err := os.MkdirTemp(dir, "overlay-check-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(probe)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(probe, d), 0o700); err != nil {
			return false, err
		}
	}
	merged := filepath.Join(probe, "merged")
	if err := mountOverlay([]string{filepath.Join(probe, "lower")}, filepath.Join(probe, "upper"), filepath.Join(probe, "work"), merged); err != nil {
		return false, fmt.Errorf("overlayfs cannot be mounted in %s: %w", dir, err)
	}
	if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
		return false, fmt.Errorf("unmounting the overlayfs check: %w", err)
	}
	return cgroupsWritable(), nil
}

// cgroupsWritable reports whether runc can create cgroups for limits here (v1 memory
// controller or the v2 unified hierarchy).
func cgroupsWritable() bool {
	for _, base := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
			continue
		}
		d, err := os.MkdirTemp(base, "skiff-check-")
		if err != nil {
			continue
		}
		_ = os.Remove(d)
		return true
	}
	return false
}

// mountOverlay mounts an overlay of lower (bottom first) with upper and work at target.
func mountOverlay(lower []string, upper, work, target string) error {
	rev := make([]string, len(lower))
	for i, l := range lower {
		rev[len(lower)-1-i] = l // overlayfs lists the top layer first
	}
	opts := "lowerdir=" + strings.Join(rev, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(opts) >= unix.Getpagesize()-1 {
		return errors.New("the image has too many layers for one overlayfs mount here")
	}
	return unix.Mount("overlay", target, "overlay", 0, opts)
}

// unmountUnder detaches every mount at or below dir (longest paths first), as read from
// /proc/self/mountinfo.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var targets []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			targets = append(targets, mp)
		}
	}
	var errs []error
	for i := len(targets) - 1; i >= 0; i-- {
		if err := unix.Unmount(targets[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", targets[i], err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
