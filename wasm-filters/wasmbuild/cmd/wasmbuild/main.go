// Command wasmbuild builds Skiff's proxy-wasm filters to .wasm modules with
// the standard Go toolchain (see package wasmbuild). `make wasm` runs it.
//
// Usage:
//
//	go run ./wasm-filters/wasmbuild/cmd/wasmbuild [-out bin/wasm] [filter ...]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

func main() {
	out := flag.String("out", "bin/wasm", "output folder for <filter>.wasm (relative to the repository root)")
	root := flag.String("root", "", "repository root (default: the folder holding go.mod above the working directory)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	built, err := wasmbuild.Build(ctx, wasmbuild.Options{Root: *root, OutDir: *out, Filters: flag.Args(), Logger: logger})
	for name, path := range built {
		fmt.Printf("%s\t%s\n", name, path)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
