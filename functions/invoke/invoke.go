// Package invoke sends a function a request, as `skiff func invoke` does: a plain HTTP request,
// or a CloudEvent in binary mode (github.com/cloudevents/sdk-go), and reads the reply, decoding
// a CloudEvent reply (binary or structured) when there is one.
package invoke

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
)

// Request is one invocation.
type Request struct {
	// URL is where to send it (scheme, host, port and path).
	URL string
	// Host overrides the Host header, to reach a function through the gateway by its name.
	Host string
	// Format is "http" or "cloudevent".
	Format string
	// Method of an HTTP request (default POST when there is data, else GET).
	Method string
	// Data is the body (HTTP) or the event's data (CloudEvent).
	Data []byte
	// ContentType of Data (default application/json for a CloudEvent, text/plain otherwise).
	ContentType string
	// ID, Type and Source of the CloudEvent (defaults: a UUID, "skiff.func.invoke",
	// "/skiff/func/invoke").
	ID, Type, Source string
	// Subject and Extensions are optional CloudEvent attributes (extension names must be
	// lower-case letters and digits, as the spec requires).
	Subject    string
	Extensions map[string]string
	// Structured sends the CloudEvent in structured content mode
	// (application/cloudevents+json) instead of binary mode.
	Structured bool
	// Client sends the request (default: a client with a 30s timeout).
	Client *http.Client
}

// Reply is what the function answered.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
	// Event is the CloudEvent reply, if the function answered with one.
	Event *event.Event
}

// Do sends req and returns the reply; a non-2xx status is an error holding the reply's body.
func Do(ctx context.Context, req Request) (*Reply, error) {
	client := req.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	var hreq *http.Request
	var err error
	switch req.Format {
	case "cloudevent":
		if hreq, err = eventRequest(ctx, req); err != nil {
			return nil, err
		}
	case "", "http":
		method := req.Method
		if method == "" {
			method = http.MethodGet
			if len(req.Data) > 0 {
				method = http.MethodPost
			}
		}
		if hreq, err = http.NewRequestWithContext(ctx, method, req.URL, bytes.NewReader(req.Data)); err != nil {
			return nil, fmt.Errorf("invoke: %w", err)
		}
		if len(req.Data) > 0 {
			ct := req.ContentType
			if ct == "" {
				ct = "text/plain"
			}
			hreq.Header.Set("Content-Type", ct)
		}
	default:
		return nil, fmt.Errorf("--format %q: must be http or cloudevent", req.Format)
	}
	if req.Host != "" {
		hreq.Host = req.Host
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("invoking %s: %w", target(req), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoking %s: reading the reply: %w", target(req), err)
	}
	r := &Reply{Status: resp.StatusCode, Header: resp.Header, Body: body}
	msg := cehttp.NewMessage(resp.Header, io.NopCloser(bytes.NewReader(body)))
	if msg.ReadEncoding() != binding.EncodingUnknown {
		e, err := binding.ToEvent(ctx, msg)
		if err != nil {
			return r, fmt.Errorf("invoking %s: the reply is not a valid CloudEvent: %w", target(req), err)
		}
		r.Event = e
	}
	if resp.StatusCode >= 300 {
		return r, fmt.Errorf("invoking %s: HTTP %d: %s", target(req), resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return r, nil
}

func target(req Request) string {
	if req.Host != "" {
		return req.Host + " (via " + req.URL + ")"
	}
	return req.URL
}

// eventRequest is req as a CloudEvent POST (binary mode unless req.Structured).
func eventRequest(ctx context.Context, req Request) (*http.Request, error) {
	e := event.New()
	e.SetID(req.ID)
	if e.ID() == "" {
		e.SetID(uuid.NewString())
	}
	e.SetType(req.Type)
	if e.Type() == "" {
		e.SetType("skiff.func.invoke")
	}
	e.SetSource(req.Source)
	if e.Source() == "" {
		e.SetSource("/skiff/func/invoke")
	}
	e.SetTime(time.Now())
	if req.Subject != "" {
		e.SetSubject(req.Subject)
	}
	for k, v := range req.Extensions {
		e.SetExtension(k, v) // an invalid name fails Validate below, naming it
	}
	ct := req.ContentType
	if ct == "" {
		ct = event.ApplicationJSON
	}
	if len(req.Data) > 0 {
		if err := e.SetData(ct, req.Data); err != nil {
			return nil, fmt.Errorf("event data: %w", err)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("the CloudEvent to send is invalid: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	if req.Structured {
		ctx = binding.WithForceStructured(ctx)
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&e), hreq); err != nil {
		return nil, fmt.Errorf("encoding the CloudEvent: %w", err)
	}
	return hreq, nil
}

// Format writes a reply for a person: a CloudEvent's attributes and data, or the body.
func Format(w io.Writer, r *Reply) error {
	if r == nil {
		return errors.New("no reply")
	}
	if r.Event != nil {
		_, err := fmt.Fprint(w, r.Event.String())
		return err
	}
	_, err := w.Write(r.Body)
	if err == nil && len(r.Body) > 0 && r.Body[len(r.Body)-1] != '\n' {
		_, err = fmt.Fprintln(w)
	}
	return err
}
