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
	"github.com/skiff-dev/skiff/controlplane/runtime/supervise"
)

// buildTailLines is how many of go build's last output lines a BuildFailed message quotes.
const buildTailLines = 20

// builder is the Prepare of a ko:// image: `go build -o <DataDir>/bin/<ns>/<rev>/app <path>`
// in WorkDir, after which the revision's instances can start; a failure fails the revision,
// with go build's output in its log. A removed revision's build is abandoned.
func (d *driver) builder(k supervise.Key, p *plan) func(context.Context, *supervise.Preparation) {
	return func(ctx context.Context, prep *supervise.Preparation) {
		bin := filepath.Join(d.cfg.DataDir, "bin", k.Namespace, k.Name, "app")
		start := time.Now()
		d.log.Info("building revision", "revision", k.String(), "importPath", p.importPath, "output", bin)
		out, err := d.goBuild(ctx, bin, p.importPath)
		if ctx.Err() != nil {
			return // removed while building
		}
		if err != nil {
			msg := fmt.Sprintf("go build %s failed: %v", p.importPath, err)
			if tail := lastLines(out, buildTailLines); tail != "" {
				msg += ":\n" + tail
			}
			d.log.Error("building revision failed", "revision", k.String(), "err", err, "output", lastLines(out, buildTailLines))
			prep.Logs().Line("[build] ", strings.ReplaceAll(strings.TrimRight(string(out), "\n"), "\n", "\n[build] "))
			prep.Fail(runtime.ReasonBuildFailed, msg)
			return
		}
		d.log.Info("built revision", "revision", k.String(), "took", time.Since(start).Round(time.Millisecond))
		p.program = append([]string{bin}, p.args...)
		prep.Ready()
	}
}

// goBuild runs go build, bounded by BuildTimeout, and returns its combined output.
func (d *driver) goBuild(ctx context.Context, bin, importPath string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.BuildTimeout)
	defer cancel()
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return nil, fmt.Errorf("creating the output directory: %w", err)
	}
	// A running instance may still use an older build: unlink it rather than write into it.
	if err := os.Remove(bin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing the previous build: %w", err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, d.cfg.GoCommand, "build", "-o", bin, importPath)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = d.cfg.WorkDir, d.cfg.Env, &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %v", d.cfg.BuildTimeout)
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
