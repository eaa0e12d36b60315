package oci

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/containerenv"
	"github.com/skiff-dev/skiff/controlplane/runtime/runlog"
	"github.com/skiff-dev/skiff/controlplane/runtime/supervise"
)

// loopback is the address every instance is reached on.
const loopback = "127.0.0.1"

// containerPrefix starts the runc ids of a revision's containers.
func containerPrefix(k supervise.Key) string { return k.Namespace + "_" + k.Name + "_" }

// container is one run of an instance: `runc run` of its bundle in the foreground. It
// implements supervise.Process.
type container struct {
	r       *Runtime
	id      string
	bundle  string
	logFile string // runc's own log, JSON
	prefix  string
	logs    *runlog.Sink
	cmd     *exec.Cmd
	stdout  *runlog.LineWriter
	stderr  *runlog.LineWriter
	exited  chan struct{} // closed once runc has exited
}

// starter is the Start of a revision's plan: make the instance's bundle (what a previous
// attempt left removed first), then `runc run` it. A bundle that cannot be made is the
// kubelet's CreateContainerConfigError (a missing Secret, user) or a StartError.
func (r *Runtime) starter(k supervise.Key, p *plan) func(context.Context, supervise.Instance) (supervise.Process, error) {
	return func(ctx context.Context, in supervise.Instance) (supervise.Process, error) {
		id := containerPrefix(k) + strconv.Itoa(in.Index)
		c := &container{r: r, id: id, bundle: filepath.Join(r.bundles, id), prefix: in.LogPrefix(), logs: in.Logs,
			exited: make(chan struct{})}
		c.logFile = filepath.Join(c.bundle, "runc.log")
		c.cleanup() // what a previous attempt of this instance may have left
		if err := r.prepare(ctx, p, in.Index, in.Port, c.bundle); err != nil {
			c.cleanup()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			reason := runtime.ReasonStartError
			var ce *configError
			if errors.As(err, &ce) {
				reason = ReasonCreateContainerConfigError
			}
			in.Logs.Line(c.prefix, "skiff: "+err.Error())
			return nil, &supervise.Failure{Reason: reason, Message: err.Error()}
		}
		c.stdout, c.stderr = runlog.NewLineWriter(in.Logs, c.prefix), runlog.NewLineWriter(in.Logs, c.prefix)
		c.cmd = r.runc.run(c.bundle, id, c.logFile)
		c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
		c.cmd.WaitDelay = time.Second
		if err := ctx.Err(); err != nil { // stopped while the bundle was made: never start it
			c.cleanup()
			return nil, err
		}
		if err := c.cmd.Start(); err != nil {
			c.cleanup()
			return nil, err
		}
		r.log.Info("container started", "container", id, "port", in.Port)
		go func() {
			_ = c.cmd.Wait()
			close(c.exited)
		}()
		return c, nil
	}
}

// Exited implements supervise.Process.
func (c *container) Exited() <-chan struct{} { return c.exited }

// Stop sends SIGTERM to the container's init process.
func (c *container) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.r.runc.kill(ctx, c.id, syscall.SIGTERM, false)
}

// Kill sends SIGKILL to every process in the container; if runc itself is stuck it is killed
// after 5s (cleanup deletes what is left of the container).
func (c *container) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.r.runc.kill(ctx, c.id, syscall.SIGKILL, true)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
	}
	return err
}

// Exec runs an exec probe's command in the container (runc exec).
func (c *container) Exec(ctx context.Context, command []string) error {
	return c.r.runc.exec(ctx, c.id, command)
}

// Finish removes the container, its mounts and its bundle, and says how it ended: runc's own
// error when it could not start the container, else the exit code and last output.
func (c *container) Finish() supervise.Exit {
	defer c.cleanup()
	c.stdout.Flush()
	c.stderr.Flush()
	ex := supervise.Exit{Code: exitCode(c.cmd), Output: c.stderr.LastLines()}
	if ex.Output == "" {
		ex.Output = c.stdout.LastLines()
	}
	if msg := startError(c.logFile); msg != "" {
		c.logs.Line(c.prefix, "runc: "+msg)
		ex.Reason, ex.Message = runtime.ReasonStartError, runtime.ContainerFailedMessage(msg)
	}
	return ex
}

// cleanup deletes the container, unmounts its filesystems and removes its bundle.
func (c *container) cleanup() {
	log := c.r.log.With("container", c.id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := os.Stat(filepath.Join(c.r.runc.root, c.id)); err == nil { // runc's state of it
		if err := c.r.runc.delete(ctx, c.id); err != nil {
			log.Warn("deleting the container", "err", err)
		}
	}
	if err := unmountUnder(c.bundle); err != nil {
		log.Warn("unmounting the container's filesystems", "err", err)
	}
	if err := os.RemoveAll(c.bundle); err != nil {
		log.Warn("removing the container's bundle", "err", err)
	}
}

// exitCode is the code the kubelet would report: runc exits with the container's status
// (128+signal for a signal).
func exitCode(cmd *exec.Cmd) int {
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
	host := hostname(p.reserved.Revision, index)
	src := &envSources{ctx: ctx, objects: r.cfg.Objects, ns: p.namespace}
	reserved := p.reserved.Vars(port)
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
	for _, k := range containerenv.Names() {
		set(k + "=" + reserved[k])
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + "=" + vals[n]
	}
	return out
}
