package composite_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/filter/composite"
	"github.com/skiff-dev/skiff/gateway/stats"
)

// stamp is a delegated test filter: it adds X-Ran: <its name> to the request.
type stamp struct{}

func (stamp) ConfigTypes() []string { return []string{"type.googleapis.com/google.protobuf.Struct"} }
func (stamp) New(_ filter.BuildContext, name string, _ *anypb.Any) (filter.Filter, error) {
	return stampFilter(name), nil
}

type stampFilter string

func (s stampFilter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Add("X-Ran", string(s))
		next.ServeHTTP(w, r)
	})
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func header(t testing.TB, name string, sm *xdsmatcherv3.StringMatcher) *xdsmatcherv3.Matcher_MatcherList_Predicate {
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_{
		SinglePredicate: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate{
			Input:   &xdscorev3.TypedExtensionConfig{Name: "request-headers", TypedConfig: mustAny(t, &matcherv3.HttpRequestHeaderMatchInput{HeaderName: name})},
			Matcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: sm},
		},
	}}
}

func or(ps ...*xdsmatcherv3.Matcher_MatcherList_Predicate) *xdsmatcherv3.Matcher_MatcherList_Predicate {
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_OrMatcher{OrMatcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_PredicateList{Predicate: ps}}}
}

func and(ps ...*xdsmatcherv3.Matcher_MatcherList_Predicate) *xdsmatcherv3.Matcher_MatcherList_Predicate {
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_AndMatcher{AndMatcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_PredicateList{Predicate: ps}}}
}

func not(p *xdsmatcherv3.Matcher_MatcherList_Predicate) *xdsmatcherv3.Matcher_MatcherList_Predicate {
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_NotMatcher{NotMatcher: p}}
}

func execute(t testing.TB, filterName string) *xdsmatcherv3.Matcher_OnMatch {
	efa := &compositev3.ExecuteFilterAction{TypedConfig: &corev3.TypedExtensionConfig{Name: filterName, TypedConfig: mustAny(t, &structpb.Struct{})}}
	return &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{Name: "composite-action", TypedConfig: mustAny(t, efa)}}}
}

func exact(v string) *xdsmatcherv3.StringMatcher {
	return &xdsmatcherv3.StringMatcher{MatchPattern: &xdsmatcherv3.StringMatcher_Exact{Exact: v}}
}

// config is an ExtensionWithMatcher around a Composite with m.
func config(t testing.TB, m *xdsmatcherv3.Matcher) *anypb.Any {
	return mustAny(t, &matchingv3.ExtensionWithMatcher{
		ExtensionConfig: &corev3.TypedExtensionConfig{Name: "composite", TypedConfig: mustAny(t, &compositev3.Composite{})},
		XdsMatcher:      m,
	})
}

func list(on *xdsmatcherv3.Matcher_OnMatch, fms ...*xdsmatcherv3.Matcher_MatcherList_FieldMatcher) *xdsmatcherv3.Matcher {
	return &xdsmatcherv3.Matcher{OnNoMatch: on, MatcherType: &xdsmatcherv3.Matcher_MatcherList_{MatcherList: &xdsmatcherv3.Matcher_MatcherList{Matchers: fms}}}
}

func field(p *xdsmatcherv3.Matcher_MatcherList_Predicate, on *xdsmatcherv3.Matcher_OnMatch) *xdsmatcherv3.Matcher_MatcherList_FieldMatcher {
	return &xdsmatcherv3.Matcher_MatcherList_FieldMatcher{Predicate: p, OnMatch: on}
}

func build(t testing.TB, cfg *anypb.Any, st *stats.Store) (filter.Filter, error) {
	bc := filter.BuildContext{StatPrefix: "l", Stats: st, Registry: filter.NewRegistry(stamp{}, composite.NewFactory())}
	return composite.NewFactory().New(bc, "c", cfg)
}

// ran sends a request with headers (name, value pairs) through f and returns
// the X-Ran values the terminal handler saw.
func ran(f filter.Filter, headers ...string) string {
	var got string
	h := f.Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = strings.Join(r.Header.Values("X-Ran"), ",")
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	h.ServeHTTP(httptest.NewRecorder(), r)
	return got
}

