package eventfilter

import (
	"strings"
	"testing"
)

// RFC 3986 section 5.4's reference resolution examples are all valid
// URI-references; so are the URIs of section 1.1.2 and the CloudEvents spec's
// sources.
func TestCheckURIReference(t *testing.T) {
	valid := []string{
		// RFC 3986 5.4.1 and 5.4.2.
		"g:h", "g", "./g", "g/", "/g", "//g", "?y", "g?y", "#s", "g#s", "g?y#s", ";x", "g;x", "g;x?y#s",
		".", "./", "..", "../", "../g", "../..", "../../", "../../g", "../../../g", "/./g", "/../g",
		"g.", ".g", "g..", "..g", "./../g", "./g/.", "g/./h", "g/../h", "g;x=1/./y", "g;x=1/../y",
		"g?y/./x", "g?y/../x", "g#s/./x", "g#s/../x", "http:g",
		// RFC 3986 1.1.2.
		"ftp://ftp.is.co.za/rfc/rfc1808.txt", "http://www.ietf.org/rfc/rfc2396.txt",
		"ldap://[2001:db8::7]/c=GB?objectClass?one", "mailto:John.Doe@example.com",
		"news:comp.infosystems.www.servers.unix", "tel:+1-816-555-1212", "telnet://192.0.2.16:80/",
		"urn:oasis:names:specification:docbook:dtd:xml:4.1.2",
		// CloudEvents spec (source examples) and the conformance cases.
		"https://github.com/cloudevents", "mailto:cncf-wg-serverless@lists.cncf.io",
		"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "cloudevents/spec/pull/123",
		"/sensors/tn-1234567/alerts", "1-555-123-4567", "//github.com/cloudevents/cloudeventsconformance/yaml/v1.yaml",
		"/mycontext/subcontext", "a%20b", "http://user:pw@host:8080/p?q=1#f", "http://[v1.fe80::a]/", "http://h:/",
		"",
	}
	for _, s := range valid {
		if msg := checkURIReference(s); msg != "" {
			t.Errorf("checkURIReference(%q) = %q, want valid", s, msg)
		}
	}
	invalid := map[string]string{
		"/a b":                    `character ' ' at byte 2 is not allowed`,
		"a b":                     `character ' ' at byte 1 is not allowed`,
		"/café":                   `character 'é' at byte 4 is not allowed`,
		"100%":                    `"%" at byte 3 does not start a percent-encoded octet`,
		"%zz":                     `"%" at byte 0 does not start`,
		`a\b`:                     `character '\\' at byte 1`,
		"/a{b}":                   `character '{'`,
		"a|b":                     `character '|'`,
		":foo":                    `the scheme is empty`,
		"1a:b":                    `"1a" is not a valid scheme`,
		"http://[::1/x":           `no closing ']'`,
		"http://[zz]/":            `[zz] is not an IPv6 address`,
		"http://h:8o/":            `port "8o" is not a number`,
		"http://a@b@c/":           `contains '@'`,
		"/a[1]":                   `'[' is not allowed in the path`,
		"?a[1]":                   `'[' is not allowed in the query`,
		"#a#b":                    `'#' is not allowed in the fragment`,
		"http://h]/":              `'[' and ']' are allowed in a host only`,
		"http://[::1]x/":          `unexpected characters after the IP literal`,
		"http://[fe80::1%25en0]/": `is not an IPv6 address`,
	}
	for s, want := range invalid {
		if msg := checkURIReference(s); !strings.Contains(msg, want) {
			t.Errorf("checkURIReference(%q) = %q, want it to contain %q", s, msg, want)
		}
	}
	for s, want := range map[string]string{"/schema": "it has no scheme", "http://example.com/schema": "", "urn:x": "", "a b:c": "not allowed"} {
		if msg := checkURI(s); (want == "") != (msg == "") || !strings.Contains(msg, want) {
			t.Errorf("checkURI(%q) = %q, want %q", s, msg, want)
		}
	}
}

