package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// TestFunctions drives `skiff func` as a user would, with the real binary against an in-process
// `skiff up`: for each language and template, create, run, invoke locally, deploy, and invoke
// through the gateway.
func TestFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the skiff binary and functions in four languages")
	}
	bin := skiffBinary(t)
	s := startSkiff(t, t.TempDir(), withEventing(t))
	// CloudEvents functions subscribe to this broker; their replies (function.response)
	// come back into it and reach the recorder.
	replies := newRecorder(t, nil)
	s.apply(fmt.Sprintf(brokerYAML, "default") + fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: function-replies
spec:
  broker: default
  filter:
    attributes:
      type: function.response
  subscriber:
    uri: %s
`, replies.url("/replies")))
	brokerURL := s.brokerReady("default")
	cache := filepath.Join(os.TempDir(), "skiff-e2e-func-cache") // shared across runs: npm and tsc
	work := t.TempDir()
	skiffFunc := func(dir string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"func"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SKIFF_API_ADDR="+s.cp.APIAddr().String(), "SKIFF_GATEWAY_ADDR="+s.http, "SKIFF_CACHE_DIR="+cache)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("bad input", func(t *testing.T) {
		out, err := skiffFunc(work, "create", "-l", "rust", "nope")
		if err == nil || !strings.Contains(out, `unknown language "rust"`) {
			t.Errorf("create -l rust: %v\n%s", err, out)
		}
		dir := filepath.Join(work, "badfield")
		if out, err := skiffFunc(work, "create", "-l", "go", "badfield"); err != nil {
			t.Fatalf("create: %v\n%s", err, out)
		}
		y, _ := os.ReadFile(filepath.Join(dir, "func.yaml"))
		if err := os.WriteFile(filepath.Join(dir, "func.yaml"), append(y, []byte("deploy:\n  replicas: 3\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = skiffFunc(dir, "deploy")
		if err == nil || !strings.Contains(out, "deploy.replicas") {
			t.Errorf("deploy with an unknown field: %v\n%s", err, out)
		}
		dir = filepath.Join(work, "broken")
		if out, err := skiffFunc(work, "create", "-l", "go", "broken"); err != nil {
			t.Fatalf("create: %v\n%s", err, out)
		}
		if err := os.WriteFile(filepath.Join(dir, "handle.go"), []byte("package function\n\nfunc Handle( {\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = skiffFunc(dir, "deploy")
		if err == nil || !strings.Contains(out, "build failed") {
			t.Errorf("deploy of a function that does not compile: %v\n%s", err, out)
		}
		if out, _ := skiffFunc(work, "list"); strings.Contains(out, "broken") || strings.Contains(out, "badfield") {
			t.Errorf("a failed deploy left a function behind:\n%s", out)
		}
	})

	for _, lang := range []string{"go", "node", "python", "typescript"} {
		tmpls := []string{"http", "cloudevents"}
		if lang == "python" {
			tmpls = append(tmpls, "flask", "fastapi")
		}
		for _, tmpl := range tmpls {
			t.Run(lang+"/"+tmpl, func(t *testing.T) {
				t.Parallel()
				tool := map[string]string{"go": "go", "node": "node", "typescript": "npm", "python": "python3"}[lang]
				if _, err := exec.LookPath(tool); err != nil {
					t.Skipf("%s is not installed, so %s functions cannot be built here", tool, lang)
				}
				if mods := map[string]string{"flask": "flask", "fastapi": "fastapi, uvicorn"}[tmpl]; mods != "" && !pythonImports(mods) {
					t.Skipf("no Python here imports %s: install Debian's python3-%s (make python-frameworks)", mods, tmpl)
				}
				name := "fn-" + lang + "-" + tmpl
				dir := filepath.Join(work, name)
				if out, err := skiffFunc(work, "create", "-l", lang, "-t", tmpl, name); err != nil {
					t.Fatalf("create: %v\n%s", err, out)
				}
				invokeArgs := []string{"invoke", "--data", `{"greeting":"hello-` + name + `"}`, "--content-type", "application/json"}
				if tmpl == "cloudevents" {
					invokeArgs = append(invokeArgs, "--type", "e2e.test", "--source", "/e2e")
				}
				check := func(where, out string) {
					t.Helper()
					if !strings.Contains(out, "hello-"+name) {
						t.Errorf("invoke %s: reply does not echo the data:\n%s", where, out)
					}
					if tmpl == "cloudevents" && !strings.Contains(out, "function.response") {
						t.Errorf("invoke %s: reply is not a function.response event:\n%s", where, out)
					}
				}

				// run + invoke locally
				run := exec.Command(bin, "func", "run", "--port", "0", "--cache-dir", cache)
				run.Dir = dir
				stdout, _ := run.StdoutPipe()
				run.Stderr = &bytes.Buffer{}
				if err := run.Start(); err != nil {
					t.Fatal(err)
				}
				// skiff's own line, printed once the function is ready and recorded for
				// invoke; not a server's log line such as uvicorn's "Uvicorn running on ...",
				// which comes before.
				ready := make(chan string, 1)
				go func() {
					sc := bufio.NewScanner(stdout)
					for sc.Scan() {
						if u, ok := strings.CutPrefix(sc.Text(), "Function "+name+" running on "); ok {
							ready <- u
						}
					}
				}()
				var runURL string
				select {
				case runURL = <-ready:
				case <-time.After(90 * time.Second):
					_ = run.Process.Kill()
					t.Fatalf("func run did not report running: %s", run.Stderr)
				}
				// Every runner listens on $HOST (127.0.0.1 from func run), never on the
				// machine's other addresses (issue 13, item 6).
				if u, err := url.Parse(runURL); err != nil || u.Hostname() != "127.0.0.1" {
					t.Errorf("func run is not on 127.0.0.1: %s", runURL)
				} else if addr := nonLoopbackAddr(t); addr != "" {
					if c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, u.Port()), 2*time.Second); err == nil {
						c.Close()
						t.Errorf("the %s function answers on %s, not only on loopback", name, addr)
					}
				}
				out, err := skiffFunc(dir, append(invokeArgs, "--target", "local")...)
				check("local", out)
				_ = run.Process.Signal(syscall.SIGTERM)
				_ = run.Wait()
				if err != nil {
					t.Errorf("invoke local: %v\n%s\nfunc run's output:\n%s", err, out, run.Stderr)
				}

				if tmpl == "cloudevents" {
					if out, err := skiffFunc(dir, "subscribe", "--filter", "type=e2e."+name, "--source", "default"); err != nil {
						t.Fatalf("subscribe: %v\n%s", err, out)
					}
				}

				// deploy + invoke through the gateway
				deployOut, err := skiffFunc(dir, "deploy", "--timeout", "90s")
				if err != nil {
					t.Fatalf("deploy: %v\n%s", err, deployOut)
				}
				if !strings.Contains(deployOut, "http://"+name+".default.localhost") {
					t.Errorf("deploy did not print the URL:\n%s", deployOut)
				}
				if lang == "go" && s.cp.OCIRuntime() != nil {
					// skiff up runs images: the function runs as its OCI image, named by digest.
					var svc servingv1.Service
					raw, err := s.api.Get(context.Background(), api.LookupKind("ksvc"), "default", name)
					if err == nil {
						err = json.Unmarshal(raw, &svc)
					}
					c := svc.Spec.Template.Spec.Containers
					if err != nil || len(c) != 1 || !strings.Contains(c[0].Image, "@sha256:") || len(c[0].Command) > 0 || !strings.Contains(deployOut, "pushed ") {
						t.Errorf("deploy with an OCI runtime: %v, containers %+v, want the pushed image by digest and no command:\n%s", err, c, deployOut)
					}
				}
				out, err = skiffFunc(dir, append(invokeArgs, "--target", "remote")...)
				if err != nil {
					t.Errorf("invoke remote: %v\n%s", err, out)
				}
				check("through the gateway", out)
				t.Logf("through the gateway:\n%s", out)
				if tmpl == "cloudevents" {
					// Subscribed with a Trigger: an event sent to the broker reaches the function,
					// and its reply goes back into the broker.
					trigger := name + "-function-trigger-0"
					if !strings.Contains(deployOut, "subscribed with Trigger "+trigger) {
						t.Errorf("deploy did not report the Trigger:\n%s", deployOut)
					}
					s.waitReady("trigger", trigger, nil)
					greeting := "hello-" + name + "-via-broker"
					ev := newEvent("via-broker-"+name, "e2e."+name, "/e2e", "")
					_ = ev.SetData("application/json", map[string]string{"greeting": greeting})
					if code, body, err := newSender(s.http).send(brokerURL, ev, false); err != nil || code != http.StatusAccepted {
						t.Fatalf("send to the broker: %d %s %v", code, body, err)
					}
					eventually(t, 60*time.Second, "the function's reply to the broker event", func() bool {
						for _, r := range replies.events("/replies") {
							if strings.Contains(string(r.Data()), greeting) {
								return true
							}
						}
						return false
					})
				}
				out, _ = skiffFunc(dir, "list")
				if !strings.Contains(out, name) || !strings.Contains(out, "True") {
					t.Errorf("func list:\n%s", out)
				}
				if out, err := skiffFunc(dir, "delete"); err != nil {
					t.Errorf("delete: %v\n%s", err, out)
				}
			})
		}
	}
}

// funcCLI runs the skiff binary's func commands for one test, with the environment a user
// would have set: the Skiff API and gateway, a shared cache (npm, installed dependencies) and
// the test's own repositories directory.
type funcCLI struct {
	bin string
	env []string
}

func newFuncCLI(t *testing.T, s *skiff) *funcCLI {
	return &funcCLI{bin: skiffBinary(t), env: append(os.Environ(),
		"SKIFF_API_ADDR="+s.cp.APIAddr().String(), "SKIFF_GATEWAY_ADDR="+s.http,
		"SKIFF_CACHE_DIR="+filepath.Join(os.TempDir(), "skiff-e2e-func-cache"),
		"FUNC_REPOSITORIES_PATH="+filepath.Join(t.TempDir(), "repositories"),
		"DOCKER_CONFIG="+t.TempDir(),
		// Read by func.yaml values this test configures ({{ env:... }}).
		"E2E_TEAM=blue", "E2E_HOST_VALUE=from-the-host")}
}

// run runs `skiff func args...` in dir with stdin and extra environment, returning its
// combined output.
func (c *funcCLI) run(dir, stdin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(c.bin, append([]string{"func"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, c.env...), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs a command that must succeed and returns its output.
func (c *funcCLI) must(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := c.run(dir, "", nil, args...)
	if err != nil {
		t.Fatalf("skiff func %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// start starts a long-running func command (run, logs -f) and returns it with a channel of its
// stdout lines; the test's cleanup stops it.
func (c *funcCLI) start(t *testing.T, dir string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(c.bin, append([]string{"func"}, args...)...)
	cmd.Dir = dir
	cmd.Env = c.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("skiff func %s stderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
	return cmd, lines
}

// waitLine waits for a line containing want.
func waitLine(t *testing.T, lines <-chan string, want string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the command ended before printing %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line with %q within %s", want, within)
		}
	}
}

// httpDo sends one request and returns the status, headers and body.
func httpDo(t *testing.T, method, url, host string, header http.Header, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header != nil {
		req.Header = header
	}
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// greeterRepo is a template repository in func's layout: a Node template on faas-js-runtime
// (the dependencies of Skiff's node/cloudevents template, so the test shares its npm install)
// that answers HTTP and CloudEvents, with a manifest.
var greeterRepo = map[string]string{
	"manifest.yaml":              "name: e2e-templates\n",
	"node/greeter/manifest.yaml": "invoke: http\nrunEnvs:\n- name: GREETING\n  value: hello\n",
	"node/greeter/package.json": `{"name":"greeter","version":"0.1.0","main":"index.js",
  "dependencies":{"cloudevents":"^10.0.0","faas-js-runtime":"3.0.2"}}`,
	"node/greeter/index.js": `const { CloudEvent } = require('cloudevents');
// HTTP: handle(context, body); CloudEvents: handle(context, event), as faas-js-runtime calls them.
const handle = async (context, body) => {
  context.log.info('greeter called with ' + JSON.stringify(body));
  if (context.cloudevent) {
    return new CloudEvent({ source: 'greeter', type: 'greeter.reply', data: { greeting: process.env.GREETING + ' ' + body.data.name } });
  }
  return { body: { greeting: process.env.GREETING + ' ' + (body && body.name), version: 'v1' } };
};
module.exports = { handle };
`,
	"go/hello/go.mod":    "module function\n\ngo 1.24\n",
	"go/hello/handle.go": "package function\n\nimport \"net/http\"\n\nfunc Handle(w http.ResponseWriter, r *http.Request) { w.Write([]byte(\"hello from the repository\")) }\n",
}

// makeGitRepo writes files into a new git repository at dir and commits them (go-git).
func makeGitRepo(t *testing.T, dir string, files map[string]string) {
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
	if _, err := wt.Commit("templates", &git.CommitOptions{Author: &object.Signature{Name: "e2e", Email: "e2e@example.com", When: time.Now()}}); err != nil {
		t.Fatal(err)
	}
}

// TestFuncWorkflow drives the rest of func's workflow against skiff up, as a user would with
// the real binary: a template repository (a local git repository made here) added, listed and
// used by create; a Node function on faas-js-runtime answering HTTP and CloudEvents through
// the gateway; config envs/volumes/labels from flags and prompts, applied on deploy; describe
// in every format; a traffic split in func.yaml landing in the Service; logs (and -f); run
// --watch serving an edit; --namespace, --domain and FUNC_* variables; build --push with the
// docker config's credentials; and the client verbs (version, completion, environment,
// languages, templates).
func TestFuncWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the skiff binary and Node functions")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	dataDir := t.TempDir()
	s := startSkiff(t, dataDir, withEventing(t))
	s.apply(fmt.Sprintf(brokerYAML, "default"))
	c := newFuncCLI(t, s)
	work := t.TempDir()

	t.Run("client", func(t *testing.T) {
		if out := c.must(t, work, "version", "-o", "json"); !strings.Contains(out, `"specVersion": "0.36.0"`) {
			t.Errorf("version -o json:\n%s", out)
		}
		if out := c.must(t, work, "version", "-v"); !strings.Contains(out, "Knative: knative-v1.23") {
			t.Errorf("version -v:\n%s", out)
		}
		for shell, want := range map[string]string{"bash": "bash completion V2 for skiff", "zsh": "#compdef skiff", "fish": "fish completion for skiff"} {
			if out := c.must(t, work, "completion", shell); !strings.Contains(out, want) {
				t.Errorf("completion %s does not start with the %s script:\n%.200s", shell, shell, out)
			}
		}
		if out, err := c.run(work, "", nil, "completion", "powershell"); err == nil {
			t.Errorf("completion powershell succeeded:\n%s", out)
		}
		if out := c.must(t, work, "languages", "--json"); strings.TrimSpace(out) != `["go","node","python","typescript"]` {
			t.Errorf("languages --json: %s", out)
		}
		if out := c.must(t, work, "templates", "python"); !strings.Contains(out, "python       flask") || !strings.Contains(out, "python       fastapi") || strings.Contains(out, "node") {
			t.Errorf("templates python:\n%s", out)
		}
		out, err := c.run(work, "", []string{"FUNC_TEST_MARKER=1"}, "environment")
		var env struct {
			SpecVersion string              `json:"specVersion"`
			Templates   map[string][]string `json:"templates"`
			Environment []string            `json:"environment"`
		}
		if err != nil || json.Unmarshal([]byte(out), &env) != nil || env.SpecVersion != "0.36.0" || len(env.Templates["go"]) != 2 || !slices.Contains(env.Environment, "FUNC_TEST_MARKER=1") {
			t.Errorf("environment: %v\n%s", err, out)
		}
	})

	// A template repository in func's layout, made here as a local git repository.
	repoDir := filepath.Join(t.TempDir(), "e2e-templates.git")
	makeGitRepo(t, repoDir, greeterRepo)
	greeter := filepath.Join(work, "greeter")
	t.Run("repository", func(t *testing.T) {
		if out := c.must(t, work, "repository", "list"); strings.TrimSpace(out) != "default" {
			t.Errorf("repository list before adding: %q", out)
		}
		if out := c.must(t, work, "repository", "add", "mytemplates", repoDir); !strings.Contains(out, "Repository added: mytemplates") {
			t.Errorf("repository add: %s", out)
		}
		if out := c.must(t, work, "repository", "list", "-v"); !strings.Contains(out, "default\t\n") || !strings.Contains(out, "mytemplates\t"+repoDir) {
			t.Errorf("repository list -v:\n%s", out)
		}
		if out := c.must(t, work, "templates", "node"); !strings.Contains(out, "node         mytemplates/greeter") || !strings.Contains(out, "node         http") {
			t.Errorf("templates node:\n%s", out)
		}
		if out, err := c.run(work, "", nil, "repository", "add", "mytemplates", repoDir); err == nil || !strings.Contains(out, `repository "mytemplates" already exists`) {
			t.Errorf("adding it twice: %v\n%s", err, out)
		}
		if out := c.must(t, work, "create", "-l", "node", "-t", "mytemplates/greeter", greeter); !strings.Contains(out, `Created node function "greeter"`) {
			t.Errorf("create from the repository: %s", out)
		}
		y, _ := os.ReadFile(filepath.Join(greeter, "func.yaml"))
		if !strings.Contains(string(y), "name: GREETING") {
			t.Errorf("the template's manifest runEnvs are not in func.yaml:\n%s", y)
		}
		c.must(t, work, "repository", "rename", "mytemplates", "renamed")
		if out, err := c.run(work, "", nil, "create", "-l", "node", "-t", "mytemplates/greeter", filepath.Join(work, "nope")); err == nil || !strings.Contains(out, `no repository "mytemplates" is installed`) {
			t.Errorf("create from a renamed-away repository: %v\n%s", err, out)
		}
		c.must(t, work, "repository", "remove", "renamed")
		if out := c.must(t, work, "repository", "list"); strings.TrimSpace(out) != "default" {
			t.Errorf("repository list after remove: %q", out)
		}
		// --repository with a local path, not installed.
		if out := c.must(t, work, "create", "-l", "go", "-t", "hello", "--repository", repoDir, filepath.Join(work, "gohello")); !strings.Contains(out, `Created go function "gohello"`) {
			t.Errorf("create --repository PATH: %s", out)
		}
		// --repository with a git URL (git's smart HTTP, served by git http-backend): cloned
		// once into the cache, then used with the server gone.
		gitBin, err := exec.LookPath("git")
		if err != nil {
			t.Log("git is not installed: skipping create --repository over HTTP")
			return
		}
		srv := httptest.NewServer(&cgi.Handler{Path: gitBin, Args: []string{"http-backend"},
			Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(repoDir), "GIT_HTTP_EXPORT_ALL=1"}})
		uri := srv.URL + "/" + filepath.Base(repoDir)
		c.must(t, work, "create", "-l", "go", "-t", "hello", "--repository", uri, filepath.Join(work, "cloned1"))
		srv.Close()
		if out, err := c.run(work, "", nil, "create", "-l", "go", "-t", "hello", "--repository", uri, filepath.Join(work, "cloned2")); err != nil {
			t.Errorf("second create --repository URL with the server gone (the clone is cached): %v\n%s", err, out)
		}
	})
	if _, err := os.Stat(filepath.Join(greeter, "func.yaml")); err != nil {
		t.Fatal("no greeter function to go on with")
	}

	t.Run("config", func(t *testing.T) {
		c.must(t, greeter, "config", "envs", "add", "--name", "LITERAL", "--value", "plain")
		c.must(t, greeter, "config", "labels", "add", "--name", "team", "--value", "{{ env:E2E_TEAM }}")
		c.must(t, greeter, "config", "volumes", "add", "--type", "emptydir", "--mount-path", "/cache", "--medium", "Memory")
		// Prompts: a value from the local environment, then a ConfigMap volume.
		if out, err := c.run(greeter, "2\nFROM_HOST\nE2E_HOST_VALUE\n", nil, "config", "envs", "add"); err != nil {
			t.Fatalf("config envs add (prompted): %v\n%s", err, out)
		}
		if out, err := c.run(greeter, "2\n1\n1\nsettings\n/etc/settings\n", nil, "config"); err != nil {
			t.Fatalf("config (prompted volume add): %v\n%s", err, out)
		}
		out := c.must(t, greeter, "config", "envs")
		for _, want := range []string{`Env "GREETING" with value "hello"`, `Env "LITERAL" with value "plain"`, `Env "FROM_HOST" with value set from local env variable "E2E_HOST_VALUE"`} {
			if !strings.Contains(out, want) {
				t.Errorf("config envs lacks %q:\n%s", want, out)
			}
		}
		if out := c.must(t, greeter, "config", "volumes"); !strings.Contains(out, `EmptyDir in memory at path: "/cache"`) || !strings.Contains(out, `ConfigMap "settings" at path: "/etc/settings"`) {
			t.Errorf("config volumes:\n%s", out)
		}
		if out := c.must(t, greeter, "config", "labels", "-o", "json"); !strings.Contains(out, `"key":"team"`) {
			t.Errorf("config labels -o json: %s", out)
		}
		for _, bad := range [][]string{
			{"config", "envs", "add", "--name", "K_SERVICE", "--value", "x"},
			{"config", "envs", "add", "--name", "X", "--value", "{{ nonsense }}"},
			{"config", "volumes", "add", "--type", "secret", "--source", "s", "--mount-path", "/dev"},
			{"config", "labels", "add", "--name", "bad key", "--value", "x"},
		} {
			if out, err := c.run(greeter, "", nil, bad...); err == nil || !strings.Contains(out, "run.") && !strings.Contains(out, "deploy.") {
				t.Errorf("%s: %v, want an error naming the func.yaml field\n%s", strings.Join(bad, " "), err, out)
			}
		}
		c.must(t, greeter, "config", "volumes", "remove", "--mount-path", "/etc/settings")
	})

	var firstRevision string
	t.Run("deploy, HTTP and CloudEvents on faas-js-runtime", func(t *testing.T) {
		out, err := c.run(greeter, "", nil, "deploy", "--timeout", "90s")
		if err != nil {
			t.Fatalf("deploy: %v\n%s", err, out)
		}
		var svc servingv1.Service
		s.waitReady("ksvc", "greeter", &svc)
		firstRevision = svc.Status.LatestReadyRevisionName
		env := map[string]string{}
		ctr := svc.Spec.Template.Spec.Containers[0]
		for _, e := range ctr.Env {
			env[e.Name] = e.Value
		}
		if env["GREETING"] != "hello" || env["LITERAL"] != "plain" || env["FROM_HOST"] != "from-the-host" || svc.Labels["team"] != "blue" {
			t.Errorf("the Service's env %v and labels %v do not carry func.yaml's config", env, svc.Labels)
		}
		if len(ctr.VolumeMounts) != 1 || ctr.VolumeMounts[0].MountPath != "/cache" || len(svc.Spec.Template.Spec.Volumes) != 1 || svc.Spec.Template.Spec.Volumes[0].EmptyDir == nil {
			t.Errorf("the Service's volumes %+v mounts %+v", svc.Spec.Template.Spec.Volumes, ctr.VolumeMounts)
		}
		y, _ := os.ReadFile(filepath.Join(greeter, "func.yaml"))
		if !strings.Contains(string(y), "namespace: default") {
			t.Errorf("deploy did not keep the namespace in func.yaml:\n%s", y)
		}

		// HTTP through the gateway.
		code, _, body := httpDo(t, http.MethodPost, "http://"+s.http+"/", "greeter.default.localhost", http.Header{"Content-Type": {"application/json"}}, `{"name":"http"}`)
		if code != 200 || !strings.Contains(body, `"greeting":"hello http"`) {
			t.Errorf("HTTP: %d %s", code, body)
		}
		// faas-js-runtime's health endpoints.
		if code, _, body := httpDo(t, http.MethodGet, "http://"+s.http+"/health/liveness", "greeter.default.localhost", nil, ""); code != 200 || body != "OK" {
			t.Errorf("liveness: %d %q", code, body)
		}
		// A CloudEvent in binary and in structured mode: a CloudEvent back, in binary mode.
		for _, structured := range []bool{false, true} {
			ev := newEvent(fmt.Sprintf("e2e-%v", structured), "greeter.call", "/e2e", "")
			_ = ev.SetData("application/json", map[string]string{"name": "event"})
			req, _ := http.NewRequest(http.MethodPost, "http://"+s.http+"/", nil)
			ctx := context.Background()
			if structured {
				ctx = binding.WithForceStructured(ctx)
			}
			if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
				t.Fatal(err)
			}
			code, h, body := httpDo(t, http.MethodPost, req.URL.String(), "greeter.default.localhost", req.Header, readAll(req.Body))
			if code != 200 || h.Get("Ce-Type") != "greeter.reply" || h.Get("Ce-Source") != "greeter" || !strings.Contains(body, `"greeting":"hello event"`) {
				t.Errorf("CloudEvent (structured %v): %d %v %s", structured, code, h, body)
			}
		}
		if out := c.must(t, greeter, "invoke", "--data", `{"name":"invoke"}`, "--content-type", "application/json"); !strings.Contains(out, "hello invoke") {
			t.Errorf("invoke:\n%s", out)
		}
		if out := c.must(t, greeter, "invoke", "-f", "cloudevent", "--data", `{"name":"ce-invoke"}`, "--type", "greeter.call"); !strings.Contains(out, "greeter.reply") || !strings.Contains(out, "hello ce-invoke") {
			t.Errorf("invoke -f cloudevent:\n%s", out)
		}
	})

	t.Run("describe", func(t *testing.T) {
		c.must(t, greeter, "subscribe", "--filter", "type=greeter.call", "--source", "default")
		c.must(t, greeter, "deploy", "--timeout", "90s")
		out := c.must(t, greeter, "describe")
		for _, want := range []string{"Function name:\n  greeter\n", "Routes:\n  http://greeter.default.localhost\n", "Function is ready:\n  true\n",
			"Subscriptions (Source, Type, Broker):\n   greeter.call default\n", "team: blue"} {
			if !strings.Contains(out, want) {
				t.Errorf("describe lacks %q:\n%s", want, out)
			}
		}
		var in struct {
			Name, Namespace, Image string
			Routes                 []string
			Subscriptions          []struct{ Source, Type, Broker string }
		}
		if err := json.Unmarshal([]byte(c.must(t, work, "info", "greeter", "-n", "default", "-o", "json")), &in); err != nil || in.Name != "greeter" ||
			len(in.Subscriptions) != 1 || in.Subscriptions[0].Type != "greeter.call" || in.Routes[0] != "http://greeter.default.localhost" {
			t.Errorf("info NAME -o json: %+v %v", in, err)
		}
		if out := c.must(t, greeter, "describe", "-o", "yaml"); !strings.Contains(out, "name: greeter") || !strings.Contains(out, "routes:") {
			t.Errorf("describe -o yaml:\n%s", out)
		}
		if out := c.must(t, greeter, "describe", "-o", "url"); strings.TrimSpace(out) != "http://greeter.default.localhost" {
			t.Errorf("describe -o url: %q", out)
		}
		if out, err := c.run(work, "", nil, "describe", "nobody"); err == nil || !strings.Contains(out, "function nobody is not deployed in namespace default") {
			t.Errorf("describe of a missing function: %v\n%s", err, out)
		}
		if out, err := c.run(greeter, "", nil, "describe", "-n", "default"); err == nil || !strings.Contains(out, "must also specify a name") {
			t.Errorf("describe -n without a name: %v\n%s", err, out)
		}
	})

	t.Run("traffic split in func.yaml", func(t *testing.T) {
		idx := filepath.Join(greeter, "index.js")
		src, _ := os.ReadFile(idx)
		if err := os.WriteFile(idx, []byte(strings.Replace(string(src), "version: 'v1'", "version: 'v2'", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		y, _ := os.ReadFile(filepath.Join(greeter, "func.yaml"))
		split := fmt.Sprintf("deploy:\n  traffic:\n  - revisionName: %s\n    percent: 50\n    tag: stable\n  - latestRevision: true\n    percent: 50\n    tag: canary\n", firstRevision)
		if err := os.WriteFile(filepath.Join(greeter, "func.yaml"), []byte(strings.Replace(string(y), "deploy:\n", split, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		c.must(t, greeter, "deploy", "--timeout", "90s")
		var svc servingv1.Service
		s.waitReady("ksvc", "greeter", &svc)
		tr := svc.Spec.Traffic
		if len(tr) != 2 || tr[0].RevisionName != firstRevision || *tr[0].Percent != 50 || tr[0].Tag != "stable" || tr[1].LatestRevision == nil || !*tr[1].LatestRevision || tr[1].Tag != "canary" {
			t.Fatalf("the Service's spec.traffic %+v, want func.yaml's split", tr)
		}
		newRev := svc.Status.LatestReadyRevisionName
		if newRev == firstRevision {
			t.Fatalf("no new revision for the edited code")
		}
		seen := map[string]int{}
		eventually(t, 60*time.Second, "both revisions answering the Service's host", func() bool {
			_, _, body := httpDo(t, http.MethodPost, "http://"+s.http+"/", "greeter.default.localhost", http.Header{"Content-Type": {"application/json"}}, `{"name":"x"}`)
			for _, v := range []string{"v1", "v2"} {
				if strings.Contains(body, `"version":"`+v+`"`) {
					seen[v]++
				}
			}
			return seen["v1"] > 0 && seen["v2"] > 0
		})
		for tag, want := range map[string]string{"stable": "v1", "canary": "v2"} {
			_, _, body := httpDo(t, http.MethodPost, "http://"+s.http+"/", tag+"-greeter.default.localhost", http.Header{"Content-Type": {"application/json"}}, `{"name":"x"}`)
			if !strings.Contains(body, `"version":"`+want+`"`) {
				t.Errorf("tag %s answered %s, want %s", tag, body, want)
			}
		}
		if out := c.must(t, greeter, "describe"); !strings.Contains(out, firstRevision+" 50% stable") || !strings.Contains(out, newRev+" 50% canary") ||
			!strings.Contains(out, "http://canary-greeter.default.localhost") {
			t.Errorf("describe does not show the split:\n%s", out)
		}
		y, _ = os.ReadFile(filepath.Join(greeter, "func.yaml"))
		bad := strings.Replace(string(y), "percent: 50\n    tag: canary", "percent: 40\n    tag: canary", 1)
		if err := os.WriteFile(filepath.Join(greeter, "func.yaml"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := c.run(greeter, "", nil, "deploy"); err == nil || !strings.Contains(out, "deploy.traffic: the percents sum to 90, want 100") {
			t.Errorf("deploy with a split that sums to 90: %v\n%s", err, out)
		}
		if err := os.WriteFile(filepath.Join(greeter, "func.yaml"), y, 0o644); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("logs", func(t *testing.T) {
		out := c.must(t, greeter, "logs", "--data-dir", dataDir)
		if !strings.Contains(out, firstRevision+" [") || !strings.Contains(out, "greeter called") {
			t.Errorf("logs:\n%.2000s", out)
		}
		// Without --data-dir: SKIFF_DATA_DIR.
		if out, err := c.run(greeter, "", []string{"SKIFF_DATA_DIR=" + dataDir}, "logs", "--name", "greeter"); err != nil || !strings.Contains(out, "greeter called") {
			t.Errorf("logs --name with SKIFF_DATA_DIR: %v\n%.500s", err, out)
		}
		if out, err := c.run(greeter, "", []string{"SKIFF_DATA_DIR=" + dataDir}, "logs", "--since", "1m"); err == nil || !strings.Contains(out, "--since") {
			t.Errorf("logs --since on skiff up: %v\n%s", err, out)
		}
		// -f prints what there is, then lines written later: a request made after it started.
		_, lines := c.start(t, greeter, "logs", "-f", "--data-dir", dataDir)
		waitLine(t, lines, "greeter called", 30*time.Second)
		marker := fmt.Sprintf("follow-%d", time.Now().UnixNano())
		httpDo(t, http.MethodPost, "http://"+s.http+"/", "stable-greeter.default.localhost", http.Header{"Content-Type": {"application/json"}}, `{"name":"`+marker+`"}`)
		if l := waitLine(t, lines, marker, 30*time.Second); !strings.HasPrefix(l, firstRevision+" [") {
			t.Errorf("followed line %q, want it after revision %s", l, firstRevision)
		}
	})

	t.Run("run --watch", func(t *testing.T) {
		cmd, lines := c.start(t, greeter, "run", "--watch", "--port", "0")
		_ = cmd
		first := waitLine(t, lines, " running on ", 90*time.Second)
		url := first[strings.Index(first, "http://"):]
		ask := func() string {
			_, _, body := httpDo(t, http.MethodPost, url, "", http.Header{"Content-Type": {"application/json"}}, `{"name":"watch"}`)
			return body
		}
		if b := ask(); !strings.Contains(b, `"version":"v2"`) {
			t.Fatalf("run --watch serves %s", b)
		}
		idx := filepath.Join(greeter, "index.js")
		src, _ := os.ReadFile(idx)
		if err := os.WriteFile(idx, []byte(strings.Replace(string(src), "version: 'v2'", "version: 'v3'", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		saved := time.Now()
		eventually(t, 30*time.Second, "the edit served by run --watch", func() bool { return strings.Contains(ask(), `"version":"v3"`) })
		t.Logf("run --watch served the edit %s after the save (Node on faas-js-runtime)", time.Since(saved).Round(time.Millisecond))
		if again := waitLine(t, lines, " running on ", 10*time.Second); !strings.HasSuffix(again, url) {
			t.Errorf("restarted at %q, want the same address %s", again, url)
		}
	})

	t.Run("namespace, domain and FUNC_ variables", func(t *testing.T) {
		dir := filepath.Join(work, "nsfn")
		c.must(t, work, "create", "-l", "node", "-t", "cloudevents", dir) // the greeter's dependencies: installed once
		out, err := c.run(dir, "", []string{"FUNC_NAMESPACE=team", "FUNC_DOMAIN=example.org"}, "deploy", "--timeout", "90s")
		if err != nil || !strings.Contains(out, "deployed in namespace team") {
			t.Fatalf("deploy with FUNC_NAMESPACE=team: %v\n%s", err, out)
		}
		raw, err := s.api.Get(context.Background(), api.LookupKind("ksvc"), "team", "nsfn")
		if err != nil {
			t.Fatalf("the Service is not in namespace team: %v", err)
		}
		var svc servingv1.Service
		_ = json.Unmarshal(raw, &svc)
		if svc.Labels["func.domain"] != "example.org" {
			t.Errorf("labels %v, want func.domain=example.org", svc.Labels)
		}
		// func.yaml keeps the namespace: describe (by path) and delete find it there.
		if out := c.must(t, dir, "describe", "-o", "plain"); !strings.Contains(out, "Namespace team") {
			t.Errorf("describe after a deploy to team:\n%s", out)
		}
		if out, err := c.run(dir, "", nil, "deploy", "--namespace", "Not_A_Namespace"); err == nil || !strings.Contains(out, "namespace") {
			t.Errorf("deploy --namespace Not_A_Namespace: %v\n%s", err, out)
		}
		if out, err := c.run(dir, "", nil, "deploy", "--domain", "not a domain"); err == nil || !strings.Contains(out, "--domain") {
			t.Errorf("deploy --domain 'not a domain': %v\n%s", err, out)
		}
		if out := c.must(t, work, "list", "-A", "-o", "json"); !strings.Contains(out, `"namespace": "team"`) {
			t.Errorf("list -A -o json:\n%s", out)
		}
		// FUNC_PATH and FUNC_VERBOSE.
		if out, err := c.run(work, "", []string{"FUNC_PATH=" + dir, "FUNC_VERBOSE=true"}, "build", "--builder", "host"); err != nil || !strings.Contains(out, "runner.js") {
			t.Errorf("build with FUNC_PATH: %v\n%s", err, out)
		}
		// --build=false deploys the existing build only: after an edit there is none.
		if err := os.WriteFile(filepath.Join(dir, "extra.js"), []byte("// edited\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := c.run(dir, "", nil, "deploy", "--build=false"); err == nil || !strings.Contains(out, "has changed since it was last built") {
			t.Errorf("deploy --build=false after an edit: %v\n%s", err, out)
		}
		if out := c.must(t, dir, "delete"); !strings.Contains(out, "Removed function nsfn from namespace team") {
			t.Errorf("delete: %s", out)
		}
	})

	t.Run("build --push with the docker config's credentials", func(t *testing.T) {
		regHost := authRegistry(t, "e2e-user", "e2e-pass")
		dir := filepath.Join(work, "pushed")
		c.must(t, work, "create", "-l", "go", dir)
		// No credentials: the registry's 401.
		if out, err := c.run(dir, "", []string{"FUNC_REGISTRY=" + regHost + "/fns"}, "build", "--push"); err == nil {
			t.Fatalf("push without credentials succeeded:\n%s", out)
		}
		dockerDir := t.TempDir()
		auth := base64.StdEncoding.EncodeToString([]byte("e2e-user:e2e-pass"))
		if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(`{"auths":{"`+regHost+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := c.run(dir, "", []string{"FUNC_REGISTRY=" + regHost + "/fns", "DOCKER_CONFIG=" + dockerDir}, "build", "--push")
		if err != nil || !strings.Contains(out, regHost+"/fns/pushed@sha256:") {
			t.Fatalf("build --push with the docker config: %v\n%s", err, out)
		}
		if y, _ := os.ReadFile(filepath.Join(dir, "func.yaml")); !strings.Contains(string(y), "registry: "+regHost+"/fns") {
			t.Errorf("build did not keep FUNC_REGISTRY in func.yaml:\n%s", y)
		}
	})
}

// pythonImports reports whether python3 or Debian's /usr/bin/python3 imports modules, as the
// build's interpreter choice does.
func pythonImports(modules string) bool {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import "+modules).Run() == nil {
			return true
		}
	}
	return false
}

func readAll(r io.Reader) string {
	if r == nil {
		return ""
	}
	b, _ := io.ReadAll(r)
	return string(b)
}

// authRegistry is an in-process registry wanting basic auth user:pass, as a private registry.
func authRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
