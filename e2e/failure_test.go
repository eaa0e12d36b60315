package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/controlplane/apiclient"
)

// An image the local runtime cannot run fails the Service fast, with the reason, never a hang.
func TestUnrunnableImageFailsFast(t *testing.T) {
	s := startSkiff(t, t.TempDir())
	s.apply(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - image: docker.io/library/nginx:1.27
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := apiclient.WaitReady(ctx, s.api, api.LookupKind("ksvc"), "default", "web")
	if err == nil || !strings.Contains(err.Error(), "RevisionFailed") || !strings.Contains(err.Error(), "nginx") {
		t.Fatalf("got %v, want Ready=False with RevisionFailed naming the image", err)
	}
	if code, _, _ := s.get("web.default.localhost", "/"); code != 404 {
		t.Errorf("a service that never became ready is routed: %d", code)
	}
}
