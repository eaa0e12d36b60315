package wasmbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Module is a filter's .wasm file as a proxy is configured with it.
type Module struct {
	// Path is the module's absolute file name.
	Path string
	// SHA256 is the hex sha256 of the file; proxies use it to tell builds apart
	// (xds.WasmFilter.SHA256).
	SHA256 string
}

// Locate returns the modules of the filters o selects. When the repository's sources are at
// o.Root (a checkout: wasm-filters/<name> exists) each module is built afresh into o.OutDir,
// so a changed filter is never served stale (the Go build cache keeps a rebuild near a
// second); otherwise (an installed binary without sources) the modules must already be in
// o.OutDir, e.g. from `make wasm`, and a missing one is an error naming the file.
func Locate(ctx context.Context, o Options) (map[string]Module, error) {
	if len(o.Filters) == 0 {
		return nil, errors.New("wasmbuild: locate: no filters named")
	}
	if o.Root == "" {
		o.Root, _ = FindRoot(".")
	}
	outDir := o.OutDir
	if outDir == "" {
		outDir = filepath.Join("bin", "wasm")
	}
	if !filepath.IsAbs(outDir) && o.Root != "" {
		outDir = filepath.Join(o.Root, outDir)
	}
	paths := map[string]string{}
	if o.Root != "" && haveSources(o.Root, o.Filters) {
		built, err := Build(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("wasmbuild: locate: %w", err)
		}
		paths = built
	} else {
		for _, name := range o.Filters {
			paths[name] = filepath.Join(outDir, name+".wasm")
		}
	}
	out := make(map[string]Module, len(paths))
	for name, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("wasmbuild: locate %s: %w", name, err)
		}
		sum, err := fileSHA256(abs)
		if err != nil {
			return nil, fmt.Errorf("wasmbuild: locate %s: %w (build it with `make wasm`)", name, err)
		}
		out[name] = Module{Path: abs, SHA256: sum}
	}
	return out, nil
}

// haveSources reports whether every named filter's source folder is under root.
func haveSources(root string, names []string) bool {
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(root, FiltersDir, n)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