func TestCheckTimestamp(t *testing.T) {
	for _, s := range []string{
		// RFC 3339 section 5.8.
		"1985-04-12T23:20:50.52Z", "1996-12-19T16:39:57-08:00", "1990-12-31T23:59:60Z",
		"1990-12-31T15:59:60-08:00", "1937-01-01T12:00:27.87+00:20",
		// Section 5.6's note: "T" and "Z" may be lower case.
		"2018-04-05t17:31:00z", "2018-04-05T17:31:00z", "2018-04-05t17:31:00Z",
		"2018-04-05T17:31:00.123456789123Z", "2020-02-29T00:00:00Z", "2000-02-29T00:00:00+14:00",
		"2016-12-31T23:59:60Z", "2017-01-01T00:59:60+01:00",
	} {
		if msg := checkTimestamp(s); msg != "" {
			t.Errorf("checkTimestamp(%q) = %q, want valid", s, msg)
		}
	}
	for s, want := range map[string]string{
		"":                          "want YYYY",
		"yesterday":                 "want YYYY",
		"2018-04-05 17:31:00Z":      "want YYYY",
		"2018-04-05T17:31:00":       "(Z|+hh:mm|-hh:mm)",
		"2018-04-05T17:31:00+0200":  "offset",
		"2018-04-05T17:31:00.Z":     "at least one digit",
		"2018-02-29T00:00:00Z":      "day 29 is out of range for 2018-02",
		"1900-02-29T00:00:00Z":      "day 29",
		"2018-04-31T00:00:00Z":      "day 31",
		"2018-00-05T00:00:00Z":      "month 00",
		"2018-04-05T24:00:00Z":      "hour 24",
		"2018-04-05T17:60:00Z":      "minute 60",
		"2018-04-05T17:31:61Z":      "second 61",
		"2018-04-05T17:31:60Z":      "leap second",
		"2018-04-05T17:31:00+24:00": "offset +24:00",
		"2018-04-05T17:31:00Zjunk":  "offset",
		"2018-4-05T17:31:00Z":       "want YYYY",
	} {
		if msg := checkTimestamp(s); msg == "" || !strings.Contains(msg, want) {
			t.Errorf("checkTimestamp(%q) = %q, want it to contain %q", s, msg, want)
		}
	}
}

func TestCheckMediaType(t *testing.T) {
	for _, s := range []string{
		"application/json", "application/json; charset=utf-8", "text/plain;charset=us-ascii",
		`text/plain; charset="utf-8"`, `multipart/form-data; boundary="a b;c"`, "application/vnd.apache.thrift.binary",
		"application/cloudevents+json", "text/plain;", "text/plain; charset = utf-8", "example/json",
	} {
		if msg := checkMediaType(s); msg != "" {
			t.Errorf("checkMediaType(%q) = %q, want valid", s, msg)
		}
	}
	for s, want := range map[string]string{
		"json":                 `want "type/subtype"`,
		"text/":                "subtype is not a token",
		"/plain":               "type is not a token",
		"text/plain charset=x": `unexpected 'c'`,
		"text/plain; charset":  `parameter "charset" has no value`,
		`text/plain; a="b`:     "not closed",
		"text/plain; a=":       "neither a token nor a quoted string",
		"text/pl@in":           `unexpected '@'`,
		"text/plain; =x":       "parameter name is not a token",
	} {
		if msg := checkMediaType(s); !strings.Contains(msg, want) || msg == "" {
			t.Errorf("checkMediaType(%q) = %q, want it to contain %q", s, msg, want)
		}
	}
}

// JSON format section 3.1.1: a datacontenttype declares JSON when its media
// type, without parameters, is */json or */*+json; absent means JSON.
func TestIsJSONMediaType(t *testing.T) {
	for ct, want := range map[string]bool{
		"": true, "application/json": true, "text/json": true, "example/json": true, "Application/JSON; charset=utf-8": true,
		"application/cloudevents+json": true, "application/vnd.foo+json;v=1": true, "image/x+json": true,
		"text/plain": false, "application/xml": false, "application/jsonx": false, "application/json-seq": false,
		"json": false, "application/x-json+xml": false,
	} {
		if got := IsJSONMediaType(ct); got != want {
			t.Errorf("IsJSONMediaType(%q) = %v, want %v", ct, got, want)
		}
	}
}

// TestByteClasses checks the byte classes written as switches against their
// grammar's character lists (RFC 3986 section 2.2, RFC 7230 section 3.2.6),
// for every byte.
func TestByteClasses(t *testing.T) {
	const subDelims, genDelims, separators = "!$&'()*+,;=", ":/?#[]@", `()<>@,;:\"/[]?=`
	for i := range 256 {
		c := byte(i)
		unreserved := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0
		if got, want := isSubDelim(c), strings.IndexByte(subDelims, c) >= 0; got != want {
			t.Errorf("isSubDelim(%q) = %v, want %v", c, got, want)
		}
		if got, want := isURIChar(c), unreserved || strings.IndexByte(subDelims+genDelims, c) >= 0; got != want {
			t.Errorf("isURIChar(%q) = %v, want %v", c, got, want)
		}
		if got, want := isTokenChar(c), c > ' ' && c < 0x7f && strings.IndexByte(separators, c) < 0; got != want {
			t.Errorf("isTokenChar(%q) = %v, want %v", c, got, want)
		}
	}
}
