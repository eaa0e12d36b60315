package api

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// knativeCase is one document of testdata/knative with the verdict Knative Serving v0.51.0
// itself (SetDefaults, then Validate) gave it; see testdata/knative/README.md.
type knativeCase struct {
	ID     string          `json:"id"`
	Source string          `json:"source"`
	Op     string          `json:"op"`
	Config knativeConfig   `json:"config"`
	Object json.RawMessage `json:"object"`
	Old    json.RawMessage `json:"old"`
	Want   struct {
		Errors []string        `json:"errors"`
		Spec   json.RawMessage `json:"spec"`
	} `json:"want"`
}

// knativeConfig overrides Knative's default settings, by Go field name of config.Features,
// config.Defaults and autoscaling.Config (the same names as Knative's).
type knativeConfig struct {
	Features   map[string]any `json:"features"`
	Defaults   map[string]any `json:"defaults"`
	Autoscaler map[string]any `json:"autoscaler"`
}

func (kc knativeConfig) build(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	for _, o := range []struct {
		m    map[string]any
		into any
	}{{kc.Features, cfg.Features}, {kc.Defaults, cfg.Defaults}, {kc.Autoscaler, cfg.Autoscaler}} {
		if len(o.m) == 0 {
			continue
		}
		b, _ := json.Marshal(o.m)
		if err := json.Unmarshal(b, o.into); err != nil {
			t.Fatalf("config %s: %v", b, err)
		}
	}
	return cfg
}

func loadKnativeCases(t *testing.T) []knativeCase {
	t.Helper()
	files, err := filepath.Glob("testdata/knative/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/knative/*.yaml: %v", err)
	}
	var all []knativeCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cases []knativeCase
		if err := yaml.Unmarshal(data, &cases); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i := range cases {
			cases[i].ID = filepath.Base(f) + "/" + cases[i].ID
		}
		all = append(all, cases...)
	}
	return all
}

// TestKnativeVerdicts checks Skiff's admission against Knative's on every document of
// testdata/knative: Knative Serving v0.51.0's own test cases (each case names its source:
// file and test function), the serving documents of knative/docs and of knative/serving's
// test/, and mutations per rule class. For each, Skiff must give the same verdict, name the
// same fields with the same messages, and (when valid) store the same defaulted spec. The
// one kept difference is strict decoding: an unknown or duplicate field is reported too.
func TestKnativeVerdicts(t *testing.T) {
	cases := loadKnativeCases(t)
	if len(cases) < 1000 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.ID, func(t *testing.T) {
			var tm struct{ APIVersion, Kind string }
			_ = json.Unmarshal(c.Object, &tm)
			k := LookupGVK(tm.APIVersion, tm.Kind)
			if k == nil {
				t.Fatalf("%s: not a kind", c.Source)
			}
			obj := k.New()
			fields, err := Decode(c.Object, obj)
			if err != nil {
				t.Fatalf("%s: %v", c.Source, err)
			}
			var old Object
			if c.Op == "update" {
				old = k.New()
				if err := json.Unmarshal(c.Old, old); err != nil {
					t.Fatal(err)
				}
			}
			ctx := config.ToContext(context.Background(), c.Config.build(t))
			got := lines(fields.Also(Errors(Admit(ctx, obj, old))))
			var extra []string
			for _, g := range got {
				if !slices.Contains(c.Want.Errors, g) {
					extra = append(extra, g)
				}
			}
			var missing []string
			for _, w := range c.Want.Errors {
				if !slices.Contains(got, w) {
					missing = append(missing, w)
				}
			}
			for _, e := range extra {
				if strings.HasPrefix(e, "unknown field: ") || strings.HasPrefix(e, "duplicate field: ") {
					continue // strict decoding, as the Kubernetes API server's
				}
				t.Errorf("%s: Skiff also says %q\nKnative: %q", c.Source, e, c.Want.Errors)
			}
			if len(missing) > 0 {
				t.Errorf("%s: Skiff does not say %q\nSkiff: %q", c.Source, missing, got)
			}
			if len(c.Want.Errors) == 0 && len(got) == 0 {
				var stored map[string]json.RawMessage
				b, _ := json.Marshal(obj)
				_ = json.Unmarshal(b, &stored)
				if !sameJSON(stored["spec"], c.Want.Spec) {
					t.Errorf("%s: stored spec\n%s\nKnative stores\n%s", c.Source, stored["spec"], c.Want.Spec)
				}
			}
		})
	}
}

// lines formats diagnostics as Knative's error lines, without details: "message: paths".
func lines(e *fielderr.Error) []string {
	var out []string
	for _, x := range e.Flatten() {
		out = append(out, x.Message+": "+strings.Join(x.Paths, ", "))
	}
	return out
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
