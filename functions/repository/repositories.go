package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/skiff-dev/skiff/functions/filetree"
)

// PathEnv is func's environment variable for the installed repositories' directory.
const PathEnv = "FUNC_REPOSITORIES_PATH"

// DefaultPath is where repositories are installed: $FUNC_REPOSITORIES_PATH if set, else
// <user config dir>/skiff/func/repositories (func's own default is ~/.config/func/repositories;
// Skiff keeps its own set, so that the two CLIs do not change each other's).
func DefaultPath() string {
	if p := os.Getenv(PathEnv); p != "" {
		return p
	}
	d, err := os.UserConfigDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "skiff", "func", "repositories")
}

// Repositories is the set of installed repositories plus the embedded default one.
type Repositories struct {
	// Path is the directory holding installed repositories.
	Path string
	// Default is the embedded repository, always first.
	Default *Repository
	// CacheDir holds clones made for `create --repository URL`, one per URL, made once.
	CacheDir string
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.]*$`)

func checkName(name string) error {
	switch {
	case name == DefaultName:
		return fmt.Errorf("repository name %q is reserved for the embedded templates", name)
	case !nameRE.MatchString(name) || strings.Contains(name, ".."):
		return fmt.Errorf("repository name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", name)
	}
	return nil
}

// All returns the default repository, then the installed ones by name.
func (rs *Repositories) All() ([]*Repository, error) {
	out := []*Repository{rs.Default}
	entries, err := os.ReadDir(rs.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the repositories in %s: %w", rs.Path, err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(rs.Path, e.Name())
		r, err := Load(os.DirFS(dir), e.Name(), e.Name())
		if err != nil {
			return nil, fmt.Errorf("repository %s (%s): %w", e.Name(), dir, err)
		}
		r.URL = originURL(dir)
		out = append(out, r)
	}
	return out, nil
}

// Get returns the repository called name.
func (rs *Repositories) Get(name string) (*Repository, error) {
	all, err := rs.All()
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		if r.Name == name {
			return r, nil
		}
	}
	var names []string
	for _, r := range all {
		names = append(names, r.Name)
	}
	return nil, fmt.Errorf("no repository %q is installed (installed: %s); add it with `skiff func repository add %s URL`", name, strings.Join(names, ", "), name)
}

// Add installs the repository at uri as name (default: its manifest's name, else the last
// element of uri without .git) and returns the name.
func (rs *Repositories) Add(ctx context.Context, name, uri string) (string, error) {
	if uri == "" {
		return "", errors.New("a repository URL or path is required")
	}
	if err := os.MkdirAll(rs.Path, 0o755); err != nil {
		return "", fmt.Errorf("creating the repositories directory: %w", err)
	}
	tmp, err := os.MkdirTemp(rs.Path, ".adding-")
	if err != nil {
		return "", fmt.Errorf("creating the repositories directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "repo")
	if err := fetch(ctx, uri, src); err != nil {
		return "", err
	}
	r, err := Load(os.DirFS(src), name, nameFromURI(uri))
	if err != nil {
		return "", fmt.Errorf("%s is not a template repository: %w", uri, err)
	}
	if len(r.Runtimes) == 0 {
		return "", fmt.Errorf("%s is not a template repository: no <language>/<template>/ directories", uri)
	}
	if err := checkName(r.Name); err != nil {
		return "", err
	}
	dest := filepath.Join(rs.Path, r.Name)
	if _, err := os.Stat(dest); err == nil {
		return "", fmt.Errorf("repository %q already exists", r.Name)
	}
	if local, ok := localPath(uri); ok {
		recordOrigin(src, local)
	}
	if err := os.Rename(src, dest); err != nil {
		return "", fmt.Errorf("installing repository %s: %w", r.Name, err)
	}
	return r.Name, nil
}

// Rename renames an installed repository.
func (rs *Repositories) Rename(from, to string) error {
	if from == DefaultName {
		return errors.New("the default repository cannot be renamed")
	}
	if err := checkName(to); err != nil {
		return err
	}
	a, b := filepath.Join(rs.Path, from), filepath.Join(rs.Path, to)
	if _, err := os.Stat(a); err != nil {
		return fmt.Errorf("no repository %q is installed", from)
	}
	if _, err := os.Stat(b); err == nil {
		return fmt.Errorf("repository %q already exists", to)
	}
	return os.Rename(a, b)
}

// Remove deletes an installed repository.
func (rs *Repositories) Remove(name string) error {
	if name == DefaultName {
		return errors.New("the default repository cannot be removed")
	}
	if name == "" || checkName(name) != nil {
		return fmt.Errorf("repository name %q is not valid", name)
	}
	p := filepath.Join(rs.Path, name)
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("no repository %q is installed", name)
	}
	return os.RemoveAll(p)
}

// Open loads the repository at uri without installing it, for `create --repository` and
// `templates --repository`: a local path is read where it is; a git URL is cloned once into
// CacheDir and read from there afterwards, with no network.
func (rs *Repositories) Open(ctx context.Context, uri string) (*Repository, error) {
	if local, ok := localPath(uri); ok {
		if _, err := os.Stat(local); err != nil {
			return nil, fmt.Errorf("--repository %s: %w", uri, err)
		}
		r, err := Load(os.DirFS(local), "", nameFromURI(uri))
		if err != nil {
			return nil, fmt.Errorf("--repository %s: %w", uri, err)
		}
		r.URL = uri
		return r, nil
	}
	sum := sha256.Sum256([]byte(uri))
	dir := filepath.Join(rs.CacheDir, "repositories", hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), ".cloning-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if err := fetch(ctx, uri, filepath.Join(tmp, "repo")); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(tmp, "repo"), dir); err != nil {
			if _, serr := os.Stat(filepath.Join(dir, ".git")); serr != nil {
				return nil, fmt.Errorf("caching the clone of %s: %w", uri, err)
			} // else: another create cloned it first
		}
	}
	r, err := Load(os.DirFS(dir), "", nameFromURI(uri))
	if err != nil {
		return nil, fmt.Errorf("--repository %s: %w", uri, err)
	}
	r.URL = uri
	return r, nil
}

// localPath reports whether uri names a local directory (a path or a file:// URI) and which.
func localPath(uri string) (string, bool) {
	if strings.HasPrefix(uri, "file://") {
		return filepath.FromSlash(strings.TrimPrefix(uri, "file://")), true
	}
	if u, err := url.Parse(uri); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		return "", false // http, https, ssh, git
	}
	if scpLike(uri) {
		return "", false
	}
	return uri, true
}

// scpLike reports git's user@host:path form.
func scpLike(uri string) bool {
	at, colon := strings.Index(uri, "@"), strings.Index(uri, ":")
	return at > 0 && colon > at && !strings.Contains(uri[:at], "/")
}

// nameFromURI is the last path element of uri, without ".git" or a "#branch".
func nameFromURI(uri string) string {
	uri, _, _ = strings.Cut(uri, "#")
	uri = strings.TrimRight(uri, "/")
	if i := strings.LastIndexAny(uri, "/:"); i >= 0 {
		uri = uri[i+1:]
	}
	return strings.TrimSuffix(uri, ".git")
}

// fetch puts the repository at uri into dest: a copy of a local directory, a clone of a URL.
func fetch(ctx context.Context, uri, dest string) error {
	if local, ok := localPath(uri); ok {
		info, err := os.Stat(local)
		if err != nil {
			return fmt.Errorf("repository %s: %w", uri, err)
		}
		if !info.IsDir() {
			return fmt.Errorf("repository %s: not a directory", uri)
		}
		if err := filetree.Copy(local, dest); err != nil {
			return fmt.Errorf("copying repository %s: %w", uri, err)
		}
		return nil
	}
	u, branch, _ := strings.Cut(uri, "#")
	opts := &git.CloneOptions{URL: u, Depth: 1, Tags: git.NoTags, SingleBranch: true}
	if branch != "" {
		opts.ReferenceName = plumbing.NewBranchReferenceName(branch)
	}
	if _, err := git.PlainCloneContext(ctx, dest, false, opts); err != nil {
		return fmt.Errorf("cloning %s: %w", uri, err)
	}
	return nil
}

// originURL is the origin remote's URL of the git repository in dir, with "#branch", as func's
// repository list -v prints it; "" when dir is no git repository or has no origin.
func originURL(dir string) string {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return ""
	}
	c, err := repo.Config()
	if err != nil {
		return ""
	}
	o, ok := c.Remotes["origin"]
	if !ok || len(o.URLs) == 0 {
		return ""
	}
	if ref, err := repo.Head(); err == nil && ref.Name().IsBranch() {
		return o.URLs[0] + "#" + ref.Name().Short()
	}
	return o.URLs[0]
}

// recordOrigin gives a copied local git repository an origin naming where it was copied from,
// when it has none, so that `repository list -v` can say so.
func recordOrigin(dir, source string) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return
	}
	if _, err := repo.Remote("origin"); err == nil {
		return
	}
	abs, err := filepath.Abs(source)
	if err != nil {
		return
	}
	_, _ = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{abs}})
}

// Names lists the repositories' names, default first.
func Names(all []*Repository) []string {
	out := make([]string, 0, len(all))
	for _, r := range all {
		out = append(out, r.Name)
	}
	return slices.Clip(out)
}
