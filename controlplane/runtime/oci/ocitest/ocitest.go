// Package ocitest builds container images for tests without Docker: a Go program compiled
// statically and layered with go-containerregistry onto a minimal distroless-like base (an
// /etc/passwd with root and nonroot, /etc/group, /tmp, a nonroot home), pushed to an in-process
// registry (go-containerregistry/pkg/registry). Skip skips a test where runc cannot run
// containers, saying why.
package ocitest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skiff-dev/skiff/controlplane/runtime/oci"
)

// TestApp is the import path of the program the OCI runtime's tests run (see testapp).
const TestApp = "github.com/skiff-dev/skiff/controlplane/runtime/oci/ocitest/testapp"

// Skip skips t unless runc can run containers here (oci.Check), naming what is missing; it
// returns whether cgroup limits can be set.
func Skip(t testing.TB) (cgroups bool) {
	t.Helper()
	cg, err := oci.Check(context.Background(), "runc", t.TempDir())
	if err != nil {
		t.Skipf("no OCI runtime here, container tests skipped: %v", err)
	}
	return cg
}

// Registry serves an in-process registry for the test and returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Push writes img to ref and returns ref's repository pinned to the image's digest.
func Push(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().String() + "@" + d.String()
}

var (
	buildMu sync.Mutex
	builds  = map[string]string{}
)

// Binary builds the Go program at importPath (in this module) statically, once per test
// binary, and returns its path.
func Binary(t testing.TB, importPath string) string {
	t.Helper()
	p, err := BuildBinary(importPath)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BuildBinary is Binary for programs that are not tests (benchmarks).
func BuildBinary(importPath string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builds[importPath]; ok {
		return p, nil
	}
	dir, err := os.MkdirTemp("", "ocitest-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(importPath))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, importPath)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", importPath, err, b)
	}
	builds[importPath] = out
	return out, nil
}

// File is one entry of a layer built by Layer.
type File struct {
	Name     string
	Body     string
	Mode     int64
	Dir      bool
	Uid, Gid int
	// Src, when set, is a host file whose content is the body.
	Src string
}

// Layer makes a layer of files.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	l, err := MakeLayer(files...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// MakeLayer is Layer for programs that are not tests.
func MakeLayer(files ...File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		body := []byte(f.Body)
		if f.Src != "" {
			b, err := os.ReadFile(f.Src)
			if err != nil {
				return nil, err
			}
			body = b
		}
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Uid: f.Uid, Gid: f.Gid, ModTime: time.Unix(0, 0)}
		if f.Dir {
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// Base is the distroless-like base layer: root and nonroot (65532) users, /tmp, a home.
func Base(t testing.TB) v1.Layer {
	t.Helper()
	l, err := baseLayer()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func baseLayer() (v1.Layer, error) {
	return MakeLayer(
		File{Name: "etc/", Dir: true},
		File{Name: "etc/passwd", Body: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		File{Name: "etc/group", Body: "root:x:0:\nnonroot:x:65532:\nextra:x:4000:nonroot\n"},
		File{Name: "tmp/", Dir: true, Mode: 0o1777},
		File{Name: "home/", Dir: true},
		File{Name: "home/nonroot/", Dir: true, Uid: 65532, Gid: 65532},
		File{Name: "root/", Dir: true, Mode: 0o700},
	)
}

// Config adjusts an image's config.
type Config func(*v1.Config)

// GoImage is the Go program at importPath, built statically, in /app on the base layer, with
// entrypoint /app, for linux and this machine's architecture, adjusted by opts.
func GoImage(t testing.TB, importPath string, opts ...Config) v1.Image {
	t.Helper()
	img, err := BuildGoImage(importPath, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// BuildGoImage is GoImage for programs that are not tests.
func BuildGoImage(importPath string, opts ...Config) (v1.Image, error) {
	bin, err := BuildBinary(importPath)
	if err != nil {
		return nil, err
	}
	base, err := baseLayer()
	if err != nil {
		return nil, err
	}
	app, err := MakeLayer(File{Name: "app", Src: bin, Mode: 0o755})
	if err != nil {
		return nil, err
	}
	return MakeImage([]v1.Layer{base, app}, opts...)
}

// Image is an image of layers with entrypoint /app, for linux and this machine's
// architecture, adjusted by opts.
func Image(t testing.TB, layers []v1.Layer, opts ...Config) v1.Image {
	t.Helper()
	img, err := MakeImage(layers, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// MakeImage is Image for programs that are not tests.
func MakeImage(layers []v1.Layer, opts ...Config) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Config.Entrypoint = []string{"/app"}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "IMAGE_ONLY=from-image"}
	for _, o := range opts {
		o(&cf.Config)
	}
	return mutate.ConfigFile(img, cf)
}

// WithArch makes img's config say another architecture.
func WithArch(t testing.TB, img v1.Image, arch string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = arch
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
