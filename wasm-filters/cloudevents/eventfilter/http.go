package eventfilter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
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
// proxy-wasm hosts return. ParseHTTP reads a *HeaderPairs as well, which a
// caller can pass without allocating.
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

// Each implements Header. Names come in sorted order, so that of several
// problems with an event the same one is reported every time.
func (h HeaderMap) Each(fn func(name, value string)) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range h[name] {
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
// following the CloudEvents HTTP protocol binding (1.0, and 0.3 as Knative's
// ingress accepts it), and validates it. Errors are *EventError, naming the
// attribute at fault. Of several problems, the first found is reported in
// this order: a malformed attribute name, value encoding or JSON (or a
// duplicate), then a missing or unsupported specversion, then an attribute
// value (in the order the attributes came), then a missing REQUIRED
// attribute, then the data.
//
// Binary mode: every ce-<name> header is the attribute <name> (header names are
// case-insensitive; attribute names must then be lower-case letters and
// digits); a value that is one double-quoted string (RFC 7230 section 3.2.6)
// is unquoted, then every value is percent-decoded once and must be valid
// UTF-8 (section 3.1.3.2). Content-Type becomes datacontenttype, so a
// ce-datacontenttype header is rejected, as the binding requires. A '%' that
// does not start a two-digit hex escape is kept as is. The body is Data and is
// not inspected: binary mode needs no body to validate or filter.
//
// Structured mode (application/cloudevents+json): the body is one JSON object
// of the JSON event format, which must be UTF-8 without lone surrogate escapes
// (nothing is silently replaced by U+FFFD). Attribute members must be strings,
// booleans, integers or null (null meaning absent); data and data_base64 are
// exclusive. ce-* headers are ignored in this mode: the body is authoritative.
// Another structured format (application/cloudevents+avro, ...) is read as
// binary mode when the request has ce-* headers, as the binding allows and the
// CloudEvents SDK does, and is rejected otherwise.
//
// Batched mode is rejected.
func ParseHTTP(h Header, body []byte) (Event, error) {
	return parseHTTP(h, body, nil)
}

// Parser reads events as ParseHTTP does, reusing its buffers from one call
// to the next: the attributes of a binary-mode event are collected in the
// same list and returned in the same map, cleared first. It is for a caller
// that handles one event at a time and keeps none, such as the proxy-wasm
// filter, where an allocation costs about half a microsecond (compiled Go
// under a wasm runtime) and the list and the map were three per event. Not
// safe for concurrent use.
type Parser struct {
	list  [][2]string
	attrs map[string]string
}

// ParseHTTP is the function ParseHTTP, except that the Attributes map of a
// binary-mode event belongs to p: the next call overwrites it.
func (p *Parser) ParseHTTP(h Header, body []byte) (Event, error) {
	return parseHTTP(h, body, p)
}

// parseHTTP is ParseHTTP with p's buffers (p may be nil).
func parseHTTP(h Header, body []byte, p *Parser) (Event, error) {
	var sc headerScan
	if p != nil {
		sc.attrs.list = p.list[:0]
	}
	pairs, ok := h.(HeaderPairs)
	if ptr, isPtr := h.(*HeaderPairs); isPtr {
		// A pointer spares the caller converting a slice to an interface,
		// which allocates.
		pairs, ok = *ptr, true
	}
	if ok {
		// The proxy-wasm path: no closure, so nothing escapes.
		for _, kv := range pairs {
			sc.add(kv[0], kv[1])
		}
	} else {
		ps := new(headerScan)
		ps.attrs.list = sc.attrs.list
		h.Each(ps.add)
		sc = *ps
	}

	switch ContentMode(sc.contentType) {
	case ModeBatch:
		return Event{}, eventErr(ReasonBatchNotSupported, "",
			"batched content mode (%s) is not supported: send one event per request", mediaType(sc.contentType))
	case ModeStructured:
		mt := mediaType(sc.contentType)
		if mt == contentTypeStructuredJSON {
			return parseStructured(body)
		}
		if !sc.anyCE {
			return Event{}, eventErr(ReasonUnsupportedFormat, "",
				"structured event format %q is not supported: want %s (or binary mode, with ce-* headers)", mt, contentTypeStructuredJSON)
		}
		// Binary mode with that content type, as the binding allows.
	}

	if !sc.anyCE {
		if sc.hasContentType {
			return Event{}, eventErr(ReasonNotCloudEvent, "",
				"request is not a CloudEvent: no ce-* headers (binary mode) and Content-Type %q is not %s (structured mode)",
				sc.contentType, contentTypeStructuredJSON)
		}
		return Event{}, eventErr(ReasonNotCloudEvent, "",
			"request is not a CloudEvent: no ce-* headers (binary mode) and no Content-Type %s (structured mode)",
			contentTypeStructuredJSON)
	}
	if sc.firstErr != nil {
		return Event{}, sc.firstErr
	}
	attrs := &sc.attrs
	if sc.hasContentType {
		// (a ce-datacontenttype header was rejected by addBinaryAttribute)
		attrs.set(attrDataContentType, sc.contentType)
	}
	version, err := attrs.specVersion()
	if err != nil {
		return Event{}, err
	}
	if _, ok := attrs.get(attrDataContentEncoding); ok && version == SpecVersion03 {
		return Event{}, eventErr(ReasonInvalidAttribute, attrDataContentEncoding,
			"binary mode: header \"ce-datacontentencoding\" must not be sent: the body is the data as is (datacontentencoding is for structured mode)")
	}
	if err := attrs.validateValues(version); err != nil {
		return Event{}, err
	}
	if p != nil {
		p.list = attrs.list
		return Event{Attributes: p.fill(attrs.list), Data: body}, nil
	}
	return Event{Attributes: attrs.attributes(), Data: body}, nil
}

// fill returns p's map holding list's attributes and nothing else. A map
// grown past smallAttrSet entries is dropped rather than cleared, so that one
// large event does not make every later clear slower.
func (p *Parser) fill(list [][2]string) map[string]string {
	if p.attrs == nil || len(p.attrs) > smallAttrSet {
		p.attrs = make(map[string]string, max(len(list), 8))
	} else {
		clear(p.attrs)
	}
	for _, kv := range list {
		p.attrs[kv[0]] = kv[1]
	}
	return p.attrs
}

// headerScan collects what ParseHTTP needs from the header fields: the
// Content-Type and the ce-* attributes (binary mode), and the first problem
// with a ce-* header's name or encoding. It reads every header even after a
// problem, so that ParseHTTP reports the problem rather than an attribute
// that seems missing.
type headerScan struct {
	contentType    string
	hasContentType bool
	anyCE          bool
	attrs          attrSet
	firstErr       error
}

func (s *headerScan) add(name, value string) {
	if len(name) == len("content-type") && strings.EqualFold(name, "content-type") {
		if value = strings.TrimSpace(value); value != "" && !s.hasContentType {
			s.contentType, s.hasContentType = value, true
		}
		return
	}
	// name[:3] is "ce-" in any case (|0x20 lower-cases only the letters C
	// and E here), without a call per header.
	if len(name) < 3 || name[0]|0x20 != 'c' || name[1]|0x20 != 'e' || name[2] != '-' {
		return
	}
	s.anyCE = true
	if err := s.addBinaryAttribute(name, strings.ToLower(name[3:]), value); err != nil && s.firstErr == nil {
		s.firstErr = err
	}
}

// addBinaryAttribute decodes one ce-* header into the attributes.
func (s *headerScan) addBinaryAttribute(header, attr, value string) error {
	if !ValidAttributeName(attr) {
		return invalidNameErr(attr, fmt.Sprintf("header %q", header))
	}
	if attr == attrDataContentType {
		return eventErr(ReasonInvalidAttribute, attr,
			"binary mode: header %q must not be sent: the Content-Type header carries datacontenttype", header)
	}
	if _, dup := s.attrs.get(attr); dup {
		return eventErr(ReasonDuplicateAttribute, attr, "attribute %q appears more than once (header %q)", attr, header)
	}
	v, err := decodeHeaderValue(value)
	s.attrs.set(attr, v)
	if err != "" {
		return eventErr(ReasonInvalidAttribute, attr, "attribute %q (header %q): %s", attr, header, err)
	}
	return nil
}

// decodeHeaderValue undoes the HTTP binding's encoding of an attribute value:
// surrounding whitespace is dropped, a value that is exactly one double-quoted
// string (RFC 7230 section 3.2.6) is unquoted, then one round of
// percent-decoding is applied, whose result must be valid UTF-8. It returns
// the value, or what is wrong with it. A value with quotes that is not one
// quoted string (a "b" c) is taken literally.
func decodeHeaderValue(v string) (string, string) {
	v = strings.TrimSpace(v)
	if u, ok := unquote(v); ok {
		v = u
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
		return string(out), "percent-decoded value is not valid UTF-8"
	}
	return string(out), ""
}

// unquote returns the contents of v if v is one quoted-string.
func unquote(v string) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	inner := v[1 : len(v)-1]
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch c {
		case '\\':
			if i+1 == len(inner) {
				return "", false
			}
			i++
			c = inner[i]
		case '"':
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
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

// member is one member of a structured event's JSON object.
type member struct {
	name string
	raw  json.RawMessage
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
	members := make([]member, 0, 12)
	seen := make(map[string]struct{}, 12)
	var firstErr error
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return Event{}, jsonErr(err)
		}
		name := tok.(string) // object keys are always strings
		rawName := body[start:dec.InputOffset()]
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Event{}, jsonErr(err)
		}
		members = append(members, member{name, raw})
		if firstErr != nil {
			continue
		}
		// encoding/json turns invalid UTF-8 and lone surrogates into U+FFFD:
		// refuse them rather than deliver a different event.
		if msg := checkJSONText(rawName); msg != "" {
			firstErr = eventErr(ReasonInvalidAttributeName, name, "structured event: member name %q: %s", name, msg)
		} else if msg := checkJSONText(raw); msg != "" {
			reason := ReasonInvalidAttribute
			if name == "data" || name == "data_base64" {
				reason = ReasonInvalidData
			}
			firstErr = eventErr(reason, name, "structured event: member %q: %s", name, msg)
		} else if _, dup := seen[name]; dup {
			firstErr = eventErr(ReasonDuplicateAttribute, name, "structured event: member %q appears more than once", name)
		}
		seen[name] = struct{}{}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return Event{}, jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, eventErr(ReasonInvalidJSON, "", "structured event: invalid JSON: unexpected data after the top-level object")
	}
	if firstErr != nil {
		return Event{}, firstErr
	}
	var data, data64 *member
	for i := range members {
		m := &members[i]
		switch m.name {
		case "data":
			data = m
		case "data_base64":
			data64 = m
		default:
			if !ValidAttributeName(m.name) {
				return Event{}, invalidNameErr(m.name, "structured event")
			}
		}
	}

	var attrs attrSet
	for _, m := range members {
		if m.name == attrSpecVersion {
			v, present, err := jsonAttributeValue("", m.name, m.raw)
			if err != nil {
				return Event{}, err
			}
			if present {
				attrs.set(m.name, v)
			}
		}
	}
	version, err := attrs.specVersion()
	if err != nil {
		return Event{}, err
	}
	if version == SpecVersion03 && data64 != nil {
		return Event{}, eventErr(ReasonInvalidAttributeName, "data_base64",
			`structured event: attribute name "data_base64" is invalid: CloudEvents 0.3 has no data_base64 member (binary data is "data" with "datacontentencoding": "base64")`)
	}
	for _, m := range members {
		if m.name == "data" || m.name == "data_base64" || m.name == attrSpecVersion {
			continue
		}
		v, present, err := jsonAttributeValue(version, m.name, m.raw)
		if err != nil {
			return Event{}, err
		}
		if present {
			attrs.set(m.name, v)
		}
	}
	if err := attrs.validateValues(version); err != nil {
		return Event{}, err
	}

	ev := Event{Attributes: attrs.attributes()}
	if data != nil && isNull(data.raw) && !IsJSONMediaType(ev.Attributes[attrDataContentType]) {
		data = nil // no payload: null is not a string of some other media type
	}
	base64Data := false
	if version == SpecVersion03 {
		if _, ok := ev.Attributes[attrDataContentEncoding]; ok {
			// 0.3's binary data: "data" is a base64 string. The attribute
			// only says how the data is written in JSON, so it is dropped
			// with the encoding, as the SDK does.
			delete(ev.Attributes, attrDataContentEncoding)
			data64, data, base64Data = data, nil, true
		}
	}
	if data64 != nil && isNull(data64.raw) {
		data64 = nil
	}
	switch {
	case data != nil && data64 != nil:
		return Event{}, eventErr(ReasonInvalidData, "data", `structured event: "data" and "data_base64" must not both be present`)
	case data64 != nil:
		member := `"data_base64"`
		if base64Data {
			member = "data (datacontentencoding base64)"
		}
		var s string
		if len(data64.raw) == 0 || data64.raw[0] != '"' || json.Unmarshal(data64.raw, &s) != nil {
			return Event{}, eventErr(ReasonInvalidData, data64.name, "structured event: %s must be a JSON string of base64, got %s", member, jsonKindOf(data64.raw))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Event{}, eventErr(ReasonInvalidData, data64.name, "structured event: %s is not base64: %v", member, err)
		}
		ev.Data = b
	case data != nil:
		ct, hasCT := ev.Attributes[attrDataContentType]
		if IsJSONMediaType(ct) {
			ev.Data = data.raw
		} else {
			var s string
			if data.raw[0] != '"' || json.Unmarshal(data.raw, &s) != nil {
				return Event{}, eventErr(ReasonInvalidData, "data",
					"structured event: datacontenttype %q is not JSON, so data must be a JSON string (or use data_base64), got %s", ct, jsonKindOf(data.raw))
			}
			ev.Data = []byte(s)
		}
		if !hasCT {
			// JSON format section 3.1.2: re-encoded elsewhere, the event
			// SHOULD say explicitly what the JSON format implied.
			ev.Attributes[attrDataContentType] = "application/json"
		}
	}
	return ev, nil
}

