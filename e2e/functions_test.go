package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
