package template

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/skiff-dev/skiff/functions/funcyaml"
	"github.com/skiff-dev/skiff/functions/repository"
)

// The embedded repository has every language and template the README lists.
func TestDefault(t *testing.T) {
	got := List([]*repository.Repository{Default()})
	want := map[string]string{
		"go": "cloudevents,http", "node": "cloudevents,http", "typescript": "cloudevents,http",
		"python": "cloudevents,fastapi,flask,http",
	}
	if len(got) != len(want) {
		t.Errorf("languages %v", got)
	}
	for lang, tmpls := range want {
		if strings.Join(got[lang], ",") != tmpls {
			t.Errorf("%s templates %v, want %s", lang, got[lang], tmpls)
		}
	}
}

// Every Node and TypeScript template depends on faas-js-runtime at exactly the pinned version,
// and every template makes a valid function with the right invoke format.
func TestCreateEmbedded(t *testing.T) {
	for lang, tmpls := range List([]*repository.Repository{Default()}) {
		for _, tm := range tmpls {
			dir := filepath.Join(t.TempDir(), "fn-"+lang+"-"+tm)
			f, err := Create(Options{Dir: dir, Runtime: lang, Template: tm})
			if err != nil {
				t.Errorf("%s/%s: %v", lang, tm, err)
				continue
			}
			if _, err := funcyaml.Load(dir); err != nil {
				t.Errorf("%s/%s: func.yaml: %v", lang, tm, err)
			}
			wantInvoke := "http"
			if tm == "cloudevents" {
				wantInvoke = "cloudevent"
			}
			if f.Invoke != wantInvoke {
				t.Errorf("%s/%s: invoke %q, want %q", lang, tm, f.Invoke, wantInvoke)
			}
			if _, err := os.Stat(filepath.Join(dir, "manifest.yaml")); err == nil {
				t.Errorf("%s/%s: manifest.yaml was copied", lang, tm)
			}
			if lang != "node" && lang != "typescript" {
				continue
			}
			var pkg struct {
				Name         string            `json:"name"`
				Dependencies map[string]string `json:"dependencies"`
			}
			data, _ := os.ReadFile(filepath.Join(dir, "package.json"))
			if err := json.Unmarshal(data, &pkg); err != nil {
				t.Fatalf("%s/%s package.json: %v", lang, tm, err)
			}
			if pkg.Dependencies["faas-js-runtime"] != FaasJSRuntimeVersion || pkg.Name != "fn-"+lang+"-"+tm {
				t.Errorf("%s/%s package.json %+v, want faas-js-runtime %s", lang, tm, pkg, FaasJSRuntimeVersion)
			}
		}
	}
	if _, err := Create(Options{Dir: t.TempDir(), Runtime: "rust"}); err == nil || !strings.Contains(err.Error(), `unknown language "rust": choose one of go, node, python, typescript`) {
		t.Errorf("unknown language: %v", err)
	}
	if _, err := Create(Options{Dir: t.TempDir(), Runtime: "go", Template: "grpc"}); err == nil || !strings.Contains(err.Error(), `unknown template "grpc" for go: choose one of cloudevents, http`) {
		t.Errorf("unknown template: %v", err)
	}
	dir := t.TempDir()
	if _, err := Create(Options{Dir: dir, Runtime: "go"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(Options{Dir: dir, Runtime: "go"}); err == nil || !strings.Contains(err.Error(), "already holds a function") {
		t.Errorf("create over a function: %v", err)
	}
}

// A template from another repository is copied as it is (func does not render it), and its
// manifests' settings go into func.yaml (func's TestTemplates_ManifestInvocationHints,
// TestTemplates_ManifestBuildEnvs, TestRepository_Inheritance).
func TestCreateFromRepository(t *testing.T) {
	repo, err := repository.Load(fstest.MapFS{
		"manifest.yaml":                  {Data: []byte("name: extra\nbuildEnvs: [{name: FROM_REPO, value: r}]\n")},
		"node/manifest.yaml":             {Data: []byte("healthEndpoints: {readiness: /ready}\n")},
		"node/greeter/manifest.yaml":     {Data: []byte("invoke: cloudevent\nrunEnvs: [{name: GREETING, value: hi}]\n")},
		"node/greeter/index.js":          {Data: []byte("module.exports = { handle: async () => 'hi {{.Name}}' };\n")},
		"node/greeter/package.json.tmpl": {Data: []byte("{}")},
		"node/greeter/bin/run.sh":        {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
	}, "", "x")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "greeter")
	f, err := Create(Options{Dir: dir, Runtime: "node", Template: "greeter", Repository: repo})
	if err != nil {
		t.Fatal(err)
	}
	if f.Invoke != "cloudevent" || f.Deploy.HealthEndpoints.Readiness != "/ready" || len(f.Run.Envs) != 1 || f.Run.Envs[0].Name != "GREETING" ||
		len(f.Build.BuildEnvs) != 1 || f.Build.BuildEnvs[0].Name != "FROM_REPO" {
		t.Errorf("func.yaml from the manifests: %+v", f)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "index.js")); !strings.Contains(string(data), "{{.Name}}") {
		t.Errorf("a repository's file was rendered: %s", data)
	}
	if _, err := os.Stat(filepath.Join(dir, "package.json.tmpl")); err != nil {
		t.Errorf("a repository's .tmpl file was not copied as it is: %v", err)
	}
	if info, err := os.Stat(filepath.Join(dir, "bin", "run.sh")); err != nil || info.Mode().Perm()&0o100 == 0 {
		t.Errorf("an executable file lost its mode: %v %v", info, err)
	}
	if _, err := Create(Options{Dir: t.TempDir(), Runtime: "go", Repository: repo}); err == nil || !strings.Contains(err.Error(), `unknown language "go" in repository extra: choose one of node`) {
		t.Errorf("language the repository lacks: %v", err)
	}
}
