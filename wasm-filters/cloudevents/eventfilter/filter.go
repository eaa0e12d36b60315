package eventfilter

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Filter is a Trigger's filter as Knative's eventing.knative.dev/v1 Trigger
// spec carries it.
//
// Attributes is spec.filter.attributes, the original exact-match filter:
// every listed attribute must equal the given value. As in Knative, the empty
// string means "any value": the attribute must be present and not empty (an
// unset optional core attribute, such as subject, reads as "" and fails, as
// in Knative's attributes filter; an unset time reads as the zero time, as
// there). time is compared as Knative formats it (RFC 3339, fewest fraction
// digits). Knative's pseudo-attributes
// datamediatype (datacontenttype without parameters) and schemaurl (the 0.3
// name of dataschema) are understood too.
//
// Filters is spec.filters, the CloudEvents Subscriptions API dialects. When it
// is non-empty it is used and Attributes is ignored, as Knative does (filters
// overrides filter); every expression must pass.
//
// A Filter with neither passes every event.
type Filter struct {
	Attributes map[string]string
	Filters    []Expression
}

// Expression is one Subscriptions API filter expression. Exactly one dialect
// must be set:
//
//   - Exact, Prefix, Suffix: one attribute whose value must equal, start with or
//     end with the given non-empty string (case-sensitive). An absent attribute
//     fails. Knative's webhook accepts exactly one attribute per map; combine
//     several with All.
//   - All: every nested expression passes (at least one is required).
//   - Any: at least one nested expression passes (at least one is required).
//   - Not: the nested expression fails.
//   - CESQL: a CloudEvents SQL expression that must evaluate to Boolean true
//     without error; a missing attribute or a failed cast makes it fail.
type Expression struct {
	Exact  map[string]string `json:"exact,omitempty"`
	Prefix map[string]string `json:"prefix,omitempty"`
	Suffix map[string]string `json:"suffix,omitempty"`
	All    []Expression      `json:"all,omitempty"`
	Any    []Expression      `json:"any,omitempty"`
	Not    *Expression       `json:"not,omitempty"`
	CESQL  string            `json:"cesql,omitempty"`
}

// FieldError is a validation error that names the offending field, with a
// path such as "filters[1].prefix" or "triggers[0].filter.attributes".
type FieldError struct {
	Path    string
	Message string
}

// Error implements error.
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

func fieldErr(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Message: fmt.Sprintf(format, args...)}
}

// under returns the error with prefix prepended to its path.
func (e *FieldError) under(prefix string) *FieldError {
	return &FieldError{Path: joinPath(prefix, e.Path), Message: e.Message}
}

func joinPath(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case path[0] == '[':
		return prefix + path
	}
	return prefix + "." + path
}

// Compiled is a compiled Filter, safe for concurrent use.
type Compiled struct {
	m matcher // nil: match everything
}

// Match reports whether the event passes the filter.
func (c *Compiled) Match(ev Event) bool {
	if c == nil || c.m == nil {
		return true
	}
	return c.m.match(ev.ForFilters().Attributes) != fail
}

// ForFilters is the event as Knative's filters read it (see knativeTime). Match does this
// itself; a caller matching one event against many filters does it once first, so that each
// Match does not again.
func (e Event) ForFilters() Event {
	if !e.filterView {
		e.Attributes, e.filterView = knativeTime(e.Attributes), true
	}
	return e
}

// knativeTime is attrs with time as Knative's filters see it: sdk-go parses it and they read
// it back formatted as RFC 3339 with the fewest fraction digits ("...00.500Z" is "...00.5Z").
// attrs itself when that changes nothing (the usual case), or when time does not parse.
func knativeTime(attrs map[string]string) map[string]string {
	v, ok := attrs[attrTime]
	if !ok {
		return attrs
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return attrs
	}
	n := t.Format(time.RFC3339Nano)
	if n == v {
		return attrs
	}
	out := maps.Clone(attrs)
	out[attrTime] = n
	return out
}

