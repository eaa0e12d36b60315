// Package build turns a function's source into something that runs: a host build (a program
// for this machine, what `skiff func run` and `skiff func deploy` on `skiff up` run) and an OCI
// image (oci.go) built without Docker.
//
// A host build is immutable and content-addressed: <function>/.func/builds/<digest>/ holds a
// snapshot of the source (src/), the runner or scaffold that serves it (runner/, main/) and,
// for Go, the static binary (bin/). The digest covers the source, func.yaml's build settings and
// the scaffold, so an unchanged function is not rebuilt, and a changed one gets a new directory
// (a new command line, hence a new Revision) while older revisions keep running their own.
//
// Per language:
//   - go: a generated main module (main/) requires the function's module (replace => ../src) and
//     `go build` makes a static binary (CGO_ENABLED=0), as Knative's host builder does.
//   - node: `npm install --omit=dev` when package.json has dependencies, once per set of
//     dependencies into the cache directory, hard-linked into each build (see nodeModules);
//     runner/runner.js runs the module on Knative's faas-js-runtime when the function depends
//     on it (every template does), else on Skiff's built-in runner (builtin.js).
//   - typescript: like node, then `tsc -p tsconfig.json`; tsc is the function's own
//     (node_modules/.bin/tsc) or typescript@TypeScriptVersion installed once into the cache
//     directory from the npm registry.
//   - python: runner/main.py serves the ASGI function with asyncio; no package is installed.
//     A function whose pyproject.toml depends on flask or fastapi is served with the
//     standard library's WSGI server or uvicorn, by the first of python3 and Debian's
//     /usr/bin/python3 that has the framework (PythonServer, pythonFor).
package build

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/skiff-dev/skiff/functions/filetree"
	"github.com/skiff-dev/skiff/functions/funcyaml"
)

//go:embed scaffold
var scaffold embed.FS

// TypeScriptVersion is the typescript package installed into the cache when a function has no
// tsc of its own.
const TypeScriptVersion = "5.9.3"

// scaffoldVersion is part of every build digest: bump it when the scaffolds change meaning.
const scaffoldVersion = "skiff-scaffold-2"

// Options configure a build.
type Options struct {
	// Dir is the function's directory (holding func.yaml).
	Dir string
	// Func is its func.yaml.
	Func *funcyaml.Function
	// CacheDir holds npm's cache and the typescript compiler. Default: <user cache>/skiff.
	CacheDir string
	// Output receives the build tools' output as they run (default: discarded; a failure's
	// error quotes its tail in any case).
	Output io.Writer
	// Env is the environment build tools start from. Default: os.Environ().
	Env []string
	// NoBuild asks for the existing build of the source as it is (deploy --build=false): an
	// error when there is none.
	NoBuild bool
}

// ErrNotBuilt is BuildHost's error under NoBuild when the source has no build yet.
var ErrNotBuilt = errors.New("the function has changed since it was last built: build it with `skiff func build`, or deploy with --build")

func (o Options) withDefaults() Options {
	if o.CacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			o.CacheDir = filepath.Join(d, "skiff")
		} else {
			o.CacheDir = filepath.Join(os.TempDir(), "skiff-cache")
		}
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	return o
}

// Host is a finished host build.
type Host struct {
	// Dir is the build's directory, .func/builds/<digest>.
	Dir string
	// Digest names the build (hex sha256 of its inputs, shortened).
	Digest string
	// Command runs the function on this machine (absolute paths); it listens on $PORT.
	Command []string
	// Runtime is the function's language.
	Runtime string
	// Cached is true when an earlier identical build was reused.
	Cached bool
}

// SrcDir is the snapshot of the function's source the build serves.
func (h *Host) SrcDir() string { return filepath.Join(h.Dir, "src") }

// RunnerDir holds the runner (node, python, typescript).
func (h *Host) RunnerDir() string { return filepath.Join(h.Dir, "runner") }

// Binary is a Go function's program.
func (h *Host) Binary() string { return filepath.Join(h.Dir, "bin", "function") }