func TestMatcherSubset(t *testing.T) {
	sm := func(set func(*xdsmatcherv3.StringMatcher), fold bool) *xdsmatcherv3.StringMatcher {
		s := &xdsmatcherv3.StringMatcher{IgnoreCase: fold}
		set(s)
		return s
	}
	prefix := sm(func(s *xdsmatcherv3.StringMatcher) { s.MatchPattern = &xdsmatcherv3.StringMatcher_Prefix{Prefix: "ab"} }, true)
	suffix := sm(func(s *xdsmatcherv3.StringMatcher) { s.MatchPattern = &xdsmatcherv3.StringMatcher_Suffix{Suffix: "yz"} }, false)
	contains := sm(func(s *xdsmatcherv3.StringMatcher) {
		s.MatchPattern = &xdsmatcherv3.StringMatcher_Contains{Contains: ","}
	}, false)
	regex := sm(func(s *xdsmatcherv3.StringMatcher) {
		s.MatchPattern = &xdsmatcherv3.StringMatcher_SafeRegex{SafeRegex: &xdsmatcherv3.RegexMatcher{
			EngineType: &xdsmatcherv3.RegexMatcher_GoogleRe2{GoogleRe2: &xdsmatcherv3.RegexMatcher_GoogleRE2{}}, Regex: "[0-9]+",
		}}
	}, false)
	m := list(execute(t, "none"),
		field(or(header(t, "x-a", prefix), header(t, "X-B", suffix)), execute(t, "first")),
		field(and(header(t, "x-c", contains), not(header(t, "x-d", exact("no")))), execute(t, "second")),
		field(header(t, "x-e", regex), execute(t, "third")),
	)
	st := stats.NewStore()
	f, err := build(t, config(t, m), st)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		headers []string
		want    string
	}{
		{[]string{"X-A", "ABc"}, "first"},            // prefix, ignore_case
		{[]string{"X-B", "xyz"}, "first"},            // suffix
		{[]string{"X-B", "xYZ"}, "none"},             // suffix is case sensitive
		{[]string{"X-C", "a", "X-C", "b"}, "second"}, // values joined with ","
		{[]string{"X-C", "a,b", "X-D", "no"}, "none"},
		{[]string{"X-C", "a,b", "X-D", "yes"}, "second"},
		{[]string{"X-E", "123"}, "third"},
		{[]string{"X-E", "123a"}, "none"}, // safe_regex matches the whole value
		{nil, "none"},                     // on_no_match
	} {
		if got := ran(f, tc.headers...); got != tc.want {
			t.Errorf("%q: ran %q, want %q", tc.headers, got, tc.want)
		}
	}
	if v, _ := st.Value("http.l.composite.delegation_success"); v != 9 {
		t.Errorf("delegation_success = %d, want 9 (every request ran an action)", v)
	}
}

// TestNoMatchRunsNothing: without on_no_match an unmatched request skips every
// delegated filter, and an absent header matches no value_match, not even exact "".
func TestNoMatchRunsNothing(t *testing.T) {
	st := stats.NewStore()
	f, err := build(t, config(t, list(nil, field(header(t, "forwarded", exact("")), execute(t, "empty")))), st)
	if err != nil {
		t.Fatal(err)
	}
	if got := ran(f); got != "" {
		t.Errorf("absent header ran %q", got)
	}
	if got := ran(f, "Forwarded", ""); got != "empty" {
		t.Errorf("empty header ran %q, want empty", got)
	}
	if v, _ := st.Value("http.l.composite.delegation_success"); v != 1 {
		t.Errorf("delegation_success = %d, want 1", v)
	}
}

