package eventfilter

import (
	"fmt"
	"maps"
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
	return c.m.match(knativeTime(ev.Attributes))
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

// Compile validates a Filter and compiles it. Errors are *FieldError with
// paths relative to the Trigger spec ("filter.attributes", "filters[1].all[0].exact",
// "filters[0].cesql"). Validation follows Knative's webhook: attribute names in
// filters must start with a lower-case letter and contain only lower-case
// letters and digits; exact, prefix and suffix take exactly one attribute;
// an expression has exactly one dialect. In addition, exact/prefix/suffix
// values must not be empty, all/any must not be empty, and a CESQL expression
// must parse and be of type Boolean (Knative would accept such filters but
// then skip them or never match).
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
		if len(ms) == 1 {
			return &Compiled{m: ms[0]}, nil
		}
		return &Compiled{m: allMatcher(ms)}, nil
	}
	if attrs != nil {
		return &Compiled{m: attrs}, nil
	}
	return &Compiled{}, nil
}

func compileList(list []Expression, path string) ([]matcher, *FieldError) {
	ms := make([]matcher, 0, len(list))
	for i := range list {
		m, err := compileExpression(&list[i], fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func compileExpression(e *Expression, path string) (matcher, *FieldError) {
	var set []string
	if e.Exact != nil {
		set = append(set, "exact")
	}
	if e.Prefix != nil {
		set = append(set, "prefix")
	}
	if e.Suffix != nil {
		set = append(set, "suffix")
	}
	if e.All != nil {
		set = append(set, "all")
	}
	if e.Any != nil {
		set = append(set, "any")
	}
	if e.Not != nil {
		set = append(set, "not")
	}
	if e.CESQL != "" {
		set = append(set, "cesql")
	}
	switch len(set) {
	case 0:
		return nil, fieldErr(path, "no dialect set: a filter expression needs exactly one of exact, prefix, suffix, all, any, not, cesql")
	case 1:
	default:
		return nil, fieldErr(path, "multiple dialects set (%s): a filter expression has exactly one", strings.Join(set, ", "))
	}
	dialect := set[0]
	sub := path + "." + dialect
	switch dialect {
	case "exact", "prefix", "suffix":
		m := e.Exact
		if dialect == "prefix" {
			m = e.Prefix
		} else if dialect == "suffix" {
			m = e.Suffix
		}
		if len(m) != 1 {
			return nil, fieldErr(sub, "must have exactly one attribute, got %d (use all: [...] to combine several)", len(m))
		}
		for name, value := range m {
			if msg := checkFilterAttributeName(name); msg != "" {
				return nil, fieldErr(sub, "%s", msg)
			}
			if value == "" {
				return nil, fieldErr(sub, "attribute %q: the value must not be empty", name)
			}
			switch dialect {
			case "exact":
				return &exactMatcher{name: name, value: value}, nil
			case "prefix":
				return &prefixMatcher{name: name, prefix: value}, nil
			}
			return &suffixMatcher{name: name, suffix: value}, nil
		}
	case "all", "any":
		list := e.All
		if dialect == "any" {
			list = e.Any
		}
		if len(list) == 0 {
			return nil, fieldErr(sub, "must contain at least one filter expression")
		}
		ms, err := compileList(list, sub)
		if err != nil {
			return nil, err
		}
		if dialect == "all" {
			return allMatcher(ms), nil
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

// checkFilterAttributeName applies Knative's rule for attribute names in
// filters: a lower-case letter, then lower-case letters and digits.
func checkFilterAttributeName(name string) string {
	ok := name != "" && name[0] >= 'a' && name[0] <= 'z' && ValidAttributeName(name)
	if ok {
		return ""
	}
	return fmt.Sprintf("invalid attribute name %q: it must start with a lower-case letter and contain only lower-case letters and digits", name)
}

// matcher is a compiled filter expression.
type matcher interface {
	match(attrs map[string]string) bool
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

func (m *attributesMatcher) match(attrs map[string]string) bool {
	for i, name := range m.names {
		v, ok := lookupKnative(attrs, name)
		// As Knative's attributes filter: "" (any value) needs the attribute set, and an
		// optional core attribute that is unset reads as "".
		if want := m.values[i]; !ok || (want == "" && v == "") || (want != "" && want != v) {
			return false
		}
	}
	return true
}

type exactMatcher struct{ name, value string }

func (m *exactMatcher) match(attrs map[string]string) bool {
	v, ok := lookupKnative(attrs, m.name)
	return ok && v == m.value
}

type prefixMatcher struct{ name, prefix string }

func (m *prefixMatcher) match(attrs map[string]string) bool {
	v, ok := lookupKnative(attrs, m.name)
	return ok && strings.HasPrefix(v, m.prefix)
}

type suffixMatcher struct{ name, suffix string }

func (m *suffixMatcher) match(attrs map[string]string) bool {
	v, ok := lookupKnative(attrs, m.name)
	return ok && strings.HasSuffix(v, m.suffix)
}

type allMatcher []matcher

func (m allMatcher) match(attrs map[string]string) bool {
	for _, sub := range m {
		if !sub.match(attrs) {
			return false
		}
	}
	return true
}

type anyMatcher []matcher

func (m anyMatcher) match(attrs map[string]string) bool {
	for _, sub := range m {
		if sub.match(attrs) {
			return true
		}
	}
	return false
}

type notMatcher struct{ m matcher }

func (m *notMatcher) match(attrs map[string]string) bool { return !m.m.match(attrs) }

type cesqlMatcher struct{ expr Expr }

func (m *cesqlMatcher) match(attrs map[string]string) bool {
	v, err := m.expr.root.eval(attrs)
	return err == nil && v.t == TypeBoolean && v.i != 0
}

// CheckCESQL reports why expr cannot be a Trigger's cesql filter, or nil: what Compile
// checks, for admission to refuse it early. As Knative's validation (sdk-go's parser), only a
// syntax error refuses it; an unknown function, or a value that is not Boolean, parses and
// passes no event.
func CheckCESQL(expr string) error {
	_, err := ParseCESQL(expr)
	return err
}
