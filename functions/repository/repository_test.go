package repository

import (
	"context"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// makeRepo writes files into a new git repository at dir and commits them (go-git, in process).
func makeRepo(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Commit("templates", &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}}); err != nil {
		t.Fatal(err)
	}
}

// The layout of func's test repositories (pkg/functions/testdata/repository and
// customLanguagePackRepo): languages and templates, manifests at three levels.
var baseRepo = map[string]string{
	"README.md":                              "templates\n",
	"go/custom/handle.go":                    "package function\n",
	"go/custom/go.mod":                       "module function\n",
	"node/custom/index.js":                   "module.exports = { handle: async () => 'custom' };\n",
	"node/custom/package.json":               `{"name":"custom","main":"index.js"}`,
	"node/scaffolding/ignored.txt":           "not a template\n",
	"node/.hidden/ignored.txt":               "not a template\n",
	"certs/ca.pem":                           "not a language\n",
	"node/events/manifest.yaml":              "invoke: cloudevent\n",
	"node/events/index.js":                   "module.exports = { handle: async () => undefined };\n",
	"node/events/package.json":               `{"name":"events","main":"index.js"}`,
	"python/manifested/manifest.yaml":        "healthEndpoints: {readiness: /ready}\n",
	"python/manifested/function/__init__.py": "",
}

func newSet(t *testing.T) *Repositories {
	def, err := Load(fstest.MapFS{"go/http/handle.go": {Data: []byte("package function\n")}}, DefaultName, DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	return &Repositories{Path: filepath.Join(t.TempDir(), "repositories"), Default: def, CacheDir: t.TempDir()}
}

// TestRepositories follows func's pkg/functions/repositories_test.go: TestRepositories_List
// (default only), _Add, _AddDeafultName, _AddWithManifest, _AddExistingErrors, _Rename,
// _Remove, _URL and _Missing, with a local git repository (copied, offline).
func TestRepositories(t *testing.T) {
	ctx := context.Background()
	rs := newSet(t)
	all, err := rs.All()
	if err != nil || strings.Join(Names(all), ",") != "default" {
		t.Fatalf("a fresh set: %v %v, want only default", Names(all), err)
	}
	if _, err := rs.Get("nope"); err == nil || !strings.Contains(err.Error(), `no repository "nope" is installed`) {
		t.Errorf("Get of a missing repository: %v", err)
	}

	src := filepath.Join(t.TempDir(), "my-templates.git")
	makeRepo(t, src, baseRepo)

	// Added with an explicit name; its files are on disk.
	name, err := rs.Add(ctx, "example", src)
	if err != nil || name != "example" {
		t.Fatalf("Add: %q %v", name, err)
	}
	if _, err := os.Stat(filepath.Join(rs.Path, "example", "README.md")); err != nil {
		t.Errorf("the repository is not on disk: %v", err)
	}
	// Added without a name: the URI's last element, without .git.
	if name, err := rs.Add(ctx, "", "file://"+src); err != nil || name != "my-templates" {
		t.Errorf("Add without a name: %q %v, want my-templates", name, err)
	}
	// A manifest's name wins over the URI's.
	withManifest := filepath.Join(t.TempDir(), "whatever")
	makeRepo(t, withManifest, map[string]string{"manifest.yaml": "name: manifested\n", "go/x/handle.go": "package function\n"})
	if name, err := rs.Add(ctx, "", withManifest); err != nil || name != "manifested" {
		t.Errorf("Add of a repository with a manifest name: %q %v", name, err)
	}
	if _, err := rs.Add(ctx, "example", src); err == nil || !strings.Contains(err.Error(), `repository "example" already exists`) {
		t.Errorf("Add of an existing name: %v", err)
	}
	if _, err := rs.Add(ctx, "default", src); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("Add as default: %v", err)
	}
	if _, err := rs.Add(ctx, "../evil", src); err == nil || !strings.Contains(err.Error(), "repository name") {
		t.Errorf("Add with a path as name: %v", err)
	}
	if _, err := rs.Add(ctx, "empty", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a template repository") {
		t.Errorf("Add of an empty directory: %v", err)
	}
	if _, err := rs.Add(ctx, "missing", filepath.Join(t.TempDir(), "nothing-here")); err == nil {
		t.Errorf("Add of a path that does not exist succeeded")
	}

	all, err = rs.All()
	if err != nil || strings.Join(Names(all), ",") != "default,example,manifested,my-templates" {
		t.Fatalf("All: %v %v", Names(all), err)
	}
	// The copied repository remembers where it came from (list -v).
	if all[1].URL == "" || !strings.HasPrefix(all[1].URL, src) {
		t.Errorf("example's URL %q, want it to start with %s", all[1].URL, src)
	}

	// Languages and templates, without hidden, scaffolding and certs directories; manifests
	// inherited (TestRepository_Inheritance, TestTemplates_ManifestInvocationHints).
	r := all[1]
	if got := strings.Join(r.RuntimeNames(), ","); got != "go,node,python" {
		t.Errorf("languages %s", got)
	}
	rt, _ := r.Runtime("node")
	var names []string
	for _, tm := range rt.Templates {
		names = append(names, tm.Name)
	}
	if strings.Join(names, ",") != "custom,events" {
		t.Errorf("node templates %v", names)
	}
	if tm, err := r.Template("node", "events"); err != nil || tm.Settings.Invoke != "cloudevent" || tm.FullName() != "example/events" {
		t.Errorf("node/events: %+v %v", tm, err)
	}
	if tm, err := r.Template("python", "manifested"); err != nil || tm.Settings.HealthEndpoints.Readiness != "/ready" {
		t.Errorf("python/manifested: %+v %v", tm, err)
	}
	if _, err := r.Template("node", "nope"); err == nil || !strings.Contains(err.Error(), "(it has: custom, events)") {
		t.Errorf("missing template: %v", err)
	}
	if _, err := r.Template("rust", "http"); err == nil || !strings.Contains(err.Error(), "no templates for language \"rust\"") {
		t.Errorf("missing language: %v", err)
	}

	if err := rs.Rename("example", "renamed"); err != nil {
		t.Fatal(err)
	}
	if err := rs.Rename("renamed", "manifested"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Rename onto an existing name: %v", err)
	}
	if err := rs.Rename("default", "x"); err == nil {
		t.Error("renamed the default repository")
	}
	if err := rs.Rename("nope", "x"); err == nil || !strings.Contains(err.Error(), `no repository "nope"`) {
		t.Errorf("Rename of a missing repository: %v", err)
	}
	if err := rs.Remove("renamed"); err != nil {
		t.Fatal(err)
	}
	if err := rs.Remove("default"); err == nil {
		t.Error("removed the default repository")
	}
	if err := rs.Remove("renamed"); err == nil {
		t.Error("removed a repository twice")
	}
	all, _ = rs.All()
	if strings.Join(Names(all), ",") != "default,manifested,my-templates" {
		t.Errorf("after rename and remove: %v", Names(all))
	}
}

