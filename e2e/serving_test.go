// Package e2e runs Skiff end to end on loopback: the control plane and the gateway talk
// real xDS over gRPC, requests go over HTTP through the gateway to real app processes.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/store"
)

const helloHost = "hello.default.localhost"

func TestServiceLifecycle(t *testing.T) {
	dataDir := t.TempDir()
	s := startSkiff(t, dataDir)

	// 1. A new Service becomes Ready and hello-00001 answers.
	s.apply(serviceYAML("hello", "Skiff", ""))
	var svc servingv1.Service
	s.waitReady("ksvc", "hello", &svc)
	if svc.Status.URL != "http://"+helloHost {
		t.Errorf("status.url = %q, want http://%s", svc.Status.URL, helloHost)
	}
	if svc.Status.LatestReadyRevisionName != "hello-00001" {
		t.Errorf("latestReadyRevisionName = %q, want hello-00001", svc.Status.LatestReadyRevisionName)
	}
	for range 10 {
		code, r, body := s.get(helloHost, "/")
		if code != http.StatusOK || r.Revision != "hello-00001" || r.Message != "Hello Skiff!" {
			t.Fatalf("GET %s: %d %s, want 200 from hello-00001 saying Hello Skiff!", helloHost, code, body)
		}
	}
	// The Host header may carry the listener's port, as curl sends it.
	if code, r, body := s.get(helloHost+":8080", "/"); code != http.StatusOK || r.Revision != "hello-00001" {
		t.Fatalf("GET with port in Host: %d %s", code, body)
	}

	// 2. A template change makes hello-00002, which takes all traffic once Ready.
	s.apply(serviceYAML("hello", "Skiff v2", ""))
	s.waitReady("ksvc", "hello", &svc)
	if svc.Status.LatestReadyRevisionName != "hello-00002" {
		t.Fatalf("latestReadyRevisionName = %q, want hello-00002", svc.Status.LatestReadyRevisionName)
	}
	for range 20 {
		if code, r, body := s.get(helloHost, "/"); code != http.StatusOK || r.Revision != "hello-00002" {
			t.Fatalf("after update: %d %s, want 200 from hello-00002", code, body)
		}
	}
	// Knative's labeler: the Route is listed on the revision it routes to, which is active;
	// the one it left is in reserve, no longer listing it.
	eventually(t, 30*time.Second, "hello-00001 in reserve, hello-00002 active", func() bool {
		old, cur := s.revision("hello-00001"), s.revision("hello-00002")
		return old.Labels[servingv1.RoutingStateLabel] == servingv1.RoutingStateReserve && old.Annotations[servingv1.RoutesAnnotation] == "" &&
			cur.Labels[servingv1.RoutingStateLabel] == servingv1.RoutingStateActive && cur.Annotations[servingv1.RoutesAnnotation] == "hello" &&
			old.Annotations[servingv1.RoutingStateModifiedAnnotation] != ""
	})

	// 3. A 50/50 split with tags: both revisions answer the main host; each tag only its own.
	s.apply(serviceYAML("hello", "Skiff v2", `  traffic:
    - tag: current
      revisionName: hello-00001
      percent: 50
    - tag: candidate
      latestRevision: true
      percent: 50
`))
	s.waitReady("ksvc", "hello", &svc)
	urls := map[string]string{}
	for _, tt := range svc.Status.Traffic {
		urls[tt.Tag] = tt.URL + " " + tt.RevisionName
	}
	if urls["current"] != "http://current-hello.default.localhost hello-00001" ||
		urls["candidate"] != "http://candidate-hello.default.localhost hello-00002" {
		t.Errorf("status.traffic urls = %v", urls)
	}
	counts := map[string]int{}
	for range 400 {
		code, r, body := s.get(helloHost, "/")
		if code != http.StatusOK {
			t.Fatalf("split: %d %s", code, body)
		}
		counts[r.Revision]++
	}
	for _, rev := range []string{"hello-00001", "hello-00002"} {
		if n := counts[rev]; n < 140 || n > 260 {
			t.Errorf("%s answered %d of 400 requests, want 35–65%%: %v", rev, n, counts)
		}
	}
	for tag, rev := range map[string]string{"candidate": "hello-00002", "current": "hello-00001"} {
		for range 30 {
			if code, r, body := s.get(tag+"-"+helloHost, "/"); code != http.StatusOK || r.Revision != rev {
				t.Fatalf("tag %s: %d %s, want only %s", tag, code, body, rev)
			}
		}
	}

	// 4. A bad Service is refused with the field named, and nothing changes.
	err := s.tryApply(serviceYAML("hello", "Skiff v3", `  traffic:
    - revisionName: hello-00001
      percent: 40
    - latestRevision: true
      percent: 50
`))
	var apiErr *apiclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "spec.traffic") {
		t.Fatalf("percent sum 90: got %v, want 422 naming spec.traffic", err)
	}
	if !strings.Contains(err.Error(), "sum to 90") {
		t.Errorf("error %q does not give the reason", err)
	}
	if code, _, _ := s.get(helloHost, "/"); code != http.StatusOK {
		t.Errorf("after refused apply: %d", code)
	}

	// 5. An unknown host is not routed.
	if code, _, _ := s.get("nope.default.localhost", "/"); code != http.StatusNotFound {
		t.Errorf("unknown host: %d, want 404", code)
	}

	// 6. A restart keeps the resources and serves them again. Meanwhile a Service whose
	// traffic sums to 90 got into the store past admission (as one stored by an older
	// version would have): see storeBadTraffic.
	s.stop()
	storeBadTraffic(t, dataDir)
	s = startSkiff(t, dataDir)
	s.waitReady("ksvc", "hello", &svc)
	counts = map[string]int{}
	eventually(t, 30*time.Second, "both revisions serving after restart", func() bool {
		code, r, _ := s.get(helloHost, "/")
		if code == http.StatusOK {
			counts[r.Revision]++
		}
		return counts["hello-00001"] > 0 && counts["hello-00002"] > 0
	})
	checkBadTraffic(t, s)
}

