// Package composite is Envoy's composite HTTP filter as the gateway runs it:
// an http_filters entry of type ExtensionWithMatcher
// (envoy.extensions.common.matching.v3) whose extension_config is a Composite
// (envoy.extensions.filters.http.composite.v3) and whose xds_matcher picks, from
// the request headers, an ExecuteFilterAction: the filter (built by the
// gateway's registry) this request runs. A request whose match selects no
// action runs no filter at all, so only matched requests pay for it.
//
// The matcher subset: matcher_list (first matching field matcher wins, else
// on_no_match), predicates single_predicate / or_matcher / and_matcher /
// not_matcher, input HttpRequestHeaderMatchInput (a header's values joined
// with ","; an absent header matches no value_match), value_match exact /
// prefix / suffix / contains / safe_regex (with ignore_case), and
// ExecuteFilterAction.typed_config. Anything else (matcher_tree, nested
// matchers, keep_matching, custom matchers, other inputs or actions,
// dynamic_config, filter chains, sample_percent, Composite.matcher, the
// deprecated ExtensionWithMatcher.matcher, an extension other than Composite)
// is refused, so the listener is NACKed with the reason.
//
// Stats, as Envoy's: http.<stat_prefix>.composite.delegation_success counts
// requests that ran a delegated filter (delegation_error stays 0: the gateway
// builds the delegated filter with the configuration, not per request).
package composite

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/stats"
)

// Type URLs of the messages the gateway reads.
const (
	ConfigTypeURL      = "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher"
	CompositeTypeURL   = "type.googleapis.com/envoy.extensions.filters.http.composite.v3.Composite"
	ExecuteTypeURL     = "type.googleapis.com/envoy.extensions.filters.http.composite.v3.ExecuteFilterAction"
	HeaderInputTypeURL = "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput"
)

// Factory builds composite filters.
type Factory struct{}

// NewFactory returns the composite filter's factory.
func NewFactory() Factory { return Factory{} }

// ConfigTypes implements filter.Factory.
func (Factory) ConfigTypes() []string { return []string{ConfigTypeURL} }

// New implements filter.Factory: it checks the configuration, compiles the
// matcher and builds every delegated filter with bc.Registry.
func (Factory) New(bc filter.BuildContext, name string, config *anypb.Any) (filter.Filter, error) {
	var ewm matchingv3.ExtensionWithMatcher
	if err := config.UnmarshalTo(&ewm); err != nil {
		return nil, fmt.Errorf("decoding ExtensionWithMatcher: %w", err)
	}
	if err := ewm.ValidateAll(); err != nil {
		return nil, fmt.Errorf("ExtensionWithMatcher: %w", err)
	}
	if ewm.GetMatcher() != nil {
		return nil, errors.New("ExtensionWithMatcher.matcher (deprecated) is not supported: use xds_matcher")
	}
	ext := ewm.GetExtensionConfig()
	if t := ext.GetTypedConfig().GetTypeUrl(); t != CompositeTypeURL {
		return nil, fmt.Errorf("extension_config %q: type %s is not supported inside ExtensionWithMatcher (only %s)", ext.GetName(), t, CompositeTypeURL)
	}
	var comp compositev3.Composite
	if err := ext.GetTypedConfig().UnmarshalTo(&comp); err != nil {
		return nil, fmt.Errorf("extension_config %q: decoding Composite: %w", ext.GetName(), err)
	}
	if err := comp.ValidateAll(); err != nil {
		return nil, fmt.Errorf("extension_config %q: Composite: %w", ext.GetName(), err)
	}
	if comp.GetMatcher() != nil || len(comp.GetNamedFilterChains()) > 0 {
		return nil, fmt.Errorf("extension_config %q: Composite.matcher and named_filter_chains are not supported (with ExtensionWithMatcher the matcher is its xds_matcher)", ext.GetName())
	}
	if ewm.GetXdsMatcher() == nil {
		return nil, errors.New("ExtensionWithMatcher: xds_matcher is required")
	}
	c := &compiler{bc: bc}
	m, err := c.matcher(ewm.GetXdsMatcher(), "xds_matcher")
	if err != nil {
		return nil, err
	}
	f := &compositeFilter{m: m}
	if bc.Stats != nil {
		f.success = bc.Stats.Counter("http." + bc.StatPrefix + ".composite.delegation_success")
		// Registered so the name exists, as in Envoy; the gateway never fails a delegation.
		bc.Stats.Counter("http." + bc.StatPrefix + ".composite.delegation_error")
	}
	return f, nil
}

