package broker

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

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
	// HeaderPhase is PhaseDeadLetter on the copy of an event bound for the dead
	// letter sink, and absent on an event bound for the subscriber.
	HeaderPhase = "Skiff-Phase"
	// PhaseDeadLetter marks a message to be sent to the dead letter sink.
	PhaseDeadLetter = "dead-letter"

	structuredContentType = "application/cloudevents+json"
)

var firstAttributes = []string{"specversion", "id", "source", "type"}

// encodeStructured writes an event in the CloudEvents JSON format. Attribute
// values are JSON strings (eventfilter.Event keeps every value in its canonical
// string form) except knativebrokerttl, an Integer. The data is written as JSON
// when the data content type is JSON (or absent) and the bytes are JSON without
// surrounding white space, so that decoding gives back the same bytes; otherwise
// it is data_base64.
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
	if len(ev.Data) > 0 {
		if !first {
			buf.WriteByte(',')
		}
		if isJSONMediaType(ev.Attributes["datacontenttype"]) && json.Valid(ev.Data) &&
			len(bytes.TrimSpace(ev.Data)) == len(ev.Data) {
			buf.WriteString(`"data":`)
			buf.Write(ev.Data)
		} else {
			buf.WriteString(`"data_base64":"`)
			enc := base64.NewEncoder(base64.StdEncoding, &buf)
			_, _ = enc.Write(ev.Data)
			_ = enc.Close()
			buf.WriteByte('"')
		}
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	buf.Write(b)
}

// isJSONMediaType reports whether a datacontenttype is JSON in the sense of the
// JSON event format (absent means JSON in structured mode).
func isJSONMediaType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "" || mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// decodeStored reads back an event written by encodeStructured.
func decodeStored(b []byte) (eventfilter.Event, error) {
	ev, err := eventfilter.ParseHTTP(eventfilter.HeaderMap{"Content-Type": {structuredContentType}}, b)
	if err != nil {
		return eventfilter.Event{}, fmt.Errorf("decoding stored event: %w", err)
	}
	return ev, nil
}

// sdkEvent converts an event for the CloudEvents SDK's HTTP binding, leaving out the
// attributes named in skip. Attribute values are kept in their canonical string form;
// time is parsed back into a timestamp, as the SDK writes it.
func sdkEvent(ev eventfilter.Event, skip ...string) (event.Event, error) {
	e := event.New()
	for name, v := range ev.Attributes {
		if slices.Contains(skip, name) {
			continue
		}
		switch name {
		case "specversion":
			e.SetSpecVersion(v)
		case "id":
			e.SetID(v)
		case "source":
			e.SetSource(v)
		case "type":
			e.SetType(v)
		case "subject":
			e.SetSubject(v)
		case "dataschema":
			e.SetDataSchema(v)
		case "datacontenttype":
			e.SetDataContentType(v)
		case "time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return e, fmt.Errorf("attribute time %q: %w", v, err)
			}
			e.SetTime(t)
		default:
			e.SetExtension(name, v)
		}
	}
	e.DataEncoded = ev.Data
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("the stored event is not valid for the HTTP binding: %w", err)
	}
	return e, nil
}

// ttl returns the event's knativebrokerttl, DefaultTTL when it has none.
func ttl(ev eventfilter.Event) (int, error) {
	v, ok := ev.Attributes[TTLExtension]
	if !ok {
		return DefaultTTL, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s must be an integer, not %q", TTLExtension, v)
	}
	return int(n), nil
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
