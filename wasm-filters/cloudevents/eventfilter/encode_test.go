package eventfilter

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// HTTP binding section 3.1.3.2: space, '"', '%' and everything outside
// U+0021-U+007E are percent-encoded, upper-case hex, nothing else.
func TestEncodeHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"Euro € 😀": "Euro%20%E2%82%AC%20%F0%9F%98%80", // the binding's own example
		"%41":      "%2541",                           // issue 22: delivered raw, it read as "A"
		"a%2Fb":    "a%252Fb",
		`a "b"`:    "a%20%22b%22",
		"café":     "caf%C3%A9",
		"plain-ASCII_value.~!#$&'()*+,/:;<=>?@[\\]^`{|}": "plain-ASCII_value.~!#$&'()*+,/:;<=>?@[\\]^`{|}",
		"":             "",
		"\u00a0\u2028": "%C2%A0%E2%80%A8",
	} {
		if got := EncodeHeaderValue(in); got != want {
			t.Errorf("EncodeHeaderValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever String an event carries, the binary headers BinaryHeaders writes
// read back (ParseHTTP) as the same event: the encoder and decoder agree.
func FuzzBinaryHeadersRoundTrip(f *testing.F) {
	for _, s := range []string{"%41", "a%2Fb", `"quoted"`, `a "b" c`, "  padded  ", "Euro € 😀", "100%", "%zz", `\`, "\u00ff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if checkString(v) != "" {
			t.Skip()
		}
		in := Event{Attributes: map[string]string{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "ext": v, "subject": "x" + v}}
		out, err := ParseHTTP(HeaderPairs(BinaryHeaders(in)), nil)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if !maps.Equal(out.Attributes, in.Attributes) {
			t.Fatalf("read back %q, want %q", out.Attributes, in.Attributes)
		}
		for _, kv := range BinaryHeaders(in) {
			for i := 0; i < len(kv[1]); i++ {
				if c := kv[1][i]; c <= ' ' || c >= 0x7f || c == '"' {
					t.Fatalf("header %s: %q has byte %q, not printable ASCII", kv[0], kv[1], c)
				}
			}
		}
	})
}

func structuredHeaders() HeaderPairs {
	return HeaderPairs{{"Content-Type", "application/cloudevents+json; charset=UTF-8"}}
}

// The JSON format's own examples (v1.0.2 section 3.2) and, for each, the
// binary-mode re-encoding the specification shows: the headers BinaryHeaders
// writes and the body must be those, byte for byte (header names compared
// case-insensitively, as HTTP does).
func TestJSONFormatExamplesReencoded(t *testing.T) {
	cases := []struct {
		name, body string
		headers    string
		data       string
	}{
		{"binary data",
			`{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "id" : "A234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "application/vnd.apache.thrift.binary",
    "data_base64" : "AAEC/w=="
}`, `ce-specversion: 1.0
ce-type: com.example.someevent
ce-source: /mycontext
ce-id: A234-1234-1234
ce-time: 2018-04-05T17:31:00Z
ce-comexampleextension1: value
ce-comexampleothervalue: 5
content-type: application/vnd.apache.thrift.binary`, "\x00\x01\x02\xff"},
		{"xml string data",
			`{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "id" : "B234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "unsetextension": null,
    "datacontenttype" : "application/xml",
    "data" : "<much wow=\"xml\"/>"
}`, `ce-specversion: 1.0
ce-type: com.example.someevent
ce-source: /mycontext
ce-id: B234-1234-1234
ce-time: 2018-04-05T17:31:00Z
ce-comexampleextension1: value
ce-comexampleothervalue: 5
content-type: application/xml`, `<much wow="xml"/>`},
		{"json object data",
			`{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "subject": null,
    "id" : "C234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "application/json",
    "data" : {
        "appinfoA" : "abc",
        "appinfoB" : 123,
        "appinfoC" : true
    }
}`, `ce-specversion: 1.0
ce-type: com.example.someevent
ce-source: /mycontext
ce-id: C234-1234-1234
ce-time: 2018-04-05T17:31:00Z
ce-comexampleextension1: value
ce-comexampleothervalue: 5
content-type: application/json`, `{
        "appinfoA" : "abc",
        "appinfoB" : 123,
        "appinfoC" : true
    }`},
		// The implied application/json becomes explicit (section 3.1.2).
		{"json string data, no datacontenttype",
			`{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "subject": null,
    "id" : "D234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "data" : "I'm just a string"
}`, `ce-specversion: 1.0
ce-type: com.example.someevent
ce-source: /mycontext
ce-id: D234-1234-1234
ce-time: 2018-04-05T17:31:00Z
ce-comexampleextension1: value
ce-comexampleothervalue: 5
content-type: application/json`, `"I'm just a string"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := ParseHTTP(structuredHeaders(), []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, kv := range BinaryHeaders(ev) {
				got[strings.ToLower(kv[0])] = kv[1]
			}
			want := map[string]string{}
			for line := range strings.SplitSeq(c.headers, "\n") {
				k, v, _ := strings.Cut(line, ": ")
				want[k] = v
			}
			if !maps.Equal(got, want) {
				t.Errorf("headers\n got %v\nwant %v", got, want)
			}
			if string(ev.Data) != c.data {
				t.Errorf("body %q, want %q", ev.Data, c.data)
			}
		})
	}
}

func TestParseHTTPStructuredDataHandling(t *testing.T) {
	const attrs = `"specversion":"1.0","id":"1","source":"/s","type":"t"`
	for _, c := range []struct {
		name, body string
		data       string
		noData     bool
		ct         string // the datacontenttype read, "-" for none
	}{
		// Issue 22 item 4: null is an explicit payload (JSON format 3.1.1).
		{"null data", `{` + attrs + `,"data":null}`, "null", false, "application/json"},
		{"null data json type", `{` + attrs + `,"datacontenttype":"application/json","data":null}`, "null", false, "application/json"},
		// Issue 22 item 6: any */json is JSON, so a string keeps its quotes.
		{"example/json string", `{` + attrs + `,"datacontenttype":"example/json","data":"hi"}`, `"hi"`, false, "example/json"},
		{"+json string", `{` + attrs + `,"datacontenttype":"application/vnd.x+json","data":"hi"}`, `"hi"`, false, "application/vnd.x+json"},
		{"text string", `{` + attrs + `,"datacontenttype":"text/plain","data":"hi \"there\"\n"}`, "hi \"there\"\n", false, "text/plain"},
		{"text null", `{` + attrs + `,"datacontenttype":"text/plain","data":null}`, "", true, "text/plain"},
		{"no data", `{` + attrs + `}`, "", true, "-"},
		{"data_base64 keeps no implied type", `{` + attrs + `,"data_base64":"aGk="}`, "hi", false, "-"},
		{"data_base64 null", `{` + attrs + `,"data_base64":null,"data":1}`, "1", false, "application/json"},
		{"surrogate pair", `{` + attrs + `,"datacontenttype":"text/plain","data":"\ud83d\ude00"}`, "😀", false, "text/plain"},
		{"json data kept raw", `{` + attrs + `,"data": [1, 2.50, "\u00e9"] }`, `[1, 2.50, "\u00e9"]`, false, "application/json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev, err := ParseHTTP(structuredHeaders(), []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if string(ev.Data) != c.data || (ev.Data == nil) != c.noData {
				t.Errorf("data %q (nil %v), want %q", ev.Data, ev.Data == nil, c.data)
			}
			ct, ok := ev.Get("datacontenttype")
			if !ok {
				ct = "-"
			}
			if ct != c.ct {
				t.Errorf("datacontenttype %q, want %q", ct, c.ct)
			}
		})
	}
}