// checkJSONText returns why raw JSON text (already known to be syntactically
// valid) is not text encoding/json can decode faithfully, or "": it must be
// UTF-8 (RFC 8259 section 8.1) and its \u escapes must not be lone
// surrogates (which decode to U+FFFD, not to a character).
func checkJSONText(raw []byte) string {
	if !utf8.Valid(raw) {
		return "not valid UTF-8 (JSON text must be UTF-8, RFC 8259 section 8.1)"
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i >= len(raw) || raw[i] != 'u' || i+4 >= len(raw) {
			continue
		}
		r := hex4(raw[i+1 : i+5])
		i += 4
		switch {
		case r >= 0xd800 && r < 0xdc00:
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo := hex4(raw[i+3 : i+7]); lo >= 0xdc00 && lo <= 0xdfff {
					i += 6
					continue
				}
			}
			return fmt.Sprintf("\\u%04X is a lone surrogate, not a character", r)
		case r >= 0xdc00 && r <= 0xdfff:
			return fmt.Sprintf("\\u%04X is a lone surrogate, not a character", r)
		}
	}
	return ""
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		if !isHex(c) {
			return -1
		}
		r = r<<4 | rune(unhex(c))
	}
	return r
}

// jsonAttributeValue converts one JSON member to the attribute's canonical
// string. present is false for null. Core attributes of the version must be
// JSON strings; extensions may be strings, booleans or integers.
func jsonAttributeValue(version, name string, raw json.RawMessage) (v string, present bool, err error) {
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
	if name == attrSpecVersion || isCoreAttribute(version, name) {
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
