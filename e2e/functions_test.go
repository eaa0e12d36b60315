package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFunctions drives `skiff func` as a user would, with the real binary against an in-process
// `skiff up`: for each language and template, create, run, invoke locally, deploy, and invoke
// through the gateway.
func TestFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the skiff binary and functions in four languages")
	}
	bin := skiffBinary(t)
	s := startSkiff(t, t.TempDir())
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
		for _, tmpl := range []string{"http", "cloudevents"} {
			t.Run(lang+"/"+tmpl, func(t *testing.T) {
				t.Parallel()
				tool := map[string]string{"go": "go", "node": "node", "typescript": "npm", "python": "python3"}[lang]
				if _, err := exec.LookPath(tool); err != nil {
					t.Skipf("%s is not installed, so %s functions cannot be built here", tool, lang)
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
				ready := make(chan string, 1)
				go func() {
					sc := bufio.NewScanner(stdout)
					for sc.Scan() {
						if strings.Contains(sc.Text(), " running on ") {
							ready <- sc.Text()
						}
					}
				}()
				select {
				case <-ready:
				case <-time.After(90 * time.Second):
					_ = run.Process.Kill()
					t.Fatalf("func run did not report running: %s", run.Stderr)
				}
				out, err := skiffFunc(dir, append(invokeArgs, "--target", "local")...)
				if err != nil {
					t.Errorf("invoke local: %v\n%s", err, out)
				}
				check("local", out)
				_ = run.Process.Signal(syscall.SIGTERM)
				_ = run.Wait()

				// deploy + invoke through the gateway
				out, err = skiffFunc(dir, "deploy", "--timeout", "90s")
				if err != nil {
					t.Fatalf("deploy: %v\n%s", err, out)
				}
				if !strings.Contains(out, "http://"+name+".default.localhost") {
					t.Errorf("deploy did not print the URL:\n%s", out)
				}
				out, err = skiffFunc(dir, append(invokeArgs, "--target", "remote")...)
				if err != nil {
					t.Errorf("invoke remote: %v\n%s", err, out)
				}
				check("through the gateway", out)
				t.Logf("through the gateway:\n%s", out)
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
