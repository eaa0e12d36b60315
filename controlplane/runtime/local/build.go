package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// buildTailLines is how many of go build's last output lines a BuildFailed message quotes.
const buildTailLines = 20

// build turns a ko:// image into a program: `go build -o <DataDir>/bin/<ns>/<rev>/app <path>`
// in WorkDir. Then the revision's instances can start; a failure fails the revision. A removed
// revision's build is abandoned.
func (r *Runtime) build(rv *revision, importPath string) {
	defer r.wg.Done()
	name := rv.key.namespace + "/" + rv.key.name
	bin := filepath.Join(r.cfg.DataDir, "bin", rv.key.namespace, rv.key.name, "app")
	start := time.Now()
	r.log.Info("building revision", "revision", name, "importPath", importPath, "output", bin)
	out, err := r.goBuild(rv.ctx, bin, importPath)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revs[rv.key] != rv || rv.ctx.Err() != nil {
		return // removed while building
	}
	if err != nil {
		rv.failed, rv.reason = true, runtime.ReasonBuildFailed
		rv.message = fmt.Sprintf("go build %s failed: %v", importPath, err)
		if tail := lastLines(out, buildTailLines); tail != "" {
			rv.message += ":\n" + tail
		}
		r.log.Error("building revision failed", "revision", name, "err", err, "output", lastLines(out, buildTailLines))
		rv.logs.acquire()
		rv.logs.write([]byte("[build] " + strings.ReplaceAll(strings.TrimRight(string(out), "\n"), "\n", "\n[build] ") + "\n"))
		rv.logs.release()
		r.markDirtyLocked(rv.key)
		return
	}
	r.log.Info("built revision", "revision", name, "took", time.Since(start).Round(time.Millisecond))
	rv.plan.program = []string{bin}
	if c := rv.plan.args; len(c) > 0 {
		rv.plan.program = append(rv.plan.program, c...)
	}
	rv.runnable = true
	r.reconcileLocked(rv)
}

// goBuild runs go build, bounded by BuildTimeout, and returns its combined output.
func (r *Runtime) goBuild(ctx context.Context, bin, importPath string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.BuildTimeout)
	defer cancel()
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return nil, fmt.Errorf("creating the output directory: %w", err)
	}
	// A running instance may still use an older build: unlink it rather than write into it.
	if err := os.Remove(bin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing the previous build: %w", err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, r.cfg.GoCommand, "build", "-o", bin, importPath)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = r.cfg.WorkDir, r.cfg.Env, &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %v", r.cfg.BuildTimeout)
	}
	return out.Bytes(), err
}

// lastLines is the last n non-empty lines of out.
func lastLines(out []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