type compositeFilter struct {
	m       *matcher
	success *stats.Counter
}

// Wrap implements filter.Filter: each action's filter wraps next once, here;
// a request runs the one its headers select, or goes straight to next.
func (f *compositeFilter) Wrap(next http.Handler) http.Handler {
	handlers := make([]http.Handler, len(f.m.actions))
	for i, a := range f.m.actions {
		handlers[i] = a.Wrap(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := f.m.match(r.Header)
		if i < 0 {
			next.ServeHTTP(w, r)
			return
		}
		if f.success != nil {
			f.success.Inc()
		}
		handlers[i].ServeHTTP(w, r)
	})
}

// matcher is a compiled matcher_list: match returns the index in actions of
// the selected action, or -1.
type matcher struct {
	fields    []fieldMatcher
	onNoMatch int
	actions   []filter.Filter
}

type fieldMatcher struct {
	pred   predicate
	action int
}

func (m *matcher) match(h http.Header) int {
	for _, fm := range m.fields {
		if fm.pred(h) {
			return fm.action
		}
	}
	return m.onNoMatch
}

type predicate func(http.Header) bool

type compiler struct {
	bc      filter.BuildContext
	actions []filter.Filter
}

func (c *compiler) matcher(m *xdsmatcherv3.Matcher, path string) (*matcher, error) {
	list := m.GetMatcherList()
	if list == nil {
		return nil, fmt.Errorf("%s: only matcher_list is supported (got %T)", path, m.GetMatcherType())
	}
	out := &matcher{onNoMatch: -1}
	for i, fm := range list.GetMatchers() {
		p := fmt.Sprintf("%s.matcher_list.matchers[%d]", path, i)
		pred, err := c.predicate(fm.GetPredicate(), p+".predicate")
		if err != nil {
			return nil, err
		}
		a, err := c.onMatch(fm.GetOnMatch(), p+".on_match")
		if err != nil {
			return nil, err
		}
		out.fields = append(out.fields, fieldMatcher{pred: pred, action: a})
	}
	if nm := m.GetOnNoMatch(); nm != nil {
		a, err := c.onMatch(nm, path+".on_no_match")
		if err != nil {
			return nil, err
		}
		out.onNoMatch = a
	}
	out.actions = c.actions
	return out, nil
}

// onMatch builds the delegated filter of an ExecuteFilterAction and returns its index.
func (c *compiler) onMatch(om *xdsmatcherv3.Matcher_OnMatch, path string) (int, error) {
	if om.GetKeepMatching() {
		return 0, fmt.Errorf("%s.keep_matching is not supported", path)
	}
	act := om.GetAction()
	if act == nil {
		return 0, fmt.Errorf("%s: only an action is supported (a nested matcher is not)", path)
	}
	if t := act.GetTypedConfig().GetTypeUrl(); t != ExecuteTypeURL {
		return 0, fmt.Errorf("%s.action %q: type %s is not supported (only %s)", path, act.GetName(), t, ExecuteTypeURL)
	}
	var efa compositev3.ExecuteFilterAction
	if err := act.GetTypedConfig().UnmarshalTo(&efa); err != nil {
		return 0, fmt.Errorf("%s.action: decoding ExecuteFilterAction: %w", path, err)
	}
	if err := efa.ValidateAll(); err != nil {
		return 0, fmt.Errorf("%s.action: ExecuteFilterAction: %w", path, err)
	}
	switch {
	case efa.GetDynamicConfig() != nil, efa.GetFilterChain() != nil, efa.GetFilterChainName() != "":
		return 0, fmt.Errorf("%s.action: only ExecuteFilterAction.typed_config is supported (not dynamic_config or filter chains)", path)
	case efa.GetSamplePercent() != nil:
		return 0, fmt.Errorf("%s.action: ExecuteFilterAction.sample_percent is not supported", path)
	case efa.GetTypedConfig() == nil:
		return 0, fmt.Errorf("%s.action: ExecuteFilterAction.typed_config is required", path)
	}
	tc := efa.GetTypedConfig()
	fac, ok := c.bc.Registry.Lookup(tc.GetTypedConfig().GetTypeUrl())
	if !ok {
		return 0, fmt.Errorf("%s.action: filter %q: unknown filter type %s", path, tc.GetName(), tc.GetTypedConfig().GetTypeUrl())
	}
	f, err := fac.New(c.bc, tc.GetName(), tc.GetTypedConfig())
	if err != nil {
		return 0, fmt.Errorf("%s.action: filter %q: %w", path, tc.GetName(), err)
	}
	c.actions = append(c.actions, f)
	return len(c.actions) - 1, nil
}

