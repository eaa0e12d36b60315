package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/runtime/oci/ocitest"
)

const echoPkg = "github.com/skiff-dev/skiff/examples/echo"

// echoImage is examples/echo, a static Go binary, on a distroless-like base, built without
// Docker; its image config says TARGET=target, so which image runs shows in the reply, and
// HOST=0.0.0.0, as images written for a network namespace of their own often do.
func echoImage(t *testing.T, target string) v1.Image {
	return ocitest.GoImage(t, echoPkg, func(c *v1.Config) { c.Env = append(c.Env, "TARGET="+target, "HOST=0.0.0.0") })
}

func imageService(name, image, extra string) string {
	return fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %s
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/window: "6s"
    spec:
%s      containers:
        - image: %s
`, name, extra, image)
}

// A plain Knative Service naming an image by tag runs it with runc: the tag is resolved to
// its digest in status, the revision serves through the gateway, scales to zero and comes back
// on the next request, and a retag does not change it (a new revision picks the new image).
// Deleting the Service leaves no container and no mount.
func TestImageByTag(t *testing.T) {
	ocitest.Skip(t)
	host := ocitest.Registry(t)
	v1ref := ocitest.Push(t, host+"/echo:latest", echoImage(t, "v1"))
	dataDir := t.TempDir()
	s := startSkiff(t, dataDir, fastAutoscaler)
	s.apply(imageService("web", host+"/echo:latest", ""))
	s.waitReady("ksvc", "web", nil)

	rev := s.revision("web-00001")
	if cs := rev.Status.ContainerStatuses; len(cs) != 1 || cs[0].ImageDigest != v1ref {
		t.Fatalf("containerStatuses %+v, want the tag resolved to %s", cs, v1ref)
	}
	if code, r, body := s.get("web.default.localhost", "/"); code != 200 || r.Revision != "web-00001" || r.Message != "Hello v1!" {
		t.Fatalf("GET: %d %s, want 200 Hello v1! from web-00001", code, body)
	} else if !strings.HasPrefix(r.Listen, "127.0.0.1:") {
		// The container shares the host's network: it gets HOST=127.0.0.1 as a process does,
		// over the image's HOST=0.0.0.0, so it is reached only through the gateway.
		t.Errorf("the container listens on %q, want 127.0.0.1 (issue 13, item 6)", r.Listen)
	}

	// Retag: the running revision keeps its digest, through a scale to zero and back.
	ocitest.Push(t, host+"/echo:latest", echoImage(t, "v2"))
	eventually(t, 40*time.Second, "web-00001 scaled to zero", func() bool {
		r := s.revision("web-00001")
		return replicas(r.Status.ActualReplicas) == 0 && replicas(r.Status.DesiredReplicas) == 0
	})
	// The last container drains (SIGTERM, grace period) after the scale to zero is decided.
	eventually(t, 20*time.Second, "no container left at zero replicas", func() bool {
		return s.cp.OCIRuntime().Running("default", "web-00001") == 0
	})
	start := time.Now()
	code, r, body := s.get("web.default.localhost", "/")
	if code != 200 || r.Message != "Hello v1!" {
		t.Fatalf("cold request after the retag: %d %s, want 200 Hello v1!", code, body)
	}
	t.Logf("cold start of the image took %s", time.Since(start))
	if cs := s.revision("web-00001").Status.ContainerStatuses; cs[0].ImageDigest != v1ref {
		t.Errorf("the retag changed the revision's digest to %s", cs[0].ImageDigest)
	}

	// A new revision resolves the tag again and runs the new image.
	s.apply(imageService("web", host+"/echo:latest", "      timeoutSeconds: 60\n"))
	eventually(t, 60*time.Second, "web-00002 serving", func() bool {
		code, r, _ := s.get("web.default.localhost", "/")
		return code == 200 && r.Revision == "web-00002"
	})
	if _, r, _ := s.get("web.default.localhost", "/"); r.Message != "Hello v2!" {
		t.Errorf("the new revision runs %q, want Hello v2!", r.Message)
	}
	logs, _ := os.ReadFile(filepath.Join(dataDir, "logs", "default", "web-00001.log"))
	if !strings.Contains(string(logs), "echo: revision \"web-00001\" listening") {
		t.Errorf("the container's output is not in the revision's log:\n%s", logs)
	}

	if err := s.api.Delete(context.Background(), api.LookupKind("ksvc"), "default", "web"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every container gone after the delete", func() bool {
		return s.cp.OCIRuntime().Running("default", "web-00001") == 0 && s.cp.OCIRuntime().Running("default", "web-00002") == 0
	})
	s.stop()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dataDir) {
		t.Errorf("mounts left under the data dir after stop")
	}
}

// Images that cannot be fetched leave the revision not Ready with a condition naming the
// cause, and a registry asking for credentials is answered with the revision's pull secret.
func TestImageFailures(t *testing.T) {
	ocitest.Skip(t)
	host := ocitest.Registry(t)
	ocitest.Push(t, host+"/echo:v1", echoImage(t, "v1"))
	arm := ocitest.Push(t, host+"/arm:v1", ocitest.WithArch(t, echoImage(t, "arm"), "arm64"))
	crash := ocitest.Push(t, host+"/crash:v1", ocitest.GoImage(t, ocitest.TestApp, func(c *v1.Config) { c.Cmd = []string{"-exit", "2"} }))

	// A registry that wants user/pass, in front of the same images.
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		r.URL.Scheme, r.URL.Host = "http", host
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer private.Close()
	privateHost := strings.TrimPrefix(private.URL, "http://")

	s := startSkiff(t, t.TempDir(), func(cfg *controlplane.Config) { cfg.Images.PullBackoff = 200 * time.Millisecond })
	for _, c := range []struct {
		name, image, reason, says string
	}{
		{"missing", host + "/missing:v1", "ContainerMissing", "image not found"},
		{"private", privateHost + "/echo:v1", "ContainerMissing", "refused the credentials"},
		{"arm", arm, "ImagePlatformMismatch", "arm64"},
		{"crash", crash, "ExitCode2", "exiting 2"},
	} {
		s.apply(imageService(c.name, c.image, ""))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, err := apiclient.WaitReady(ctx, s.api, api.LookupKind("ksvc"), "default", c.name)
		cancel()
		if err == nil {
			t.Errorf("%s: Ready, want not Ready", c.name)
			continue
		}
		var rev servingv1.Revision
		eventually(t, 60*time.Second, c.name+" revision condition "+c.reason, func() bool {
			rev = s.revision(c.name + "-00001")
			ready := rev.Status.GetCondition("Ready")
			return ready != nil && ready.Status == "False" && ready.Reason == c.reason
		})
		if msg := rev.Status.GetCondition("Ready").Message; !strings.Contains(msg, c.says) {
			t.Errorf("%s: message %q does not say %q", c.name, msg, c.says)
		}
	}

	// With the pull secret, the private image resolves and runs.
	auth := base64.StdEncoding.EncodeToString([]byte("user:pass"))
	s.apply(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: regcred
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"%s":{"auth":"%s"}}}'
`, privateHost, auth))
	s.apply(imageService("withsecret", privateHost+"/echo:v1", "      imagePullSecrets:\n        - name: regcred\n"))
	s.waitReady("ksvc", "withsecret", nil)
	if code, r, body := s.get("withsecret.default.localhost", "/"); code != 200 || r.Message != "Hello v1!" {
		t.Errorf("private image: %d %s", code, body)
	}
}
