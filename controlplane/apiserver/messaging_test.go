package apiserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// An InMemoryChannel's spec.subscribers are the Subscription reconciler's: applying the
// channel's manifest again (a PUT naming the resourceVersion, as `skiff apply` replaces) or
// patching it keeps them, where a replace would otherwise unsubscribe everyone.
func TestReapplyKeepsChannelSubscribers(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := newServer(t, s)
	const path = "/apis/messaging.knative.dev/v1/namespaces/default/inmemorychannels/ch"
	const manifest = "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata:\n  name: ch\n"
	if code, _, body := apply(t, srv, path, manifest); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	ctx := context.Background()
	key := store.Key{Kind: messagingv1.KindInMemoryChannel, Namespace: "default", Name: "ch"}
	var imc messagingv1.InMemoryChannel
	if err := s.Get(ctx, key, &imc); err != nil {
		t.Fatal(err)
	}
	imc.Spec.Subscribers = []messagingv1.SubscriberSpec{{UID: "u1", SubscriberURI: "http://a.default.svc.cluster.local"}}
	if err := s.Update(ctx, &imc); err != nil { // as the Subscription reconciler writes it
		t.Fatal(err)
	}
	kept := func(what string) {
		t.Helper()
		var got messagingv1.InMemoryChannel
		if err := s.Get(ctx, key, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Spec.Subscribers) != 1 || got.Spec.Subscribers[0].UID != "u1" {
			t.Errorf("after %s: spec.subscribers %+v, want the reconciler's one", what, got.Spec.Subscribers)
		}
	}
	if code, _, body := apply(t, srv, path, manifest); code != http.StatusOK {
		t.Fatalf("re-apply: %d %s", code, body)
	}
	kept("re-applying the manifest")
	req := `{"metadata":{"labels":{"a":"b"}},"spec":{"subscribers":null}}`
	r := httptest.NewRequest(http.MethodPatch, path, strings.NewReader(req))
	r.Header.Set("Content-Type", "application/merge-patch+json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		t.Fatalf("patch: %d %s", rec.Code, rec.Body)
	}
	kept("a merge patch")
}