// Error is a failed build: which step, and the tool's last output lines.
type Error struct {
	Step   string
	Err    error
	Output string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("build failed: %s: %v", e.Step, e.Err)
	if e.Output != "" {
		msg += ":\n" + e.Output
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// BuildHost makes (or reuses) the host build of the function.
func BuildHost(ctx context.Context, opts Options) (*Host, error) {
	opts = opts.withDefaults()
	f := opts.Func
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	digest, err := sourceDigest(dir, f)
	if err != nil {
		return nil, fmt.Errorf("reading the function's source: %w", err)
	}
	final := filepath.Join(dir, ".func", "builds", digest)
	h := &Host{Dir: final, Digest: digest, Runtime: f.Runtime}
	if _, err := os.Stat(filepath.Join(final, ".done")); err == nil {
		h.Cached = true
		return h, h.setCommand(f)
	}
	if opts.NoBuild {
		return nil, ErrNotBuilt
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, fmt.Errorf("creating the build directory: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), digest+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("creating the build directory: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename below; cleans up after a failure
	if err := copySource(dir, filepath.Join(tmp, "src")); err != nil {
		return nil, fmt.Errorf("copying the function's source: %w", err)
	}
	b := &builder{opts: opts, f: f, dir: tmp}
	switch f.Runtime {
	case "go":
		err = b.golang(ctx, filepath.Join(tmp, "bin", "function"), runtime.GOOS, runtime.GOARCH)
	case "node":
		err = b.node(ctx, false)
	case "typescript":
		err = b.node(ctx, true)
	case "python":
		err = b.python(ctx)
	default:
		err = fmt.Errorf("runtime %q: no builder", f.Runtime)
	}
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".done"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another build of the same digest finished first: use it.
		if _, serr := os.Stat(filepath.Join(final, ".done")); serr == nil {
			h.Cached = true
			return h, h.setCommand(f)
		}
		return nil, fmt.Errorf("finishing the build: %w", err)
	}
	return h, h.setCommand(f)
}

// setCommand fills Command for the build in h.Dir.
func (h *Host) setCommand(f *funcyaml.Function) error {
	switch f.Runtime {
	case "go":
		h.Command = []string{h.Binary()}
	case "node", "typescript":
		node, err := lookTool("node", "Node.js 20 or newer")
		if err != nil {
			return err
		}
		h.Command = []string{node, filepath.Join(h.RunnerDir(), "runner.js"), h.SrcDir()}
	case "python":
		// The build chose the interpreter (one that has the function's framework) and server.
		py, server := h.pythonChoice()
		if py == "" {
			var err error
			if py, err = lookTool("python3", "Python 3.9 or newer"); err != nil {
				return err
			}
		}
		h.Command = []string{py, "-u", filepath.Join(h.RunnerDir(), "main.py"), h.SrcDir(), "--invoke", f.InvokeFormat()}
		if server != "asyncio" {
			h.Command = append(h.Command, "--server", server)
		}
	default:
		return fmt.Errorf("runtime %q: no builder", f.Runtime)
	}
	return nil
}

// lookTool finds a language tool in PATH, with an error saying what to install.
func lookTool(name, what string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH: install %s to build and run this function", name, what)
	}
	return filepath.Abs(p)
}

// builder runs one build's steps in dir (the build's temporary directory).
type builder struct {
	opts Options
	f    *funcyaml.Function
	dir  string
}

// run runs a build tool in wd and turns a failure into an *Error quoting its output.
func (b *builder) run(ctx context.Context, step, wd string, env []string, name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = wd
	cmd.Env = append(slices.Clone(b.opts.Env), env...)
	for _, e := range b.f.Build.BuildEnvs {
		if e.Value != nil {
			cmd.Env = append(cmd.Env, e.Name+"="+*e.Value)
		}
	}
	cmd.Stdout = io.MultiWriter(&out, b.opts.Output)
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return &Error{Step: step, Err: err, Output: lastLines(out.String(), 25)}
	}
	return nil
}

// goScaffold is what main.go's template needs to know of the function's package.
type goScaffold struct {
	Instanced bool
}

// golang builds a Go function into out for goos/goarch.
func (b *builder) golang(ctx context.Context, out, goos, goarch string) error {
	goTool, err := lookTool("go", "Go")
	if err != nil {
		return err
	}
	src := filepath.Join(b.dir, "src")
	kind, sc, err := inspectGo(src)
	if err != nil {
		return &Error{Step: "reading the Go function", Err: err}
	}
	mainDir := filepath.Join(b.dir, "main")
	if err := os.MkdirAll(mainDir, 0o755); err != nil {
		return err
	}
	tmpl, err := scaffold.ReadFile("scaffold/go/main_" + kind + ".go.tmpl")
	if err != nil {
		return err
	}
	var mainGo bytes.Buffer
	if err := template.Must(template.New("main").Parse(string(tmpl))).Execute(&mainGo, sc); err != nil {
		return err
	}
	modPath, err := goModulePath(src)
	if err != nil {
		return &Error{Step: "reading the Go function's go.mod", Err: err}
	}
	// The user's module may be named anything; the scaffold imports it as "function" through
	// an import alias only when it is so named, so rewrite the import path.
	mainSrc := strings.Replace(mainGo.String(), `function "function"`, fmt.Sprintf("function %q", modPath), 1)
	gomod := fmt.Sprintf("module skiff.dev/function-main\n\ngo 1.24\n\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => ../src\n", modPath, modPath)
	if data, err := os.ReadFile(filepath.Join(src, "go.sum")); err == nil {
		if err := os.WriteFile(filepath.Join(mainDir, "go.sum"), data, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(mainDir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(mainDir, "main.go"), []byte(mainSrc), 0o644); err != nil {
		return err
	}
	env := []string{"CGO_ENABLED=0", "GOOS=" + goos, "GOARCH=" + goarch, "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOWORK=off"}
	return b.run(ctx, "go build", mainDir, env, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
}

// inspectGo finds how the function in src is written: "http" or "cloudevents" (from Handle's
// parameters) and static (a package-level Handle) or instanced (New()).
func inspectGo(src string) (string, goScaffold, error) {
	fset := token.NewFileSet()
	var handle *ast.FuncDecl
	var static, hasNew bool
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", goScaffold{}, err
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, filepath.Join(src, n), nil, parser.SkipObjectResolution)
		if err != nil {
			return "", goScaffold{}, err
		}
		for _, d := range file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			switch {
			case fd.Name.Name == "Handle" && fd.Recv == nil:
				handle, static = fd, true
			case fd.Name.Name == "Handle" && handle == nil:
				handle = fd
			case fd.Name.Name == "New" && fd.Recv == nil:
				hasNew = true
			}
		}
	}
	if handle == nil || (!static && !hasNew) {
		return "", goScaffold{}, errors.New("no Handle function: write a package-level Handle, or a New() constructor returning a type with a Handle method")
	}
	kind := "cloudevents"
	ast.Inspect(handle.Type.Params, func(n ast.Node) bool {
		if s, ok := n.(*ast.SelectorExpr); ok && (s.Sel.Name == "ResponseWriter" || s.Sel.Name == "Request") {
			kind = "http"
		}
		return true
	})
	return kind, goScaffold{Instanced: !static}, nil
}

func goModulePath(src string) (string, error) {
	data, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`), nil
		}
	}
	return "", errors.New("go.mod has no module line")
}

// node installs dependencies, compiles TypeScript and adds the runner.
func (b *builder) node(ctx context.Context, typescript bool) error {
	src := filepath.Join(b.dir, "src")
	data, err := os.ReadFile(filepath.Join(src, "package.json"))
	if err != nil {
		return &Error{Step: "reading package.json", Err: err}
	}
	var pkg packageJSON
	if err := json.Unmarshal(data, &pkg); err != nil {
		return &Error{Step: "reading package.json", Err: err}
	}
	ownTSC := pkg.DevDependencies["typescript"] != "" || pkg.Dependencies["typescript"] != ""
	if len(pkg.Dependencies) > 0 || (typescript && len(pkg.DevDependencies) > 0) {
		if err := b.nodeModules(ctx, src, pkg, typescript); err != nil {
			return err
		}
	}
	if typescript {
		tsc := filepath.Join(src, "node_modules", "typescript", "bin", "tsc")
		if _, err := os.Stat(tsc); err != nil || !ownTSC {
			if tsc, err = b.cachedTSC(ctx); err != nil {
				return err
			}
		}
		node, err := lookTool("node", "Node.js 20 or newer")
		if err != nil {
			return err
		}
		if err := b.run(ctx, "tsc", src, nil, node, tsc, "-p", "tsconfig.json"); err != nil {
			return err
		}
	}
	return b.addRunner("node")
}

// packageJSON is what a build reads of package.json.
type packageJSON struct {
	Dependencies         map[string]string `json:"dependencies"`
	DevDependencies      map[string]string `json:"devDependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
	PeerDependencies     map[string]string `json:"peerDependencies"`
	Overrides            json.RawMessage   `json:"overrides,omitempty"`
	Scripts              map[string]string `json:"scripts"`
}

// nodeModules gives src a node_modules with the function's dependencies. npm installs each set
// of dependencies once, into <cache>/node_modules/<digest of the dependencies, the lockfile and
// the Node version>; every build then gets a hard-linked copy (a plain copy across file
// systems), so that a rebuild after a source change (run --watch, a redeploy) takes
// milliseconds instead of an npm install. A package.json with its own install scripts
// (preinstall, install, postinstall, prepare), which may read the function's files, is
// installed in place instead.
func (b *builder) nodeModules(ctx context.Context, src string, pkg packageJSON, typescript bool) error {
	npm, err := lookTool("npm", "npm (it comes with Node.js)")
	if err != nil {
		return err
	}
	args := []string{"install", "--no-audit", "--no-fund", "--prefer-offline", "--cache", filepath.Join(b.opts.CacheDir, "npm")}
	if !typescript {
		args = append(args, "--omit=dev")
	}
	for _, s := range []string{"preinstall", "install", "postinstall", "prepare"} {
		if pkg.Scripts[s] != "" {
			return b.run(ctx, "npm install", src, nil, npm, args...)
		}
	}
	manifest := map[string]any{"name": "skiff-function-deps", "version": "0.0.0", "private": true}
	for k, v := range map[string]map[string]string{"dependencies": pkg.Dependencies, "optionalDependencies": pkg.OptionalDependencies, "peerDependencies": pkg.PeerDependencies} {
		if len(v) > 0 {
			manifest[k] = v
		}
	}
	if typescript && len(pkg.DevDependencies) > 0 {
		manifest["devDependencies"] = pkg.DevDependencies
	}
	if len(pkg.Overrides) > 0 {
		manifest["overrides"] = pkg.Overrides
	}
	mdata, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	lock, _ := os.ReadFile(filepath.Join(src, "package-lock.json"))
	nodeVersion, err := b.nodeVersion(ctx)
	if err != nil {
		return err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", nodeVersion, strings.Join(args, " "), mdata)
	h.Write(lock)
	dir := filepath.Join(b.opts.CacheDir, "node_modules", hex.EncodeToString(h.Sum(nil))[:16])
	cached := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(dir, ".done")); err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "install.tmp-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := os.WriteFile(filepath.Join(tmp, "package.json"), mdata, 0o644); err != nil {
			return err
		}
		if len(lock) > 0 {
			if err := os.WriteFile(filepath.Join(tmp, "package-lock.json"), lock, 0o644); err != nil {
				return err
			}
		}
		if err := b.run(ctx, "npm install", tmp, nil, npm, args...); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, ".done"), nil, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			if _, serr := os.Stat(filepath.Join(dir, ".done")); serr != nil {
				return fmt.Errorf("caching node_modules: %w", err)
			} // else: a concurrent build installed the same set first
		}
	}
	if _, err := os.Stat(cached); errors.Is(err, fs.ErrNotExist) {
		return nil // nothing to install (npm made no node_modules)
	}
	if err := filetree.Link(cached, filepath.Join(src, "node_modules")); err != nil {
		return &Error{Step: "copying node_modules from the cache", Err: err}
	}
	return nil
}

