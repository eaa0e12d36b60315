// Package repository reads function template repositories in Knative func's layout and keeps
// the set of installed ones, as func's pkg/functions/repository.go and repositories.go do.
//
// A repository is a directory tree (a git repository, or any directory):
//
//	manifest.yaml                 optional: name, templates (the templates' path), defaults
//	<language>/manifest.yaml      optional: defaults for the language's templates
//	<language>/<template>/        a template: the files a new function starts with
//	<language>/<template>/manifest.yaml   optional: the template's own settings
//
// A manifest may set invoke (http or cloudevent), buildEnvs, runEnvs, healthEndpoints,
// buildpacks and builderImages; a template inherits its language's settings, which inherit the
// repository's. Hidden directories, "certs" (at the language level) and "scaffolding" (at the
// template level) are not templates, as in func.
//
// Installed repositories live under one directory (Repositories.Path), one subdirectory per
// repository, named as the repository is. Adding a git URL (https://, http://, ssh://, git@)
// clones it with go-git (depth 1; "#branch" picks a branch, as in func); adding a local path
// or file:// URI copies the directory as it is, .git included, which needs no network.
// The embedded default repository is always listed first and cannot be removed or renamed.
package repository

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// DefaultName is the name of the embedded repository.
const DefaultName = "default"

const manifestFile = "manifest.yaml"

// Settings are what a manifest.yaml may set for the functions its templates create.
type Settings struct {
	Invoke          string                   `json:"invoke,omitempty"`
	BuildEnvs       []funcyaml.Env           `json:"buildEnvs,omitempty"`
	RunEnvs         []funcyaml.Env           `json:"runEnvs,omitempty"`
	HealthEndpoints funcyaml.HealthEndpoints `json:"healthEndpoints,omitempty"`
	Buildpacks      []string                 `json:"buildpacks,omitempty"`
	BuilderImages   map[string]string        `json:"builderImages,omitempty"`
}

// repoManifest is a repository's root manifest.yaml: Settings plus its name and templates path.
type repoManifest struct {
	Settings      `json:",inline"`
	SchemaVersion string `json:"schema_version,omitempty"`
	Name          string `json:"name,omitempty"`
	Version       string `json:"version,omitempty"`
	TemplatesPath string `json:"templates,omitempty"`
}

// Repository is a loaded template repository.
type Repository struct {
	// Name is the repository's name: its directory's name once installed.
	Name string
	// URL is where it came from (the origin of a git clone), "" if unknown or embedded.
	URL string
	// Runtimes are its languages, by name.
	Runtimes []Runtime
}

// Runtime is one language of a repository.
type Runtime struct {
	Name      string
	Templates []Template
}

// Template is one template: its files and settings.
type Template struct {
	Repository string
	Runtime    string
	Name       string
	// Settings are the manifests' settings, inherited and overridden down the tree.
	Settings Settings
	// FS holds the template's files (manifest.yaml included; writers skip it).
	FS fs.FS
	// Render says that files named *.tmpl are Go text/templates (Skiff's embedded templates);
	// other repositories' files are copied as they are, as func copies them.
	Render bool
}

// FullName is how `create -t` names the template: repository/template, or just the template
// for the default repository.
func (t Template) FullName() string {
	if t.Repository == DefaultName || t.Repository == "" {
		return t.Name
	}
	return t.Repository + "/" + t.Name
}

// Load reads the repository in fsys. name, if not empty, is its name; else the manifest's
// name, else fallback.
func Load(fsys fs.FS, name, fallback string) (*Repository, error) {
	var m repoManifest
	if err := readManifest(fsys, manifestFile, &m); err != nil {
		return nil, err
	}
	r := &Repository{Name: name}
	if r.Name == "" {
		r.Name = m.Name
	}
	if r.Name == "" {
		r.Name = fallback
	}
	root := path.Clean(m.TemplatesPath)
	if root == "" {
		root = "."
	}
	entries, err := fs.ReadDir(fsys, root)
	if err != nil {
		if m.TemplatesPath != "" {
			return nil, fmt.Errorf("%s: templates %q: %w", manifestFile, m.TemplatesPath, err)
		}
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == "certs" {
			continue
		}
		rt := Runtime{Name: e.Name()}
		rs := m.Settings
		if err := readManifest(fsys, path.Join(root, rt.Name, manifestFile), &rs); err != nil {
			return nil, err
		}
		tents, err := fs.ReadDir(fsys, path.Join(root, rt.Name))
		if err != nil {
			return nil, err
		}
		for _, te := range tents {
			if !te.IsDir() || strings.HasPrefix(te.Name(), ".") || te.Name() == "scaffolding" {
				continue
			}
			dir := path.Join(root, rt.Name, te.Name())
			ts := rs
			if err := readManifest(fsys, path.Join(dir, manifestFile), &ts); err != nil {
				return nil, err
			}
			sub, err := fs.Sub(fsys, dir)
			if err != nil {
				return nil, err
			}
			rt.Templates = append(rt.Templates, Template{Repository: r.Name, Runtime: rt.Name, Name: te.Name(), Settings: ts, FS: sub})
		}
		if len(rt.Templates) > 0 {
			r.Runtimes = append(r.Runtimes, rt)
		}
	}
	return r, nil
}

// readManifest decodes p over into (keeping what it does not set); a missing file is no error.
// Unknown keys are ignored, as func's decoder ignores them.
func readManifest(fsys fs.FS, p string, into any) error {
	data, err := fs.ReadFile(fsys, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// Runtime finds a language of the repository.
func (r *Repository) Runtime(name string) (*Runtime, bool) {
	for i := range r.Runtimes {
		if r.Runtimes[i].Name == name {
			return &r.Runtimes[i], true
		}
	}
	return nil, false
}

// Template finds a template of a language, with an error listing what there is.
func (r *Repository) Template(runtime, name string) (Template, error) {
	rt, ok := r.Runtime(runtime)
	if !ok {
		return Template{}, fmt.Errorf("repository %s has no templates for language %q (it has: %s)", r.Name, runtime, strings.Join(r.RuntimeNames(), ", "))
	}
	for _, t := range rt.Templates {
		if t.Name == name {
			return t, nil
		}
	}
	var names []string
	for _, t := range rt.Templates {
		names = append(names, t.Name)
	}
	return Template{}, fmt.Errorf("repository %s has no %s template %q (it has: %s)", r.Name, runtime, name, strings.Join(names, ", "))
}

// RuntimeNames are the repository's languages, sorted.
func (r *Repository) RuntimeNames() []string {
	var out []string
	for _, rt := range r.Runtimes {
		out = append(out, rt.Name)
	}
	slices.Sort(out)
	return out
}
