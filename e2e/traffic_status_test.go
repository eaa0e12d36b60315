package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// TestStoredBadTrafficReachesStatus is issue 21's first defect in `skiff up`: a Service whose
// traffic sums to 90 that got past admission (here: written into the store while skiff up was
// stopped, as an object stored by an older version would be) reports RoutesReady=False and
// Ready=False naming spec.traffic, and its Route keeps serving the traffic it had.
func TestStoredBadTrafficReachesStatus(t *testing.T) {
	dataDir := t.TempDir()
	s := startSkiff(t, dataDir)
	s.apply(serviceYAML("hello", "Skiff", ""))
	s.waitReady("ksvc", "hello", nil)
	s.stop()

	st, err := store.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var svc servingv1.Service
	if err := st.Get(context.Background(), store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "hello"}, &svc); err != nil {
		t.Fatal(err)
	}
	p50, p40, yes := int64(50), int64(40), true
	svc.Spec.Traffic = []servingv1.TrafficTarget{{LatestRevision: &yes, Percent: &p50}, {RevisionName: "hello-00001", Percent: &p40}}
	if err := st.Update(context.Background(), &svc); err != nil {
		t.Fatal(err)
	}
	st.Close()

	s = startSkiff(t, dataDir)
	const want = "Traffic targets sum to 90, want 100: spec.traffic"
	var got servingv1.Service
	eventually(t, 30*time.Second, "RoutesReady=False naming spec.traffic", func() bool {
		raw, err := s.api.Get(context.Background(), api.LookupKind("ksvc"), "default", "hello")
		if err != nil || json.Unmarshal(raw, &got) != nil || got.Status.ObservedGeneration != got.Generation {
			return false
		}
		c := got.Status.GetCondition(servingv1.ServiceConditionRoutesReady)
		return c != nil && c.Status == duck.False && c.Reason == "InvalidSpec" && c.Message == want
	})
	if r := got.Status.GetCondition(duck.ConditionReady); r == nil || r.Status != duck.False || r.Message != want {
		t.Errorf("Ready %+v, want False with %q", r, want)
	}
	// The Route keeps what it had: hello still answers from hello-00001.
	eventually(t, 30*time.Second, "hello still served", func() bool {
		code, r, _ := s.get(helloHost, "/")
		return code == http.StatusOK && r.Revision == "hello-00001"
	})
}
