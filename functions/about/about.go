// Package about reports what `skiff func version` and `skiff func environment` print, with
// the field names of func's (cmd/version.go, cmd/environment.go): the client's version (from
// the Go build's module and VCS stamps), the func.yaml spec version, the languages and
// templates installed, the FUNC_* variables set, and the function at --path with its deployed
// instance when there is one.
package about

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/functions/describe"
	"github.com/skiff-dev/skiff/functions/funcyaml"
)

// KnativeVersion is the Knative release whose func CLI Skiff's follows.
const KnativeVersion = "knative-v1.23"

// Version is the client's version.
type Version struct {
	// Version is the module version ("(devel)" for a build from a checkout).
	Version string `json:"version"`
	// Knative is the Knative release the CLI follows.
	Knative string `json:"knative"`
	// Commit and Time are the VCS revision and its time, when the build recorded them.
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// SpecVersion is the func.yaml version written.
	SpecVersion string `json:"specVersion"`
	// Go is the toolchain the binary was built with.
	Go string `json:"go,omitempty"`
}

// Current reads the running binary's version.
func Current() Version {
	v := Version{Version: "(devel)", Knative: KnativeVersion, SpecVersion: funcyaml.SpecVersion}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	v.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// Human is `version` without --verbose: the version alone, as func prints it; verbose adds
// the commit, its time and the Knative release.
func (v Version) Human(verbose bool) string {
	if !verbose {
		return v.Version + "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Version: %s\n", v.Version)
	fmt.Fprintf(&b, "Knative: %s\n", v.Knative)
	if v.Commit != "" {
		mod := ""
		if v.Modified {
			mod = " (modified)"
		}
		fmt.Fprintf(&b, "Commit: %s%s\n", v.Commit, mod)
	}
	if v.Time != "" {
		fmt.Fprintf(&b, "Time: %s\n", v.Time)
	}
	fmt.Fprintf(&b, "SpecVersion: %s\n", v.SpecVersion)
	if v.Go != "" {
		fmt.Fprintf(&b, "Go: %s\n", v.Go)
	}
	return b.String()
}

// Environment is what `environment` prints.
type Environment struct {
	Version     string              `json:"version"`
	GitRevision string              `json:"gitRevision,omitempty"`
	SpecVersion string              `json:"specVersion"`
	Languages   []string            `json:"languages"`
	Templates   map[string][]string `json:"templates"`
	// Builders are the builders Skiff has (func's DefaultImageBuilders have none to show).
	Builders []string `json:"builders"`
	// Environment are the FUNC_* variables set.
	Environment []string `json:"environment"`
	// Repositories is where installed template repositories live.
	Repositories string `json:"repositories"`
	// API is the Skiff API the CLI uses, or the cluster of --kubeconfig.
	API      string             `json:"api"`
	Function *funcyaml.Function `json:"function,omitempty"`
	Instance *describe.Instance `json:"instance,omitempty"`
}

// NewEnvironment fills what does not need the function or the API.
func NewEnvironment(templates map[string][]string, repositories, apiAddr string) Environment {
	v := Current()
	e := Environment{
		Version: v.Version, GitRevision: v.Commit, SpecVersion: v.SpecVersion, Templates: templates,
		Builders: []string{"host", "oci"}, Environment: []string{}, Repositories: repositories, API: apiAddr,
	}
	for lang := range templates {
		e.Languages = append(e.Languages, lang)
	}
	slices.Sort(e.Languages)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "FUNC_") {
			e.Environment = append(e.Environment, kv)
		}
	}
	slices.Sort(e.Environment)
	return e
}

// Write writes v as json or yaml (and "human" as json, func's default for environment).
func Write(w io.Writer, v any, format string) error {
	switch format {
	case "json", "", "human":
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(data))
		return err
	case "yaml":
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return fmt.Errorf("unsupported format %q: json or yaml", format)
}
