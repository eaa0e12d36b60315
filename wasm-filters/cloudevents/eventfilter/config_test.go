package eventfilter

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

const sampleConfig = `{
  "broker": "default/default",
  "triggers": [
    {"name": "t1", "filter": {"attributes": {"type": "com.example.order.created"}}},
    {"name": "t2", "filters": [{"prefix": {"source": "/users/"}}]},
    {"name": "t3", "filters": [{"all": [{"suffix": {"type": ".created"}}, {"cesql": "region = 'eu'"}]}]},
    {"name": "all", "filter": null},
    {"name": "t5", "filter": {"attributes": {"type": "x"}}, "filters": [{"not": {"exact": {"type": "x"}}}]}
  ]
}`

func TestParsePluginConfig(t *testing.T) {
	cfg, err := ParsePluginConfig([]byte(sampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Broker != "default/default" || len(cfg.Triggers) != 5 {
		t.Fatalf("cfg = %+v", cfg)
	}
	got := cfg.AppendMatching(nil, testEvent("region", "eu"))
	if want := []string{"t1", "t3", "all", "t5"}; !slices.Equal(got, want) {
		t.Errorf("matching = %v, want %v", got, want)
	}
	got = cfg.AppendMatching(got[:0], testEvent())
	if want := []string{"t1", "all", "t5"}; !slices.Equal(got, want) {
		t.Errorf("matching = %v, want %v", got, want)
	}
}

// The control plane builds a BrokerConfig and marshals it; the filter parses
// the result back.
func TestBrokerConfigRoundTrip(t *testing.T) {
	in := BrokerConfig{Broker: "ns/b", Triggers: []TriggerConfig{
		{Name: "a", Filter: &AttributesFilter{Attributes: map[string]string{"type": "t"}}},
		{Name: "b", Filters: []Expression{{Any: []Expression{{Exact: map[string]string{"type": "t"}}, {CESQL: "EXISTS x"}}}}},
		{Name: "c"},
	}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParsePluginConfig(data)
	if err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if len(out.Triggers) != 3 || out.Triggers[1].Filters[0].Any[1].CESQL != "EXISTS x" {
		t.Fatalf("round trip: %s -> %+v", data, out)
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	if !in.Triggers[2].Match(testEvent()) {
		t.Error("trigger without filter should match after Validate")
	}
}

func TestParsePluginConfigErrors(t *testing.T) {
	cases := []struct{ name, json, want string }{
		{"not json", `nope`, `invalid JSON: invalid character 'o' in literal null (expecting 'u')`},
		{"null", `null`, `want a JSON object, got null`},
		{"array", `[]`, `want a JSON object, got an array`},
		{"broken", `{"broker":`, `invalid JSON: unexpected end of JSON input`},
		{"unknown top-level", `{"broker":"a/b","trigger":[]}`, `unknown field "trigger": want broker, generation, triggers`},
		{"no broker", `{"triggers":[]}`, `broker: required: the broker as "namespace/name"`},
		{"bad broker", `{"broker":"default"}`, `broker: "default" is not "namespace/name"`},
		{"broker type", `{"broker":1}`, `broker: want a JSON string, got a number`},
		{"triggers type", `{"broker":"a/b","triggers":{}}`, `triggers: want a JSON array, got an object`},
		{"trigger type", `{"broker":"a/b","triggers":["t1"]}`, `triggers[0]: want a JSON object, got a string`},
		{"no name", `{"broker":"a/b","triggers":[{}]}`, `triggers[0].name: required`},
		{"bad name", `{"broker":"a/b","triggers":[{"name":"T,1"}]}`, `triggers[0].name: "T,1" is not a valid name: use lower-case letters, digits, '-' and '.'`},
		{"duplicate name", `{"broker":"a/b","triggers":[{"name":"t"},{"name":"u"},{"name":"t"}]}`, `triggers[2].name: duplicate trigger name "t" (also triggers[0])`},
		{"unknown trigger field", `{"broker":"a/b","triggers":[{"name":"t","filtres":[]}]}`, `triggers[0]: unknown field "filtres": want name, filter, filters`},
		{"unknown filter field", `{"broker":"a/b","triggers":[{"name":"t","filter":{"attributs":{}}}]}`, `triggers[0].filter: unknown field "attributs": want attributes`},
		{"attribute value type", `{"broker":"a/b","triggers":[{"name":"t","filter":{"attributes":{"type":1}}}]}`, `triggers[0].filter.attributes.type: want a JSON string, got a number`},
		{"bad attribute name", `{"broker":"a/b","triggers":[{"name":"t","filter":{"attributes":{"Type":"x"}}}]}`,
			`triggers[0].filter.attributes: invalid attribute name "Type": it must start with a lower-case letter and contain only lower-case letters and digits`},
		{"two dialects", `{"broker":"a/b","triggers":[{"name":"t","filters":[{"exact":{"a":"b"}},{"exact":{"a":"b"},"prefix":{"a":"b"}}]}]}`,
			`triggers[0].filters[1]: multiple dialects set (exact, prefix): a filter expression has exactly one`},
		{"unknown dialect", `{"broker":"a/b","triggers":[{"name":"t","filters":[{"regex":{"a":"b"}}]}]}`,
			`triggers[0].filters[0]: unknown dialect "regex": want one of exact, prefix, suffix, all, any, not, cesql`},
		{"nested", `{"broker":"a/b","triggers":[{"name":"t","filters":[{"all":[{"not":{"suffix":{"type":1}}}]}]}]}`,
			`triggers[0].filters[0].all[0].not.suffix.type: want a JSON string, got a number`},
		{"empty cesql", `{"broker":"a/b","triggers":[{"name":"t","filters":[{"cesql":" "}]}]}`,
			`triggers[0].filters[0].cesql: must not be empty`},
		{"bad cesql", `{"broker":"a/b","triggers":[{"name":"t","filters":[{"cesql":"type = "}]}]}`,
			`triggers[0].filters[0].cesql: invalid CESQL expression "type = ": column 8: unexpected end of expression: expected a value, an attribute, a function call, NOT, -, EXISTS or '('`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePluginConfig([]byte(c.json))
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

// The filter configuration's token (issue 13, item 3) is a string; other top-level keys are
// refused naming the ones allowed.
func TestParseFilterConfigToken(t *testing.T) {
	cfg, err := ParseFilterConfig([]byte(`{"brokers":[{"broker":"a/b","triggers":[]}],"token":"s3cret"}`))
	if err != nil || cfg.Token != "s3cret" || len(cfg.Brokers) != 1 {
		t.Fatalf("ParseFilterConfig = %+v, %v; want token s3cret and one broker", cfg, err)
	}
	for in, want := range map[string]string{
		`{"brokers":[],"token":1}`: `token: want a JSON string, got a number`,
		`{"brokers":[],"tokn":""}`: `unknown field "tokn": want brokers and token (or broker, triggers for one broker)`,
	} {
		if _, err := ParseFilterConfig([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("ParseFilterConfig(%s) = %v, want %s", in, err, want)
		}
	}
}
