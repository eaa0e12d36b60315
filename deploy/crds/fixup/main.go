// Command fixup makes controller-gen's output acceptable to a real API server: a recursive
// type (a Trigger filter's all/any/not hold more filters) comes out as an empty schema ({}),
// which kube-apiserver rejects in a structural schema ("type: Required value"). Each such
// schema becomes an object that keeps unknown fields; Skiff validates filters itself.
// `make crds` runs it after controller-gen.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

var empty = regexp.MustCompile(`(?m)^(\s+)(items|not): \{\}$`)

func main() {
	files, err := filepath.Glob(filepath.Join(os.Args[1], "*.yaml"))
	if err != nil || len(files) == 0 {
		fmt.Fprintln(os.Stderr, "fixup: no CRDs in", os.Args[1], err)
		os.Exit(1)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fixup:", err)
			os.Exit(1)
		}
		out := empty.ReplaceAll(b, []byte("${1}${2}:\n${1}  type: object\n${1}  x-kubernetes-preserve-unknown-fields: true"))
		if err := os.WriteFile(f, out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fixup:", err)
			os.Exit(1)
		}
	}
}
