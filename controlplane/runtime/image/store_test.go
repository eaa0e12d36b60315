package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

type entry struct {
	hdr  tar.Header
	body string
}

func file(name, body string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body: body}
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}}
}

func layerOf(t testing.TB, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustImage(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/app"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// newRegistry serves an in-process registry; wrap, when set, wraps its handler.
func newRegistry(t testing.TB, wrap func(http.Handler) http.Handler) (*httptest.Server, string) {
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, strings.TrimPrefix(srv.URL, "http://")
}

func push(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return r.Context().String() + "@" + d.String()
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers (owners, device nodes, overlay xattrs) needs root; skipped as uid", os.Geteuid())
	}
}

func openStore(t *testing.T, dir string, max int64) *Store {
	t.Helper()
	s, err := OpenStore(StoreConfig{Dir: dir, MaxBytes: max, Platform: &v1.Platform{OS: "linux", Architecture: "amd64"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// countBlobs wraps a registry handler counting blob downloads per digest.
func countBlobs(counts *sync.Map) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				d := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
				v, _ := counts.LoadOrStore(d, new(atomic.Int32))
				v.(*atomic.Int32).Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
}

// Layers are unpacked in overlayfs's format, whiteouts included, and shared between images.
func TestPullUnpacksAndSharesLayers(t *testing.T) {
	needRoot(t)
	var counts sync.Map
	_, host := newRegistry(t, countBlobs(&counts))
	base := layerOf(t, dir("etc/"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), dir("gone/"), file("gone/x", "x"),
		file("old", "old"), dir("opq/"), file("opq/lower", "l"))
	top := layerOf(t, file(".wh.old", ""), file("gone/.wh..wh..opq", ""), file("opq/.wh..wh..opq", ""), file("opq/upper", "u"),
		symlink("link", "/etc/passwd"), entry{hdr: tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000}})
	a := push(t, host+"/a:v1", mustImage(t, base, top))
	b := push(t, host+"/b:v1", mustImage(t, base, layerOf(t, file("b", "b"))))

	s := openStore(t, t.TempDir(), 0)
	ctx := context.Background()
	var lines []string
	img, err := s.Pull(ctx, a, nil, func(f string, args ...any) { lines = append(lines, f) })
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	defer img.Release()
	if len(img.Layers) != 2 || img.Config.Config.Entrypoint[0] != "/app" {
		t.Fatalf("image: %d layers, config %+v", len(img.Layers), img.Config.Config)
	}
	if len(lines) == 0 {
		t.Error("no progress reported")
	}
	lower, upper := img.Layers[0], img.Layers[1]
	if got, _ := os.ReadFile(filepath.Join(lower, "etc/passwd")); !strings.HasPrefix(string(got), "root:") {
		t.Errorf("etc/passwd = %q", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "old"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout of /old: %v, mode %o rdev %d; want a 0/0 character device", err, st.Mode, st.Rdev)
	}
	for _, d := range []string{"gone", "opq"} {
		buf := make([]byte, 4)
		n, err := unix.Lgetxattr(filepath.Join(upper, d), opaqueXattr, buf)
		if err != nil || string(buf[:n]) != "y" {
			t.Errorf("%s: opaque xattr %q, %v; want y", d, buf[:n], err)
		}
	}
	if _, err := os.Stat(filepath.Join(upper, "opq/upper")); err != nil {
		t.Errorf("a file added beside an opaque marker is missing: %v", err)
	}
	if l, _ := os.Readlink(filepath.Join(upper, "link")); l != "/etc/passwd" {
		t.Errorf("symlink target %q", l)
	}
	if fi, err := os.Stat(filepath.Join(upper, "bin")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("bin owner: %v", err)
	}

	imgB, err := s.Pull(ctx, b, nil, nil)
	if err != nil {
		t.Fatalf("Pull b: %v", err)
	}
	defer imgB.Release()
	if imgB.Layers[0] != lower {
		t.Errorf("the shared base layer is in two places: %s and %s", imgB.Layers[0], lower)
	}
	baseDigest, _ := base.Digest()
	if v, ok := counts.Load(baseDigest.String()); !ok || v.(*atomic.Int32).Load() != 1 {
		t.Errorf("the shared base layer was downloaded %v times, want once", v)
	}
}

// An image by digest already in the cache is served without the registry, also after the
// store is reopened; an interrupted unpack leaves nothing behind.
func TestPullFromCacheWithoutRegistry(t *testing.T) {
	needRoot(t)
	srv, host := newRegistry(t, nil)
	ref := push(t, host+"/app:v1", mustImage(t, layerOf(t, file("app", "bin"))))
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	img, err := s.Pull(context.Background(), ref, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	img.Release()
	srv.Close()
	if err := os.MkdirAll(filepath.Join(dir, "tmp", "leftover"), 0o700); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 0)
	if _, err := os.Stat(filepath.Join(dir, "tmp", "leftover")); !os.IsNotExist(err) {
		t.Errorf("tmp leftover kept: %v", err)
	}
	img, err = s.Pull(context.Background(), ref, nil, nil)
	if err != nil {
		t.Fatalf("Pull from cache with the registry gone: %v", err)
	}
	img.Release()
}

// What the registry sends is checked: a layer whose bytes do not match its digest, an image
// for another architecture and an index without this platform fail with a reason that says so.
func TestPullBadImages(t *testing.T) {
	needRoot(t)
	good := layerOf(t, file("app", strings.Repeat("x", 4096)))
	goodDigest, _ := good.Digest()
	_, host := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+goodDigest.String()) && strings.Contains(r.URL.Path, "/corrupt/") {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				body[len(body)/2] ^= 0xff
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	corrupt := push(t, host+"/corrupt:v1", mustImage(t, good))
	arm := mustImage(t, layerOf(t, file("app", "arm")))
	cf, _ := arm.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture = "arm64"
	arm, _ = mutate.ConfigFile(arm, cf)
	armRef := push(t, host+"/arm:v1", arm)
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	r, _ := name.ParseReference(host + "/idx:v1")
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, t.TempDir(), 0)
	for _, c := range []struct{ ref, reason, says string }{
		{corrupt, ReasonInvalid, "checksum"},
		{armRef, ReasonPlatform, "arm64"},
		{host + "/idx:v1", ReasonPlatform, "linux/amd64"},
		{host + "/missing:v1", ReasonNotFound, ""},
	} {
		_, err := s.Pull(context.Background(), c.ref, nil, nil)
		if err == nil || Reason(err) != c.reason || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Pull(%s): %v (reason %s), want reason %s saying %q", c.ref, err, Reason(err), c.reason, c.says)
		}
	}
	if n := s.Size(); n != 0 {
		t.Errorf("failed pulls left %d bytes in the cache", n)
	}
}

// Tar entries that climb out of the layer are refused, including through a symlink.
func TestUnpackRefusesEscapes(t *testing.T) {
	needRoot(t)
	outside := t.TempDir()
	for name, entries := range map[string][]entry{
		"dotdot":  {file("../../escape", "x")},
		"symlink": {symlink("s", outside), file("s/escape", "x")},
		"hardlink": {
			{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, host := newRegistry(t, nil)
			ref := push(t, host+"/evil:v1", mustImage(t, layerOf(t, entries...)))
			s := openStore(t, t.TempDir(), 0)
			if _, err := s.Pull(context.Background(), ref, nil, nil); err == nil || Reason(err) != ReasonInvalid {
				t.Errorf("Pull: %v, want %s", err, ReasonInvalid)
			}
			if _, err := os.Stat(filepath.Join(outside, "escape")); err == nil {
				t.Error("a file was written outside the layer")
			}
		})
	}
}

// Past MaxBytes the least recently used image nobody holds is evicted with its own layers;
// held images and shared layers stay; an image larger than the cache fails.
func TestCacheEviction(t *testing.T) {
	needRoot(t)
	_, host := newRegistry(t, nil)
	shared := layerOf(t, file("shared", strings.Repeat("s", 100)))
	var refs []string
	for i, n := range []string{"a", "b", "c"} {
		refs = append(refs, push(t, host+"/"+n+":v1", mustImage(t, shared, layerOf(t, file(n, strings.Repeat(n, 400+i))))))
	}
	s := openStore(t, t.TempDir(), 1000)
	ctx := context.Background()
	a, err := s.Pull(ctx, refs[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Release()
	b, err := s.Pull(ctx, refs[1], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release() // held: never evicted
	c, err := s.Pull(ctx, refs[2], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	// 100 + 400 + 401 + 402 > 1000: a (least recently used, unheld) goes, down to <= 800.
	if _, err := os.Stat(a.Layers[1]); !os.IsNotExist(err) {
		t.Errorf("a's own layer is still there: %v", err)
	}
	if _, err := os.Stat(b.Layers[1]); err != nil {
		t.Errorf("held image b was evicted: %v", err)
	}
	if _, err := os.Stat(b.Layers[0]); err != nil {
		t.Errorf("the shared layer was evicted: %v", err)
	}
	if got := s.Size(); got > 1000 {
		t.Errorf("cache holds %d bytes, over its bound", got)
	}
	big := push(t, host+"/big:v1", mustImage(t, layerOf(t, file("big", strings.Repeat("b", 2000)))))
	if _, err := s.Pull(ctx, big, nil, nil); Reason(err) != ReasonTooLarge {
		t.Errorf("Pull of an image larger than the cache: %v, want %s", err, ReasonTooLarge)
	}
}
