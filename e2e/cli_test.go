package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCLI runs what `make run` runs — the real binary's `skiff up -f examples/hello.yaml` —
// and drives it with `skiff wait`, `skiff get` and `skiff apply` as a user would.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the skiff binary")
	}
	root := moduleRoot(t)
	bin := skiffBinary(t)
	apiAddr, httpAddr := freeAddr(t), freeAddr(t)
	up := startUp(t, bin, []string{"up", "--data-dir", t.TempDir(), "--work-dir", root,
		"--api-addr", apiAddr, "--xds-addr", freeAddr(t), "--http-addr", httpAddr, "--admin-addr", freeAddr(t),
		"--extproc-addr", freeAddr(t), "--https-addr", freeAddr(t), "--local-http-addr", freeAddr(t),
		"-f", filepath.Join(root, "examples", "hello.yaml")})
	up.stopOnCleanup(t)

	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--api-addr", apiAddr)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var out string
	var err error
	eventually(t, 60*time.Second, "skiff wait ksvc hello", func() bool {
		out, err = run("wait", "ksvc", "hello", "--timeout", "5s")
		return err == nil
	})
	if !strings.Contains(out, "http://hello.default.localhost") {
		t.Errorf("skiff wait printed %q", out)
	}
	if out, err = run("get", "ksvc"); err != nil || !strings.Contains(out, "hello-00001") || !strings.Contains(out, "True") {
		t.Errorf("skiff get ksvc: %v\n%s", err, out)
	}
	if out, err = run("get", "ksvc", "hello", "-o", "yaml"); err != nil || !strings.Contains(out, "latestReadyRevisionName: hello-00001") {
		t.Errorf("skiff get -o yaml: %v\n%s", err, out)
	}
	s := &skiff{t: t, http: httpAddr}
	if code, r, body := s.get("hello.default.localhost:"+strings.Split(httpAddr, ":")[1], "/"); code != 200 || r.Revision != "hello-00001" {
		t.Errorf("curl through the gateway: %d %s", code, body)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/echo
  traffic:
    - latestRevision: true
      percent: 90
`), 0o644)
	if out, err = run("apply", "-f", bad); err == nil || !strings.Contains(out, "spec.traffic") {
		t.Errorf("skiff apply of a bad service: err=%v\n%s", err, out)
	}
	if out, err = run("get", "pods"); err == nil || !strings.Contains(out, `unknown resource kind "pods"`) {
		t.Errorf("skiff get pods: err=%v %s", err, out)
	}
	// A name is never a path: this used to delete hello (issue 13, item 10).
	for _, args := range [][]string{
		{"delete", "ksvc", "x/../hello"}, {"delete", "ksvc", "..%2Fhello"}, {"get", "ksvc", "../services/hello"},
		{"delete", "ksvc", "hello", "-n", "x/../default"},
		{"logs", "ksvc", "x/../hello"}, {"logs", "ksvc", "hello", "--revision", "../hello-00001"},
		{"logs", "ksvc", "hello", "-n", "x/../default"},
	} {
		if out, err = run(args...); err == nil || !strings.Contains(out, "invalid name") && !strings.Contains(out, "invalid namespace") {
			t.Errorf("skiff %s: err=%v %s, want a client-side error", strings.Join(args, " "), err, out)
		}
	}
	if out, err = run("get", "ksvc", "hello"); err != nil || !strings.Contains(out, "hello-00001") {
		t.Errorf("hello after the refused deletes: %v %s", err, out)
	}
}
