package broker

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// CloudEvent extension attributes and HTTP headers of Knative's broker contract
// that Skiff reads or writes.
const (
	// TTLExtension is Knative's loop-prevention counter.
	TTLExtension = "knativebrokerttl"
	// DefaultTTL is the TTL given to an event that arrives without one.
	DefaultTTL = 255
	// ArrivalTimeExtension is set by the ingress to the time it accepted the event.
	ArrivalTimeExtension = "knativearrivaltime"
	// ErrorDestExtension names the destination whose failure dead-lettered an event.
	ErrorDestExtension = "knativeerrordest"
	// ErrorCodeExtension is the status code of the last failed attempt (500 when
	// the request itself failed).
	ErrorCodeExtension = "knativeerrorcode"
	// ErrorDataExtension is the base64 of the last failed attempt's response
	// body, truncated to ErrorDataMaxLength characters.
	ErrorDataExtension = "knativeerrordata"
	// ErrorDataMaxLength is the length knativeerrordata is truncated to, as in Knative.
	ErrorDataMaxLength = 1024
	// TriggersHeader is the request header in which the proxy's cloudevents
	// filter lists the names of the matching triggers, comma-separated.
	TriggersHeader = "X-Skiff-Triggers"
)

// Headers of a stored JetStream message.
const (
	// HeaderBroker is "namespace/broker".
	HeaderBroker = "Skiff-Broker"
	// HeaderTrigger is the trigger's name.
	HeaderTrigger = "Skiff-Trigger"
	// HeaderAcceptedAt is when the ingress accepted the event, in Unix nanoseconds.
	HeaderAcceptedAt = "Skiff-Accepted-At"
	// HeaderTriggers lists, comma-separated, the triggers a fan-out message (one stored
	// copy on the broker's FanOutSubject for several triggers) is for; every trigger's
	// consumer reads it, and those not listed settle it without a delivery.
	HeaderTriggers = "Skiff-Triggers"
	// HeaderPhase is PhaseDeadLetter on the copy of an event bound for the dead
	// letter sink, and absent on an event bound for the subscriber.
	HeaderPhase = "Skiff-Phase"
	// PhaseDeadLetter marks a message to be sent to the dead letter sink.
	PhaseDeadLetter = "dead-letter"
	// HeaderForwardPrefix prefixes the sender's pass-through HTTP headers
	// (passThroughHeaders) kept with a stored event for its deliveries.
	HeaderForwardPrefix = "Skiff-Fwd-"
	// HeaderStored is storedBinary on a message whose event is stored in binary form:
	// its attributes in ce-* headers (percent-encoded as in the HTTP binding),
	// datacontenttype in Content-Type, the data as the message's data. Without it the
	// message's data is the event in the JSON format (application/cloudevents+json), as
	// every version before stored events and as dead-letter copies are stored.
	HeaderStored = "Skiff-Stored"
	storedBinary = "binary"
	// NamespaceHeader is the request header naming the Trigger's namespace on a
	// delivery, as Knative's broker filter sets it (apis.KnNamespaceHeader).
	NamespaceHeader = "Kn-Namespace"

	structuredContentType = "application/cloudevents+json"
)

var firstAttributes = []string{"specversion", "id", "source", "type"}

