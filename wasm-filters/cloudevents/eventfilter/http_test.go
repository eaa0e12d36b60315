package eventfilter

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"testing"
)

func binaryHeaders(extra ...string) HeaderPairs {
	h := HeaderPairs{
		{"ce-specversion", "1.0"},
		{"ce-id", "1234-1234-1234"},
		{"ce-source", "/mycontext/subcontext"},
		{"ce-type", "com.example.someevent"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h = append(h, [2]string{extra[i], extra[i+1]})
	}
	return h
}

// without returns h without the named header.
func without(h HeaderPairs, name string) HeaderPairs {
	var out HeaderPairs
	for _, kv := range h {
		if kv[0] != name {
			out = append(out, kv)
		}
	}
	return out
}

func TestParseHTTPBinary(t *testing.T) {
	body := []byte(`{"hello":"world"}`)
	h := binaryHeaders(
		"Content-Type", "application/json; charset=utf-8",
		"Ce-Time", "2018-04-05T03:56:24Z",
		"CE-MyExt", "value",
		"ce-subject", "Euro%20%E2%82%AC%20%F0%9F%98%80",
		"ce-quoted", `"say \"hi\""`,
		"ce-percent", "100%",
		"x-other", "ignored",
	)
	ev, err := ParseHTTP(h, body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"specversion":     "1.0",
		"id":              "1234-1234-1234",
		"source":          "/mycontext/subcontext",
		"type":            "com.example.someevent",
		"datacontenttype": "application/json; charset=utf-8",
		"time":            "2018-04-05T03:56:24Z",
		"myext":           "value",
		"subject":         "Euro € 😀",
		"quoted":          `say "hi"`,
		"percent":         "100%",
	}
	if !maps.Equal(ev.Attributes, want) {
		t.Errorf("attributes = %v\nwant %v", ev.Attributes, want)
	}
	if string(ev.Data) != string(body) {
		t.Errorf("data = %q", ev.Data)
	}
	// A *HeaderPairs (what the proxy-wasm filter passes) reads the same.
	if ev, err := ParseHTTP(&h, body); err != nil || !maps.Equal(ev.Attributes, want) {
		t.Errorf("ParseHTTP(*HeaderPairs) = %v, %v\nwant %v", ev.Attributes, err, want)
	}
}

func TestParseHTTPBinaryHeaderMap(t *testing.T) {
	// net/http canonicalises names: Ce-Id, Content-Type.
	h := HeaderMap{
		"Ce-Specversion": {"1.0"},
		"Ce-Id":          {"42"},
		"Ce-Source":      {"urn:test"},
		"Ce-Type":        {"t"},
	}
	ev, err := ParseHTTP(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := ev.Get("id"); v != "42" {
		t.Errorf("id = %q", v)
	}
	if _, ok := ev.Get("datacontenttype"); ok {
		t.Error("datacontenttype set without a Content-Type")
	}
}

func TestParseHTTPErrors(t *testing.T) {
	base := binaryHeaders()
	structured := func(body string) (HeaderPairs, []byte) {
		return HeaderPairs{{"content-type", "application/cloudevents+json; charset=utf-8"}}, []byte(body)
	}
	type tc struct {
		name   string
		h      HeaderPairs
		body   []byte
		reason Reason
		attr   string
		msg    string
	}
	cases := []tc{
		{"missing id", without(base, "ce-id"), nil, ReasonMissingAttribute, "id", `missing required attribute "id"`},
		{"missing source", without(base, "ce-source"), nil, ReasonMissingAttribute, "source", `missing required attribute "source"`},
		{"missing type", without(base, "ce-type"), nil, ReasonMissingAttribute, "type", `missing required attribute "type"`},
		{"missing specversion", without(base, "ce-specversion"), nil, ReasonMissingAttribute, "specversion", `missing required attribute "specversion"`},
		{"unknown specversion", append(without(base, "ce-specversion"), [2]string{"ce-specversion", "0.9"}), nil,
			ReasonUnsupportedSpecVersion, "specversion", `specversion "0.9" is not supported: want 1.0 (or 0.3)`},
		{"empty id", append(without(base, "ce-id"), [2]string{"ce-id", ""}), nil,
			ReasonInvalidAttribute, "id", `attribute "id" must be a non-empty string (not only white space)`},
		{"bad time", append(base, [2]string{"ce-time", "yesterday"}), nil,
			ReasonInvalidAttribute, "time", `attribute "time": "yesterday" is not an RFC 3339 timestamp: want YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)`},
		{"relative dataschema", append(base, [2]string{"ce-dataschema", "/schema"}), nil,
			ReasonInvalidAttribute, "dataschema", `attribute "dataschema": "/schema" is not an absolute URI (RFC 3986): it has no scheme`},
		{"dash in extension name", append(base, [2]string{"ce-my-ext", "x"}), nil,
			ReasonInvalidAttributeName, "my-ext", `header "ce-my-ext": attribute name "my-ext" is invalid: it must consist of lower-case letters a-z and digits 0-9`},
		{"underscore in extension name", append(base, [2]string{"ce-my_ext", "x"}), nil,
			ReasonInvalidAttributeName, "my_ext", `header "ce-my_ext": attribute name "my_ext" is invalid: it must consist of lower-case letters a-z and digits 0-9`},
		{"reserved data", append(base, [2]string{"ce-data", "x"}), nil,
			ReasonInvalidAttributeName, "data", `header "ce-data": attribute name "data" is reserved`},
		{"ce-datacontenttype", append(base, [2]string{"ce-datacontenttype", "text/plain"}), nil,
			ReasonInvalidAttribute, "datacontenttype", `binary mode: header "ce-datacontenttype" must not be sent: the Content-Type header carries datacontenttype`},
		{"duplicate", append(base, [2]string{"Ce-Id", "2"}), nil,
			ReasonDuplicateAttribute, "id", `attribute "id" appears more than once (header "Ce-Id")`},
		{"overlong utf-8", append(base, [2]string{"ce-subject", "%C0%A0"}), nil,
			ReasonInvalidAttribute, "subject", `attribute "subject" (header "ce-subject"): percent-decoded value is not valid UTF-8`},
		{"control character", append(base, [2]string{"ce-subject", "a%0Ab"}), nil,
			ReasonInvalidAttribute, "subject", `attribute "subject": control character U+000A is not allowed`},
		{"bad content type", append(base, [2]string{"content-type", "json"}), nil,
			ReasonInvalidAttribute, "datacontenttype", `attribute "datacontenttype": "json" is not a media type (RFC 2046): want "type/subtype"`},
		{"not a cloudevent", HeaderPairs{{"content-type", "application/json"}}, []byte(`{}`),
			ReasonNotCloudEvent, "", `request is not a CloudEvent: no ce-* headers (binary mode) and Content-Type "application/json" is not application/cloudevents+json (structured mode)`},
		{"batch", HeaderPairs{{"Content-Type", "application/cloudevents-batch+json"}}, []byte(`[]`),
			ReasonBatchNotSupported, "", "batched content mode (application/cloudevents-batch+json) is not supported: send one event per request"},
		{"avro", HeaderPairs{{"Content-Type", "application/cloudevents+avro"}}, []byte{0},
			ReasonUnsupportedFormat, "", `structured event format "application/cloudevents+avro" is not supported: want application/cloudevents+json (or binary mode, with ce-* headers)`},
	}
	add := func(name, body string, reason Reason, attr, msg string) {
		h, b := structured(body)
		cases = append(cases, tc{name, h, b, reason, attr, msg})
	}
	const ok = `"specversion":"1.0","id":"1","source":"/s","type":"t"`
	add("structured truncated", `{"id":`, ReasonInvalidJSON, "", "structured event: invalid JSON: unexpected end of input")
	add("structured empty body", ``, ReasonInvalidJSON, "", "structured event: invalid JSON: unexpected end of input")
	add("structured bad token", `{"id" 1}`, ReasonInvalidJSON, "", "structured event: invalid JSON: expected colon after object key")
	add("structured array", `[1]`, ReasonInvalidJSON, "", "structured event: invalid JSON: want an object, got an array")
	add("structured trailing", `{`+ok+`} {}`, ReasonInvalidJSON, "", "structured event: invalid JSON: unexpected data after the top-level object")
	add("structured missing source", `{"specversion":"1.0","id":"1","type":"t"}`, ReasonMissingAttribute, "source", `missing required attribute "source"`)
	add("structured unknown specversion", `{"specversion":"0.2","id":"1","source":"/s","type":"t"}`, ReasonUnsupportedSpecVersion, "specversion", `specversion "0.2" is not supported: want 1.0 (or 0.3)`)
	add("structured id number", `{"specversion":"1.0","id":1,"source":"/s","type":"t"}`, ReasonInvalidAttribute, "id", `attribute "id": want a JSON string, got a number`)
	add("structured float extension", `{`+ok+`,"ext":1.5}`, ReasonInvalidAttribute, "ext", `attribute "ext": JSON number 1.5 is not a CloudEvents Integer (32-bit, no fraction or exponent)`)
	add("structured big extension", `{`+ok+`,"ext":4294967296}`, ReasonInvalidAttribute, "ext", `attribute "ext": JSON number 4294967296 is not a CloudEvents Integer (32-bit, no fraction or exponent)`)
	add("structured object extension", `{`+ok+`,"ext":{}}`, ReasonInvalidAttribute, "ext", `attribute "ext": want a string, boolean or integer, got an object`)
	add("structured bad name", `{`+ok+`,"myExt":"x"}`, ReasonInvalidAttributeName, "myExt", `structured event: attribute name "myExt" is invalid: it must consist of lower-case letters a-z and digits 0-9`)
	add("structured duplicate", `{`+ok+`,"id":"2"}`, ReasonDuplicateAttribute, "id", `structured event: member "id" appears more than once`)
	add("structured data and data_base64", `{`+ok+`,"data":1,"data_base64":"AA=="}`, ReasonInvalidData, "data", `structured event: "data" and "data_base64" must not both be present`)
	add("structured bad base64", `{`+ok+`,"data_base64":"!!"}`, ReasonInvalidData, "data_base64", `structured event: "data_base64" is not base64: illegal base64 data at input byte 0`)
	add("structured bad time", `{`+ok+`,"time":"2020-13-01T00:00:00Z"}`, ReasonInvalidAttribute, "time", `attribute "time": "2020-13-01T00:00:00Z" is not an RFC 3339 timestamp: month 13 is out of range`)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHTTP(c.h, c.body)
			var ee *EventError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want *EventError", err)
			}
			if ee.Reason != c.reason || ee.Attribute != c.attr || ee.Error() != c.msg {
				t.Errorf("got  reason=%s attr=%q %q\nwant reason=%s attr=%q %q", ee.Reason, ee.Attribute, ee.Error(), c.reason, c.attr, c.msg)
			}
		})
	}
}