// nodeVersion identifies the Node binary (its path, size and modification time) for the
// dependency cache's key: native addons are built for one Node version, and an upgrade changes
// the binary. A stat, not `node --version`, keeps a rebuild fast.
func (b *builder) nodeVersion(context.Context) (string, error) {
	node, err := lookTool("node", "Node.js 20 or newer")
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(node)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d", real, info.Size(), info.ModTime().UnixNano()), nil
}

// cachedTSC installs typescript@TypeScriptVersion into the cache once and returns its tsc.
func (b *builder) cachedTSC(ctx context.Context) (string, error) {
	dir := filepath.Join(b.opts.CacheDir, "tools", "typescript-"+TypeScriptVersion)
	tsc := filepath.Join(dir, "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err == nil {
		return tsc, nil
	}
	npm, err := lookTool("npm", "npm (it comes with Node.js)")
	if err != nil {
		return "", err
	}
	// Install into a temporary sibling and rename, so concurrent builds never see half a tree.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "typescript.tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"name":"skiff-tools","private":true}`), 0o644); err != nil {
		return "", err
	}
	if err := b.run(ctx, "installing typescript@"+TypeScriptVersion+" from the npm registry", tmp, nil, npm,
		"install", "--no-audit", "--no-fund", "--prefer-offline", "--cache", filepath.Join(b.opts.CacheDir, "npm"),
		"typescript@"+TypeScriptVersion); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(tsc); serr == nil {
			return tsc, nil // another build installed it first
		}
		return "", err
	}
	return tsc, nil
}

