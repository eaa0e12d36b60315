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

// A bring-your-own revision name is used as given; reusing it for a different template is
// reported on the Service rather than silently changing an immutable revision.
func TestBringYourOwnRevisionName(t *testing.T) {
	s := startSkiff(t, t.TempDir())
	byo := func(target string) string {
		return strings.Replace(serviceYAML("byo", target, ""), "  template:\n", "  template:\n    metadata:\n      name: byo-v1\n", 1)
	}
	s.apply(byo("one"))
	s.waitReady("ksvc", "byo", nil)
	if code, r, body := s.get("byo.default.localhost", "/"); code != 200 || r.Revision != "byo-v1" {
		t.Fatalf("GET: %d %s, want 200 from byo-v1", code, body)
	}
	s.apply(byo("two"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := apiclient.WaitReady(ctx, s.api, api.LookupKind("ksvc"), "default", "byo")
	if err == nil || !strings.Contains(err.Error(), `"byo-v1" already exists`) {
		t.Fatalf("got %v, want the Service not ready because byo-v1 already exists", err)
	}
	if code, r, _ := s.get("byo.default.localhost", "/"); code != 200 || r.Message != "Hello one!" {
		t.Errorf("the old revision stopped serving: %d %+v", code, r)
	}
}
