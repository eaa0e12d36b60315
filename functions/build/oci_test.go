package build

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/skiff-dev/skiff/functions/template"
)

// TestImagePush builds Go and Python function images, pushes them to an in-process registry
// and inspects what the registry serves, as crane manifest/config would.
func TestImagePush(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	reg := u.Host
	ctx := context.Background()

	// A base for the source-layered runtime, served by the same registry: never the internet.
	base, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	baseRef := reg + "/base/python:3.11"
	if _, err := Push(ctx, base, baseRef, Credentials{}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		runtime, base  string
		wantEntrypoint string
		wantLayers     int
	}{
		{"go", "", "/ko-app/fn-go", 1},
		{"python", baseRef, "python3", 3},
	} {
		t.Run(c.runtime, func(t *testing.T) {
			if _, err := exec.LookPath(map[string]string{"go": "go", "python": "python3"}[c.runtime]); err != nil {
				t.Skipf("%s is not installed", c.runtime)
			}
			dir := filepath.Join(t.TempDir(), "fn-"+c.runtime)
			f, err := template.Create(template.Options{Dir: dir, Runtime: c.runtime})
			if err != nil {
				t.Fatal(err)
			}
			f.Registry = reg + "/fns"
			f.Run.Envs = append(f.Run.Envs, envVar("GREETING", "hi"))
			opts := Options{Dir: dir, Func: f, CacheDir: t.TempDir()}
			h, err := BuildHost(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			img, err := BuildImage(ctx, opts, h, ImageOptions{BaseImage: c.base})
			if err != nil {
				t.Fatal(err)
			}
			d, err := Push(ctx, img, f.ImageRef(), Credentials{})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(f.ImageRef())
			if err != nil {
				t.Fatal(err)
			}
			got, err := remote.Image(ref)
			if err != nil {
				t.Fatalf("pulling back %s: %v", ref, err)
			}
			gd, _ := got.Digest()
			if gd.String() != d.DigestStr() {
				t.Errorf("registry serves digest %s, pushed %s", gd, d.DigestStr())
			}
			cf, err := got.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if len(cf.Config.Entrypoint) == 0 || cf.Config.Entrypoint[0] != c.wantEntrypoint {
				t.Errorf("entrypoint %v, want it to start with %s", cf.Config.Entrypoint, c.wantEntrypoint)
			}
			if !slices.Contains(cf.Config.Env, "GREETING=hi") || !slices.Contains(cf.Config.Env, "PORT=8080") {
				t.Errorf("env %v lacks run.envs or PORT", cf.Config.Env)
			}
			if cf.Config.Labels[LabelFunctionName] != f.Name || cf.Config.Labels[LabelFunctionRuntime] != c.runtime {
				t.Errorf("labels %v", cf.Config.Labels)
			}
			layers, err := got.Layers()
			if err != nil || len(layers) != c.wantLayers {
				t.Errorf("%d layers (%v), want %d", len(layers), err, c.wantLayers)
			}
			m, _ := got.Manifest()
			if c.base == "" && !strings.Contains(string(m.MediaType), "oci") { // on a base, the base's manifest type is kept
				t.Errorf("manifest media type %s, want OCI", m.MediaType)
			}
		})
	}
}

func TestBuildFailureQuotesCompiler(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	dir := filepath.Join(t.TempDir(), "broken")
	f, err := template.Create(template.Options{Dir: dir, Runtime: "go"})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "extra.go"), "package function\n\nvar x int = \"s\"\n"); err != nil {
		t.Fatal(err)
	}
	_, err = BuildHost(context.Background(), Options{Dir: dir, Func: f, CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "build failed: go build") || !strings.Contains(err.Error(), "extra.go") {
		t.Fatalf("want a go build failure naming extra.go, got %v", err)
	}
}

// Node dependencies are installed once per set (the npm registry on a cold cache) and
// hard-linked into every build that has the same set: a second function, or a rebuild after an
// edit, runs no npm install.
func TestNodeDependencyCache(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm install (the npm registry on a cold cache)")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed")
	}
	cache := filepath.Join(os.TempDir(), "skiff-e2e-func-cache") // shared with e2e: installs once
	var builds []*Host
	for _, name := range []string{"first", "second"} {
		dir := filepath.Join(t.TempDir(), name)
		f, err := template.Create(template.Options{Dir: dir, Runtime: "node"})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		h, err := BuildHost(context.Background(), Options{Dir: dir, Func: f, CacheDir: cache, Output: &out})
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out.String())
		}
		if name == "second" && strings.Contains(out.String(), "added") {
			t.Errorf("the second function with the same dependencies ran npm install:\n%s", out.String())
		}
		builds = append(builds, h)
	}
	pkg := func(h *Host) os.FileInfo {
		info, err := os.Stat(filepath.Join(h.SrcDir(), "node_modules", "faas-js-runtime", "package.json"))
		if err != nil {
			t.Fatalf("faas-js-runtime is not installed in %s: %v", h.Dir, err)
		}
		return info
	}
	if !os.SameFile(pkg(builds[0]), pkg(builds[1])) {
		t.Error("the two builds' node_modules are copies, not links to one installed set")
	}
}
