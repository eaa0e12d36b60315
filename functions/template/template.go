// Package template creates functions from Skiff's language templates, which are embedded in the
// binary (embed.FS): http and cloudevents for go, node, python and typescript.
//
// The signatures follow Knative Functions' current templates:
//   - go: package function with a static Handle(ctx, w, r) (http) or
//     Handle(ctx, event.Event) (*event.Event, error) (cloudevents); the scaffold also accepts
//     every other form Knative's does, including instanced functions (New() + Handle method).
//   - node, typescript: handle(context, body) / handle(context, event) exported from the
//     module, returning a body, a {statusCode, headers, body} object or a CloudEvent (the
//     cloudevents npm package, as Knative's templates use).
//   - python: Knative's ASGI form, a package `function` whose new() returns an object with
//     async handle(scope, receive, send) and optional start, stop, alive and ready; it runs on the
//     standard library alone (PyPI is not needed: Skiff's runner is a small asyncio HTTP server).
//
// Files whose name ends in .tmpl are Go text/templates over Data (the suffix is dropped); the
// rest are copied as they are. Go sources carry the suffix in the tree so that the Skiff module
// does not compile them.
package template

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

//go:embed all:templates
var templates embed.FS

// Templates are the template names every language has.
var Templates = []string{"http", "cloudevents"}

// Data is what .tmpl files are executed with.
type Data struct {
	// Name is the function's name.
	Name string
}

// Options say what to create.
type Options struct {
	// Dir is the function's directory; it is created if missing and must not hold a func.yaml.
	Dir string
	// Name is the function's name (default: the directory's base name).
	Name string
	// Runtime is the language: go, node, python or typescript.
	Runtime string
	// Template is http or cloudevents (default http).
	Template string
}

// Create writes a new function from a template and its func.yaml, and returns the func.yaml.
func Create(opts Options) (*funcyaml.Function, error) {
	if opts.Template == "" {
		opts.Template = "http"
	}
	if !slices.Contains(funcyaml.Runtimes, opts.Runtime) {
		return nil, fmt.Errorf("unknown language %q: choose one of %s", opts.Runtime, strings.Join(funcyaml.Runtimes, ", "))
	}
	if !slices.Contains(Templates, opts.Template) {
		return nil, fmt.Errorf("unknown template %q for %s: choose one of %s", opts.Template, opts.Runtime, strings.Join(Templates, ", "))
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("function directory: %w", err)
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(dir)
	}
	f := &funcyaml.Function{
		SpecVersion: funcyaml.SpecVersion,
		Name:        opts.Name,
		Runtime:     opts.Runtime,
		Created:     time.Now().UTC().Truncate(time.Second),
		Invoke:      "http",
		Build:       funcyaml.BuildSpec{Builder: "host"},
	}
	if opts.Template == "cloudevents" {
		f.Invoke = "cloudevent"
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
	root := path.Join("templates", opts.Runtime, opts.Template)
	data := Data{Name: opts.Name}
	err = fs.WalkDir(templates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		content, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(rel, ".tmpl") {
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
		return os.WriteFile(out, content, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("writing the %s %s template: %w", opts.Runtime, opts.Template, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(".func/\nnode_modules/\nbuild/\n__pycache__/\n"), 0o644); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("writing .gitignore: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(readme(opts)), 0o644); err != nil {
		return nil, fmt.Errorf("writing README.md: %w", err)
	}
	if err := f.Write(dir); err != nil {
		return nil, err
	}
	return f, nil
}

func readme(o Options) string {
	return fmt.Sprintf(`# %s

A %s %s function, created by `+"`skiff func create`"+`.

    skiff func run                 # build for this machine and serve on $PORT (default 8080)
    skiff func invoke              # send it a request (or a CloudEvent)
    skiff func deploy              # run it as a Knative Service on `+"`skiff up`"+`
    skiff func build --push        # an OCI image, pushed to func.yaml's registry

Settings live in func.yaml (Knative Functions' field names).
`, o.Name, o.Runtime, o.Template)
}