// encodeStructured writes an event in the CloudEvents JSON format, the form
// events are stored in. Attribute values are JSON strings (eventfilter.Event
// keeps every value in its canonical string form) except knativebrokerttl, an
// Integer. The data is written as the JSON value of "data" when
// eventfilter.DataIsJSON says that reads back as the same bytes; otherwise it
// is data_base64 (in a 0.3 event, "data" with datacontentencoding base64).
func encodeStructured(ev eventfilter.Event) []byte {
	var buf bytes.Buffer
	buf.Grow(256 + len(ev.Data)*4/3)
	buf.WriteByte('{')
	first := true
	writeAttr := func(name, value string) {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		writeJSONString(&buf, name)
		buf.WriteByte(':')
		if name == TTLExtension {
			if _, err := strconv.ParseInt(value, 10, 32); err == nil {
				buf.WriteString(value)
				return
			}
		}
		writeJSONString(&buf, value)
	}
	for _, name := range firstAttributes {
		if v, ok := ev.Attributes[name]; ok {
			writeAttr(name, v)
		}
	}
	rest := make([]string, 0, len(ev.Attributes))
	for name := range ev.Attributes {
		if !slices.Contains(firstAttributes, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range rest {
		writeAttr(name, ev.Attributes[name])
	}
	switch {
	case eventfilter.DataIsJSON(ev):
		if !first {
			buf.WriteByte(',')
		}
		buf.WriteString(`"data":`)
		buf.Write(ev.Data)
	case len(ev.Data) > 0:
		if !first {
			buf.WriteByte(',')
		}
		if ev.Attributes["specversion"] == eventfilter.SpecVersion03 {
			buf.WriteString(`"datacontentencoding":"base64","data":"`)
		} else {
			buf.WriteString(`"data_base64":"`)
		}
		enc := base64.NewEncoder(base64.StdEncoding, &buf)
		_, _ = enc.Write(ev.Data)
		_ = enc.Close()
		buf.WriteByte('"')
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	buf.Write(b)
}

// storedForm returns the headers and data an event is stored with. A 1.0 event is stored
// in binary form (see HeaderStored): no JSON to write at the ingress nor to parse for every
// delivery, and the data as it came. Other events (0.3, whose binary form has its own
// rules; a datacontenttype that would read as structured mode or does not fit a header
// line) are stored in the JSON format.
func storedForm(ev eventfilter.Event) (nats.Header, []byte) {
	if ev.Attributes["specversion"] == "1.0" && eventfilter.ContentMode(ev.Attributes["datacontenttype"]) == eventfilter.ModeBinary {
		pairs := eventfilter.BinaryHeaders(ev)
		h := make(nats.Header, len(pairs)+6)
		// One backing array for every header's single value, rather than a slice each.
		values := make([]string, len(pairs))
		binary := true
		for i, kv := range pairs {
			if strings.ContainsAny(kv[1], "\r\n") {
				binary = false
				break
			}
			values[i] = kv[1]
			h[kv[0]] = values[i : i+1 : i+1]
		}
		if binary {
			h[HeaderStored] = []string{storedBinary}
			return h, ev.Data
		}
	}
	return nats.Header{"Content-Type": {structuredContentType}}, encodeStructured(ev)
}

// storedSize is how many bytes a message with these headers and data takes in NATS, near
// enough for the payload limit.
func storedSize(h nats.Header, data []byte) int64 {
	n := len(data)
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}

// decodeStored reads back an event stored by storedForm (or, in the JSON format, by any
// earlier version).
func decodeStored(h nats.Header, data []byte) (eventfilter.Event, error) {
	var hdr eventfilter.Header = eventfilter.HeaderMap{"Content-Type": {structuredContentType}}
	if vs := h[HeaderStored]; len(vs) == 1 && vs[0] == storedBinary {
		pairs := make(eventfilter.HeaderPairs, 0, len(h))
		for k, vs := range h {
			if len(k) > 3 && strings.EqualFold(k[:3], "ce-") || strings.EqualFold(k, "content-type") {
				for _, v := range vs {
					pairs = append(pairs, [2]string{k, v})
				}
			}
		}
		hdr = pairs
	}
	ev, err := eventfilter.ParseHTTP(hdr, data)
	if err != nil {
		return eventfilter.Event{}, fmt.Errorf("decoding stored event: %w", err)
	}
	return ev, nil
}

// writeBinary writes an event into an HTTP request in binary content mode,
// leaving out the attributes named in skip. Every attribute value is
// percent-encoded as the HTTP binding requires of an encoder (section
// 3.1.3.2), which the CloudEvents SDK's writer does not do: a value such as
// "%41" would otherwise reach the subscriber as "%41" and be read as "A".
func writeBinary(req *http.Request, ev eventfilter.Event, skip ...string) {
	pairs := eventfilter.BinaryHeaders(ev, skip...)
	// One backing array for every header's single value, rather than a slice each.
	values := make([]string, len(pairs))
	for i, kv := range pairs {
		values[i] = kv[1]
		req.Header[kv[0]] = values[i : i+1 : i+1]
	}
	req.ContentLength = int64(len(ev.Data))
	if len(ev.Data) == 0 {
		req.Body, req.GetBody = http.NoBody, nil
		return
	}
	data := ev.Data
	req.Body = io.NopCloser(bytes.NewReader(data))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// ttl returns the TTL an event arriving at a broker leaves the ingress with,
// by Knative's TTLDefaulter (pkg/broker/ttl.go): an event without
// knativebrokerttl, or whose knativebrokerttl is not a number, gets
// DefaultTTL; a present one is decremented (not below 0). The value is read
// as the CloudEvents SDK reads an Integer (types.ParseInteger): a decimal
// number in the int32 range, its fraction truncated ("4.7" is 4). An event
// whose TTL comes out 0 is dropped by the caller.
func ttl(ev eventfilter.Event) int {
	v, ok := ev.Attributes[TTLExtension]
	if !ok {
		return DefaultTTL
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return DefaultTTL
	}
	return max(int(int32(f))-1, 0)
}

// cloneEvent copies an event's attribute map so that it can be changed.
func cloneEvent(ev eventfilter.Event) eventfilter.Event {
	attrs := make(map[string]string, len(ev.Attributes)+4)
	for k, v := range ev.Attributes {
		attrs[k] = v
	}
	return eventfilter.Event{Attributes: attrs, Data: ev.Data}
}

// errorData is knativeerrordata for a response body: its base64, truncated.
func errorData(body []byte) string {
	if max := ErrorDataMaxLength / 4 * 3; len(body) > max {
		body = body[:max] // the base64 of the rest would be cut anyway
	}
	s := base64.StdEncoding.EncodeToString(body)
	if len(s) > ErrorDataMaxLength {
		s = s[:ErrorDataMaxLength]
	}
	return s
}

// passThroughHeaders returns the headers of a request (or a subscriber's reply)
// that Knative's broker carries on to the deliveries of its event
// (pkg/utils/headers.go, PassThroughHeaders): X-Request-Id, Retry-After, and
// those whose name starts with Knative- or X-B3- (Zipkin tracing). The ce-*
// headers are not among them: they are the event.
func passThroughHeaders(h http.Header) http.Header {
	var out http.Header
	for name, vs := range h {
		// Compared without lower-casing a copy of every name: this runs for every event,
		// most of whose headers (ce-*, content-type) the first letter rules out.
		if name == "" {
			continue
		}
		if c := name[0] | 0x20; c != 'x' && c != 'r' && c != 'k' {
			continue
		}
		if strings.EqualFold(name, "x-request-id") || strings.EqualFold(name, "retry-after") ||
			hasPrefixFold(name, "knative-") || hasPrefixFold(name, "x-b3-") {
			if out == nil {
				out = http.Header{}
			}
			out[http.CanonicalHeaderKey(name)] = vs
		}
	}
	return out
}

// hasPrefixFold reports whether s begins with prefix, ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