// TestUnsupportedRefused: what the gateway does not implement is an error naming
// it, so the listener is NACKed.
func TestUnsupportedRefused(t *testing.T) {
	ok := func() *xdsmatcherv3.Matcher { return list(nil, field(header(t, "x", exact("y")), execute(t, "f"))) }
	ewm := func(mut func(*matchingv3.ExtensionWithMatcher)) *anypb.Any {
		e := &matchingv3.ExtensionWithMatcher{
			ExtensionConfig: &corev3.TypedExtensionConfig{Name: "composite", TypedConfig: mustAny(t, &compositev3.Composite{})},
			XdsMatcher:      ok(),
		}
		mut(e)
		return mustAny(t, e)
	}
	withAction := func(efa *compositev3.ExecuteFilterAction) *anypb.Any {
		on := &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{Name: "a", TypedConfig: mustAny(t, efa)}}}
		return config(t, list(nil, field(header(t, "x", exact("y")), on)))
	}
	for _, tc := range []struct {
		name string
		cfg  *anypb.Any
		want string
	}{
		{"matcher_tree", config(t, &xdsmatcherv3.Matcher{MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
			Input:    &xdscorev3.TypedExtensionConfig{Name: "i", TypedConfig: mustAny(t, &matcherv3.HttpRequestHeaderMatchInput{HeaderName: "x"})},
			TreeType: &xdsmatcherv3.Matcher_MatcherTree_ExactMatchMap{ExactMatchMap: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{Map: map[string]*xdsmatcherv3.Matcher_OnMatch{"y": execute(t, "f")}}},
		}}}), "only matcher_list is supported"},
		{"no xds_matcher", ewm(func(e *matchingv3.ExtensionWithMatcher) { e.XdsMatcher = nil }), "xds_matcher is required"},
		{"not composite", ewm(func(e *matchingv3.ExtensionWithMatcher) {
			e.ExtensionConfig.TypedConfig = mustAny(t, &structpb.Struct{})
		}), "is not supported inside ExtensionWithMatcher"},
		{"composite matcher", ewm(func(e *matchingv3.ExtensionWithMatcher) {
			e.ExtensionConfig.TypedConfig = mustAny(t, &compositev3.Composite{Matcher: ok()})
		}), "Composite.matcher and named_filter_chains are not supported"},
		{"response header input", config(t, list(nil, &xdsmatcherv3.Matcher_MatcherList_FieldMatcher{
			Predicate: &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_{SinglePredicate: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate{
				Input:   &xdscorev3.TypedExtensionConfig{Name: "r", TypedConfig: mustAny(t, &matcherv3.HttpResponseHeaderMatchInput{HeaderName: "x"})},
				Matcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: exact("y")},
			}}},
			OnMatch: execute(t, "f"),
		})), "HttpResponseHeaderMatchInput is not supported"},
		{"nested matcher", config(t, list(nil, field(header(t, "x", exact("y")), &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Matcher{Matcher: ok()}}))), "a nested matcher is not"},
		{"keep_matching", config(t, list(nil, field(header(t, "x", exact("y")), func() *xdsmatcherv3.Matcher_OnMatch {
			o := execute(t, "f")
			o.KeepMatching = true
			return o
		}()))), "keep_matching is not supported"},
		{"sample_percent", withAction(&compositev3.ExecuteFilterAction{
			TypedConfig:   &corev3.TypedExtensionConfig{Name: "f", TypedConfig: mustAny(t, &structpb.Struct{})},
			SamplePercent: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 50}},
		}), "sample_percent is not supported"},
		{"dynamic_config", withAction(&compositev3.ExecuteFilterAction{DynamicConfig: &compositev3.DynamicConfig{Name: "d"}}), "only ExecuteFilterAction.typed_config is supported"},
		{"unknown delegated type", withAction(&compositev3.ExecuteFilterAction{
			TypedConfig: &corev3.TypedExtensionConfig{Name: "f", TypedConfig: mustAny(t, wrapperspb.String("x"))},
		}), `filter "f": unknown filter type type.googleapis.com/google.protobuf.StringValue`},
		{"bad regex", config(t, list(nil, field(header(t, "x", &xdsmatcherv3.StringMatcher{MatchPattern: &xdsmatcherv3.StringMatcher_SafeRegex{SafeRegex: &xdsmatcherv3.RegexMatcher{
			EngineType: &xdsmatcherv3.RegexMatcher_GoogleRe2{GoogleRe2: &xdsmatcherv3.RegexMatcher_GoogleRE2{}}, Regex: "(",
		}}}), execute(t, "f")))), `safe_regex "("`},
	} {
		_, err := build(t, tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

// BenchmarkUnmatched is what a request the matcher does not select pays: the
// forwarded filter's four header conditions, then the next handler.
func BenchmarkUnmatched(b *testing.B) {
	t := b
	contains := func(v string) *xdsmatcherv3.StringMatcher {
		return &xdsmatcherv3.StringMatcher{MatchPattern: &xdsmatcherv3.StringMatcher_Contains{Contains: v}}
	}
	nonEmpty := &xdsmatcherv3.StringMatcher{MatchPattern: &xdsmatcherv3.StringMatcher_SafeRegex{SafeRegex: &xdsmatcherv3.RegexMatcher{
		EngineType: &xdsmatcherv3.RegexMatcher_GoogleRe2{GoogleRe2: &xdsmatcherv3.RegexMatcher_GoogleRE2{}}, Regex: ".+",
	}}}
	m := list(nil, field(or(header(t, "x-forwarded-for", contains(",")), header(t, "x-forwarded-for", contains(":")),
		header(t, "x-forwarded-host", nonEmpty), header(t, "forwarded", exact(""))), execute(t, "f")))
	f, err := build(t, config(t, m), stats.NewStore())
	if err != nil {
		b.Fatal(err)
	}
	h := f.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Forwarded-For", "127.0.0.1")
	r.Header.Set("X-Forwarded-Proto", "http")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