// CloudEvents 0.3 is accepted, as Knative's ingress (the SDK) accepts it, and
// stays 0.3: its own attributes (schemaurl, datacontentencoding) follow its
// rules. The cases are the SDK's event_unmarshal_test.go TestUnmarshal and
// TestUnmarshalWithOrdering 0.3 cases.
func TestParseHTTPSpecVersion03(t *testing.T) {
	const attrs = `"specversion":"0.3","id":"ABC-123","source":"http://example.com/source","type":"com.example.test"`
	t.Run("binary", func(t *testing.T) {
		h := HeaderPairs{{"ce-specversion", "0.3"}, {"ce-id", "1"}, {"ce-source", "/s"}, {"ce-type", "t"},
			{"ce-schemaurl", "/schemas/1"}, {"ce-dataschema", "anything goes"}, {"content-type", "text/plain"}}
		ev, err := ParseHTTP(h, []byte("hi"))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"specversion": "0.3", "id": "1", "source": "/s", "type": "t",
			"schemaurl": "/schemas/1", "dataschema": "anything goes", "datacontenttype": "text/plain"}
		if !maps.Equal(ev.Attributes, want) || string(ev.Data) != "hi" {
			t.Errorf("got %v %q", ev.Attributes, ev.Data)
		}
	})
	for _, c := range []struct {
		name, body string
		data       string
		attrs      map[string]string
	}{
		{"struct data", `{` + attrs + `,"datacontenttype":"application/json","data":{"a":42,"b":"testing"},"exbool":true,"exint":42,"schemaurl":"http://example.com/schema"}`,
			`{"a":42,"b":"testing"}`, map[string]string{"datacontenttype": "application/json", "exbool": "true", "exint": "42", "schemaurl": "http://example.com/schema"}},
		{"string data", `{` + attrs + `,"datacontenttype":"application/json","data":"This is a string."}`,
			`"This is a string."`, map[string]string{"datacontenttype": "application/json"}},
		{"base64 data, encoding after data", `{"datacontenttype":"application/json","data":"eyJoZWxsbyI6IndvcmxkIn0=",` + attrs + `,"datacontentencoding":"base64"}`,
			`{"hello":"world"}`, map[string]string{"datacontenttype": "application/json"}},
		{"base64 data, text", `{` + attrs + `,"datacontentencoding":"base64","datacontenttype":"text/plain","data":"aGk="}`,
			"hi", map[string]string{"datacontenttype": "text/plain"}},
		{"base64 data null", `{` + attrs + `,"datacontentencoding":"base64","data":null}`, "", nil},
		{"dataschema is an extension", `{` + attrs + `,"dataschema":"not a uri"}`, "", map[string]string{"dataschema": "not a uri"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev, err := ParseHTTP(structuredHeaders(), []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"specversion": "0.3", "id": "ABC-123", "source": "http://example.com/source", "type": "com.example.test"}
			maps.Copy(want, c.attrs)
			if !maps.Equal(ev.Attributes, want) {
				t.Errorf("attributes %v\nwant %v", ev.Attributes, want)
			}
			if string(ev.Data) != c.data {
				t.Errorf("data %q, want %q", ev.Data, c.data)
			}
		})
	}
}

