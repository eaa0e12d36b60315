package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/skiff-dev/skiff/functions/build"
	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// WatchOptions configure Watch.
type WatchOptions struct {
	// Run is how to run each build (Dir, Func, Port, Env, Stdout, Stderr, ...); Host is set by
	// Watch.
	Run Options
	// Build is how to build (Dir and CacheDir, Output...); Func is set by Watch.
	Build build.Options
	// Log receives what Watch does: rebuilds, restarts, failures (default: discarded).
	Log io.Writer
	// Debounce is how long to wait after a change for more before rebuilding (default 50ms):
	// an editor's save is often several events.
	Debounce time.Duration
	// Ready, if set, is called with the URL each time a build starts serving.
	Ready func(url string)
}

// Watch builds and runs the function, then, until ctx ends, rebuilds it whenever a file of its
// directory changes (fsnotify) and restarts it on the same port, as func#1863 asks of
// `func run --watch`. The previous instance keeps serving while the new build runs; a build
// that fails is reported and the previous instance keeps serving; a change to func.yaml is
// read again (run.envs, say). It returns when ctx ends, after stopping the function, or with
// the first build's or start's error.
func Watch(ctx context.Context, o WatchOptions) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Debounce <= 0 {
		o.Debounce = 50 * time.Millisecond
	}
	dir, err := filepath.Abs(o.Run.Dir)
	if err != nil {
		return err
	}
	o.Run.Dir, o.Build.Dir = dir, dir
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	defer w.Close()
	f := o.Run.Func
	if err := addTree(w, dir, dir, f.Runtime); err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}

	start := func(f *funcyaml.Function) (*Instance, *build.Host, error) {
		bo := o.Build
		bo.Func = f
		t0 := time.Now()
		h, err := build.BuildHost(ctx, bo)
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(o.Log, "host build %s ready (%s)\n", h.Digest, time.Since(t0).Round(time.Millisecond))
		ro := o.Run
		ro.Func, ro.Host = f, h
		in, err := Start(ctx, ro)
		return in, h, err
	}
	in, h, err := start(f)
	if err != nil {
		return err
	}
	// Later builds listen where the first one does.
	if u, err := url.Parse(in.URL); err == nil {
		o.Run.Port, _ = strconv.Atoi(u.Port())
	}
	if o.Ready != nil {
		o.Ready(in.URL)
	}
	var stopping sync.WaitGroup
	defer func() {
		if in != nil {
			_ = in.Stop(10 * time.Second)
		}
		stopping.Wait()
	}()

	var timer <-chan time.Time
	var exited <-chan struct{} = in.Done()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-exited:
			fmt.Fprintf(o.Log, "the function exited (%v); waiting for a change to restart it\n", in.Err())
			exited = nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("the file watcher stopped")
			}
			rel, _ := filepath.Rel(dir, ev.Name)
			if ignored(rel, f.Runtime) {
				continue
			}
			if ev.Op&fsnotify.Create != 0 {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					_ = addTree(w, dir, ev.Name, f.Runtime)
				}
			}
			timer = time.After(o.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("the file watcher stopped")
			}
			fmt.Fprintf(o.Log, "watching: %v\n", err)
		case <-timer:
			timer = nil
			nf, err := funcyaml.Load(dir)
			if err != nil {
				fmt.Fprintf(o.Log, "not restarting: %v\n", err)
				continue
			}
			bo := o.Build
			bo.Func = nf
			t0 := time.Now()
			nh, err := build.BuildHost(ctx, bo)
			if err != nil {
				fmt.Fprintf(o.Log, "not restarting, the build failed: %v\n", err)
				continue
			}
			if nh.Digest == h.Digest && exited != nil && envEqual(nf, f) {
				continue // nothing that matters changed (say, a file the build leaves out)
			}
			// The old build stops gracefully in the background (a Node function takes a
			// second or more to exit): the new one starts as soon as the port is free.
			old := in
			stopping.Go(func() { _ = old.Stop(5 * time.Second) })
			waitPortFree(ctx, o.Run.Port, old.Done(), 5*time.Second)
			ro := o.Run
			ro.Func, ro.Host = nf, nh
			nin, err := Start(ctx, ro)
			if err != nil {
				in, exited = nil, nil
				fmt.Fprintf(o.Log, "the new build did not start: %v; waiting for a change\n", err)
				continue
			}
			in, h, f, exited = nin, nh, nf, nin.Done()
			fmt.Fprintf(o.Log, "restarted with build %s on %s (%s after the change)\n", nh.Digest, nin.URL, time.Since(t0).Round(time.Millisecond))
			if o.Ready != nil {
				o.Ready(nin.URL)
			}
		}
	}
}

// waitPortFree waits until port can be bound on loopback (the old instance closed its
// listener), the old instance exited, or max passed.
func waitPortFree(ctx context.Context, port int, exited <-chan struct{}, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			l.Close()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-exited:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ignored reports what Watch does not react to: what builds leave out (.func, .git,
// node_modules, __pycache__, TypeScript's build/) and editors' swap and backup files.
func ignored(rel, runtime string) bool {
	first, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	switch first {
	case ".func", ".git", "node_modules", "__pycache__":
		return true
	case "build":
		return runtime == "typescript"
	}
	base := filepath.Base(rel)
	return strings.HasSuffix(base, "~") || strings.HasSuffix(base, ".swp") || strings.HasSuffix(base, ".swx") ||
		strings.HasPrefix(base, ".#") || strings.HasSuffix(base, ".pyc") || base == "4913"
}

// addTree watches start (the function's directory top, or one made in it) and its
// subdirectories, but not the ignored ones.
func addTree(w *fsnotify.Watcher, top, start, runtime string) error {
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished while walking
		}
		if !d.IsDir() {
			return nil
		}
		if rel, _ := filepath.Rel(top, p); rel != "." && ignored(rel, runtime) {
			return filepath.SkipDir
		}
		return w.Add(p)
	})
}

func envEqual(a, b *funcyaml.Function) bool {
	return strings.Join(a.EnvList(), "\x00") == strings.Join(b.EnvList(), "\x00") && len(a.Run.Envs) == len(b.Run.Envs)
}