func (c *compiler) predicate(p *xdsmatcherv3.Matcher_MatcherList_Predicate, path string) (predicate, error) {
	switch mt := p.GetMatchType().(type) {
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_:
		return c.single(mt.SinglePredicate, path+".single_predicate")
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_OrMatcher:
		ps, err := c.predicates(mt.OrMatcher, path+".or_matcher")
		if err != nil {
			return nil, err
		}
		return func(h http.Header) bool {
			for _, p := range ps {
				if p(h) {
					return true
				}
			}
			return false
		}, nil
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_AndMatcher:
		ps, err := c.predicates(mt.AndMatcher, path+".and_matcher")
		if err != nil {
			return nil, err
		}
		return func(h http.Header) bool {
			for _, p := range ps {
				if !p(h) {
					return false
				}
			}
			return true
		}, nil
	case *xdsmatcherv3.Matcher_MatcherList_Predicate_NotMatcher:
		inner, err := c.predicate(mt.NotMatcher, path+".not_matcher")
		if err != nil {
			return nil, err
		}
		return func(h http.Header) bool { return !inner(h) }, nil
	default:
		return nil, fmt.Errorf("%s: predicate %T is not supported", path, mt)
	}
}

func (c *compiler) predicates(l *xdsmatcherv3.Matcher_MatcherList_Predicate_PredicateList, path string) ([]predicate, error) {
	var out []predicate
	for i, p := range l.GetPredicate() {
		pr, err := c.predicate(p, fmt.Sprintf("%s.predicate[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, pr)
	}
	return out, nil
}

func (c *compiler) single(sp *xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate, path string) (predicate, error) {
	in := sp.GetInput()
	if t := in.GetTypedConfig().GetTypeUrl(); t != HeaderInputTypeURL {
		return nil, fmt.Errorf("%s.input %q: type %s is not supported (only %s)", path, in.GetName(), t, HeaderInputTypeURL)
	}
	var hi matcherv3.HttpRequestHeaderMatchInput
	if err := in.GetTypedConfig().UnmarshalTo(&hi); err != nil {
		return nil, fmt.Errorf("%s.input: decoding HttpRequestHeaderMatchInput: %w", path, err)
	}
	if err := hi.ValidateAll(); err != nil {
		return nil, fmt.Errorf("%s.input: HttpRequestHeaderMatchInput: %w", path, err)
	}
	vm := sp.GetValueMatch()
	if vm == nil {
		return nil, fmt.Errorf("%s: only value_match is supported (not custom_match)", path)
	}
	match, err := stringMatcher(vm)
	if err != nil {
		return nil, fmt.Errorf("%s.value_match: %w", path, err)
	}
	name := http.CanonicalHeaderKey(hi.GetHeaderName())
	return func(h http.Header) bool {
		vs := h[name]
		switch len(vs) {
		case 0:
			// No data: a value_match never matches an absent header (Envoy).
			return false
		case 1:
			return match(vs[0])
		default:
			return match(strings.Join(vs, ","))
		}
	}, nil
}

// stringMatcher compiles an xds StringMatcher with the gateway's compiler of Envoy's, of
// which it is a copy (the same fields and meanings).
func stringMatcher(sm *xdsmatcherv3.StringMatcher) (func(string) bool, error) {
	out := &matcherv3.StringMatcher{IgnoreCase: sm.GetIgnoreCase()}
	switch p := sm.GetMatchPattern().(type) {
	case *xdsmatcherv3.StringMatcher_Exact:
		out.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: p.Exact}
	case *xdsmatcherv3.StringMatcher_Prefix:
		out.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: p.Prefix}
	case *xdsmatcherv3.StringMatcher_Suffix:
		out.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: p.Suffix}
	case *xdsmatcherv3.StringMatcher_Contains:
		out.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: p.Contains}
	case *xdsmatcherv3.StringMatcher_SafeRegex:
		out.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p.SafeRegex.GetRegex()}}
	default:
		return nil, fmt.Errorf("string match %T is not supported", p)
	}
	return route.StringMatcher(out)
}
