package build

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Default base images of source-layered runtimes; Go's default base is empty (scratch), as ko's
// static binaries need nothing. Any base must provide the language's interpreter in PATH.
var DefaultBaseImages = map[string]string{
	"node":       "docker.io/library/node:20-slim",
	"typescript": "docker.io/library/node:20-slim",
	"python":     "docker.io/library/python:3.11-slim",
}

// Image labels Skiff sets, after Knative Functions' and the OCI annotations.
const (
	LabelFunctionName    = "dev.knative.function.name"
	LabelFunctionRuntime = "dev.knative.function.runtime"
	LabelFunctionInvoke  = "dev.knative.function.invoke"
	LabelTitle           = "org.opencontainers.image.title"
	LabelBuildDigest     = "dev.skiff.function.build"
)

// In-image paths: ko's /ko-app/<name> for Go, /workspace for the others (Knative's layout).
const (
	koAppDir  = "/ko-app"
	workspace = "/workspace"
)

// ImageOptions configure an OCI build.
type ImageOptions struct {
	// BaseImage is the image to layer on ("scratch" or "" for Go: empty). Default: build.baseImage,
	// else DefaultBaseImages for the runtime.
	BaseImage string
	// Platform is the image's OS and architecture. Default: linux and this machine's GOARCH.
	Platform *v1.Platform
	// Remote are options for pulling the base (auth, transport). Default: the default keychain.
	Remote []remote.Option
}

