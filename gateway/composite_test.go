package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// forwardedComposite is the composite filter the control plane sends for the
// forwarded Wasm filter (controlplane/xds ForwardedConditions, written out here:
// the gateway knows the control plane only over xDS): an ExtensionWithMatcher
// around a Composite, running the filter when X-Forwarded-For contains ',' or ':'
// or X-Forwarded-Host is not empty.
func forwardedComposite(t testing.TB) *hcmv3.HttpFilter {
	pred := func(name string, sm *xdsmatcherv3.StringMatcher) *xdsmatcherv3.Matcher_MatcherList_Predicate {
		return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_{
			SinglePredicate: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate{
				Input:   &xdscorev3.TypedExtensionConfig{Name: "request-headers", TypedConfig: mustAny(t, &matcherv3.HttpRequestHeaderMatchInput{HeaderName: name})},
				Matcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: sm},
			},
		}}
	}
	contains := func(v string) *xdsmatcherv3.StringMatcher {
		return &xdsmatcherv3.StringMatcher{MatchPattern: &xdsmatcherv3.StringMatcher_Contains{Contains: v}}
	}
	nonEmpty := &xdsmatcherv3.StringMatcher{MatchPattern: &xdsmatcherv3.StringMatcher_SafeRegex{SafeRegex: &xdsmatcherv3.RegexMatcher{
		EngineType: &xdsmatcherv3.RegexMatcher_GoogleRe2{GoogleRe2: &xdsmatcherv3.RegexMatcher_GoogleRE2{}}, Regex: ".+",
	}}}
	wasm := wasmFilter(t, "skiff.forwarded", "forwarded", "")
	efa := &compositev3.ExecuteFilterAction{TypedConfig: &corev3.TypedExtensionConfig{Name: "skiff.forwarded", TypedConfig: wasm.GetTypedConfig()}}
	ewm := &matchingv3.ExtensionWithMatcher{
		ExtensionConfig: &corev3.TypedExtensionConfig{Name: "composite", TypedConfig: mustAny(t, &compositev3.Composite{})},
		XdsMatcher: &xdsmatcherv3.Matcher{MatcherType: &xdsmatcherv3.Matcher_MatcherList_{MatcherList: &xdsmatcherv3.Matcher_MatcherList{
			Matchers: []*xdsmatcherv3.Matcher_MatcherList_FieldMatcher{{
				Predicate: &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_OrMatcher{
					OrMatcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_PredicateList{Predicate: []*xdsmatcherv3.Matcher_MatcherList_Predicate{
						pred("x-forwarded-for", contains(",")), pred("x-forwarded-for", contains(":")), pred("x-forwarded-host", nonEmpty),
					}},
				}},
				OnMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{
					Action: &xdscorev3.TypedExtensionConfig{Name: "composite-action", TypedConfig: mustAny(t, efa)},
				}},
			}},
		}}},
	}
	if err := ewm.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	return &hcmv3.HttpFilter{Name: "skiff.forwarded", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, ewm)}}
}

// TestCompositeRunsWasmOnlyOnMatch runs the forwarded Wasm filter through the
// composite filter: matched requests get Knative's Forwarded header, the others
// never reach the filter (no Forwarded: the test's routes have no formatter), and
// delegation_success counts the matched ones.
func TestCompositeRunsWasmOnlyOnMatch(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	c.listeners = []types.Resource{httpListener(t, listenerName, withWasmFirst(forwardedComposite(t)), func(h *hcmv3.HttpConnectionManager) {
		h.UseRemoteAddress = wrapperspb.Bool(true)
	})}
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	send := func(headers ...string) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, g.url(t, "/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "tag-hello.default.localhost"
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := g.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return strings.Join(b1.lastRequest().Header.Values("Forwarded"), "|")
	}
	const success = "http." + listenerName + ".composite.delegation_success"
	if got := send(); got != "" {
		t.Errorf("plain request: Forwarded = %q, want none (the filter must not run)", got)
	}
	if n := g.stat(t, success); n != 0 {
		t.Errorf("%s = %d after an unmatched request", success, n)
	}
	if got, want := send("X-Forwarded-For", "1.2.3.4"), "for=1.2.3.4;proto=http, for=127.0.0.1"; got != want {
		t.Errorf("with X-Forwarded-For: Forwarded = %q, want %q", got, want)
	}
	if got, want := send("X-Forwarded-Host", "example.com"), "for=127.0.0.1;host=example.com;proto=http"; got != want {
		t.Errorf("with X-Forwarded-Host: Forwarded = %q, want %q", got, want)
	}
	if got, want := send("X-Forwarded-For", "::1", "Forwarded", "for=a"), "for=a"; got != want {
		t.Errorf("with Forwarded: Forwarded = %q, want the client's %q", got, want)
	}
	if n := g.stat(t, success); n != 3 {
		t.Errorf("%s = %d, want 3", success, n)
	}
}

// TestCompositeUnsupportedNACKed: a composite filter the gateway cannot run is
// NACKed with the reason, and the last good configuration keeps serving.
func TestCompositeUnsupportedNACKed(t *testing.T) {
	b1 := newBackend(t, "v1", false, nil)
	b2 := newBackend(t, "v2", false, nil)
	x := startXDS(t)
	c := baseConfig(t, b1, b2)
	x.set(t, c)
	g := startGateway(t, x, false)
	g.waitReady(t)

	bad := c
	ewm := &matchingv3.ExtensionWithMatcher{
		ExtensionConfig: &corev3.TypedExtensionConfig{Name: "composite", TypedConfig: mustAny(t, &compositev3.Composite{})},
		XdsMatcher: &xdsmatcherv3.Matcher{MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
			Input: &xdscorev3.TypedExtensionConfig{Name: "request-headers", TypedConfig: mustAny(t, &matcherv3.HttpRequestHeaderMatchInput{HeaderName: "x"})},
			TreeType: &xdsmatcherv3.Matcher_MatcherTree_ExactMatchMap{ExactMatchMap: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{
				Map: map[string]*xdsmatcherv3.Matcher_OnMatch{"y": {OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{
					Action: &xdscorev3.TypedExtensionConfig{Name: "a", TypedConfig: mustAny(t, &compositev3.ExecuteFilterAction{
						TypedConfig: &corev3.TypedExtensionConfig{Name: "f", TypedConfig: mustAny(t, &compositev3.Composite{})},
					})},
				}}},
			}},
		}}},
	}
	f := &hcmv3.HttpFilter{Name: "c", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, ewm)}}
	bad.listeners = []types.Resource{httpListener(t, listenerName, withWasmFirst(f))}
	before := len(x.nackList())
	x.set(t, bad)
	eventually(t, 5*time.Second, func() bool {
		for _, n := range x.nackList()[before:] {
			if strings.Contains(n, "xds_matcher: only matcher_list is supported") {
				return true
			}
		}
		return false
	}, "NACK naming the matcher_tree")
	if r := g.do(t, "tag-hello.default.localhost", "/"); r.status != 200 || r.body != "v1" {
		t.Fatalf("after the NACK: %d %q", r.status, r.body)
	}
}
