package apiclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func versionServer(t *testing.T, gitVersion string) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"major":"1","minor":"37","gitVersion":"` + gitVersion + `"}`))
	}))
	t.Cleanup(hs.Close)
	return hs
}

// `skiff kubeconfig` adds a context for the running skiff up to an existing kubeconfig,
// keeping the others, with no credentials; client-go then reaches the API with it.
func TestWriteKubeconfig(t *testing.T) {
	hs := versionServer(t, "v1.37.0+skiff")
	path := filepath.Join(t.TempDir(), ".kube", "config")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	existing := `apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://prod.example.com"}}]
users: [{name: prod, user: {token: secret}}]
contexts: [{name: prod, context: {cluster: prod, user: prod}}]
current-context: prod
`
	if err := os.WriteFile(path, []byte(existing), 0o600); err != nil {
		t.Fatal(err)
	}
	name, err := New(hs.URL).WriteKubeconfig(context.Background(), path, KubeconfigOptions{Namespace: "team", SetCurrent: true})
	if err != nil || name != "skiff" {
		t.Fatalf("write: %q %v", name, err)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "skiff" || cfg.Contexts["prod"] == nil || cfg.AuthInfos["prod"].Token != "secret" {
		t.Errorf("the other context was not kept: %+v", cfg)
	}
	ctx := cfg.Contexts["skiff"]
	if ctx == nil || ctx.Namespace != "team" || cfg.Clusters["skiff"].Server != hs.URL || cfg.AuthInfos["skiff"].Token != "" || cfg.AuthInfos["skiff"].ClientCertificate != "" {
		t.Errorf("skiff context: %+v %+v %+v", ctx, cfg.Clusters["skiff"], cfg.AuthInfos["skiff"])
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil || rc.Host != hs.URL {
		t.Fatalf("client-go config from it: %v %v", rc, err)
	}
	// Written again (skiff up on another address): replaced, not duplicated.
	other := versionServer(t, "v1.37.0+skiff")
	if _, err := New(other.URL).WriteKubeconfig(context.Background(), path, KubeconfigOptions{}); err != nil {
		t.Fatal(err)
	}
	if cfg, _ = clientcmd.LoadFromFile(path); cfg.Clusters["skiff"].Server != other.URL || len(cfg.Contexts) != 2 {
		t.Errorf("rewritten: %+v", cfg.Clusters)
	}
}

// Only skiff up's API gets a context: another server (a real cluster) is refused, and
// nothing running is an error saying so.
func TestKubeconfigNeedsSkiff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	kube := versionServer(t, "v1.37.2")
	if _, err := New(kube.URL).WriteKubeconfig(context.Background(), path, KubeconfigOptions{}); err == nil || !strings.Contains(err.Error(), "is not skiff up's API") {
		t.Errorf("a Kubernetes API server: %v", err)
	}
	if _, err := New("127.0.0.1:1").WriteKubeconfig(context.Background(), path, KubeconfigOptions{}); err == nil || !strings.Contains(err.Error(), "is `skiff up` running?") {
		t.Errorf("nothing running: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a kubeconfig was written anyway: %v", err)
	}
}