// python checks the function's package, finds an interpreter that can import its framework
// (PyPI is out of reach: a framework must come from the distribution, like Debian's
// python3-flask, or an earlier pip install) and records the choice in runner/.
func (b *builder) python(ctx context.Context) error {
	src := filepath.Join(b.dir, "src")
	if _, err := os.Stat(filepath.Join(src, "function", "__init__.py")); err != nil {
		return &Error{Step: "reading the Python function", Err: errors.New("no package function/ (function/__init__.py with a new() returning the function, or an app)")}
	}
	deps, err := pyprojectDependencies(filepath.Join(src, "pyproject.toml"))
	if err != nil {
		return &Error{Step: "reading pyproject.toml", Err: err}
	}
	server, modules := PythonServer(deps)
	py, err := b.pythonFor(ctx, modules)
	if err != nil {
		return err
	}
	if err := b.addRunner("python"); err != nil {
		return err
	}
	choice := py + "\n" + server + "\n"
	return os.WriteFile(filepath.Join(b.dir, "runner", "choice"), []byte(choice), 0o644)
}

// PythonServer is how a Python function with these pyproject.toml dependencies is served, and
// the modules that takes: "wsgi" for Flask, "uvicorn" for FastAPI, else "asyncio" (Skiff's
// standard-library runner, no modules).
func PythonServer(deps []string) (server string, modules []string) {
	switch {
	case slices.Contains(deps, "fastapi"):
		return "uvicorn", []string{"fastapi", "uvicorn"}
	case slices.Contains(deps, "flask"):
		return "wsgi", []string{"flask"}
	}
	return "asyncio", nil
}

