package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/client/apiclient"
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

// A bring-your-own revision name is used as given; re-applying the same manifest is a no-op,
// and changing the template while keeping the name is refused when applied, as by Knative's
// webhook (revision_validation.go VerifyNameChange), while the old revision keeps serving.
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
	s.apply(byo("one"))
	err := s.tryApply(byo("two"))
	if err == nil || !strings.Contains(err.Error(), "Saw the following changes without a name change (-old +new): spec.template.metadata.name") {
		t.Fatalf("changed template under the same name: %v, want it refused naming spec.template.metadata.name", err)
	}
	if code, r, _ := s.get("byo.default.localhost", "/"); code != 200 || r.Message != "Hello one!" {
		t.Errorf("the old revision stopped serving: %d %+v", code, r)
	}
}