// BuildImage layers a host build onto a base image: for Go, the static binary (rebuilt for the
// platform if it is not this machine's) in /ko-app/<name>; for the others, the source snapshot
// with its installed dependencies and the runner under /workspace. The config carries the
// entrypoint, environment (base's, then run.envs), working directory, exposed port 8080 and
// labels naming the function.
func BuildImage(ctx context.Context, opts Options, h *Host, io ImageOptions) (v1.Image, error) {
	opts = opts.withDefaults()
	f := opts.Func
	plat := io.Platform
	if plat == nil {
		plat = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	baseRef := io.BaseImage
	if baseRef == "" {
		baseRef = f.Build.BaseImage
	}
	if baseRef == "" {
		baseRef = DefaultBaseImages[f.Runtime]
	}
	base, err := pullBase(ctx, baseRef, plat, io.Remote)
	if err != nil {
		return nil, err
	}

	var files []layerFile
	var entrypoint []string
	workdir := workspace + "/src"
	switch f.Runtime {
	case "go":
		bin := h.Binary()
		if plat.OS != runtime.GOOS || plat.Architecture != runtime.GOARCH {
			bin = filepath.Join(h.Dir, "bin", plat.OS+"_"+plat.Architecture, "function")
			if _, err := os.Stat(bin); err != nil {
				b := &builder{opts: opts, f: f, dir: h.Dir}
				if err := b.golang(ctx, bin, plat.OS, plat.Architecture); err != nil {
					return nil, err
				}
			}
		}
		files = append(files, layerFile{name: path.Join(koAppDir, f.Name), src: bin, mode: 0o755})
		entrypoint = []string{path.Join(koAppDir, f.Name)}
		workdir = koAppDir
	case "node", "typescript":
		if files, err = treeFiles(h.Dir, workspace, "src", "runner"); err != nil {
			return nil, err
		}
		entrypoint = []string{"node", workspace + "/runner/runner.js", workspace + "/src"}
	case "python":
		if files, err = treeFiles(h.Dir, workspace, "src", "runner"); err != nil {
			return nil, err
		}
		entrypoint = []string{"python3", "-u", workspace + "/runner/main.py", workspace + "/src", "--invoke", f.InvokeFormat()}
		if _, server := h.pythonChoice(); server != "asyncio" {
			// The base image must have the framework (build.baseImage): PyPI is out of reach.
			entrypoint = append(entrypoint, "--server", server)
		}
	default:
		return nil, fmt.Errorf("runtime %q: no OCI builder", f.Runtime)
	}
	layer, err := tarLayer(files)
	if err != nil {
		return nil, fmt.Errorf("making the function's layer: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{CreatedBy: "skiff func build", Comment: f.Runtime + " function " + f.Name},
	})
	if err != nil {
		return nil, fmt.Errorf("appending the function's layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the base image's config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cfg := cf.Config
	cfg.Entrypoint = entrypoint
	cfg.Cmd = nil
	cfg.WorkingDir = workdir
	cfg.Env = mergeEnv(cfg.Env, append([]string{"PORT=8080"}, f.EnvList()...))
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels[LabelFunctionName] = f.Name
	cfg.Labels[LabelFunctionRuntime] = f.Runtime
	cfg.Labels[LabelFunctionInvoke] = f.InvokeFormat()
	cfg.Labels[LabelTitle] = f.Name
	cfg.Labels[LabelBuildDigest] = h.Digest
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	cfg.ExposedPorts["8080/tcp"] = struct{}{}
	if f.Runtime == "go" && baseRef == "" || baseRef == "scratch" {
		cfg.User = "65532" // ko's nonroot user: a static binary needs no root
	}
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing the image config: %w", err)
	}
	return img, nil
}

// pullBase returns the base image: empty for "" or "scratch", else pulled from its registry.
func pullBase(ctx context.Context, ref string, plat *v1.Platform, ropts []remote.Option) (v1.Image, error) {
	if ref == "" || ref == "scratch" {
		return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), nil
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("base image %q: %w", ref, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithPlatform(*plat), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, ropts...)
	img, err := remote.Image(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("pulling base image %s: %w (set --base-image or build.baseImage in func.yaml to an image your machine can pull)", ref, err)
	}
	return img, nil
}

// Push writes img to ref's registry with creds and returns the pushed image by digest.
func Push(ctx context.Context, img v1.Image, ref string, creds Credentials) (name.Digest, error) {
	ropts, nopts, err := creds.options()
	if err != nil {
		return name.Digest{}, err
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image %q: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	opts := append([]remote.Option{remote.WithContext(ctx)}, ropts...)
	if err := remote.Write(r, img, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return r.Context().Digest(d.String()), nil
}

// WriteLayout writes img into an OCI image layout at dir (replacing what was there), tagged with
// ref in the index annotations, so that an unpushed build can be inspected or copied later.
func WriteLayout(dir string, img v1.Image, ref string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	return nil
}

// mergeEnv is base with each of add's NAME=value replacing the same name or appended.
func mergeEnv(base, add []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range add {
		n, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bn, _, _ := strings.Cut(b, "="); bn == n {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// layerFile is one file of a layer: its in-image path and where its content comes from.
type layerFile struct {
	name string
	src  string
	mode int64
}

// treeFiles lists the files of dir's subdirectories subs, to be placed under prefix.
func treeFiles(dir, prefix string, subs ...string) ([]layerFile, error) {
	var out []layerFile
	for _, s := range subs {
		err := filepath.WalkDir(filepath.Join(dir, s), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() && !info.IsDir() && info.Mode()&fs.ModeSymlink == 0 {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			out = append(out, layerFile{name: path.Join(prefix, filepath.ToSlash(rel)), src: p, mode: int64(info.Mode().Perm())})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tarLayer makes a reproducible layer (sorted entries, zero times, root owner) of files, with
// their parent directories.
func tarLayer(files []layerFile) (v1.Layer, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var addDir func(d string) error
	addDir = func(d string) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		if err := addDir(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, Format: tar.FormatPAX})
	}
	for _, f := range files {
		info, err := os.Lstat(f.src)
		if err != nil {
			return nil, err
		}
		if info.IsDir() {
			if err := addDir(f.name); err != nil {
				return nil, err
			}
			continue
		}
		if err := addDir(path.Dir(f.name)); err != nil {
			return nil, err
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(f.name, "/"), Mode: f.mode, Format: tar.FormatPAX}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(f.src)
			if err != nil {
				return nil, err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		fh, err := os.Open(f.src)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(tw, fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