// pythonFor finds the first of python3 in PATH and Debian's /usr/bin/python3 that imports
// every module, with an error saying how to install them when neither does.
func (b *builder) pythonFor(ctx context.Context, modules []string) (string, error) {
	var candidates []string
	if p, err := exec.LookPath("python3"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			candidates = append(candidates, abs)
		}
	}
	if _, err := os.Stat(debianPython); err == nil && !slices.Contains(candidates, debianPython) {
		candidates = append(candidates, debianPython)
	}
	if len(candidates) == 0 {
		return "", fmt.Errorf("python3 not found in PATH: install Python 3.9 or newer to build and run this function")
	}
	if len(modules) == 0 {
		return candidates[0], nil
	}
	imports := "import " + strings.Join(modules, ", ")
	for _, py := range candidates {
		cmd := exec.CommandContext(ctx, py, "-c", imports)
		cmd.Env = b.opts.Env
		if cmd.Run() == nil {
			return py, nil
		}
	}
	var debs []string
	for _, m := range modules {
		debs = append(debs, "python3-"+m)
	}
	return "", &Error{Step: "finding the function's Python framework", Err: fmt.Errorf(
		"pyproject.toml depends on %s, which no Python here can import (tried %s): install Debian's %s (apt-get install %s) or `pip install %s`; skiff func does not download packages from PyPI",
		strings.Join(modules, " and "), strings.Join(candidates, ", "), strings.Join(debs, " and "), strings.Join(debs, " "), strings.Join(modules, " "))}
}

