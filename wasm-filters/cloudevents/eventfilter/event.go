package eventfilter

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// SpecVersion is the only CloudEvents specification version accepted.
const SpecVersion = "1.0"

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
// data_base64, the contents of a JSON string data whose datacontenttype is not
// JSON, or else the raw JSON of data.
type Event struct {
	Attributes map[string]string
	Data       []byte
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
	// ReasonUnsupportedSpecVersion: specversion is not 1.0.
	ReasonUnsupportedSpecVersion Reason = "unsupported_specversion"
	// ReasonInvalidJSON: a structured-mode body is not a JSON object.
	ReasonInvalidJSON Reason = "invalid_json"
	// ReasonInvalidData: data and data_base64 together, or data_base64 that is not base64.
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

// Core context attribute names of CloudEvents 1.0.
const (
	attrID              = "id"
	attrSource          = "source"
	attrSpecVersion     = "specversion"
	attrType            = "type"
	attrDataContentType = "datacontenttype"
	attrDataSchema      = "dataschema"
	attrSubject         = "subject"
	attrTime            = "time"
)

// isCoreAttribute reports whether name is a core (REQUIRED or OPTIONAL)
// context attribute of CloudEvents 1.0.
func isCoreAttribute(name string) bool {
	switch name {
	case attrID, attrSource, attrSpecVersion, attrType,
		attrDataContentType, attrDataSchema, attrSubject, attrTime:
		return true
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

// validate checks the assembled attribute set of an event, given the first
// error found while reading values one by one (validateValue): a missing or
// unsupported specversion is reported first, so that an event of another
// version is named as such, then that value error, then any other missing
// REQUIRED attribute.
func validate(attrs map[string]string, valueErr error) error {
	sv, ok := attrs[attrSpecVersion]
	if !ok {
		return eventErr(ReasonMissingAttribute, attrSpecVersion, "missing required attribute %q", attrSpecVersion)
	}
	if sv != SpecVersion {
		return eventErr(ReasonUnsupportedSpecVersion, attrSpecVersion,
			"specversion %q is not supported: want %s", sv, SpecVersion)
	}
	if valueErr != nil {
		return valueErr
	}
	for _, name := range [...]string{attrID, attrSource, attrType} {
		if _, ok := attrs[name]; !ok {
			return eventErr(ReasonMissingAttribute, name, "missing required attribute %q", name)
		}
	}
	return nil
}

// validateValue checks one attribute value: the String rules for every
// attribute, and each core attribute's own constraints.
func validateValue(name, v string) error {
	if err := checkString(v); err != "" {
		return eventErr(ReasonInvalidAttribute, name, "attribute %q: %s", name, err)
	}
	switch name {
	case attrID, attrSource, attrType, attrSubject, attrSpecVersion:
		if v == "" {
			return eventErr(ReasonInvalidAttribute, name, "attribute %q must be a non-empty string", name)
		}
		if name == attrSource {
			if _, err := url.Parse(v); err != nil {
				return eventErr(ReasonInvalidAttribute, name, "attribute %q: not a URI-reference: %v", name, unwrapURLError(err))
			}
		}
	case attrDataSchema:
		u, err := url.Parse(v)
		if err != nil {
			return eventErr(ReasonInvalidAttribute, name, "attribute %q: not an absolute URI: %v", name, unwrapURLError(err))
		}
		if u.Scheme == "" {
			return eventErr(ReasonInvalidAttribute, name, "attribute %q: %q is not an absolute URI (no scheme)", name, v)
		}
	case attrTime:
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return eventErr(ReasonInvalidAttribute, name, "attribute %q: %q is not an RFC 3339 timestamp", name, v)
		}
	case attrDataContentType:
		if msg := checkMediaType(v); msg != "" {
			return eventErr(ReasonInvalidAttribute, name, "attribute %q: %q is not a media type (RFC 2046): %s", name, v, msg)
		}
	}
	return nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// checkString returns why s is not an allowed CloudEvents String, or "".
// Disallowed: invalid UTF-8, control characters U+0000-U+001F and
// U+007F-U+009F, and Unicode noncharacters.
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

// checkMediaType does a light RFC 2046 check: "type/subtype" tokens,
// optionally followed by ";"-separated parameters. It returns what is wrong,
// or "".
func checkMediaType(v string) string {
	mt, _, _ := strings.Cut(v, ";")
	mt = strings.TrimSpace(mt)
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok {
		return `want "type/subtype"`
	}
	if !isToken(typ) || !isToken(sub) {
		return "type and subtype must be non-empty tokens"
	}
	return ""
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// mediaType returns the lower-cased "type/subtype" of a Content-Type value,
// without parameters.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// isJSONMediaType reports whether a datacontenttype denotes JSON, as the JSON
// event format defines it: absent, application/json, text/json, or any
// "+json" structured syntax suffix.
func isJSONMediaType(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt := mediaType(contentType)
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}
