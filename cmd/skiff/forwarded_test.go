package main

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/skiff-dev/skiff/controlplane/xds"
)

// `skiff up` (and `skiff controlplane`) run the forwarded filter by default, on
// xds.ForwardedConditions only; --forwarded-filter=false leaves it out.
func TestForwardedFilterFlag(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--forwarded-filter=false"}, false},
	} {
		rc := newRootCommand()
		up, _, err := rc.Find([]string{"up"})
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--work-dir", root, "--wasm-dir", t.TempDir(), "--data-dir", t.TempDir(), "--eventing=false"}, tc.args...)
		if err := up.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		up.SetContext(context.Background())
		cfg, err := controlPlaneConfig(up, nil)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(cfg.WasmFilters, func(w xds.WasmFilter) bool { return w.Name == xds.ForwardedFilterName })
		if got := i >= 0; got != tc.want {
			t.Fatalf("%v: forwarded filter present = %v, want %v (%+v)", tc.args, got, tc.want, cfg.WasmFilters)
		}
		if tc.want {
			w := cfg.WasmFilters[i]
			if w.SHA256 == "" || !w.FailOpen || !slices.Equal(w.RunWhen, xds.ForwardedConditions()) {
				t.Errorf("forwarded filter = %+v, want the built module run on ForwardedConditions, failing open", w)
			}
		}
	}
}
