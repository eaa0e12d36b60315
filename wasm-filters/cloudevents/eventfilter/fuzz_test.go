package eventfilter

import (
	"testing"
)

// FuzzCESQL: any text is either refused with a *CESQLError or parses to an expression that
// evaluates without panicking, and whose source text parses again (admission parses a
// Trigger's cesql; the proxy's filter evaluates it on every event, where a panic would fail
// the request).
func FuzzCESQL(f *testing.F) {
	for _, s := range []string{
		"type = 'a'", "source LIKE '/orders/%' AND type IN ('a', 'b')", "NOT EXISTS subject",
		"SUBSTRING('abcdef', -10, 10)", "ABS(-2147483648)", "-2147483648 / -1", "5 % 0",
		"CONCAT_WS(',', 'a', type)", "'a' LIKE '\\%%_'", "((((1))))", "INT('12') + myext",
		"LEFT('abc', 2147483647)", "x NOT IN (1, 'a', TRUE)", "FOO(missing)", "'unterminated",
	} {
		f.Add(s, "42")
	}
	f.Fuzz(func(t *testing.T, expr, ext string) {
		e, err := ParseCESQL(expr)
		if err != nil {
			if _, ok := err.(*CESQLError); !ok {
				t.Fatalf("ParseCESQL(%q) = %T %v, want a *CESQLError", expr, err, err)
			}
			return
		}
		ev := Event{Attributes: map[string]string{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "myext": ext, "x": ext}}
		_, _ = e.Evaluate(ev)
		_ = e.Match(ev)
		if _, err := ParseCESQL(e.String()); err != nil {
			t.Fatalf("source %q of a parsed expression does not parse again: %v", e.String(), err)
		}
	})
}

// FuzzParseHTTP: any headers and body are either refused with an error or read as an event
// with the required attributes, without panicking (the proxy's filter reads every request
// to a broker with it).
func FuzzParseHTTP(f *testing.F) {
	f.Add("application/cloudevents+json", "", `{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`)
	f.Add("application/cloudevents-batch+json", "", `[{"specversion":"1.0","id":"1","source":"/s","type":"t"}]`)
	f.Add("application/json", "1.0", `{"a":1}`)
	f.Add("application/cloudevents+json", "", `{"specversion":"0.3","id":"1","source":"/s","type":"t","datacontentencoding":"base64","data":"AAEC"}`)
	f.Fuzz(func(t *testing.T, contentType, specversion string, body string) {
		h := HeaderPairs{{"content-type", contentType}}
		if specversion != "" {
			h = append(h, [2]string{"ce-specversion", specversion}, [2]string{"ce-id", "1"}, [2]string{"ce-source", "/s"}, [2]string{"ce-type", "t"})
		}
		ev, err := ParseHTTP(h, []byte(body))
		if err != nil {
			return
		}
		for _, a := range []string{"specversion", "id", "source", "type"} {
			if ev.Attributes[a] == "" {
				t.Fatalf("accepted an event without %s: %v", a, ev.Attributes)
			}
		}
	})
}
