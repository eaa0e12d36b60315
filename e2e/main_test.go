package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/eventing"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// shared is what the package's tests build once: the skiff binary, the cloudevents
// module and the gateway's Wasm compilation cache (compiling a Go-built module takes
// seconds under -race). TestMain owns its folder.
var shared struct {
	dir string

	binOnce sync.Once
	bin     string
	binErr  error

	ceOnce sync.Once
	ce     wasmbuild.Module
	ceErr  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// wasmCacheDir is the gateways' shared compilation cache.
func wasmCacheDir() string { return filepath.Join(shared.dir, "wasm-cache") }

// skiffBinary builds cmd/skiff once for the package.
func skiffBinary(t testing.TB) string {
	t.Helper()
	shared.binOnce.Do(func() {
		shared.bin = filepath.Join(shared.dir, "skiff")
		build := exec.Command("go", "build", "-o", shared.bin, "./cmd/skiff")
		build.Dir = moduleRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			shared.binErr = fmt.Errorf("go build ./cmd/skiff: %v\n%s", err, out)
		}
	})
	if shared.binErr != nil {
		t.Fatal(shared.binErr)
	}
	return shared.bin
}

// withEventing runs brokers with the cloudevents filter in the gateway, built with the
// project's wasm build as `skiff up` does.
func withEventing(t testing.TB) func(*controlplane.Config) {
	t.Helper()
	shared.ceOnce.Do(func() {
		mods, err := wasmbuild.Locate(context.Background(), wasmbuild.Options{
			Root: moduleRoot(t), OutDir: filepath.Join(shared.dir, "wasm"), Filters: []string{"cloudevents"},
		})
		shared.ce, shared.ceErr = mods["cloudevents"], err
	})
	if shared.ceErr != nil {
		t.Fatalf("build the cloudevents filter: %v", shared.ceErr)
	}
	return func(cfg *controlplane.Config) {
		cfg.Eventing = &controlplane.EventingConfig{
			IngressAddress: "127.0.0.1:0",
			CloudEventsFilter: &xds.WasmFilter{
				Name: eventing.CloudEventsFilterName, Path: shared.ce.Path, SHA256: shared.ce.SHA256,
			},
		}
	}
}