// TestRepository_TemplatesPath: func's test of the same name — a manifest's templates path.
func TestRepository_TemplatesPath(t *testing.T) {
	r, err := Load(fstest.MapFS{
		"manifest.yaml": {Data: []byte("name: pack\ntemplates: templates\nhealthEndpoints: {liveness: /live}\n")},
		"templates/customRuntime/customTemplate/file.txt": {Data: []byte("x")},
		"templates/customRuntime/manifest.yaml":           {Data: []byte("healthEndpoints: {readiness: /runtime-ready}\n")},
	}, "", "fallback")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := r.Template("customRuntime", "customTemplate")
	if err != nil || r.Name != "pack" {
		t.Fatalf("%v %v", r, err)
	}
	if tm.Settings.HealthEndpoints.Liveness != "/live" || tm.Settings.HealthEndpoints.Readiness != "/runtime-ready" {
		t.Errorf("inherited settings %+v", tm.Settings)
	}
	if _, err := Load(fstest.MapFS{"manifest.yaml": {Data: []byte("templates: nowhere\n")}}, "", "x"); err == nil || !strings.Contains(err.Error(), `templates "nowhere"`) {
		t.Errorf("a templates path that does not exist: %v", err)
	}
}

// TestOpenRemote clones a repository over git's smart HTTP protocol (git http-backend, as
// func's tests serve theirs) once into the cache: the second Open needs no server.
func TestOpenRemote(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed: no git http-backend to serve a repository")
	}
	root := t.TempDir()
	makeRepo(t, filepath.Join(root, "templates.git"), baseRepo)
	srv := httptest.NewServer(&cgi.Handler{Path: gitBin, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	rs := newSet(t)
	uri := srv.URL + "/templates.git"
	r, err := rs.Open(context.Background(), uri)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	if r.Name != "templates" || strings.Join(r.RuntimeNames(), ",") != "go,node,python" {
		t.Errorf("cloned %s: %v", r.Name, r.RuntimeNames())
	}
	srv.Close()
	if r, err := rs.Open(context.Background(), uri); err != nil || len(r.Runtimes) != 3 {
		t.Errorf("second Open with the server gone: %v %v, want the cached clone", r, err)
	}
	// Installing from the URL clones it, origin and all.
	srv2 := httptest.NewServer(&cgi.Handler{Path: gitBin, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	defer srv2.Close()
	name, err := rs.Add(context.Background(), "", srv2.URL+"/templates.git")
	if err != nil || name != "templates" {
		t.Fatalf("Add over HTTP: %q %v", name, err)
	}
	all, _ := rs.All()
	if got := all[1].URL; !strings.HasPrefix(got, srv2.URL+"/templates.git#") {
		t.Errorf("URL %q, want the clone's origin and branch", got)
	}
}