// Compile validates a Filter and compiles it. Errors are *FieldError with paths relative to
// the Trigger spec ("filter.attributes", "filters[1].all[0].exact", "filters[0].cesql").
// It refuses what Knative's webhook refuses: attribute names that are not a lower-case
// letter then lower-case letters and digits, several dialects in one expression, and a CESQL
// expression that does not parse. What the webhook lets through is run as Knative's broker
// runs it (eventing's subscriptionsapi.MaterializeSubscriptionsAPIFilter): an expression
// with no dialect (or an empty all/any), or an exact/prefix/suffix with an empty value, is
// skipped; exact/prefix/suffix with several attributes needs every one to match; a skipped
// expression makes all/any/not answer as Knative's do (see result).
func Compile(f Filter) (*Compiled, error) {
	var attrs *attributesMatcher
	if len(f.Attributes) > 0 {
		names := make([]string, 0, len(f.Attributes))
		for name := range f.Attributes {
			names = append(names, name)
		}
		sort.Strings(names)
		attrs = &attributesMatcher{}
		for _, name := range names {
			if msg := checkFilterAttributeName(name); msg != "" {
				return nil, fieldErr("filter.attributes", "%s", msg)
			}
			attrs.names = append(attrs.names, name)
			attrs.values = append(attrs.values, f.Attributes[name])
		}
	}
	if len(f.Filters) > 0 {
		ms, err := compileList(f.Filters, "filters")
		if err != nil {
			return nil, err
		}
		return &Compiled{m: allOf(ms)}, nil
	}
	if attrs != nil {
		return &Compiled{m: attrs}, nil
	}
	return &Compiled{}, nil
}

