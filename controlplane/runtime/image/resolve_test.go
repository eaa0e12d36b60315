package image

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// noDockerConfig keeps the machine's ~/.docker/config.json out of a test.
var noDockerConfig = authn.NewMultiKeychain()

// fakeRegistry answers a HEAD of repo:latest with img's digest, asking for basic auth first,
// and checks the user agent and credentials. After Knative's resolve_test.go fakeRegistry.
func fakeRegistry(t *testing.T, repo, username, password, ua string, img v1.Image) *httptest.Server {
	manifestPath := fmt.Sprintf("/v2/%s/manifests/latest", repo)
	const basicAuth = "Basic "
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("User-Agent"); !strings.Contains(got, ua) {
			t.Errorf("User-Agent = %q, want it to contain %q", got, ua)
		}
		switch r.URL.Path {
		case "/v2/":
			w.Header().Set("WWW-Authenticate", basicAuth)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		case manifestPath:
			hdr := r.Header.Get("Authorization")
			if want := base64.StdEncoding.EncodeToString([]byte(username + ":" + password)); hdr != basicAuth+want {
				t.Errorf("Authorization = %q, want basic %s:%s", hdr, username, password)
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			if r.Method != http.MethodHead {
				t.Errorf("Method = %v, want HEAD", r.Method)
			}
			mt, _ := img.MediaType()
			sz, _ := img.Size()
			digest, _ := img.Digest()
			w.Header().Set("Content-Type", string(mt))
			w.Header().Set("Content-Length", strconv.FormatInt(sz, 10))
			w.Header().Set("Docker-Content-Digest", digest.String())
		default:
			t.Errorf("unexpected path %s", r.URL.Path)
			http.NotFound(w, r)
		}
	}))
}

func pullSecret(host, username, password string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "secret", Namespace: "user-project"},
		Type:       corev1.SecretTypeDockercfg,
		Data: map[string][]byte{corev1.DockerConfigKey: fmt.Appendf(nil,
			`{%q: {"username": %q, "password": %q}}`, host, username, password)},
	}
}

// From Knative's resolve_test.go TestResolve: a tag resolves to the digest the registry
// serves, authenticated with the pull secret's credentials for that registry.
func TestResolve(t *testing.T) {
	const repo, username, password, ua = "booger/nose", "foo", "bar", "unique-identifier"
	img, err := random.Image(3, 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv := fakeRegistry(t, repo, username, password, ua, img)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	kc, err := Keychain(noDockerConfig, pullSecret(host, username, password))
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{UserAgent: ua}
	got, err := r.Resolve(context.Background(), host+"/"+repo+":latest", kc)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want, _ := img.Digest()
	if got != host+"/"+repo+"@"+want.String() {
		t.Errorf("Resolve = %s, want %s/%s@%s", got, host, repo, want)
	}
}

// From Knative's TestResolveWithDigest: an image by digest is returned as it is, unasked.
func TestResolveWithDigest(t *testing.T) {
	const original = "ubuntu@sha256:e7def0d56013d50204d73bb588d99e0baa7d69ea1bc1157549b898eb67287612"
	got, err := (&Resolver{Transport: failingTransport{}}).Resolve(context.Background(), original, noDockerConfig)
	if err != nil || got != original {
		t.Errorf("Resolve = %q, %v; want %q unchanged", got, err, original)
	}
}

// From Knative's TestResolveWithBadTag.
func TestResolveWithBadTag(t *testing.T) {
	got, err := (&Resolver{Transport: failingTransport{}}).Resolve(context.Background(), "ubuntu%latest", noDockerConfig)
	if err == nil {
		t.Fatalf("Resolve = %q, want an error", got)
	}
	if Reason(err) != ReasonInvalid {
		t.Errorf("reason %s, want %s", Reason(err), ReasonInvalid)
	}
}

// From Knative's TestResolveWithPingFailure and TestResolveWithManifestFailure: a registry
// failing with 500 is an error (reported as unreachable).
func TestResolveRegistryFailures(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"ping": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "Oops", http.StatusInternalServerError) },
		"manifest": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				w.Header().Set("WWW-Authenticate", "Basic ")
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			http.Error(w, "Boom", http.StatusInternalServerError)
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			img := strings.TrimPrefix(srv.URL, "http://") + "/booger/nose:latest"
			got, err := (&Resolver{}).Resolve(context.Background(), img, noDockerConfig)
			if err == nil {
				t.Fatalf("Resolve = %q, want an error", got)
			}
			if Reason(err) != ReasonUnreachable {
				t.Errorf("reason %s (%v), want %s", Reason(err), err, ReasonUnreachable)
			}
		})
	}
}

