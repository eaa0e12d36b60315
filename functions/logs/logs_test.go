package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/client/apiclient"
)

// revAPI lists revisions (of fn, and one of another service).
type revAPI struct {
	mu   sync.Mutex
	revs []string
}

func (a *revAPI) Get(context.Context, *api.Kind, string, string) (json.RawMessage, error) {
	return nil, &apiclient.APIError{Code: 404}
}

func (a *revAPI) List(_ context.Context, k *api.Kind, ns string) ([]json.RawMessage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []json.RawMessage{json.RawMessage(`{"metadata":{"name":"other-00001","labels":{"serving.knative.dev/service":"other"}}}`)}
	for _, r := range a.revs {
		out = append(out, json.RawMessage(fmt.Sprintf(`{"metadata":{"name":%q,"labels":{"serving.knative.dev/service":"fn"}}}`, r)))
	}
	return out, nil
}

func (a *revAPI) Apply(context.Context, apiclient.Document, string) (apiclient.ApplyResult, error) {
	return apiclient.ApplyResult{}, nil
}
func (a *revAPI) Delete(context.Context, *api.Kind, string, string) error { return nil }

func (a *revAPI) add(r string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revs = append(a.revs, r)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func appendLine(t *testing.T, p, line string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}

// The function's revision logs, in revision order, only its own; with follow, appended lines
// (a partial line once it is whole) and a new revision's file.
func TestLocal(t *testing.T) {
	data := t.TempDir()
	logDir := filepath.Join(data, "logs", "default")
	appendLine(t, filepath.Join(logDir, "fn-00001.log"), "[0] one\n[0] two\n")
	appendLine(t, filepath.Join(logDir, "other-00001.log"), "[0] not mine\n")
	a := &revAPI{revs: []string{"fn-00001"}}
	l := &Local{API: a, DataDir: data, Poll: 10 * time.Millisecond}
	var b bytes.Buffer
	if err := l.Stream(context.Background(), &b, "fn", "default", false); err != nil {
		t.Fatal(err)
	}
	if b.String() != "fn-00001 [0] one\nfn-00001 [0] two\n" {
		t.Errorf("logs:\n%s", b.String())
	}
	if err := l.Stream(context.Background(), &b, "nope", "default", false); err == nil || !strings.Contains(err.Error(), "no revisions") {
		t.Errorf("a function with no revisions: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() { done <- l.Stream(ctx, out, "fn", "default", true) }()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("follow did not print %q:\n%s", want, out.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("fn-00001 [0] two\n")
	appendLine(t, filepath.Join(logDir, "fn-00001.log"), "[1] thr")
	appendLine(t, filepath.Join(logDir, "fn-00001.log"), "ee\n")
	waitFor("fn-00001 [1] three\n")
	a.add("fn-00002")
	appendLine(t, filepath.Join(logDir, "fn-00002.log"), "[0] new revision\n")
	waitFor("fn-00002 [0] new revision\n")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("follow: %v", err)
	}
	if strings.Contains(out.String(), "not mine") || strings.Count(out.String(), "[0] one") != 1 {
		t.Errorf("follow printed another function's or repeated lines:\n%s", out.String())
	}
}

func TestFindDataDir(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".skiff", "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	fn := filepath.Join(root, "functions", "hello")
	if err := os.MkdirAll(fn, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(DataDirEnv, "")
	if d, err := FindDataDir("", fn); err != nil || d != filepath.Join(root, ".skiff") {
		t.Errorf("FindDataDir from a function below skiff up's directory: %q %v", d, err)
	}
	if d, err := FindDataDir("/explicit", fn); err != nil || d != "/explicit" {
		t.Errorf("explicit: %q %v", d, err)
	}
	t.Setenv(DataDirEnv, "/from-env")
	if d, _ := FindDataDir("", fn); d != "/from-env" {
		t.Errorf("env: %q", d)
	}
	t.Setenv(DataDirEnv, "")
	if _, err := FindDataDir("", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("nothing to find: %v", err)
	}
}

// In a cluster: the user-container logs of the Service's pods (client-go's fake answers
// "fake logs").
func TestKube(t *testing.T) {
	pod := func(name, svc string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"serving.knative.dev/service": svc}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "user-container"}}},
		}
	}
	k := &Kube{Client: fake.NewClientset(pod("fn-00001-deployment-a", "fn"), pod("other-x", "other"))}
	var b bytes.Buffer
	if err := k.Stream(context.Background(), &b, "fn", "default", time.Now().Add(-time.Minute), false); err != nil {
		t.Fatal(err)
	}
	if b.String() != "fn-00001-deployment-a fake logs\n" {
		t.Errorf("logs %q", b.String())
	}
	if err := k.Stream(context.Background(), &b, "gone", "default", time.Time{}, false); err == nil || !strings.Contains(err.Error(), "no pods") {
		t.Errorf("no pods: %v", err)
	}
}

// With Revision only that revision's lines are printed (skiff logs ksvc NAME --revision R),
// including the proxy's request log lines; a revision the Service does not have is an error.
func TestLocalOneRevision(t *testing.T) {
	data := t.TempDir()
	logDir := filepath.Join(data, "logs", "default")
	appendLine(t, filepath.Join(logDir, "fn-00001.log"), "[0] old\n")
	appendLine(t, filepath.Join(logDir, "fn-00002.log"), "[0] new\n[proxy] [2026-01-01T00:00:00.000Z] \"GET / HTTP/1.1\" 200 - 0 5 1 1 \"-\" \"curl\" \"id\" \"fn.default.localhost\" \"127.0.0.1:9\"\n")
	a := &revAPI{revs: []string{"fn-00001", "fn-00002"}}
	var b bytes.Buffer
	if err := (&Local{API: a, DataDir: data, Revision: "fn-00002"}).Stream(context.Background(), &b, "fn", "default", false); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "old") || !strings.Contains(b.String(), "fn-00002 [0] new\nfn-00002 [proxy] [2026-01-01T00:00:00.000Z] \"GET / HTTP/1.1\" 200") {
		t.Errorf("logs of fn-00002:\n%s", b.String())
	}
	err := (&Local{API: a, DataDir: data, Revision: "other-00001"}).Stream(context.Background(), &b, "fn", "default", false)
	if err == nil || !strings.Contains(err.Error(), "no revision other-00001") {
		t.Errorf("a revision of another Service: %v", err)
	}
}