// debianPython is the distribution's interpreter, the one Debian's python3-* packages serve.
const debianPython = "/usr/bin/python3"

// pythonChoice reads the interpreter and server the build chose ("" and "asyncio" if none).
func (h *Host) pythonChoice() (py, server string) {
	data, err := os.ReadFile(filepath.Join(h.RunnerDir(), "choice"))
	if err != nil {
		return "", "asyncio"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		return "", "asyncio"
	}
	return lines[0], lines[1]
}

// pyprojectDependencies reads [project] dependencies of a pyproject.toml (a missing file has
// none) as lower-case distribution names without versions or extras.
func pyprojectDependencies(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	section := ""
	var deps []string
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "[") && !strings.HasPrefix(l, "[[") {
			section = strings.Trim(l, "[] ")
			continue
		}
		key, val, ok := strings.Cut(l, "=")
		if section != "project" || !ok || strings.TrimSpace(key) != "dependencies" {
			continue
		}
		list := strings.TrimSpace(val)
		for !strings.Contains(list, "]") && i+1 < len(lines) {
			i++
			list += " " + strings.TrimSpace(lines[i])
		}
		for _, m := range pyStringRE.FindAllStringSubmatch(list, -1) {
			name := pyNameRE.FindString(strings.TrimSpace(m[1]))
			if name != "" {
				deps = append(deps, strings.ReplaceAll(strings.ToLower(name), "_", "-"))
			}
		}
	}
	return deps, nil
}

var (
	pyStringRE = regexp.MustCompile(`["']([^"']*)["']`)
	pyNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*`)
)

// addRunner copies scaffold/<lang>/ into runner/.
func (b *builder) addRunner(lang string) error {
	root := "scaffold/" + lang
	return fs.WalkDir(scaffold, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := scaffold.ReadFile(p)
		if err != nil {
			return err
		}
		out := filepath.Join(b.dir, "runner", strings.TrimPrefix(p, root+"/"))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
}

// skipped reports whether a path of the function's directory stays out of builds: Skiff's own
// .func, version control, installed dependencies and compiler output, which builds recreate.
func skipped(rel string, runtimeName string) bool {
	first, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	switch first {
	case ".func", ".git", "node_modules", "__pycache__":
		return true
	case "build":
		return runtimeName == "typescript"
	}
	return strings.HasSuffix(rel, ".pyc")
}

// sourceDigest hashes what a build depends on: every source file's path, mode and content
// (func.yaml aside), the runtime, invoke format, func.yaml's build settings and the scaffold
// version.
func sourceDigest(dir string, f *funcyaml.Function) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s/%s\x00", scaffoldVersion, f.Runtime, f.InvokeFormat(), runtime.GOOS, runtime.GOARCH)
	for _, e := range f.Build.BuildEnvs {
		fmt.Fprintf(h, "env %s=%v\x00", e.Name, cmp.Or(ptrString(e.Value), ""))
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || rel == funcyaml.FileName {
			// func.yaml is settings, not source: what of it builds read is hashed above, and
			// deploy writes it back (deploy.namespace, deploy.image), which must not make a
			// new build.
			return nil
		}
		if skipped(rel, f.Runtime) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00", filepath.ToSlash(rel), info.Mode().Perm(), info.Size())
		_, err = io.Copy(h, fh)
		return err
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// copySource copies the function's directory, less what skipped leaves out, to dst.
func copySource(dir, dst string) error {
	f, err := funcyaml.Load(dir)
	rt := ""
	if err == nil {
		rt = f.Runtime
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return os.MkdirAll(dst, 0o755)
		}
		if skipped(rel, rt) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, info.Mode().Perm())
	})
}

// lastLines is the last n non-empty lines of s.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
