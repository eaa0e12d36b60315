package eventfilter

import (
	"errors"
	"testing"
)

func testEvent(extra ...string) Event {
	attrs := map[string]string{
		"specversion":     "1.0",
		"id":              "1",
		"source":          "/orders/eu",
		"type":            "com.example.order.created",
		"datacontenttype": "application/json; charset=utf-8",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i]] = extra[i+1]
	}
	return Event{Attributes: attrs}
}

func mustCompile(t *testing.T, f Filter) *Compiled {
	t.Helper()
	c, err := Compile(f)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func TestCompileMatch(t *testing.T) {
	ex := func(k, v string) Expression { return Expression{Exact: map[string]string{k: v}} }
	pre := func(k, v string) Expression { return Expression{Prefix: map[string]string{k: v}} }
	suf := func(k, v string) Expression { return Expression{Suffix: map[string]string{k: v}} }
	sql := func(s string) Expression { return Expression{CESQL: s} }
	not := func(e Expression) Expression { return Expression{Not: &e} }

	cases := []struct {
		name string
		f    Filter
		ev   Event
		want bool
	}{
		{"no filter", Filter{}, testEvent(), true},

		{"attributes equal", Filter{Attributes: map[string]string{"type": "com.example.order.created", "source": "/orders/eu"}}, testEvent(), true},
		{"attributes differ", Filter{Attributes: map[string]string{"type": "com.example.order.created", "source": "/orders/us"}}, testEvent(), false},
		{"attributes extension", Filter{Attributes: map[string]string{"region": "eu"}}, testEvent("region", "eu"), true},
		{"attributes absent extension", Filter{Attributes: map[string]string{"region": "eu"}}, testEvent(), false},
		{"attributes any value present", Filter{Attributes: map[string]string{"region": ""}}, testEvent("region", "us"), true},
		{"attributes any value absent extension", Filter{Attributes: map[string]string{"region": ""}}, testEvent(), false},
		// attributes/filter_test.go "Any Subject with attribs - without Subject in Event": an
		// unset optional attribute reads as "", which "any value" refuses.
		{"attributes any value absent core", Filter{Attributes: map[string]string{"subject": ""}}, testEvent(), false},
		{"attributes any value present core", Filter{Attributes: map[string]string{"subject": ""}}, testEvent("subject", "s"), true},
		// LookupAttribute formats time (RFC 3339, fewest fraction digits) and reads an unset
		// one as the zero time.
		{"attributes time as Knative formats it", Filter{Attributes: map[string]string{"time": "2020-01-01T00:00:00.5Z"}}, testEvent("time", "2020-01-01T00:00:00.500Z"), true},
		{"attributes any time, unset", Filter{Attributes: map[string]string{"time": ""}}, testEvent(), true},
		{"exact time as Knative formats it", Filter{Filters: []Expression{ex("time", "2020-01-01T00:00:00Z")}}, testEvent("time", "2020-01-01T00:00:00.000Z"), true},
		{"attributes absent core with value", Filter{Attributes: map[string]string{"subject": "x"}}, testEvent(), false},
		{"attributes datamediatype", Filter{Attributes: map[string]string{"datamediatype": "application/json"}}, testEvent(), true},

		{"exact", Filter{Filters: []Expression{ex("type", "com.example.order.created")}}, testEvent(), true},
		{"exact case-sensitive", Filter{Filters: []Expression{ex("type", "com.example.Order.created")}}, testEvent(), false},
		{"exact absent", Filter{Filters: []Expression{ex("region", "eu")}}, testEvent(), false},
		{"prefix", Filter{Filters: []Expression{pre("source", "/orders/")}}, testEvent(), true},
		{"prefix no", Filter{Filters: []Expression{pre("source", "/users/")}}, testEvent(), false},
		{"suffix", Filter{Filters: []Expression{suf("type", ".created")}}, testEvent(), true},
		{"suffix absent", Filter{Filters: []Expression{suf("subject", ".jpg")}}, testEvent(), false},
		{"filters all must pass", Filter{Filters: []Expression{pre("source", "/orders/"), suf("type", ".deleted")}}, testEvent(), false},
		{"all", Filter{Filters: []Expression{{All: []Expression{pre("source", "/orders/"), suf("type", ".created")}}}}, testEvent(), true},
		{"any", Filter{Filters: []Expression{{Any: []Expression{ex("type", "x"), suf("type", ".created")}}}}, testEvent(), true},
		{"any none", Filter{Filters: []Expression{{Any: []Expression{ex("type", "x"), ex("type", "y")}}}}, testEvent(), false},
		{"not", Filter{Filters: []Expression{not(ex("type", "x"))}}, testEvent(), true},
		{"not absent", Filter{Filters: []Expression{not(ex("region", "eu"))}}, testEvent(), true},
		{"cesql", Filter{Filters: []Expression{sql("source LIKE '/orders/%' AND type IN ('com.example.order.created', 'x')")}}, testEvent(), true},
		{"cesql missing attribute fails", Filter{Filters: []Expression{sql("region = 'eu'")}}, testEvent(), false},
		// A failing CESQL expression is a failed filter, so NOT passes it (as in Knative).
		{"not cesql missing attribute", Filter{Filters: []Expression{not(sql("region = 'eu'"))}}, testEvent(), true},
		{"cesql integers", Filter{Filters: []Expression{sql("priority > 3")}}, testEvent("priority", "5"), true},
		{"cesql cast error fails", Filter{Filters: []Expression{sql("priority > 3")}}, testEvent("priority", "high"), false},
		// Knative's validation (sdk-go's CESQL parser) accepts calls to no built-in and values
		// that are not conditions; such an expression passes no event. A missing function is
		// an evaluation error, so NOT passes it (sdk-go's tck/string_builtin_functions.yaml,
		// "CONCAT_WS without arguments doesn't exist").
		{"cesql unknown function fails", Filter{Filters: []Expression{sql("REGEX(type, 'a')")}}, testEvent(), false},
		{"cesql wrong arity fails", Filter{Filters: []Expression{sql("LOWER(type, 'a') = 'x'")}}, testEvent(), false},
		{"not cesql unknown function", Filter{Filters: []Expression{not(sql("REGEX(type, 'a')"))}}, testEvent(), true},
		{"cesql String value fails", Filter{Filters: []Expression{sql("myflag")}}, testEvent("myflag", "true"), false},
		{"cesql Integer value fails", Filter{Filters: []Expression{sql("LENGTH(type)")}}, testEvent(), false},
		{"nested", Filter{Filters: []Expression{{All: []Expression{
			{Any: []Expression{pre("source", "/users/"), pre("source", "/orders/")}},
			not(sql("EXISTS region")),
		}}}}, testEvent(), true},

		// What Knative's webhook lets through and its broker skips or reads otherwise
		// (subscriptionsapi.MaterializeSubscriptionsAPIFilter; checked against Knative's own
		// filters in TestFiltersAgainstKnative): an expression with no dialect, an empty all,
		// an empty value is skipped; several attributes in one exact/prefix/suffix must all
		// match; all/any/not of skipped expressions answer Knative's NoFilter.
		{"no dialect skipped", Filter{Filters: []Expression{{}, ex("type", "com.example.order.created")}}, testEvent(), true},
		{"only skipped expressions pass everything", Filter{Filters: []Expression{{}, {All: []Expression{}}}}, testEvent(), true},
		{"empty value skipped", Filter{Filters: []Expression{ex("type", ""), pre("source", "/users/")}}, testEvent(), false},
		{"two attributes both match", Filter{Filters: []Expression{{Prefix: map[string]string{"type": "com.example.", "source": "/orders/"}}}}, testEvent(), true},
		{"two attributes, one does not match", Filter{Filters: []Expression{{Prefix: map[string]string{"type": "com.example.", "source": "/users/"}}}}, testEvent(), false},
		{"any: failing then skipped answers the skipped one's NoFilter", Filter{Filters: []Expression{{Any: []Expression{ex("type", "x"), {Not: &Expression{}}}}}}, testEvent(), true},
		{"any: skipped then failing fails", Filter{Filters: []Expression{{Any: []Expression{{Not: &Expression{}}, ex("type", "x")}}}}, testEvent(), false},
		{"not of a skipped expression passes", Filter{Filters: []Expression{not(ex("type", ""))}}, testEvent(), true},

		// spec.filters overrides spec.filter.
		{"filters override attributes", Filter{
			Attributes: map[string]string{"type": "nope"},
			Filters:    []Expression{suf("type", ".created")},
		}, testEvent(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := mustCompile(t, c.f).Match(c.ev); got != c.want {
				t.Errorf("Match = %v, want %v", got, c.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	e := func(m map[string]string) Expression { return Expression{Exact: m} }
	cases := []struct {
		name string
		f    Filter
		want string
	}{
		{"bad attribute name", Filter{Attributes: map[string]string{"Type": "x"}},
			`filter.attributes: invalid attribute name "Type": it must start with a lower-case letter and contain only lower-case letters and digits`},
		{"digit first", Filter{Filters: []Expression{e(map[string]string{"1x": "y"})}},
			`filters[0].exact: invalid attribute name "1x": it must start with a lower-case letter and contain only lower-case letters and digits`},
		{"two dialects", Filter{Filters: []Expression{{Exact: map[string]string{"a": "b"}, Prefix: map[string]string{"a": "b"}}}},
			`filters[0]: multiple dialects set (exact, prefix): a filter expression has exactly one`},
		{"nested", Filter{Filters: []Expression{{Any: []Expression{e(map[string]string{"a": "b"}), {Not: &Expression{CESQL: "a ="}}}}}},
			`filters[0].any[1].not.cesql: invalid CESQL expression "a =": column 4: unexpected end of expression: expected a value, an attribute, a function call, NOT, -, EXISTS or '('`},
		// The legacy attributes are validated even when filters take over.
		{"attributes checked with filters", Filter{Attributes: map[string]string{"a-b": ""}, Filters: []Expression{e(map[string]string{"a": "b"})}},
			`filter.attributes: invalid attribute name "a-b": it must start with a lower-case letter and contain only lower-case letters and digits`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(c.f)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FieldError", err)
			}
			if err.Error() != c.want {
				t.Errorf("err = %s\nwant  %s", err, c.want)
			}
		})
	}
}

func TestCompiledNilMatchesAll(t *testing.T) {
	var c *Compiled
	if !c.Match(testEvent()) {
		t.Fatal("nil *Compiled should match")
	}
}
