// Package wasmbuild builds Skiff's proxy-wasm filters (wasm-filters/<name>,
// package main) into .wasm modules with the standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -modfile=<work>/go.mod
//
// The proxy-wasm Go SDK (github.com/tetratelabs/proxy-wasm-go-sdk) only
// targets TinyGo: under the standard toolchain it compiles a mock host
// instead of real host calls and its callbacks carry TinyGo's //export. So
// the build uses a generated local copy of the SDK in which
// proxywasm/internal/abi_hostcalls_mock.go is replaced by
// wasm-filters/abi/hostcalls.go (//go:wasmimport host calls) and
// wasm-filters/abi/exports.go (//go:wasmexport callbacks) is added. The copy
// is wired in with a replace directive in a generated copy of the
// repository's go.mod passed with -modfile, so neither go.mod nor a vendor/
// directory of the repository is touched and other go commands running
// meanwhile are unaffected. The generated work directory lives in the user
// cache directory, keyed by the content of go.mod, go.sum, the glue and the
// SDK, so the Go build cache makes rebuilds fast.
//
// Native builds (go test with the SDK's proxytest) use the unmodified SDK.
package wasmbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// SDKModule is the module path of the proxy-wasm Go SDK.
const SDKModule = "github.com/tetratelabs/proxy-wasm-go-sdk"

// FiltersDir is the repository folder holding one filter per subfolder.
const FiltersDir = "wasm-filters"

// glueFiles maps the ABI glue files (under wasm-filters/abi) to their name
// in the SDK copy's proxywasm/internal package. hostcalls.go replaces the
// SDK's mock host.
var glueFiles = map[string]string{
	"hostcalls.go": "abi_hostcalls_mock.go",
	"exports.go":   "skiff_abi_exports.go",
}

// Options configures Build.
type Options struct {
	// Root is the repository root (the folder holding go.mod); empty means
	// the nearest folder holding go.mod above the working directory.
	Root string
	// OutDir receives <name>.wasm for each filter; empty means
	// <Root>/bin/wasm. A relative OutDir is relative to Root.
	OutDir string
	// Filters are the filter names to build (folders under wasm-filters);
	// empty means every filter (see Filters).
	Filters []string
	// Go is the go command; empty means "go".
	Go string
	// WorkDir holds the generated SDK copy and go.mod; empty means a
	// content-keyed folder under the user cache directory.
	WorkDir string
	// Logger receives progress messages; nil means slog.Default().
	Logger *slog.Logger
}

// FindRoot returns the nearest folder at or above dir holding a go.mod.
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("wasmbuild: no go.mod found above the working directory")
		}
		dir = parent
	}
}

// Filters lists the filters of the repository at root: the folders directly
// under wasm-filters whose Go files (for GOOS=wasip1) are package main.
func Filters(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, FiltersDir))
	if err != nil {
		return nil, fmt.Errorf("wasmbuild: listing filters: %w", err)
	}
	ctx := build.Default
	ctx.GOOS, ctx.GOARCH = "wasip1", "wasm"
	var out []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		p, err := ctx.ImportDir(filepath.Join(root, FiltersDir, e.Name()), 0)
		if err != nil || p.Name != "main" {
			continue
		}
		out = append(out, e.Name())
	}
	return out, nil
}

// Build builds the selected filters and returns the path of each module by
// filter name. Every filter is attempted; the error joins the failures.
func Build(ctx context.Context, o Options) (map[string]string, error) {
	var err error
	if o.Root == "" {
		if o.Root, err = FindRoot("."); err != nil {
			return nil, err
		}
	}
	if o.Root, err = filepath.Abs(o.Root); err != nil {
		return nil, fmt.Errorf("wasmbuild: %w", err)
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join("bin", "wasm")
	}
	if !filepath.IsAbs(o.OutDir) {
		o.OutDir = filepath.Join(o.Root, o.OutDir)
	}
	if len(o.Filters) == 0 {
		if o.Filters, err = Filters(o.Root); err != nil {
			return nil, err
		}
		if len(o.Filters) == 0 {
			return nil, errors.New("wasmbuild: no filters under " + FiltersDir)
		}
	}
	modfile, err := prepare(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("wasmbuild: %w", err)
	}
	out := make(map[string]string, len(o.Filters))
	var errs []error
	for _, name := range o.Filters {
		dst := filepath.Join(o.OutDir, name+".wasm")
		cmd := exec.CommandContext(ctx, o.Go, "build", "-modfile="+modfile, "-buildmode=c-shared", "-trimpath",
			"-o", dst, "./"+FiltersDir+"/"+name)
		cmd.Dir = o.Root
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Stdout = &stderr
		o.Logger.Info("building wasm filter", "filter", name, "out", dst)
		if err := cmd.Run(); err != nil {
			errs = append(errs, fmt.Errorf("wasmbuild: filter %s: %w\n%s", name, err, stderr.String()))
			continue
		}
		out[name] = dst
	}
	return out, errors.Join(errs...)
}

