package eventfilter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Header is read access to the header fields of an HTTP request. Each calls fn
// once for every field, in order, with the name in any case; a repeated field
// is reported once per value.
type Header interface {
	Each(fn func(name, value string))
}

// HeaderPairs adapts header fields as a list of name/value pairs, the shape
// proxy-wasm hosts return.
type HeaderPairs [][2]string

// Each implements Header.
func (h HeaderPairs) Each(fn func(name, value string)) {
	for _, kv := range h {
		fn(kv[0], kv[1])
	}
}

// HeaderMap adapts header fields as a map from name to values, the shape of
// net/http's http.Header (whose canonicalised names are fine: names are
// compared case-insensitively).
type HeaderMap map[string][]string

// Each implements Header.
func (h HeaderMap) Each(fn func(name, value string)) {
	for name, values := range h {
		for _, v := range values {
			fn(name, v)
		}
	}
}

// Content modes of the HTTP protocol binding.
const (
	contentTypeStructuredPrefix = "application/cloudevents"
	contentTypeBatchPrefix      = "application/cloudevents-batch"
	contentTypeStructuredJSON   = "application/cloudevents+json"
)

// Mode is the content mode of the HTTP protocol binding a request uses.
type Mode int

// Content modes.
const (
	// ModeBinary: attributes in ce-* headers, data in the body.
	ModeBinary Mode = iota
	// ModeStructured: the whole event in the body (application/cloudevents+json).
	ModeStructured
	// ModeBatch: several events in the body (application/cloudevents-batch+json); not supported.
	ModeBatch
)

// String returns "binary", "structured" or "batch".
func (m Mode) String() string {
	switch m {
	case ModeStructured:
		return "structured"
	case ModeBatch:
		return "batch"
	}
	return "binary"
}

// ContentMode tells which content mode a request with this Content-Type header
// value uses, as the HTTP binding defines it: a media type starting with
// application/cloudevents-batch is batched, one starting with
// application/cloudevents is structured, anything else (including no
// Content-Type) is binary. Callers that receive the body in pieces use it to
// decide whether they need the body before calling ParseHTTP.
func ContentMode(contentType string) Mode {
	mt := mediaType(contentType)
	switch {
	case strings.HasPrefix(mt, contentTypeBatchPrefix):
		return ModeBatch
	case strings.HasPrefix(mt, contentTypeStructuredPrefix):
		return ModeStructured
	}
	return ModeBinary
}

// ParseHTTP reads a CloudEvent from an HTTP request's headers and body,
// following the CloudEvents 1.0 HTTP protocol binding, and validates it.
// Errors are *EventError.
//
// Binary mode: every ce-<name> header is the attribute <name> (header names are
// case-insensitive; attribute names must then be lower-case letters and
// digits); values are unquoted if double-quoted and percent-decoded once, and
// must be valid UTF-8. Content-Type becomes datacontenttype, so a
// ce-datacontenttype header is rejected, as the binding requires. A '%' that
// does not start a two-digit hex escape is kept as is. The body is Data and is
// not inspected: binary mode needs no body to validate or filter.
//
// Structured mode (application/cloudevents+json): the body is one JSON object
// of the JSON event format. Attribute members must be strings, booleans,
// integers or null (null meaning absent); data and data_base64 are exclusive.
// ce-* headers are ignored in this mode: the body is authoritative.
//
// Batched mode and structured formats other than JSON are rejected.
func ParseHTTP(h Header, body []byte) (Event, error) {
	var sc headerScan
	if pairs, ok := h.(HeaderPairs); ok {
		// The proxy-wasm path: no closure, so nothing escapes.
		for _, kv := range pairs {
			sc.add(kv[0], kv[1])
		}
	} else {
		p := new(headerScan)
		h.Each(p.add)
		sc = *p
	}
	contentType, hasContentType, attrs, firstErr := sc.contentType, sc.hasContentType, sc.attrs, sc.firstErr

	switch ContentMode(contentType) {
	case ModeBatch:
		return Event{}, eventErr(ReasonBatchNotSupported, "",
			"batched content mode (%s) is not supported: send one event per request", mediaType(contentType))
	case ModeStructured:
		if mt := mediaType(contentType); mt != contentTypeStructuredJSON {
			return Event{}, eventErr(ReasonUnsupportedFormat, "",
				"structured event format %q is not supported: want %s", mt, contentTypeStructuredJSON)
		}
		return parseStructured(body)
	}

	if attrs == nil && firstErr == nil {
		if hasContentType {
			return Event{}, eventErr(ReasonNotCloudEvent, "",
				"request is not a CloudEvent: no ce-* headers (binary mode) and Content-Type %q is not %s (structured mode)",
				contentType, contentTypeStructuredJSON)
		}
		return Event{}, eventErr(ReasonNotCloudEvent, "",
			"request is not a CloudEvent: no ce-* headers (binary mode) and no Content-Type %s (structured mode)",
			contentTypeStructuredJSON)
	}
	if attrs == nil {
		attrs = make(map[string]string, 1)
	}
	if hasContentType && firstErr == nil {
		// (a ce-datacontenttype header was rejected by addBinaryAttribute)
		attrs[attrDataContentType] = contentType
		firstErr = validateValue(attrDataContentType, contentType)
	}
	if err := validate(attrs, firstErr); err != nil {
		return Event{}, err
	}
	return Event{Attributes: attrs, Data: body}, nil
}