// From Knative's TestResolveTimeout: a registry that never answers is given up on when the
// context ends.
func TestResolveTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.Header().Set("WWW-Authenticate", "Basic ")
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		<-block
	}))
	defer func() { close(block); srv.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := (&Resolver{}).Resolve(ctx, strings.TrimPrefix(srv.URL, "http://")+"/doesnt/matter:latest", noDockerConfig)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Resolve: %v, want a deadline error", err)
	}
	if Reason(err) != ReasonUnreachable {
		t.Errorf("reason %s, want %s", Reason(err), ReasonUnreachable)
	}
}

// From Knative's TestResolveSkippingRegistry: a registry in the skip set resolves to "", and
// is never asked.
func TestResolveSkippingRegistry(t *testing.T) {
	r := &Resolver{SkipRegistries: []string{"localhost:5000"}, Transport: failingTransport{}}
	got, err := r.Resolve(context.Background(), "localhost:5000/ubuntu:latest", noDockerConfig)
	if err != nil || got != "" {
		t.Fatalf("Resolve = %q, %v; want \"\", nil", got, err)
	}
	// Knative's defaults: kind.local, ko.local, dev.local.
	for _, img := range []string{"kind.local/app:v1", "ko.local/app", "dev.local/team/app:latest"} {
		got, err := (&Resolver{Transport: failingTransport{}}).Resolve(context.Background(), img, noDockerConfig)
		if err != nil || got != "" {
			t.Errorf("Resolve(%s) = %q, %v; want skipped", img, got, err)
		}
	}
}

// The reason names the cause: a missing repository or tag, refused credentials, a registry
// that is not there.
func TestResolveReasons(t *testing.T) {
	srv, host := newRegistry(t, nil)
	push(t, host+"/app:v1", mustImage(t, layerOf(t, file("a", "1"))))
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}()
	authSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", "Basic ")
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	}))
	defer authSrv.Close()
	_ = srv
	for _, c := range []struct{ image, reason string }{
		{host + "/app:v2", ReasonNotFound},
		{host + "/other:v1", ReasonNotFound},
		{strings.TrimPrefix(authSrv.URL, "http://") + "/app:v1", ReasonUnauthorized},
		{closed + "/app:v1", ReasonUnreachable},
	} {
		_, err := (&Resolver{}).Resolve(context.Background(), c.image, noDockerConfig)
		if err == nil || Reason(err) != c.reason {
			t.Errorf("Resolve(%s): %v (reason %s), want reason %s", c.image, err, Reason(err), c.reason)
		}
		if err != nil && !strings.Contains(Message(c.image, err), c.image) {
			t.Errorf("Message %q does not name the image", Message(c.image, err))
		}
	}
}

func TestKeychain(t *testing.T) {
	cfgJSON := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "json", Namespace: "ns"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{
			"https://index.docker.io/v1/": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("hub:pw")) + `"},
			"ghcr.io/team": {"username": "team", "password": "t"},
			"ghcr.io": {"username": "any", "password": "a"}}}`)},
	}
	kc, err := Keychain(noDockerConfig, cfgJSON, pullSecret("ghcr.io", "later", "ignored"))
	if err != nil {
		t.Fatal(err)
	}
	for image, want := range map[string]string{
		"nginx":                 "hub",
		"docker.io/library/app": "hub",
		"ghcr.io/team/app":      "team",
		"ghcr.io/other/app":     "any",
		"quay.io/x/y":           "",
	} {
		ref, err := name.ParseReference(image)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(ref.Context())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != want {
			t.Errorf("%s: user %q, want %q", image, cfg.Username, want)
		}
	}
	bad := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque", Namespace: "ns"}, Type: corev1.SecretTypeOpaque}
	if _, err := Keychain(noDockerConfig, bad); err == nil || !strings.Contains(err.Error(), "ns/opaque") {
		t.Errorf("an Opaque secret as pull secret: %v, want an error naming it", err)
	}
}

// failingTransport fails every request: the code under test must not make one.
type failingTransport struct{}

func (failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("unexpected request %s %s", r.Method, r.URL)
}
