package build

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// authRegistry is an in-process registry that wants basic auth user:pass, answering 401 with
// a Basic challenge otherwise, as a private registry does.
func authRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// Pushes authenticate from the docker config (DOCKER_CONFIG), an explicit auth file, or
// --username/--password; without credentials the registry's 401 is the error.
func TestPushCredentials(t *testing.T) {
	host := authRegistry(t, "alice", "s3cret")
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := host + "/fns/hello:latest"
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // an empty docker config: no credentials
	if _, err := Push(ctx, img, ref, Credentials{}); err == nil || !strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("push without credentials: %v, want the registry's 401", err)
	}
	if _, err := Push(ctx, img, ref, Credentials{Username: "alice", Password: "wrong"}); err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	if d, err := Push(ctx, img, ref, Credentials{Username: "alice", Password: "s3cret"}); err != nil || !strings.HasPrefix(d.String(), host+"/fns/hello@sha256:") {
		t.Fatalf("push with --username/--password: %v %v", d, err)
	}
	cfg := `{"auths":{"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("alice:s3cret")) + `"}}}`
	authFile := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(authFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, img, ref, Credentials{AuthFile: authFile}); err != nil {
		t.Fatalf("push with --registry-authfile: %v", err)
	}
	dockerDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dockerDir)
	if _, err := Push(ctx, img, ref, Credentials{}); err != nil {
		t.Fatalf("push with the docker config's credentials: %v", err)
	}
	if _, err := Push(ctx, img, ref, Credentials{Username: "alice"}); err == nil || !strings.Contains(err.Error(), "--username and --password go together") {
		t.Errorf("username without password: %v", err)
	}
}