// storeBadTraffic writes the Service "split90", whose traffic sums to 90, straight into the
// store of a stopped skiff up: issue 21's first defect, an object that got past admission.
func storeBadTraffic(t *testing.T, dataDir string) {
	t.Helper()
	st, err := store.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p50, p40, yes := int64(50), int64(40), true
	docs, err := apiclient.ReadManifests("-", strings.NewReader(serviceYAML("split90", "bad", "")))
	if err != nil {
		t.Fatal(err)
	}
	var svc servingv1.Service
	if err := json.Unmarshal(docs[0].Data, &svc); err != nil {
		t.Fatal(err)
	}
	svc.Namespace = "default"
	svc.Spec.Traffic = []servingv1.TrafficTarget{{LatestRevision: &yes, Percent: &p50}, {RevisionName: "split90-00001", Percent: &p40}}
	if err := st.Create(context.Background(), &svc); err != nil {
		t.Fatal(err)
	}
}

// checkBadTraffic: the Service stored by storeBadTraffic reports RoutesReady=False and
// Ready=False naming spec.traffic, and no Route is written with its traffic.
func checkBadTraffic(t *testing.T, s *skiff) {
	t.Helper()
	const want = "Traffic targets sum to 90, want 100: spec.traffic"
	var got servingv1.Service
	eventually(t, 30*time.Second, "split90 RoutesReady=False naming spec.traffic", func() bool {
		raw, err := s.api.Get(context.Background(), api.LookupKind("ksvc"), "default", "split90")
		if err != nil || json.Unmarshal(raw, &got) != nil || got.Status.ObservedGeneration != got.Generation {
			return false
		}
		c := got.Status.GetCondition(servingv1.ServiceConditionRoutesReady)
		return c != nil && c.Status == duck.False && c.Reason == "InvalidSpec" && c.Message == want
	})
	if r := got.Status.GetCondition(duck.ConditionReady); r == nil || r.Status != duck.False || r.Message != want {
		t.Errorf("Ready %+v, want False with %q", r, want)
	}
	if _, err := s.api.Get(context.Background(), api.LookupKind("route"), "default", "split90"); err == nil {
		t.Error("a Route was written with the Service's invalid traffic")
	}
}

