package eventfilter

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Specification versions accepted. A 0.3 event is read and delivered as 0.3,
// as Knative's ingress (the CloudEvents SDK) does: it is not converted.
const (
	SpecVersion   = "1.0"
	SpecVersion03 = "0.3"
)

// Event is a validated CloudEvent.
//
// Attributes holds every context attribute present in the event, core and
// extension alike, keyed by its (lower-case) name, each value in the
// specification's canonical string encoding: Booleans as "true"/"false",
// Integers in base 10, Binary as base64, URIs and Timestamps as sent. An
// attribute that is absent from the event is absent from the map (a JSON null
// in structured mode counts as absent).
//
// Data is the event payload: the HTTP body in binary mode (aliasing the slice
// given to ParseHTTP, not a copy), and in structured mode the decoded
// data_base64 (or, in 0.3, the data decoded by datacontentencoding base64),
// the contents of a JSON string data whose datacontenttype is not JSON, or
// else the raw JSON of data, byte for byte as sent ("null" for "data": null).
//
// A structured event with a data member and no datacontenttype gets
// datacontenttype application/json, which the JSON format implies (section
// 3.1.2), so that a re-encoding in binary mode keeps the meaning.
type Event struct {
	Attributes map[string]string
	Data       []byte
	// filterView says Attributes are already as Knative's filters read them (ForFilters).
	filterView bool
}

// Get returns the value of the named attribute and whether the event has it.
func (e Event) Get(name string) (string, bool) {
	v, ok := e.Attributes[name]
	return v, ok
}

// Reason classifies why an HTTP request is not an acceptable CloudEvent. The
// values are stable strings, suitable for metrics labels and JSON responses.
type Reason string

// Reasons reported by ParseHTTP.
const (
	// ReasonNotCloudEvent: no ce-* headers and no structured content type.
	ReasonNotCloudEvent Reason = "not_cloudevent"
	// ReasonMissingAttribute: a REQUIRED attribute (id, source, specversion, type) is absent.
	ReasonMissingAttribute Reason = "missing_attribute"
	// ReasonInvalidAttribute: an attribute value breaks its type's or its own constraints.
	ReasonInvalidAttribute Reason = "invalid_attribute"
	// ReasonInvalidAttributeName: an attribute name is not lower-case letters and digits, or is "data".
	ReasonInvalidAttributeName Reason = "invalid_attribute_name"
	// ReasonDuplicateAttribute: an attribute appears more than once.
	ReasonDuplicateAttribute Reason = "duplicate_attribute"
	// ReasonUnsupportedSpecVersion: specversion is neither 1.0 nor 0.3.
	ReasonUnsupportedSpecVersion Reason = "unsupported_specversion"
	// ReasonInvalidJSON: a structured-mode body is not a JSON object.
	ReasonInvalidJSON Reason = "invalid_json"
	// ReasonInvalidData: data and data_base64 together, data_base64 that is not base64,
	// data that is not a string when the datacontenttype is not JSON, or data
	// that is not valid UTF-8 JSON text.
	ReasonInvalidData Reason = "invalid_data"
	// ReasonBatchNotSupported: the batched content mode (application/cloudevents-batch+json).
	ReasonBatchNotSupported Reason = "batch_not_supported"
	// ReasonUnsupportedFormat: a structured event format other than JSON.
	ReasonUnsupportedFormat Reason = "unsupported_format"
)

// EventError reports why a request does not carry a valid CloudEvent.
// Reason is machine-friendly; Attribute names the offending attribute when
// there is one; Error() is a sentence for humans that names it too.
type EventError struct {
	Reason    Reason
	Attribute string
	Message   string
}

// Error implements error.
func (e *EventError) Error() string { return e.Message }

func eventErr(reason Reason, attr, format string, args ...any) *EventError {
	return &EventError{Reason: reason, Attribute: attr, Message: fmt.Sprintf(format, args...)}
}

// Core context attribute names.
const (
	attrID                  = "id"
	attrSource              = "source"
	attrSpecVersion         = "specversion"
	attrType                = "type"
	attrDataContentType     = "datacontenttype"
	attrDataSchema          = "dataschema"
	attrSubject             = "subject"
	attrTime                = "time"
	attrSchemaURL           = "schemaurl"           // 0.3's dataschema, a URI-reference
	attrDataContentEncoding = "datacontentencoding" // 0.3, structured mode only
)

// isCoreAttribute reports whether name is a core (REQUIRED or OPTIONAL)
// context attribute of the given specification version.
func isCoreAttribute(version, name string) bool {
	switch name {
	case attrID, attrSource, attrSpecVersion, attrType, attrDataContentType, attrSubject, attrTime:
		return true
	case attrDataSchema:
		return version != SpecVersion03
	case attrSchemaURL, attrDataContentEncoding:
		return version == SpecVersion03
	}
	return false
}