// headerScan collects what ParseHTTP needs from the header fields: the
// Content-Type and the ce-* attributes (binary mode).
type headerScan struct {
	contentType    string
	hasContentType bool
	attrs          map[string]string
	firstErr       error
}

func (s *headerScan) add(name, value string) {
	if len(name) == len("content-type") && strings.EqualFold(name, "content-type") {
		if value = strings.TrimSpace(value); value != "" && !s.hasContentType {
			s.contentType, s.hasContentType = value, true
		}
		return
	}
	if len(name) < 3 || !strings.EqualFold(name[:3], "ce-") || s.firstErr != nil {
		return
	}
	if s.attrs == nil {
		s.attrs = make(map[string]string, 16)
	}
	s.firstErr = addBinaryAttribute(s.attrs, name, strings.ToLower(name[3:]), value)
}

// addBinaryAttribute decodes one ce-* header into attrs.
func addBinaryAttribute(attrs map[string]string, header, attr, value string) error {
	if !ValidAttributeName(attr) {
		return invalidNameErr(attr, fmt.Sprintf("header %q", header))
	}
	if attr == attrDataContentType {
		return eventErr(ReasonInvalidAttribute, attr,
			"binary mode: header %q must not be sent: the Content-Type header carries datacontenttype", header)
	}
	if _, dup := attrs[attr]; dup {
		return eventErr(ReasonDuplicateAttribute, attr, "attribute %q appears more than once (header %q)", attr, header)
	}
	v, err := decodeHeaderValue(value)
	if err != "" {
		return eventErr(ReasonInvalidAttribute, attr, "attribute %q (header %q): %s", attr, header, err)
	}
	attrs[attr] = v
	return validateValue(attr, v)
}