// Knative's revision garbage collector, set by config-gc: under Knative's defaults (keep 20
// in reserve, 48 hours) three rollouts keep every revision; once config-gc keeps at most one
// revision in reserve with no time limits, the first revision is deleted and the one just
// left in reserve stays. A config-gc that does not parse is refused, naming the key.
func TestRevisionGarbageCollection(t *testing.T) {
	s := startSkiff(t, t.TempDir())
	err := s.tryApply(configMap("config-gc", map[string]string{"max-non-active-revisions": "many"}))
	var apiErr *apiclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "data[max-non-active-revisions]") {
		t.Fatalf("config-gc with max-non-active-revisions: many: got %v, want 422 naming data[max-non-active-revisions]", err)
	}
	var svc servingv1.Service
	for _, msg := range []string{"one", "two", "three"} {
		s.apply(serviceYAML("hello", msg, ""))
		s.waitReady("ksvc", "hello", &svc)
	}
	if code, r, body := s.get(helloHost, "/"); code != http.StatusOK || r.Revision != "hello-00003" {
		t.Fatalf("GET: %d %s, want 200 from hello-00003", code, body)
	}
	eventually(t, 30*time.Second, "hello-00001 and hello-00002 in reserve", func() bool {
		return s.revision("hello-00001").Labels[servingv1.RoutingStateLabel] == servingv1.RoutingStateReserve &&
			s.revision("hello-00002").Labels[servingv1.RoutingStateLabel] == servingv1.RoutingStateReserve
	})
	s.revision("hello-00001") // still there under the defaults
	s.apply(configMap("config-gc", map[string]string{
		"retain-since-create-time": "disabled", "retain-since-last-active-time": "disabled",
		"min-non-active-revisions": "0", "max-non-active-revisions": "1",
	}))
	eventually(t, 30*time.Second, "hello-00001 collected, hello-00002 kept in reserve", func() bool {
		_, err1 := s.api.Get(context.Background(), api.LookupKind("rev"), "default", "hello-00001")
		r2 := s.revision("hello-00002")
		return err1 != nil && r2.Labels[servingv1.RoutingStateLabel] == servingv1.RoutingStateReserve
	})
}

// Knative's three request timeouts of a revision (queue-proxy's timeout handler,
// pkg/http/handler/timeout.go): responseStartTimeoutSeconds answers 504 when the app has
// not started its response in time; idleTimeoutSeconds cuts a response the app stopped
// sending; timeoutSeconds bounds the whole request. Skiff enforces them in the proxy, as
// the route's timeout and its retry policy's per_try_timeout and per_try_idle_timeout.
func TestRevisionTimeouts(t *testing.T) {
	s := startSkiff(t, t.TempDir())
	s.apply(serviceYAML("slow", "x", "      timeoutSeconds: 4\n      responseStartTimeoutSeconds: 1\n      idleTimeoutSeconds: 2\n"))
	var svc servingv1.Service
	s.waitReady("ksvc", "slow", &svc)
	host := "slow.default.localhost"

	code, _, body := s.get(host, "/?sleep=3000")
	if code != http.StatusGatewayTimeout {
		t.Errorf("app answering after 3 s, responseStartTimeoutSeconds 1: %d %q, want 504", code, body)
	}
	if code, r, body := s.get(host, "/?sleep=500"); code != http.StatusOK || r.Revision != "slow-00001" {
		t.Errorf("app answering in 0.5 s: %d %s, want 200", code, body)
	}
	// Events every 500 ms for ~2.5 s: started at once and never idle for 2 s, so within
	// both, though longer than the response-start timeout.
	code, _, body = s.get(host, "/events?n=6&gap=500")
	if code != http.StatusOK || strings.Count(body, "data: ") != 6 {
		t.Errorf("a stream with 0.5 s gaps: %d, %d events, want 200 and all 6", code, strings.Count(body, "data: "))
	}
	// A 3 s gap after the first event: cut after 2 s idle, with the first event delivered.
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.http+"/events?n=2&gap=3000", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Count(string(b), "data: ") != 1 || err == nil {
		t.Errorf("a stream idle for 3 s, idleTimeoutSeconds 2: %d %q, %v; want the first event, then the response cut", resp.StatusCode, b, err)
	}
}

