package run

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/functions/build"
	"github.com/skiff-dev/skiff/functions/funcyaml"
	"github.com/skiff-dev/skiff/functions/template"
)

// syncBuffer is a bytes.Buffer safe for Watch's log writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(url string) string {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Watch serves an edited function on the same port, keeps the previous build serving when a
// build fails, and stops the function when its context ends (func#1863).
func TestWatch(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	dir := filepath.Join(t.TempDir(), "watched")
	f, err := template.Create(template.Options{Dir: dir, Runtime: "python"})
	if err != nil {
		t.Fatal(err)
	}
	funcPy := filepath.Join(dir, "function", "func.py")
	src, _ := os.ReadFile(funcPy)
	// Answer a fixed text, so that an edit shows.
	v1 := strings.Replace(string(src), "'body': body,", "'body': b'version one',", 1)
	if v1 == string(src) {
		t.Fatal("the python template changed: cannot find its response body")
	}
	if err := os.WriteFile(funcPy, []byte(v1), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 10)
	log := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, WatchOptions{
			Run:   Options{Dir: dir, Func: f, Port: 0},
			Build: build.Options{Dir: dir, CacheDir: t.TempDir()},
			Log:   log,
			Ready: func(u string) { urls <- u },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
		if _, ok := Running(dir); ok {
			t.Error("the function still runs after Watch returned")
		}
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("Watch returned before serving: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatalf("the function did not start:\n%s", log.String())
	}
	if got := get(url); got != "version one" {
		t.Fatalf("first answer %q", got)
	}

	edit := func(body string) time.Time {
		t.Helper()
		if err := os.WriteFile(funcPy, []byte(strings.Replace(v1, "version one", body, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	saved := edit("version two")
	deadline := time.Now().Add(30 * time.Second)
	for get(url) != "version two" {
		if time.Now().After(deadline) {
			t.Fatalf("the edit was not served within 30s:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("edited code served %s after the save", time.Since(saved).Round(time.Millisecond))
	select {
	case u := <-urls:
		if u != url {
			t.Errorf("restarted on %s, want the same address %s", u, url)
		}
	case <-time.After(5 * time.Second):
		t.Error("no restart reported")
	}

	// A build that fails leaves the previous build serving.
	if err := os.Remove(filepath.Join(dir, "function", "__init__.py")); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(log.String(), "not restarting, the build failed") {
		if time.Now().After(deadline) {
			t.Fatalf("the failed build was not reported:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := get(url); got != "version two" {
		t.Errorf("after a failed build the function answers %q, want the previous build's answer", got)
	}

	// A change to func.yaml is read again.
	if err := os.WriteFile(filepath.Join(dir, "function", "__init__.py"), []byte("from .func import new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	y, _ := os.ReadFile(filepath.Join(dir, funcyaml.FileName))
	if err := os.WriteFile(filepath.Join(dir, funcyaml.FileName), append(y, []byte("bogus: 1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(log.String(), `not restarting: `) {
		if time.Now().After(deadline) {
			t.Fatalf("a bad func.yaml was not reported:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