// decodeHeaderValue undoes the HTTP binding's encoding of an attribute value:
// surrounding whitespace is dropped, a double-quoted string (RFC 7230 section
// 3.2.6) is unquoted, then one round of percent-decoding is applied. It returns
// the value, or what is wrong with it.
func decodeHeaderValue(v string) (string, string) {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		inner := v[1 : len(v)-1]
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			if c == '\\' {
				if i+1 == len(inner) {
					return "", "quoted string ends with a lone backslash"
				}
				i++
				c = inner[i]
			} else if c == '"' {
				return "", "unescaped double quote inside a quoted string"
			}
			b.WriteByte(c)
		}
		v = b.String()
	}
	if strings.IndexByte(v, '%') < 0 {
		return v, ""
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			out = append(out, unhex(v[i+1])<<4|unhex(v[i+2]))
			i += 2
			continue
		}
		out = append(out, v[i])
	}
	if !utf8.Valid(out) {
		return "", "percent-decoded value is not valid UTF-8"
	}
	return string(out), ""
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// parseStructured reads one event in the JSON event format.
func parseStructured(body []byte) (Event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return Event{}, jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Event{}, eventErr(ReasonInvalidJSON, "", "structured event: invalid JSON: want an object, got %s", jsonKind(tok))
	}
	attrs := make(map[string]string, 8)
	seen := make(map[string]bool, 10)
	var (
		firstErr  error
		data      json.RawMessage
		hasData   bool
		data64    json.RawMessage
		hasData64 bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Event{}, jsonErr(err)
		}
		name := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Event{}, jsonErr(err)
		}
		if seen[name] {
			if firstErr == nil {
				firstErr = eventErr(ReasonDuplicateAttribute, name, "structured event: member %q appears more than once", name)
			}
			continue
		}
		seen[name] = true
		switch name {
		case "data":
			data, hasData = raw, true
			continue
		case "data_base64":
			data64, hasData64 = raw, true
			continue
		}
		if firstErr != nil {
			continue
		}
		if !ValidAttributeName(name) {
			firstErr = invalidNameErr(name, "structured event")
			continue
		}
		v, present, err := jsonAttributeValue(name, raw)
		if err != nil {
			firstErr = err
			continue
		}
		if !present {
			continue
		}
		attrs[name] = v
		firstErr = validateValue(name, v)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return Event{}, jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, eventErr(ReasonInvalidJSON, "", "structured event: invalid JSON: unexpected data after the top-level object")
	}
	if err := validate(attrs, firstErr); err != nil {
		return Event{}, err
	}
	ev := Event{Attributes: attrs}
	if isNull(data) {
		hasData = false
	}
	if isNull(data64) {
		hasData64 = false
	}
	switch {
	case hasData && hasData64:
		return Event{}, eventErr(ReasonInvalidData, "", `structured event: "data" and "data_base64" must not both be present`)
	case hasData64:
		var s string
		if err := json.Unmarshal(data64, &s); err != nil {
			return Event{}, eventErr(ReasonInvalidData, "", `structured event: "data_base64" must be a JSON string`)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Event{}, eventErr(ReasonInvalidData, "", `structured event: "data_base64" is not base64: %v`, err)
		}
		ev.Data = b
	case hasData:
		ev.Data = data
		if len(data) > 0 && data[0] == '"' && !isJSONMediaType(attrs[attrDataContentType]) {
			var s string
			if err := json.Unmarshal(data, &s); err == nil {
				ev.Data = []byte(s)
			}
		}
	}
	return ev, nil
}

// jsonAttributeValue converts one JSON member to the attribute's canonical
// string. present is false for null.
func jsonAttributeValue(name string, raw json.RawMessage) (v string, present bool, err error) {
	if len(raw) == 0 {
		return "", false, eventErr(ReasonInvalidJSON, name, "structured event: attribute %q has no value", name)
	}
	switch raw[0] {
	case 'n':
		return "", false, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, eventErr(ReasonInvalidJSON, name, "structured event: attribute %q: %v", name, err)
		}
		return s, true, nil
	}
	if isCoreAttribute(name) {
		return "", false, eventErr(ReasonInvalidAttribute, name,
			"attribute %q: want a JSON string, got %s", name, jsonKindOf(raw))
	}
	switch raw[0] {
	case 't', 'f':
		return string(raw), true, nil // "true" or "false": already canonical
	case '{', '[':
		return "", false, eventErr(ReasonInvalidAttribute, name,
			"attribute %q: want a string, boolean or integer, got %s", name, jsonKindOf(raw))
	}
	// A number: CloudEvents Integers only (32-bit, no fraction or exponent).
	s := string(raw)
	n, perr := strconv.ParseInt(s, 10, 32)
	if perr != nil {
		return "", false, eventErr(ReasonInvalidAttribute, name,
			"attribute %q: JSON number %s is not a CloudEvents Integer (32-bit, no fraction or exponent)", name, s)
	}
	return strconv.FormatInt(n, 10), true, nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 4 && string(raw) == "null"
}

func jsonErr(err error) *EventError {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return eventErr(ReasonInvalidJSON, "", "structured event: invalid JSON: unexpected end of input")
	}
	return eventErr(ReasonInvalidJSON, "", "structured event: invalid JSON: %v", err)
}

func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

func jsonKindOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case 'n':
		return "null"
	}
	return "a number"
}