// Knative's test/e2e/tagheader TestTagHeaderBasedRouting, with config-features'
// tag-header-based-routing Enabled: a request to the default host naming a tag in
// Knative-Serving-Tag reaches that tag's revision, one naming no tag of the Route or none
// at all the default split; the app sees Knative-Serving-Default-Route: true on those, and
// Knative-Serving-Tag on requests to the tag's own host.
func TestTagHeaderBasedRouting(t *testing.T) {
	s := startSkiff(t, t.TempDir(), func(cfg *controlplane.Config) {
		a := config.Default()
		a.Features.TagHeaderBasedRouting = config.Enabled
		cfg.Admission = a
	})
	var svc servingv1.Service
	s.apply(serviceYAML("hello", "one", ""))
	s.waitReady("ksvc", "hello", &svc)
	s.apply(taggedHelloYAML())
	eventually(t, 30*time.Second, "hello-00002 serving the default host", func() bool {
		_, r, _ := s.get(helloHost, "/")
		return r.Revision == "hello-00002"
	})
	s.waitReady("ksvc", "hello", &svc)
	for _, tc := range []struct {
		name, host, tag, wantRevision, wantDefaultRoute, wantTag string
	}{
		{"correct header", helloHost, "rev1", "hello-00001", "", "rev1"},
		{"tag the Route does not have", helloHost, "rev-wrong", "hello-00002", "true", "rev-wrong"},
		{"no header", helloHost, "", "hello-00002", "true", ""},
		{"the tag's host", "rev1-hello.default.localhost", "", "hello-00001", "", "rev1"},
		{"the tag's host, another tag named", "rev1-hello.default.localhost", "other", "hello-00001", "", "rev1"},
	} {
		header := map[string]string{}
		if tc.tag != "" {
			header["Knative-Serving-Tag"] = tc.tag
		}
		r := s.echo(tc.host, header)
		if r.Revision != tc.wantRevision || r.Headers["Knative-Serving-Default-Route"] != tc.wantDefaultRoute || r.Headers["Knative-Serving-Tag"] != tc.wantTag {
			t.Errorf("%s: revision %s, Knative-Serving-Default-Route %q, Knative-Serving-Tag %q; want %s, %q, %q", tc.name,
				r.Revision, r.Headers["Knative-Serving-Default-Route"], r.Headers["Knative-Serving-Tag"], tc.wantRevision, tc.wantDefaultRoute, tc.wantTag)
		}
	}
}

