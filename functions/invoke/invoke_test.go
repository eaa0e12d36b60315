package invoke

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// echoEvents answers every CloudEvent with a reply event (binary mode) carrying its data, and
// plain requests with their method, content type and body.
func echoEvents(t *testing.T) (*httptest.Server, *[]*http.Request) {
	var seen []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Clone(context.Background()))
		if r.URL.Path == "/fail" {
			http.Error(w, "function broke", http.StatusInternalServerError)
			return
		}
		msg := cehttp.NewMessageFromHttpRequest(r)
		if msg.ReadEncoding() == binding.EncodingUnknown {
			b, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, r.Method+" "+r.Header.Get("Content-Type")+" "+string(b))
			return
		}
		ev, err := binding.ToEvent(r.Context(), msg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply := event.New()
		reply.SetID("reply-" + ev.ID())
		reply.SetType("function.response")
		reply.SetSource("/fn")
		_ = reply.SetData(event.ApplicationJSON, ev.Data())
		if err := cehttp.WriteResponseWriter(r.Context(), binding.ToMessage(&reply), http.StatusOK, w); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestInvokeHTTP(t *testing.T) {
	srv, _ := echoEvents(t)
	r, err := Do(context.Background(), Request{URL: srv.URL, Data: []byte("hi")})
	if err != nil || r.Status != 200 || string(r.Body) != "POST text/plain hi" || r.Event != nil {
		t.Errorf("POST: %+v %v", r, err)
	}
	r, err = Do(context.Background(), Request{URL: srv.URL})
	if err != nil || string(r.Body) != "GET  " {
		t.Errorf("GET without data: %q %v", r.Body, err)
	}
	r, err = Do(context.Background(), Request{URL: srv.URL + "/fail"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 500: function broke") || r.Status != 500 {
		t.Errorf("failing function: %+v %v, want the status and body in the error", r, err)
	}
}

func TestInvokeCloudEvent(t *testing.T) {
	srv, seen := echoEvents(t)
	for _, structured := range []bool{false, true} {
		r, err := Do(context.Background(), Request{
			URL: srv.URL, Format: "cloudevent", Data: []byte(`{"n":1}`), ID: "e1", Type: "t", Source: "/s",
			Subject: "sub", Extensions: map[string]string{"team": "blue"}, Structured: structured,
		})
		if err != nil {
			t.Fatalf("structured=%v: %v", structured, err)
		}
		if r.Event == nil || r.Event.Type() != "function.response" || r.Event.ID() != "reply-e1" || string(r.Event.Data()) != `{"n":1}` {
			t.Errorf("structured=%v: reply %+v", structured, r.Event)
		}
		req := (*seen)[len(*seen)-1]
		ct := req.Header.Get("Content-Type")
		if structured != strings.HasPrefix(ct, "application/cloudevents+json") {
			t.Errorf("structured=%v: sent Content-Type %q", structured, ct)
		}
		if !structured && (req.Header.Get("Ce-Team") != "blue" || req.Header.Get("Ce-Subject") != "sub") {
			t.Errorf("binary mode headers %v", req.Header)
		}
	}
	// Defaults: a new id, Skiff's type and source.
	r, err := Do(context.Background(), Request{URL: srv.URL, Format: "cloudevent"})
	if err != nil || r.Event == nil || !strings.HasPrefix(r.Event.ID(), "reply-") || len(r.Event.ID()) < 20 {
		t.Errorf("defaults: %+v %v", r, err)
	}
	if _, err := Do(context.Background(), Request{URL: srv.URL, Format: "cloudevent", Extensions: map[string]string{"Bad-Name": "x"}}); err == nil {
		t.Error("an extension name the spec forbids was sent")
	}
	if _, err := Do(context.Background(), Request{URL: srv.URL, Format: "grpc"}); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("unknown format: %v", err)
	}
}