// ValidAttributeName reports whether name follows the CloudEvents naming
// convention: one or more lower-case ASCII letters or digits, and not the
// reserved name "data". The specification only recommends (SHOULD NOT) names
// longer than 20 characters, so longer names are accepted.
func ValidAttributeName(name string) bool {
	if name == "" || name == "data" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func invalidNameErr(name, where string) *EventError {
	if name == "data" {
		return eventErr(ReasonInvalidAttributeName, name,
			`%s: attribute name "data" is reserved`, where)
	}
	return eventErr(ReasonInvalidAttributeName, name,
		"%s: attribute name %q is invalid: it must consist of lower-case letters a-z and digits 0-9", where, name)
}

// attrSet is the attributes of an event being read, in the order they came.
// They are a list, searched linearly while short (an event has a handful), and
// the Event's map is built once, at the end (attributes): in the proxy-wasm
// filter, compiled Go under a wasm runtime, each map operation costs a hash
// and a call chain, and parsing through a map was a third of the filter's
// time. Past smallAttrSet attributes an index keeps lookups constant-time, so
// that a request with thousands of ce-* headers stays linear.
type attrSet struct {
	list  [][2]string    // name, value; names unique
	index map[string]int // position in list by name, past smallAttrSet entries
}

// smallAttrSet is how many attributes an attrSet searches linearly.
const smallAttrSet = 16

// get returns the value of an attribute read so far.
func (a *attrSet) get(name string) (string, bool) {
	if i := a.find(name); i >= 0 {
		return a.list[i][1], true
	}
	return "", false
}

func (a *attrSet) find(name string) int {
	if a.index != nil {
		if i, ok := a.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range a.list {
		if a.list[i][0] == name {
			return i
		}
	}
	return -1
}

// set adds an attribute, or replaces its value (keeping its place).
func (a *attrSet) set(name, v string) {
	if i := a.find(name); i >= 0 {
		a.list[i][1] = v
		return
	}
	if a.list == nil {
		a.list = make([][2]string, 0, 8)
	}
	a.list = append(a.list, [2]string{name, v})
	switch {
	case a.index != nil:
		a.index[name] = len(a.list) - 1
	case len(a.list) > smallAttrSet:
		a.index = make(map[string]int, 2*len(a.list))
		for i, kv := range a.list {
			a.index[kv[0]] = i
		}
	}
}

// attributes returns the attributes as Event.Attributes (nil when there are
// none).
func (a *attrSet) attributes() map[string]string {
	if len(a.list) == 0 {
		return nil
	}
	m := make(map[string]string, len(a.list))
	for _, kv := range a.list {
		m[kv[0]] = kv[1]
	}
	return m
}

// specVersion returns the event's specification version, or why it has none
// that is supported.
func (a *attrSet) specVersion() (string, error) {
	sv, ok := a.get(attrSpecVersion)
	if !ok {
		return "", eventErr(ReasonMissingAttribute, attrSpecVersion, "missing required attribute %q", attrSpecVersion)
	}
	if sv != SpecVersion && sv != SpecVersion03 {
		return "", eventErr(ReasonUnsupportedSpecVersion, attrSpecVersion,
			"specversion %q is not supported: want %s (or %s)", sv, SpecVersion, SpecVersion03)
	}
	return sv, nil
}

// validateValues checks every attribute's value, in the order they came,
// then that the REQUIRED attributes are present.
func (a *attrSet) validateValues(version string) error {
	for _, kv := range a.list {
		if err := validateValue(version, kv[0], kv[1]); err != nil {
			return err
		}
	}
	for _, name := range [...]string{attrID, attrSource, attrType} {
		if _, ok := a.get(name); !ok {
			return eventErr(ReasonMissingAttribute, name, "missing required attribute %q", name)
		}
	}
	return nil
}

// validateValue checks one attribute value: the String rules for every
// attribute, and each core attribute's own constraints in the given version.
func validateValue(version, name, v string) error {
	if err := checkString(v); err != "" {
		return eventErr(ReasonInvalidAttribute, name, "attribute %q: %s", name, err)
	}
	if !isCoreAttribute(version, name) {
		return nil
	}
	bad := func(format string, args ...any) error {
		return eventErr(ReasonInvalidAttribute, name, "attribute %q: "+format, append([]any{name}, args...)...)
	}
	switch name {
	case attrID, attrType, attrSubject:
		// The specification says non-empty; the SDK (so Knative's ingress)
		// also refuses one of only white space.
		if strings.TrimSpace(v) == "" {
			return eventErr(ReasonInvalidAttribute, name, "attribute %q must be a non-empty string (not only white space)", name)
		}
	case attrSource, attrSchemaURL:
		if v == "" {
			return eventErr(ReasonInvalidAttribute, name, "attribute %q must be a non-empty URI-reference", name)
		}
		if msg := checkURIReference(v); msg != "" {
			return bad("%q is not a URI-reference (RFC 3986): %s", v, msg)
		}
	case attrDataSchema:
		if msg := checkURI(v); msg != "" {
			return bad("%q is not an absolute URI (RFC 3986): %s", v, msg)
		}
	case attrTime:
		if msg := checkTimestamp(v); msg != "" {
			return bad("%q is not an RFC 3339 timestamp: %s", v, msg)
		}
	case attrDataContentType:
		if msg := checkMediaType(v); msg != "" {
			return bad("%q is not a media type (RFC 2046): %s", v, msg)
		}
	case attrDataContentEncoding:
		if !strings.EqualFold(strings.TrimSpace(v), "base64") {
			return bad(`%q is not supported: the only encoding is "base64"`, v)
		}
	}
	return nil
}

// checkString returns why s is not an allowed CloudEvents String, or "".
// Disallowed: invalid UTF-8 (which includes surrogate code points), control
// characters U+0000-U+001F and U+007F-U+009F, and Unicode noncharacters.
func checkString(s string) string {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return fmt.Sprintf("control character U+%04X is not allowed", c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return "not valid UTF-8"
		}
		if r >= 0x80 && r <= 0x9f {
			return fmt.Sprintf("control character U+%04X is not allowed", r)
		}
		if (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return fmt.Sprintf("noncharacter U+%04X is not allowed", r)
		}
		i += size
	}
	return ""
}
