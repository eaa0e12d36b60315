package xds

import (
	"errors"
	"fmt"
	"regexp"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ForwardedFilterName is the conventional name of the forwarded Wasm filter
// (wasm-filters/forwarded), which sets the Forwarded request header as
// Knative's queue-proxy does; see ForwardedConditions.
const ForwardedFilterName = "skiff.forwarded"

// Names inside the composite filter: the ExtensionWithMatcher's extension, the
// matcher input and the match action (Envoy's documented example uses the same).
const (
	compositeExtensionName = "composite"
	requestHeadersInput    = "request-headers"
	compositeActionName    = "composite-action"
)

// HeaderOp says how a HeaderCondition compares a request header's value.
type HeaderOp string

const (
	// HeaderContains: the value contains HeaderCondition.Value.
	HeaderContains HeaderOp = "Contains"
	// HeaderExact: the value is HeaderCondition.Value (Exact "" matches a header
	// present with an empty value).
	HeaderExact HeaderOp = "Exact"
	// HeaderRegex: the whole value matches the RE2 expression HeaderCondition.Value.
	HeaderRegex HeaderOp = "Regex"
)

// HeaderCondition is one request header test of WasmFilter.RunWhen. An absent
// header matches no condition. A header sent more than once is tested as its
// values joined with "," (Envoy's HttpRequestHeaderMatchInput).
type HeaderCondition struct {
	// Header is the request header name.
	Header string
	// Op compares the value with Value.
	Op HeaderOp
	// Value is the operand of Op.
	Value string
}

// ForwardedConditions are the requests the forwarded filter must run on: those for
// which the route's Forwarded formatter (ForwardedFormat) gives something other than
// Knative's queue-proxy would. The listeners set use_remote_address (edgeHCM), so by
// the time filters run X-Forwarded-For ends with the peer's address and
// X-Forwarded-Proto is the scheme. The formatter writes for=<peer>;proto=<scheme>,
// which is queue-proxy's value exactly when X-Forwarded-For is the peer alone and an
// IPv4 address (no ',', no ':') and there is no X-Forwarded-Host. A client's empty
// Forwarded header counts as none for queue-proxy, while the formatter's
// ADD_IF_ABSENT would keep it, so that runs the filter too.
func ForwardedConditions() []HeaderCondition {
	return []HeaderCondition{
		{Header: "x-forwarded-for", Op: HeaderContains, Value: ","},
		{Header: "x-forwarded-for", Op: HeaderContains, Value: ":"},
		{Header: "x-forwarded-host", Op: HeaderRegex, Value: ".+"},
		{Header: "forwarded", Op: HeaderExact, Value: ""},
	}
}

// compositeFilter wraps the Wasm filter f (already translated from w) in Envoy's
// composite filter: an ExtensionWithMatcher around a Composite whose xds_matcher
// runs f (ExecuteFilterAction) on requests meeting any of w.RunWhen, and nothing
// on the others, which never pay for the filter.
func compositeFilter(w WasmFilter, f *hcmv3.HttpFilter) (*hcmv3.HttpFilter, error) {
	preds := make([]*xdsmatcherv3.Matcher_MatcherList_Predicate, 0, len(w.RunWhen))
	for i, c := range w.RunWhen {
		p, err := headerPredicate(c)
		if err != nil {
			return nil, fmt.Errorf("wasm filter %q: runWhen[%d]: %w", w.Name, i, err)
		}
		preds = append(preds, p)
	}
	pred := preds[0]
	if len(preds) > 1 {
		// or_matcher needs at least two predicates.
		pred = &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_OrMatcher{
			OrMatcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_PredicateList{Predicate: preds},
		}}
	}
	action := &compositev3.ExecuteFilterAction{TypedConfig: &corev3.TypedExtensionConfig{Name: f.GetName(), TypedConfig: f.GetTypedConfig()}}
	actionAny, err := validAny(action)
	if err != nil {
		return nil, fmt.Errorf("wasm filter %q: composite action: %w", w.Name, err)
	}
	composite, err := validAny(&compositev3.Composite{})
	if err != nil {
		return nil, fmt.Errorf("wasm filter %q: composite: %w", w.Name, err)
	}
	ewm := &matchingv3.ExtensionWithMatcher{
		ExtensionConfig: &corev3.TypedExtensionConfig{Name: compositeExtensionName, TypedConfig: composite},
		XdsMatcher: &xdsmatcherv3.Matcher{MatcherType: &xdsmatcherv3.Matcher_MatcherList_{MatcherList: &xdsmatcherv3.Matcher_MatcherList{
			Matchers: []*xdsmatcherv3.Matcher_MatcherList_FieldMatcher{{
				Predicate: pred,
				OnMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{
					Action: &xdscorev3.TypedExtensionConfig{Name: compositeActionName, TypedConfig: actionAny},
				}},
			}},
		}}},
		// No on_no_match: the other requests skip the filter.
	}
	a, err := validAny(ewm)
	if err != nil {
		return nil, fmt.Errorf("wasm filter %q: composite: %w", w.Name, err)
	}
	return &hcmv3.HttpFilter{Name: w.Name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}, Disabled: w.Disabled}, nil
}

// headerPredicate is the single_predicate of c: an HttpRequestHeaderMatchInput and
// a value_match.
func headerPredicate(c HeaderCondition) (*xdsmatcherv3.Matcher_MatcherList_Predicate, error) {
	if c.Header == "" {
		return nil, errors.New("header is required")
	}
	sm := &xdsmatcherv3.StringMatcher{}
	switch c.Op {
	case HeaderContains:
		if c.Value == "" {
			return nil, errors.New("Contains needs a value (Regex \".+\" tests a non-empty header)")
		}
		sm.MatchPattern = &xdsmatcherv3.StringMatcher_Contains{Contains: c.Value}
	case HeaderExact:
		sm.MatchPattern = &xdsmatcherv3.StringMatcher_Exact{Exact: c.Value}
	case HeaderRegex:
		if _, err := regexp.Compile(c.Value); err != nil || c.Value == "" {
			return nil, fmt.Errorf("regex %q is not a valid RE2 expression", c.Value)
		}
		sm.MatchPattern = &xdsmatcherv3.StringMatcher_SafeRegex{SafeRegex: &xdsmatcherv3.RegexMatcher{
			EngineType: &xdsmatcherv3.RegexMatcher_GoogleRe2{GoogleRe2: &xdsmatcherv3.RegexMatcher_GoogleRE2{}},
			Regex:      c.Value,
		}}
	default:
		return nil, fmt.Errorf("op %q is not one of Contains, Exact, Regex", c.Op)
	}
	input, err := validAny(&matcherv3.HttpRequestHeaderMatchInput{HeaderName: c.Header})
	if err != nil {
		return nil, err
	}
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_{
		SinglePredicate: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate{
			Input:   &xdscorev3.TypedExtensionConfig{Name: requestHeadersInput, TypedConfig: input},
			Matcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: sm},
		},
	}}, nil
}

// validAny validates m (ValidateAll does not look inside an Any, so each message is
// checked before it is packed) and packs it.
func validAny(m interface {
	proto.Message
	ValidateAll() error
}) (*anypb.Any, error) {
	if err := m.ValidateAll(); err != nil {
		return nil, err
	}
	return anypb.New(m)
}