// prepare makes (or reuses) the work directory: the patched SDK copy and a
// go.mod replacing the SDK with it. It returns the go.mod path.
func prepare(ctx context.Context, o Options) (string, error) {
	gomod, err := os.ReadFile(filepath.Join(o.Root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	if bytes.Contains(gomod, []byte("replace "+SDKModule)) || bytes.Contains(gomod, []byte("\t"+SDKModule+" =>")) {
		return "", errors.New("wasmbuild: go.mod already replaces " + SDKModule)
	}
	gosum, err := os.ReadFile(filepath.Join(o.Root, "go.sum"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	sdkDir, err := sdkSource(ctx, o)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, b := range [][]byte{gomod, gosum, []byte(sdkDir)} {
		h.Write(b)
		h.Write([]byte{0})
	}
	glue := map[string][]byte{}
	for _, src := range slices.Sorted(mapsKeys(glueFiles)) {
		b, err := os.ReadFile(filepath.Join(o.Root, FiltersDir, "abi", src))
		if err != nil {
			return "", fmt.Errorf("wasmbuild: ABI glue: %w", err)
		}
		glue[glueFiles[src]] = b
		h.Write(b)
		h.Write([]byte{0})
	}
	work := o.WorkDir
	if work == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		work = filepath.Join(base, "skiff-wasmbuild", hex.EncodeToString(h.Sum(nil))[:16])
	}
	modfile := filepath.Join(work, "go.mod")
	if _, err := os.Stat(filepath.Join(work, ".complete")); err == nil {
		return modfile, nil
	}
	// Build the work directory aside and move it into place, so concurrent
	// builds (parallel test packages) never see a half-written one.
	if err := os.MkdirAll(filepath.Dir(work), 0o755); err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(work), ".tmp-")
	if err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := copySDK(sdkDir, filepath.Join(tmp, "sdk"), glue); err != nil {
		return "", err
	}
	replace := fmt.Sprintf("\n// Generated by wasm-filters/wasmbuild: the SDK with Skiff's ABI glue.\nreplace %s => %s\n", SDKModule, filepath.Join(work, "sdk"))
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), append(slices.Clip(gomod), replace...), 0o644); err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "go.sum"), gosum, 0o644); err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	if o.WorkDir != "" {
		if err := os.RemoveAll(work); err != nil {
			return "", fmt.Errorf("wasmbuild: %w", err)
		}
	}
	if err := os.Rename(tmp, work); err != nil {
		if _, serr := os.Stat(filepath.Join(work, ".complete")); serr == nil {
			return modfile, nil // another build won the race
		}
		return "", fmt.Errorf("wasmbuild: %w", err)
	}
	return modfile, nil
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// sdkSource returns the module cache folder of the SDK version go.mod requires.
func sdkSource(ctx context.Context, o Options) (string, error) {
	for attempt := 0; attempt < 2; attempt++ {
		cmd := exec.CommandContext(ctx, o.Go, "list", "-m", "-f", "{{.Dir}}", SDKModule)
		cmd.Dir = o.Root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("wasmbuild: go list -m %s: %w\n%s", SDKModule, err, stderr.String())
		}
		if dir := strings.TrimSpace(string(out)); dir != "" {
			return dir, nil
		}
		dl := exec.CommandContext(ctx, o.Go, "mod", "download", SDKModule)
		dl.Dir = o.Root
		if b, err := dl.CombinedOutput(); err != nil {
			return "", fmt.Errorf("wasmbuild: go mod download %s: %w\n%s", SDKModule, err, b)
		}
	}
	return "", errors.New("wasmbuild: the SDK module is not in the module cache")
}

// copySDK copies the SDK module from src to dst (without tests), writing
// the glue files into proxywasm/internal.
func copySDK(src, dst string, glue map[string][]byte) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if rel != "." && (d.Name() == "examples" || d.Name() == "e2e" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasSuffix(path, "_test.go") || !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
	if err != nil {
		return fmt.Errorf("wasmbuild: copying the SDK: %w", err)
	}
	internal := filepath.Join(dst, "proxywasm", "internal")
	if _, err := os.Stat(filepath.Join(internal, "abi_hostcalls_mock.go")); err != nil {
		return fmt.Errorf("wasmbuild: unexpected SDK layout (need proxywasm/internal/abi_hostcalls_mock.go): %w", err)
	}
	for name, b := range glue {
		if err := os.WriteFile(filepath.Join(internal, name), b, 0o644); err != nil {
			return fmt.Errorf("wasmbuild: writing ABI glue: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
