package wasm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// modules are the test filters built by TestMain, by name.
var modules map[string]string

// compileCache lets the tests' factories compile each module once.
var compileCache = wazero.NewCompilationCache()

// TestMain builds the filters the tests load with the same build chain as
// `make wasm` (cached in a temporary folder), so a fresh clone needs no
// prior build step.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "skiff-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := wasmbuild.FindRoot(".")
	if err == nil {
		modules, err = wasmbuild.Build(ctx, wasmbuild.Options{
			Root: root, OutDir: dir, Filters: []string{"revision-metrics", "abitest", "cloudevents"},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the test filters:", err)
		return 1
	}
	return m.Run()
}
