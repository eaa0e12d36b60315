package xds

import (
	"strings"
	"testing"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	wasmhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// unpack decodes a and validates the message, as a proxy receiving it would.
func unpack[M interface {
	proto.Message
	ValidateAll() error
}](t *testing.T, what string, a *anypb.Any, m M) M {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("%s: %v (type %s)", what, err, a.GetTypeUrl())
	}
	if err := m.ValidateAll(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return m
}

// TestTranslateForwardedComposite checks the forwarded filter's shape on every kind of
// listener: Envoy's composite filter (ExtensionWithMatcher around a Composite) whose
// matcher_list runs the Wasm filter on the requests of ForwardedConditions, each
// message passing ValidateAll.
func TestTranslateForwardedComposite(t *testing.T) {
	fw := WasmFilter{Name: ForwardedFilterName, Path: "/wasm/forwarded.wasm", RunWhen: ForwardedConditions()}
	for _, local := range []bool{false, true} {
		translate := TranslateListener
		if local {
			translate = TranslateLocalListener
		}
		l, err := translate(DefaultListenerAddress, DefaultListenerPort, true, fixtureWasmFilters()[0], fw)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.ValidateAll(); err != nil {
			t.Fatalf("listener: %v", err)
		}
		hcm := unpack(t, "hcm", l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
		if !hcm.GetUseRemoteAddress().GetValue() {
			t.Fatal("use_remote_address is off: ForwardedConditions assume the peer is in X-Forwarded-For")
		}
		var names []string
		for _, f := range hcm.GetHttpFilters() {
			names = append(names, f.GetName())
		}
		if got := strings.Join(names, ","); got != "skiff.revision-metrics,skiff.forwarded,envoy.filters.http.ext_proc,envoy.filters.http.router" {
			t.Fatalf("http filters = %s", got)
		}
		hf := hcm.GetHttpFilters()[1]
		ewm := unpack(t, "ExtensionWithMatcher", hf.GetTypedConfig(), &matchingv3.ExtensionWithMatcher{})
		if ewm.GetMatcher() != nil {
			t.Error("the deprecated matcher is set; xds_matcher is the one to use")
		}
		comp := unpack(t, "Composite", ewm.GetExtensionConfig().GetTypedConfig(), &compositev3.Composite{})
		if comp.GetMatcher() != nil || len(comp.GetNamedFilterChains()) > 0 {
			t.Error("Composite.matcher must not be set with ExtensionWithMatcher (Envoy: undefined behaviour)")
		}
		m := ewm.GetXdsMatcher()
		if m.GetOnNoMatch() != nil {
			t.Error("on_no_match is set: unmatched requests must skip the filter")
		}
		fms := m.GetMatcherList().GetMatchers()
		if len(fms) != 1 {
			t.Fatalf("matcher_list has %d matchers, want 1", len(fms))
		}
		preds := fms[0].GetPredicate().GetOrMatcher().GetPredicate()
		var got []string
		for _, p := range preds {
			sp := p.GetSinglePredicate()
			in := unpack(t, "input", sp.GetInput().GetTypedConfig(), &matcherv3.HttpRequestHeaderMatchInput{})
			vm := sp.GetValueMatch()
			var cond string
			switch mp := vm.GetMatchPattern().(type) {
			case *xdsmatcherv3.StringMatcher_Contains:
				cond = "contains " + mp.Contains
			case *xdsmatcherv3.StringMatcher_Exact:
				cond = "exact " + mp.Exact
			case *xdsmatcherv3.StringMatcher_SafeRegex:
				cond = "regex " + mp.SafeRegex.GetRegex()
			}
			got = append(got, in.GetHeaderName()+" "+cond)
		}
		want := "x-forwarded-for contains ,|x-forwarded-for contains :|x-forwarded-host regex .+|forwarded exact "
		if g := strings.Join(got, "|"); g != want {
			t.Errorf("predicates = %q, want %q", g, want)
		}
		act := fms[0].GetOnMatch().GetAction()
		efa := unpack(t, "ExecuteFilterAction", act.GetTypedConfig(), &compositev3.ExecuteFilterAction{})
		if efa.GetTypedConfig().GetName() != ForwardedFilterName {
			t.Errorf("delegated filter name = %q", efa.GetTypedConfig().GetName())
		}
		w := unpack(t, "Wasm", efa.GetTypedConfig().GetTypedConfig(), &wasmhttpv3.Wasm{})
		if w.GetConfig().GetName() != ForwardedFilterName || w.GetConfig().GetVmConfig().GetCode().GetLocal().GetFilename() != fw.Path {
			t.Errorf("delegated wasm config = %v", w.GetConfig())
		}
	}
}

// TestTranslateCompositeOneCondition: or_matcher needs two predicates, so one condition is
// a single_predicate of its own.
func TestTranslateCompositeOneCondition(t *testing.T) {
	f, err := TranslateWasmFilter(WasmFilter{Name: "x", Path: "x.wasm", RunWhen: []HeaderCondition{{Header: "x-a", Op: HeaderExact, Value: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	ewm := unpack(t, "ExtensionWithMatcher", f.GetTypedConfig(), &matchingv3.ExtensionWithMatcher{})
	sp := ewm.GetXdsMatcher().GetMatcherList().GetMatchers()[0].GetPredicate().GetSinglePredicate()
	if sp.GetValueMatch().GetExact() != "b" {
		t.Errorf("predicate = %v", sp)
	}
}

func TestTranslateCompositeBadConditions(t *testing.T) {
	for _, tc := range []struct {
		c    HeaderCondition
		want string
	}{
		{HeaderCondition{Op: HeaderExact}, "runWhen[0]: header is required"},
		{HeaderCondition{Header: "a", Op: HeaderContains}, "Contains needs a value"},
		{HeaderCondition{Header: "a", Op: HeaderRegex, Value: "("}, `regex "(" is not a valid RE2 expression`},
		{HeaderCondition{Header: "a", Op: "Prefix", Value: "x"}, `op "Prefix" is not one of`},
	} {
		_, err := TranslateWasmFilter(WasmFilter{Name: "x", Path: "x.wasm", RunWhen: []HeaderCondition{tc.c}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.c, err, tc.want)
		}
	}
}
