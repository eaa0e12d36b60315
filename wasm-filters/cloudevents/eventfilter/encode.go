package eventfilter

import (
	"encoding/json"
	"slices"
	"strings"
)

// EncodeHeaderValue percent-encodes an attribute value for an HTTP header, as
// the HTTP binding requires of an encoder (section 3.1.3.2): space, '"', '%'
// and every byte outside the printable ASCII range U+0021-U+007E become %XX
// (upper-case hex; a non-ASCII character's UTF-8 bytes each). Nothing else is
// encoded, so a value that needs no encoding is returned as is, and decoding
// the result (ParseHTTP) gives the value back.
func EncodeHeaderValue(v string) string {
	i := 0
	for i < len(v) && !mustPercentEncode(v[i]) {
		i++
	}
	if i == len(v) {
		return v
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(v) + 16)
	b.WriteString(v[:i])
	for ; i < len(v); i++ {
		c := v[i]
		if mustPercentEncode(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func mustPercentEncode(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '%'
}

// HeaderName returns the HTTP header that carries an attribute in binary
// mode: Content-Type for datacontenttype, else "Ce-" and the name with its
// first letter upper-cased, the canonical form net/http and the CloudEvents
// SDK write (names are case-insensitive on the wire).
func HeaderName(attr string) string {
	// The attributes of the spec's core set are written for every event: without
	// building their names (two allocations each).
	switch attr {
	case attrDataContentType:
		return "Content-Type"
	case "":
		return "Ce-"
	case attrSpecVersion:
		return "Ce-Specversion"
	case attrID:
		return "Ce-Id"
	case attrSource:
		return "Ce-Source"
	case attrType:
		return "Ce-Type"
	case attrSubject:
		return "Ce-Subject"
	case attrTime:
		return "Ce-Time"
	case attrDataSchema:
		return "Ce-Dataschema"
	}
	if c := attr[0]; 'a' <= c && c <= 'z' {
		return "Ce-" + string(c-'a'+'A') + attr[1:] // one allocation
	}
	return "Ce-" + strings.ToUpper(attr[:1]) + attr[1:]
}

// BinaryHeaders returns the header fields that carry an event's attributes in
// binary content mode (HTTP binding section 3.1), leaving out the attributes
// named in skip: each attribute as HeaderName(name) with its value encoded by
// EncodeHeaderValue, and datacontenttype as Content-Type, unencoded (it is a
// media type, which ParseHTTP has checked is one). The order is specversion,
// id, source, type, then the rest by name. The body is ev.Data.
func BinaryHeaders(ev Event, skip ...string) [][2]string {
	out := make([][2]string, 0, len(ev.Attributes))
	first := [...]string{attrSpecVersion, attrID, attrSource, attrType}
	for _, name := range first {
		if v, ok := ev.Attributes[name]; ok && !slices.Contains(skip, name) {
			out = append(out, [2]string{HeaderName(name), EncodeHeaderValue(v)})
		}
	}
	rest := make([]string, 0, len(ev.Attributes))
	for name := range ev.Attributes {
		if !slices.Contains(first[:], name) && !slices.Contains(skip, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range rest {
		v := ev.Attributes[name]
		if name != attrDataContentType {
			v = EncodeHeaderValue(v)
		}
		out = append(out, [2]string{HeaderName(name), v})
	}
	return out
}

// DataIsJSON reports whether the JSON event format can carry ev.Data as the
// value of its "data" member such that ParseHTTP reads back the very same
// bytes: the event declares a JSON datacontenttype, and the data is one JSON
// value in UTF-8 without lone surrogates or surrounding white space. Other
// data needs data_base64 (in 0.3, datacontentencoding base64).
func DataIsJSON(ev Event) bool {
	ct, ok := ev.Attributes[attrDataContentType]
	d := ev.Data
	if !ok || !IsJSONMediaType(ct) || len(d) == 0 || isJSONSpace(d[0]) || isJSONSpace(d[len(d)-1]) {
		return false
	}
	return json.Valid(d) && checkJSONText(d) == ""
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