// compileList compiles a list of expressions, leaving out the skipped ones (Knative's
// MaterializeFiltersList).
func compileList(list []Expression, path string) ([]matcher, *FieldError) {
	ms := make([]matcher, 0, len(list))
	for i := range list {
		m, err := compileExpression(&list[i], fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		if m != nil {
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// allOf is Knative's NewAllFilter: one filter is itself.
func allOf(ms []matcher) matcher {
	if len(ms) == 1 {
		return ms[0]
	}
	return allMatcher(ms)
}

// compileExpression validates an expression as Knative's webhook does and compiles it; a nil
// matcher is an expression Knative skips.
func compileExpression(e *Expression, path string) (matcher, *FieldError) {
	var set []string
	for _, d := range []struct {
		name string
		on   bool
	}{{"exact", len(e.Exact) > 0}, {"prefix", len(e.Prefix) > 0}, {"suffix", len(e.Suffix) > 0},
		{"all", len(e.All) > 0}, {"any", len(e.Any) > 0}, {"not", e.Not != nil}, {"cesql", e.CESQL != ""}} {
		if d.on {
			set = append(set, d.name)
		}
	}
	switch len(set) {
	case 0:
		return nil, nil // no dialect: Knative skips it
	case 1:
	default:
		return nil, fieldErr(path, "multiple dialects set (%s): a filter expression has exactly one", strings.Join(set, ", "))
	}
	sub := path + "." + set[0]
	switch set[0] {
	case "exact":
		return compilePairs("exact", e.Exact, sub)
	case "prefix":
		return compilePairs("prefix", e.Prefix, sub)
	case "suffix":
		return compilePairs("suffix", e.Suffix, sub)
	case "all":
		ms, err := compileList(e.All, sub)
		if err != nil {
			return nil, err
		}
		return allOf(ms), nil
	case "any":
		ms, err := compileList(e.Any, sub)
		if err != nil {
			return nil, err
		}
		if len(ms) == 1 {
			return ms[0], nil
		}
		return anyMatcher(ms), nil
	case "not":
		m, err := compileExpression(e.Not, sub)
		if err != nil {
			return nil, err
		}
		return &notMatcher{m: m}, nil
	}
	expr, err := ParseCESQL(e.CESQL)
	if err != nil {
		return nil, fieldErr(sub, "invalid CESQL expression %q: %v", e.CESQL, err)
	}
	// An expression that is not a condition (e.g. "myext") parses, as Knative's sdk-go parser
	// takes it, and passes no event: its value is not Boolean true.
	return &cesqlMatcher{expr: expr}, nil
}

// compilePairs compiles exact, prefix or suffix (op) over the attributes of m, checking their
// names; nil when a value is empty, which Knative's constructors refuse, so it skips the
// expression.
func compilePairs(op string, m map[string]string, path string) (matcher, *FieldError) {
	pm := &pairsMatcher{op: op}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if msg := checkFilterAttributeName(name); msg != "" {
			return nil, fieldErr(path, "%s", msg)
		}
		pm.names, pm.values = append(pm.names, name), append(pm.values, m[name])
	}
	if slices.Contains(pm.values, "") {
		return nil, nil
	}
	return pm, nil
}

// checkFilterAttributeName applies Knative's rule for attribute names in
// filters: a lower-case letter, then lower-case letters and digits.
func checkFilterAttributeName(name string) string {
	ok := name != "" && name[0] >= 'a' && name[0] <= 'z' && ValidAttributeName(name)
	if ok {
		return ""
	}
	return fmt.Sprintf("invalid attribute name %q: it must start with a lower-case letter and contain only lower-case letters and digits", name)
}

// result is a filter's answer, Knative's FilterResult: an event goes through unless the
// answer is fail.
type result uint8

const (
	pass result = iota
	fail
	// none is Knative's NoFilter: what a skipped expression, an empty all or any, or the not
	// of a skipped expression answers. all answers fail when one of its expressions fails,
	// else what its last one answered; any answers pass when one passes, else what its last
	// one answered (so any: [failing, skipped] lets the event through, as in Knative); not
	// keeps none.
	none
)

// matcher is a compiled filter expression.
type matcher interface {
	match(attrs map[string]string) result
}

func answer(ok bool) result {
	if ok {
		return pass
	}
	return fail
}

// lookupKnative returns an attribute's value the way Knative's attribute
// filters see it: the event's own attributes first, then the core attributes
// as "" when unset, then the pseudo-attributes datamediatype and schemaurl.
func lookupKnative(attrs map[string]string, name string) (string, bool) {
	if v, ok := attrs[name]; ok {
		return v, true
	}
	switch name {
	case "datamediatype":
		return mediaType(attrs[attrDataContentType]), true
	case "schemaurl":
		return attrs[attrDataSchema], true
	}
	if name == attrTime {
		// Knative's LookupAttribute formats the event's time, the zero time when unset.
		return "0001-01-01T00:00:00Z", true
	}
	if isCoreAttribute(attrs[attrSpecVersion], name) {
		return "", true
	}
	return "", false
}

type attributesMatcher struct {
	names, values []string
}

func (m *attributesMatcher) match(attrs map[string]string) result {
	for i, name := range m.names {
		v, ok := lookupKnative(attrs, name)
		// As Knative's attributes filter: "" (any value) needs the attribute set, and an
		// optional core attribute that is unset reads as "".
		if want := m.values[i]; !ok || (want == "" && v == "") || (want != "" && want != v) {
			return fail
		}
	}
	return pass
}

// pairsMatcher is exact, prefix or suffix over one or more attributes, all of which must
// match.
type pairsMatcher struct {
	op            string
	names, values []string
}

func (m *pairsMatcher) match(attrs map[string]string) result {
	for i, name := range m.names {
		v, ok := lookupKnative(attrs, name)
		switch want := m.values[i]; {
		case !ok:
			return fail
		case m.op == "exact" && v != want, m.op == "prefix" && !strings.HasPrefix(v, want), m.op == "suffix" && !strings.HasSuffix(v, want):
			return fail
		}
	}
	return pass
}

type allMatcher []matcher

func (m allMatcher) match(attrs map[string]string) result {
	res := none
	for _, sub := range m {
		if res = sub.match(attrs); res == fail {
			return fail
		}
	}
	return res
}

type anyMatcher []matcher

func (m anyMatcher) match(attrs map[string]string) result {
	res := none
	for _, sub := range m {
		if res = sub.match(attrs); res == pass {
			return pass
		}
	}
	return res
}

type notMatcher struct{ m matcher }

func (m *notMatcher) match(attrs map[string]string) result {
	if m.m == nil {
		return none
	}
	switch m.m.match(attrs) {
	case pass:
		return fail
	case fail:
		return pass
	}
	return none
}

type cesqlMatcher struct{ expr Expr }

func (m *cesqlMatcher) match(attrs map[string]string) result {
	v, err := m.expr.root.eval(attrs)
	return answer(err == nil && v.t == TypeBoolean && v.i != 0)
}

// CheckCESQL reports why expr cannot be a Trigger's cesql filter, or nil: what Compile
// checks, for admission to refuse it early. As Knative's validation (sdk-go's parser), only a
// syntax error refuses it; an unknown function, or a value that is not Boolean, parses and
// passes no event.
func CheckCESQL(expr string) error {
	_, err := ParseCESQL(expr)
	return err
}