func TestParseHTTPStructured(t *testing.T) {
	h := HeaderPairs{
		{"content-type", "application/cloudevents+json; charset=UTF-8"},
		{"ce-id", "ignored-in-structured-mode"},
	}
	body := []byte(`{
		"specversion": "1.0",
		"type": "com.example.someevent",
		"source": "https://example.com/source",
		"id": "A234-1234-1234",
		"time": "2018-04-05T17:31:00.123+02:00",
		"subject": null,
		"comexampleextension1": "value",
		"count": 5,
		"negative": -7,
		"flag": true,
		"datacontenttype": "application/json",
		"data": {"appinfoA": "abc", "appinfoB": 123}
	}`)
	ev, err := ParseHTTP(h, body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"specversion":          "1.0",
		"type":                 "com.example.someevent",
		"source":               "https://example.com/source",
		"id":                   "A234-1234-1234",
		"time":                 "2018-04-05T17:31:00.123+02:00",
		"comexampleextension1": "value",
		"count":                "5",
		"negative":             "-7",
		"flag":                 "true",
		"datacontenttype":      "application/json",
	}
	if !maps.Equal(ev.Attributes, want) {
		t.Errorf("attributes = %v\nwant %v", ev.Attributes, want)
	}
	if string(ev.Data) != `{"appinfoA": "abc", "appinfoB": 123}` {
		t.Errorf("data = %s", ev.Data)
	}
}

