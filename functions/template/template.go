// Package template creates functions from templates: Skiff's own, embedded in the binary
// (embed.FS) as the "default" repository, or those of a template repository in Knative func's
// layout (functions/repository).
//
// The embedded templates, per language:
//   - go: http and cloudevents. Package function with a static Handle(ctx, w, r) (http) or
//     Handle(ctx, event.Event) (*event.Event, error) (cloudevents); the scaffold also accepts
//     every other form Knative's does, including instanced functions (New() + Handle method).
//   - node, typescript: http and cloudevents. handle(context, body) / handle(context, event)
//     exported from the module, run on Knative's faas-js-runtime, which every template depends
//     on with its version pinned (FaasJSRuntimeVersion), as Knative's templates do.
//   - python: http and cloudevents in Knative's ASGI form (a package `function` whose new()
//     returns an object with async handle(scope, receive, send) and optional start, stop,
//     alive and ready), run on the standard library alone; flask and fastapi, a package
//     `function` exporting a Flask or FastAPI `app`, run with the distribution's framework
//     (Debian's python3-flask, python3-fastapi and python3-uvicorn) where it is installed.
//
// Java waits: Knative's Java templates are Spring Boot and Quarkus, both built with Maven from
// Maven Central, which these machines cannot reach; a JDK-only template would be a runtime of
// Skiff's own that neither Knative's func nor either framework would build, so none is shipped.
//
// In the embedded templates, files whose name ends in .tmpl are Go text/templates over Data
// (the suffix is dropped); Go sources carry the suffix so that the Skiff module does not
// compile them. Templates from other repositories are copied as they are, as func copies them.
// A template's manifest.yaml is not copied; its settings (invoke, buildEnvs, runEnvs,
// healthEndpoints, buildpacks, builderImages) go into func.yaml.
package template

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/skiff-dev/skiff/functions/funcyaml"
	"github.com/skiff-dev/skiff/functions/repository"
)

//go:embed all:templates
var templates embed.FS

// FaasJSRuntimeVersion is the faas-js-runtime release the Node and TypeScript templates pin:
// the one Knative's templates require (^3.0.2), the latest that supports Node 20.
const FaasJSRuntimeVersion = "3.0.2"

// Data is what .tmpl files are executed with.
type Data struct {
	// Name is the function's name.
	Name string
}

// Default is the embedded repository of Skiff's templates.
func Default() *repository.Repository {
	sub, err := fs.Sub(templates, "templates")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	r, err := repository.Load(sub, repository.DefaultName, repository.DefaultName)
	if err != nil {
		panic(fmt.Sprintf("the embedded templates: %v", err))
	}
	for i := range r.Runtimes {
		for j := range r.Runtimes[i].Templates {
			r.Runtimes[i].Templates[j].Render = true
		}
	}
	return r
}

// Options say what to create.
type Options struct {
	// Dir is the function's directory; it is created if missing and must not hold a func.yaml.
	Dir string
	// Name is the function's name (default: the directory's base name).
	Name string
	// Runtime is the language: go, node, python or typescript.
	Runtime string
	// Template is the template's name in Repository (default http).
	Template string
	// Repository holds the template (default: the embedded one).
	Repository *repository.Repository
}

// Create writes a new function from a template and its func.yaml, and returns the func.yaml.
func Create(opts Options) (*funcyaml.Function, error) {
	if opts.Template == "" {
		opts.Template = "http"
	}
	repo := opts.Repository
	if repo == nil {
		repo = Default()
	}
	in := ""
	if repo.Name != repository.DefaultName {
		in = " in repository " + repo.Name
	}
	rt, ok := repo.Runtime(opts.Runtime)
	if !ok {
		return nil, fmt.Errorf("unknown language %q%s: choose one of %s", opts.Runtime, in, strings.Join(repo.RuntimeNames(), ", "))
	}
	var tm *repository.Template
	var names []string
	for i := range rt.Templates {
		names = append(names, rt.Templates[i].Name)
		if rt.Templates[i].Name == opts.Template {
			tm = &rt.Templates[i]
		}
	}
	if tm == nil {
		return nil, fmt.Errorf("unknown template %q for %s%s: choose one of %s", opts.Template, opts.Runtime, in, strings.Join(names, ", "))
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("function directory: %w", err)
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(dir)
	}
	s := tm.Settings
	f := &funcyaml.Function{
		SpecVersion: funcyaml.SpecVersion,
		Name:        opts.Name,
		Runtime:     opts.Runtime,
		Created:     time.Now().UTC().Truncate(time.Second),
		Invoke:      "http",
		Build: funcyaml.BuildSpec{
			Builder: "host", BuildEnvs: s.BuildEnvs, Buildpacks: s.Buildpacks, BuilderImages: s.BuilderImages,
		},
		Run:    funcyaml.RunSpec{Envs: s.RunEnvs},
		Deploy: funcyaml.DeploySpec{HealthEndpoints: s.HealthEndpoints},
	}
	if s.Invoke != "" {
		f.Invoke = s.Invoke
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, funcyaml.FileName)); err == nil {
		return nil, fmt.Errorf("%s already holds a function (%s exists)", dir, funcyaml.FileName)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := writeFiles(tm, dir, Data{Name: opts.Name}); err != nil {
		return nil, fmt.Errorf("writing the %s %s template: %w", opts.Runtime, tm.FullName(), err)
	}
	for name, content := range map[string]string{
		".gitignore": ".func/\nnode_modules/\nbuild/\n__pycache__/\n",
		"README.md":  readme(opts.Name, opts.Runtime, tm.FullName()),
	} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			continue // the template has its own
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("writing %s: %w", name, err)
		}
	}
	if err := f.Write(dir); err != nil {
		return nil, err
	}
	return f, nil
}

// writeFiles copies the template's files into dir (which must not have them yet), rendering
// .tmpl files of templates that ask for it.
func writeFiles(tm *repository.Template, dir string, data Data) error {
	return fs.WalkDir(tm.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "manifest.yaml" {
			return err
		}
		content, err := fs.ReadFile(tm.FS, p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if info, err := d.Info(); err == nil && info.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		rel := p
		if tm.Render && strings.HasSuffix(rel, ".tmpl") {
			rel = strings.TrimSuffix(rel, ".tmpl")
			t, err := template.New(rel).Option("missingkey=error").Parse(string(content))
			if err != nil {
				return fmt.Errorf("template %s: %w", p, err)
			}
			var b bytes.Buffer
			if err := t.Execute(&b, data); err != nil {
				return fmt.Errorf("template %s: %w", p, err)
			}
			content = b.Bytes()
		}
		out := filepath.Join(dir, filepath.FromSlash(rel))
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("%s already exists", out)
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, content, mode)
	})
}

// List is every language and its templates (by full name) across repos, sorted, as
// `skiff func templates` prints them.
func List(repos []*repository.Repository) map[string][]string {
	out := map[string][]string{}
	for _, r := range repos {
		for _, rt := range r.Runtimes {
			for _, t := range rt.Templates {
				out[rt.Name] = append(out[rt.Name], t.FullName())
			}
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

func readme(name, runtime, tmpl string) string {
	return fmt.Sprintf(`# %s

A %s function from the %s template, created by `+"`skiff func create`"+`.

    skiff func run                 # build for this machine and serve on $PORT (default 8080)
    skiff func invoke              # send it a request (or a CloudEvent)
    skiff func deploy              # run it as a Knative Service on `+"`skiff up`"+`
    skiff func build --push        # an OCI image, pushed to func.yaml's registry

Settings live in func.yaml (Knative Functions' field names).
`, name, runtime, tmpl)
}
