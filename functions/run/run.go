// Package run runs a function's host build on this machine, as `skiff func run` does, with the
// environment a Revision gets from the local runtime: the caller's environment, HOST=127.0.0.1
// (the function listens on loopback), func.yaml's run.envs ("{{ env:VAR }}" read from the
// caller's environment; values from Secrets and ConfigMaps, which only a cluster has, left out
// with a warning), then PORT, K_SERVICE, K_CONFIGURATION and K_REVISION. Watch (watch.go)
// rebuilds and restarts it on every change.
//
// While it runs, <function>/.func/run.json records its URL and pid so that
// `skiff func invoke --target local` finds it.
package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-dev/skiff/functions/build"
	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// Options say what to run and where.
type Options struct {
	// Dir is the function's directory.
	Dir  string
	Func *funcyaml.Function
	Host *build.Host
	// Address is the host to listen on (default 127.0.0.1, which the readiness check uses).
	// Port 0 picks a free port.
	Port int
	// Env is the environment to start from (default os.Environ()).
	Env []string
	// Stdout and Stderr receive the function's output (default: discarded).
	Stdout, Stderr io.Writer
	// StartTimeout bounds the wait for readiness (default run.startTimeout seconds, else 60s).
	StartTimeout time.Duration
}

// Instance is a running function.
type Instance struct {
	// URL is where it listens, http://127.0.0.1:PORT.
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	dir  string
}

// State is what .func/run.json holds.
type State struct {
	URL string `json:"url"`
	PID int    `json:"pid"`
}

// StatePath is where a running function's State is kept.
func StatePath(dir string) string { return filepath.Join(dir, ".func", "run.json") }

// Start starts the function and waits until its readiness endpoint answers 2xx; if it exits or
// the wait ends first, it is stopped and the error says why.
func Start(ctx context.Context, opts Options) (*Instance, error) {
	port := opts.Port
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	f := opts.Func
	fenv, skipped, err := f.LocalEnv(lookupIn(env))
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		if opts.Stderr != nil {
			fmt.Fprintf(opts.Stderr, "not set locally (only a cluster has Secrets and ConfigMaps): %s\n", s)
		}
	}
	// HOST keeps the function on loopback (it is reached at 127.0.0.1:PORT), as `skiff up` does;
	// run.envs may override it.
	env = append(append(append(env, "HOST=127.0.0.1"), fenv...),
		"PORT="+strconv.Itoa(port), "K_SERVICE="+f.Name, "K_CONFIGURATION="+f.Name, "K_REVISION="+f.Name+"-local")
	cmd := exec.Command(opts.Host.Command[0], opts.Host.Command[1:]...)
	cmd.Dir = opts.Dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = opts.Stdout, opts.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stop the whole group (npm, python shims)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", opts.Host.Command[0], err)
	}
	in := &Instance{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{}), dir: opts.Dir}
	go func() {
		in.err = cmd.Wait()
		close(in.done)
	}()
	timeout := opts.StartTimeout
	if timeout == 0 && f.Run.StartTimeout > 0 {
		timeout = time.Duration(f.Run.StartTimeout) * time.Second
	}
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if err := in.waitReady(ctx, f.ReadinessPath(), timeout); err != nil {
		_ = in.Stop(5 * time.Second)
		return nil, err
	}
	data, _ := json.Marshal(State{URL: in.URL, PID: cmd.Process.Pid})
	_ = os.MkdirAll(filepath.Dir(StatePath(opts.Dir)), 0o755)
	if err := os.WriteFile(StatePath(opts.Dir), data, 0o644); err != nil {
		_ = in.Stop(5 * time.Second)
		return nil, fmt.Errorf("recording the running function: %w", err)
	}
	return in, nil
}

func (in *Instance) waitReady(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.URL+path, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
		}
		select {
		case <-in.done:
			return fmt.Errorf("the function exited before it was ready: %v", in.err)
		case <-ctx.Done():
			return fmt.Errorf("the function was not ready at %s%s within %s", in.URL, path, timeout)
		case <-tick.C:
		}
	}
}

// lookupIn looks a variable up in env (NAME=value strings; the last one wins).
func lookupIn(env []string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
				return v, true
			}
		}
		return "", false
	}
}

// Done is closed when the function has exited.
func (in *Instance) Done() <-chan struct{} { return in.done }

// Err is how the function exited, once Done is closed.
func (in *Instance) Err() error { return in.err }

// Stop sends SIGTERM to the function's process group, then SIGKILL after grace, waits for it to
// exit and removes .func/run.json (if it still names this instance).
func (in *Instance) Stop(grace time.Duration) error {
	defer in.forget()
	pgid := -in.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-in.done
	}
	var exit *exec.ExitError
	if in.err != nil && !errors.As(in.err, &exit) {
		return in.err
	}
	return nil
}

// forget removes .func/run.json if it records this instance, not a later one.
func (in *Instance) forget() {
	if st, err := readState(in.dir); err == nil && st.PID == in.cmd.Process.Pid {
		os.Remove(StatePath(in.dir))
	}
}

func readState(dir string) (State, error) {
	var s State
	data, err := os.ReadFile(StatePath(dir))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(data, &s)
}

// Running reads .func/run.json and reports the function running there, if its process is alive.
func Running(dir string) (State, bool) {
	var s State
	data, err := os.ReadFile(StatePath(dir))
	if err != nil || json.Unmarshal(data, &s) != nil || s.PID <= 0 {
		return s, false
	}
	if err := syscall.Kill(s.PID, 0); err != nil {
		return s, false
	}
	return s, true
}