func TestParseHTTPStructuredData(t *testing.T) {
	h := HeaderPairs{{"Content-Type", "application/cloudevents+json"}}
	const attrs = `"specversion":"1.0","id":"1","source":"/s","type":"t"`
	for _, c := range []struct{ body, data string }{
		{`{` + attrs + `,"data_base64":"aGVsbG8="}`, "hello"},
		{`{` + attrs + `,"datacontenttype":"text/plain","data":"hi \"there\""}`, `hi "there"`},
		{`{` + attrs + `,"data":"a json string"}`, `"a json string"`},
		{`{` + attrs + `,"data":null}`, `null`},
		{`{` + attrs + `}`, ``},
	} {
		ev, err := ParseHTTP(h, []byte(c.body))
		if err != nil {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		if string(ev.Data) != c.data {
			t.Errorf("%s: data = %q, want %q", c.body, ev.Data, c.data)
		}
	}
}

func TestContentMode(t *testing.T) {
	for ct, want := range map[string]Mode{
		"":                                   ModeBinary,
		"application/json":                   ModeBinary,
		"APPLICATION/CloudEvents+JSON":       ModeStructured,
		"application/cloudevents+json; a=b":  ModeStructured,
		"application/cloudevents-batch+json": ModeBatch,
	} {
		if got := ContentMode(ct); got != want {
			t.Errorf("ContentMode(%q) = %s, want %s", ct, got, want)
		}
	}
}

func TestValidAttributeName(t *testing.T) {
	for name, want := range map[string]bool{
		"id": true, "myext1": true, "1abc": true, "averyveryverylongattributename": true,
		"": false, "data": false, "myExt": false, "my-ext": false, "my_ext": false, "é": false,
	} {
		if got := ValidAttributeName(name); got != want {
			t.Errorf("ValidAttributeName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestParseHTTPManyAttributes covers events with more attributes than the
// parser searches linearly (smallAttrSet): every attribute kept, a duplicate
// past the first smallAttrSet still refused, in both content modes.
func TestParseHTTPManyAttributes(t *testing.T) {
	h := binaryHeaders()
	want := map[string]string{"specversion": "1.0", "id": "1234-1234-1234", "source": "/mycontext/subcontext", "type": "com.example.someevent"}
	members := `"specversion":"1.0","id":"1234-1234-1234","source":"/mycontext/subcontext","type":"com.example.someevent"`
	for i := range 3 * smallAttrSet {
		name := fmt.Sprintf("ext%d", i)
		h = append(h, [2]string{"ce-" + name, strconv.Itoa(i)})
		members += fmt.Sprintf(`,%q:"%d"`, name, i)
		want[name] = strconv.Itoa(i)
	}
	ev, err := ParseHTTP(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(ev.Attributes, want) {
		t.Errorf("binary: attributes = %v\nwant %v", ev.Attributes, want)
	}
	structured := HeaderPairs{{"content-type", "application/cloudevents+json"}}
	ev, err = ParseHTTP(structured, []byte("{"+members+"}"))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(ev.Attributes, want) {
		t.Errorf("structured: attributes = %v\nwant %v", ev.Attributes, want)
	}

	dup := append(h, [2]string{"Ce-Ext40", "again"})
	_, err = ParseHTTP(dup, nil)
	var ee *EventError
	if !errors.As(err, &ee) || ee.Reason != ReasonDuplicateAttribute || ee.Attribute != "ext40" {
		t.Errorf("binary duplicate ext40: error %v, want %s on ext40", err, ReasonDuplicateAttribute)
	}
	_, err = ParseHTTP(structured, []byte("{"+members+`,"ext40":"again"}`))
	if !errors.As(err, &ee) || ee.Reason != ReasonDuplicateAttribute || ee.Attribute != "ext40" {
		t.Errorf("structured duplicate ext40: error %v, want %s on ext40", err, ReasonDuplicateAttribute)
	}
}

// TestParserMatchesParseHTTP runs a sequence of requests through one Parser
// and checks each result against ParseHTTP's: nothing of an earlier event
// (more attributes, a larger map, an error) shows in a later one.
func TestParserMatchesParseHTTP(t *testing.T) {
	many := binaryHeaders()
	for i := range 2 * smallAttrSet {
		many = append(many, [2]string{fmt.Sprintf("ce-ext%d", i), "v"})
	}
	type req struct {
		h    Header
		body []byte
	}
	pairs := binaryHeaders("ce-region", "eu", "content-type", "text/plain")
	reqs := []req{
		{binaryHeaders("ce-region", "eu", "ce-time", "2024-05-01T12:00:00.500Z"), nil},
		{many, nil},
		{binaryHeaders(), []byte("data")},
		{append(binaryHeaders(), [2]string{"ce-id", "dup"}), nil},
		{HeaderPairs{{"content-type", "application/cloudevents+json"}},
			[]byte(`{"specversion":"1.0","id":"s","source":"/s","type":"t","data":{"a":1}}`)},
		{HeaderMap{"Ce-Specversion": {"1.0"}, "Ce-Id": {"m"}, "Ce-Source": {"/m"}, "Ce-Type": {"t"}}, nil},
		{&pairs, nil},
		{binaryHeaders(), nil},
		{without(binaryHeaders(), "ce-source"), nil},
		{binaryHeaders("ce-other", "x"), nil},
	}
	var p Parser
	for i, r := range reqs {
		want, wantErr := ParseHTTP(r.h, r.body)
		got, err := p.ParseHTTP(r.h, r.body)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("request %d: error %v, ParseHTTP's %v", i, err, wantErr)
		}
		if !maps.Equal(got.Attributes, want.Attributes) || string(got.Data) != string(want.Data) {
			t.Errorf("request %d: attributes %v data %q, ParseHTTP's %v %q", i, got.Attributes, got.Data, want.Attributes, want.Data)
		}
	}
}