// TestGradualRollout: with the Service annotation serving.knative.dev/rollout-duration (which
// its Route carries, as Knative's MakeRoute copies it) a new revision takes the traffic
// gradually, as Knative's route reconciler rolls it out: for a while both revisions answer,
// the old one still after the new one first did, the Route's IngressReady is Unknown with
// reason RolloutInProgress meanwhile, and once the Service is Ready again only the new
// revision answers.
func TestGradualRollout(t *testing.T) {
	s := startSkiff(t, t.TempDir())
	const host = "roll.default.localhost"
	manifest := func(target string) string {
		return strings.Replace(serviceYAML("roll", target, ""), "  name: roll\n",
			"  name: roll\n  annotations:\n    serving.knative.dev/rollout-duration: \"4s\"\n", 1)
	}
	var svc servingv1.Service
	s.apply(manifest("one"))
	s.waitReady("ksvc", "roll", &svc)

	s.apply(manifest("two"))
	var sawNew, oldAfterNew, inProgress bool
	counts := map[string]int{}
	eventually(t, 60*time.Second, "roll-00001 answering after roll-00002 did, during a rollout", func() bool {
		for range 20 {
			code, r, body := s.get(host, "/")
			if code != http.StatusOK {
				t.Fatalf("GET %s during the rollout: %d %s", host, code, body)
			}
			counts[r.Revision]++
			switch r.Revision {
			case "roll-00002":
				sawNew = true
			case "roll-00001":
				oldAfterNew = oldAfterNew || sawNew
			}
		}
		if sawNew && !inProgress {
			inProgress = routeIngressReason(t, s, "roll") == "RolloutInProgress"
		}
		return oldAfterNew && inProgress
	})
	t.Logf("answers while rolling out: %v", counts)

	s.waitReady("ksvc", "roll", &svc)
	if len(svc.Status.Traffic) != 1 || svc.Status.Traffic[0].RevisionName != "roll-00002" || *svc.Status.Traffic[0].Percent != 100 {
		t.Fatalf("status.traffic after the rollout: %+v, want all to roll-00002", svc.Status.Traffic)
	}
	for range 50 {
		if code, r, body := s.get(host, "/"); code != http.StatusOK || r.Revision != "roll-00002" {
			t.Fatalf("after the rollout: %d %s, want only roll-00002", code, body)
		}
	}
}

// routeIngressReason is the reason of a Route's IngressReady condition.
func routeIngressReason(t *testing.T, s *skiff, name string) string {
	t.Helper()
	raw, err := s.api.Get(context.Background(), api.LookupKind("route"), "default", name)
	if err != nil {
		t.Fatalf("get route %s: %v", name, err)
	}
	var r servingv1.Route
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if c := r.Status.GetCondition(servingv1.RouteConditionIngressReady); c != nil {
		return c.Reason
	}
	return ""
}

// Knative's runtime contract headers (test/conformance/runtime/header_test.go,
// TestMustHaveHeadersSet and TestShouldHaveHeadersSet): the app sees a Forwarded header in
// RFC 7239 form, X-Forwarded-For listing the client, X-Forwarded-Proto, and the user's own
// headers as sent; a Forwarded header the client sent is passed on untouched, as
// queue-proxy's shim leaves it.
func TestRuntimeContractHeaders(t *testing.T) {
	s := startSkiff(t, t.TempDir())
	var svc servingv1.Service
	s.apply(serviceYAML("hello", "x", ""))
	s.waitReady("ksvc", "hello", &svc)
	get := func(set map[string]string) map[string]string { return s.echo(helloHost, set).Headers }
	h := get(map[string]string{"This-Was-User-Set": "a value"})
	if got := h["Forwarded"]; got != "for=127.0.0.1;proto=http" {
		t.Errorf("Forwarded = %q, want for=127.0.0.1;proto=http", got)
	}
	if got := h["X-Forwarded-For"]; got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the client, 127.0.0.1", got)
	}
	if got := h["X-Forwarded-Proto"]; got != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want http", got)
	}
	if got := h["This-Was-User-Set"]; got != "a value" {
		t.Errorf("a user's header arrived as %q", got)
	}
	if got := get(map[string]string{"Forwarded": "for=192.0.2.60;proto=https;by=203.0.113.43"})["Forwarded"]; got != "for=192.0.2.60;proto=https;by=203.0.113.43" {
		t.Errorf("the client's Forwarded arrived as %q", got)
	}
}