// The first problem is reported, naming its attribute, in the documented
// order; in particular a bad header is not hidden behind "missing
// specversion" (issue 13 item 9), and invalid UTF-8 is refused, never
// rewritten (issue 22 item 7).
func TestParseHTTPErrorsNameTheAttribute(t *testing.T) {
	const ok = `"specversion":"1.0","id":"1","source":"/s","type":"t"`
	type tc struct {
		name   string
		h      Header
		body   string
		reason Reason
		attr   string
		msg    string
	}
	bin := func(kv ...string) HeaderPairs {
		var h HeaderPairs
		for i := 0; i+1 < len(kv); i += 2 {
			h = append(h, [2]string{kv[i], kv[i+1]})
		}
		return h
	}
	req := []string{"ce-specversion", "1.0", "ce-id", "1", "ce-source", "/s", "ce-type", "t"}
	cases := []tc{
		{"bad name first", bin(append([]string{"ce-bad_name", "x"}, req...)...), "", ReasonInvalidAttributeName, "bad_name",
			`header "ce-bad_name": attribute name "bad_name" is invalid: it must consist of lower-case letters a-z and digits 0-9`},
		{"bad name in a map", HeaderMap{"Ce-Bad_name": {"x"}, "Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}}, "",
			ReasonInvalidAttributeName, "bad_name", `header "Ce-Bad_name": attribute name "bad_name" is invalid: it must consist of lower-case letters a-z and digits 0-9`},
		{"bad name without specversion", bin("ce-id", "1", "ce-bad.name", "x"), "", ReasonInvalidAttributeName, "bad.name",
			`header "ce-bad.name": attribute name "bad.name" is invalid: it must consist of lower-case letters a-z and digits 0-9`},
		{"bad encoding before specversion", bin(append([]string{"ce-ext", "%FF"}, req...)...), "", ReasonInvalidAttribute, "ext",
			`attribute "ext" (header "ce-ext"): percent-decoded value is not valid UTF-8`},
		{"latin-1 header", bin(append(req, "ce-subject", "caf\xe9")...), "", ReasonInvalidAttribute, "subject", `attribute "subject": not valid UTF-8`},
		{"source with a space", bin("ce-specversion", "1.0", "ce-id", "1", "ce-source", "/a%20b/c d", "ce-type", "t"), "", ReasonInvalidAttribute, "source",
			`attribute "source": "/a b/c d" is not a URI-reference (RFC 3986): character ' ' at byte 2 is not allowed in a URI (RFC 3986): percent-encode it`},
		{"whitespace id", bin("ce-specversion", "1.0", "ce-id", "%20", "ce-source", "/s", "ce-type", "t"), "", ReasonInvalidAttribute, "id",
			`attribute "id" must be a non-empty string (not only white space)`},
		{"0.3 ce-datacontentencoding", bin("ce-specversion", "0.3", "ce-id", "1", "ce-source", "/s", "ce-type", "t", "ce-datacontentencoding", "base64"), "",
			ReasonInvalidAttribute, "datacontentencoding", `binary mode: header "ce-datacontentencoding" must not be sent: the body is the data as is (datacontentencoding is for structured mode)`},
		{"0.3 empty schemaurl", bin("ce-specversion", "0.3", "ce-id", "1", "ce-source", "/s", "ce-type", "t", "ce-schemaurl", ""), "",
			ReasonInvalidAttribute, "schemaurl", `attribute "schemaurl" must be a non-empty URI-reference`},
		{"value error before missing", bin("ce-specversion", "1.0", "ce-time", "now", "ce-source", "/s"), "", ReasonInvalidAttribute, "time",
			`attribute "time": "now" is not an RFC 3339 timestamp: want YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)`},
		{"avro with ce headers is binary", bin("content-type", "application/cloudevents+avro", "ce-specversion", "1.0", "ce-id", "1", "ce-source", "/s"), "",
			ReasonMissingAttribute, "type", `missing required attribute "type"`},
	}
	add := func(name, body string, reason Reason, attr, msg string) {
		cases = append(cases, tc{name, structuredHeaders(), body, reason, attr, msg})
	}
	add("latin-1 attribute", "{"+ok+",\"subject\":\"caf\xe9\"}", ReasonInvalidAttribute, "subject",
		`structured event: member "subject": not valid UTF-8 (JSON text must be UTF-8, RFC 8259 section 8.1)`)
	add("latin-1 data", "{"+ok+",\"data\":\"caf\xe9\"}", ReasonInvalidData, "data",
		`structured event: member "data": not valid UTF-8 (JSON text must be UTF-8, RFC 8259 section 8.1)`)
	add("latin-1 member name", "{"+ok+",\"caf\xe9\":\"x\"}", ReasonInvalidAttributeName, "caf\ufffd",
		"structured event: member name \"caf\ufffd\": not valid UTF-8 (JSON text must be UTF-8, RFC 8259 section 8.1)")
	add("lone high surrogate", `{`+ok+`,"ext":"a\ud800"}`, ReasonInvalidAttribute, "ext", `structured event: member "ext": \uD800 is a lone surrogate, not a character`)
	add("lone low surrogate in data", `{`+ok+`,"data":{"k":["\udc00"]}}`, ReasonInvalidData, "data", `structured event: member "data": \uDC00 is a lone surrogate, not a character`)
	add("reversed pair", `{`+ok+`,"ext":"\ude00\ud83d"}`, ReasonInvalidAttribute, "ext", `structured event: member "ext": \uDE00 is a lone surrogate, not a character`)
	add("escaped backslash is not an escape", `{`+ok+`,"ext":"\\ud800"}`, "", "", "")
	add("upper-case name", `{`+ok+`,"Ext":"x"}`, ReasonInvalidAttributeName, "Ext",
		`structured event: attribute name "Ext" is invalid: it must consist of lower-case letters a-z and digits 0-9`)
	add("bad name before missing specversion", `{"id":"1","my_ext":"x"}`, ReasonInvalidAttributeName, "my_ext",
		`structured event: attribute name "my_ext" is invalid: it must consist of lower-case letters a-z and digits 0-9`)
	add("specversion number", `{"specversion":1.0,"id":"1","source":"/s","type":"t"}`, ReasonInvalidAttribute, "specversion", `attribute "specversion": want a JSON string, got a number`)
	add("empty subject", `{`+ok+`,"subject":""}`, ReasonInvalidAttribute, "subject", `attribute "subject" must be a non-empty string (not only white space)`)
	add("exponent integer", `{`+ok+`,"ext":1e3}`, ReasonInvalidAttribute, "ext", `attribute "ext": JSON number 1e3 is not a CloudEvents Integer (32-bit, no fraction or exponent)`)
	add("object data with text type", `{`+ok+`,"datacontenttype":"text/plain","data":{"a":1}}`, ReasonInvalidData, "data",
		`structured event: datacontenttype "text/plain" is not JSON, so data must be a JSON string (or use data_base64), got an object`)
	add("data_base64 number", `{`+ok+`,"data_base64":5}`, ReasonInvalidData, "data_base64", `structured event: "data_base64" must be a JSON string of base64, got a number`)
	add("0.3 data_base64", `{"specversion":"0.3","id":"1","source":"/s","type":"t","data_base64":"AA=="}`, ReasonInvalidAttributeName, "data_base64",
		`structured event: attribute name "data_base64" is invalid: CloudEvents 0.3 has no data_base64 member (binary data is "data" with "datacontentencoding": "base64")`)
	add("0.3 bad datacontentencoding", `{"specversion":"0.3","id":"1","source":"/s","type":"t","datacontentencoding":"quoted-printable","data":"x"}`,
		ReasonInvalidAttribute, "datacontentencoding", `attribute "datacontentencoding": "quoted-printable" is not supported: the only encoding is "base64"`)
	add("0.3 base64 data not a string", `{"specversion":"0.3","id":"1","source":"/s","type":"t","datacontentencoding":"base64","data":{}}`,
		ReasonInvalidData, "data", `structured event: data (datacontentencoding base64) must be a JSON string of base64, got an object`)
	add("1.0 datacontentencoding is an extension", `{`+ok+`,"datacontentencoding":"base64","data":{"a":1}}`, "", "", "")
	add("1.0 schemaurl is an extension", `{`+ok+`,"schemaurl":5}`, "", "", "")
	add("0.3 schemaurl is core", `{"specversion":"0.3","id":"1","source":"/s","type":"t","schemaurl":5}`, ReasonInvalidAttribute, "schemaurl",
		`attribute "schemaurl": want a JSON string, got a number`)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHTTP(c.h, []byte(c.body))
			if c.reason == "" {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
				return
			}
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

// Valid times of RFC 3339 that Go's time.Parse refuses are events like any
// other (issue 22 item 7).
func TestParseHTTPTimes(t *testing.T) {
	for _, ts := range []string{"2018-04-05t17:31:00z", "1990-12-31T23:59:60Z", "1990-12-31T15:59:60-08:00"} {
		ev, err := ParseHTTP(HeaderPairs{{"ce-specversion", "1.0"}, {"ce-id", "1"}, {"ce-source", "/s"}, {"ce-type", "t"}, {"ce-time", ts}}, nil)
		if err != nil {
			t.Errorf("%s: %v", ts, err)
			continue
		}
		if got, _ := ev.Get("time"); got != ts {
			t.Errorf("time %q, want it as sent, %q", got, ts)
		}
	}
}

func TestDataIsJSON(t *testing.T) {
	ev := func(ct, data string) Event {
		a := map[string]string{"specversion": "1.0"}
		if ct != "-" {
			a["datacontenttype"] = ct
		}
		return Event{Attributes: a, Data: []byte(data)}
	}
	for _, c := range []struct {
		ev   Event
		want bool
	}{
		{ev("application/json", `{"a":1}`), true},
		{ev("example/json", `"s"`), true},
		{ev("application/json", `null`), true},
		{ev("-", `{"a":1}`), false}, // binary mode without Content-Type: keep it without one
		{ev("text/plain", `"s"`), false},
		{ev("application/json", ` {"a":1}`), false},
		{ev("application/json", "{\"a\":1}\n"), false},
		{ev("application/json", `{"a":`), false},
		{ev("application/json", "\"caf\xe9\""), false},
		{ev("application/json", `"\ud800"`), false},
		{ev("application/json", ``), false},
	} {
		if got := DataIsJSON(c.ev); got != c.want {
			t.Errorf("DataIsJSON(%v, %q) = %v, want %v", c.ev.Attributes, c.ev.Data, got, c.want)
		}
	}
}

func TestBinaryHeaders(t *testing.T) {
	ev := Event{Attributes: map[string]string{
		"specversion": "1.0", "id": "a b", "source": "/s", "type": "t", "datacontenttype": `text/plain; charset="utf-8"`,
		"knativebrokerttl": "5", "zext": "%41", "1abc": "x",
	}}
	got := BinaryHeaders(ev, "knativebrokerttl")
	want := [][2]string{
		{"Ce-Specversion", "1.0"}, {"Ce-Id", "a%20b"}, {"Ce-Source", "/s"}, {"Ce-Type", "t"},
		{"Ce-1abc", "x"}, {"Content-Type", `text/plain; charset="utf-8"`}, {"Ce-Zext", "%2541"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("BinaryHeaders\n got %q\nwant %q", got, want)
	}
	if !utf8.ValidString(got[1][1]) {
		t.Error("not UTF-8")
	}
}

// TestHeaderName: the names spelled out for the core attributes are the ones the rule
// gives ("Ce-" and the name with its first letter upper-cased; Content-Type for
// datacontenttype).
func TestHeaderName(t *testing.T) {
	rule := func(attr string) string {
		if attr == "datacontenttype" {
			return "Content-Type"
		}
		if attr == "" {
			return "Ce-"
		}
		return "Ce-" + strings.ToUpper(attr[:1]) + attr[1:]
	}
	for _, attr := range []string{"", "specversion", "id", "source", "type", "subject", "time",
		"dataschema", "datacontenttype", "sentat", "traceparent", "a", "z9", "9lives", "Xy", "éa"} {
		if got, want := HeaderName(attr), rule(attr); got != want {
			t.Errorf("HeaderName(%q) = %q, want %q", attr, got, want)
		}
	}
}
