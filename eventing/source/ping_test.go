package source

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// sink records the CloudEvents posted to it.
type sink struct {
	mu     sync.Mutex
	events []cloudevents.Event
	srv    *httptest.Server
}

func newSink(t *testing.T, status func(n int) int) *sink {
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.events = append(s.events, *ev)
		n := len(s.events)
		s.mu.Unlock()
		code := http.StatusAccepted
		if status != nil {
			code = status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) received() []cloudevents.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]cloudevents.Event(nil), s.events...)
}

func TestPingSendsScheduledEvents(t *testing.T) {
	s := newSink(t, nil)
	p := NewPing(PingOptions{})
	defer p.Close()
	err := p.Set("ns", "every-second", PingSpec{
		Schedule: "@every 1s", ContentType: "application/json", Data: []byte(`{"hello":"ping"}`),
		Sink: s.srv.URL, Extensions: map[string]string{"team": "blue"},
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.received()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("got %d events in 10s from a 1s schedule", len(s.received()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	evs := s.received()
	for _, ev := range evs[:2] {
		if ev.Type() != PingEventType || ev.Source() != "/apis/v1/namespaces/ns/pingsources/every-second" {
			t.Errorf("type/source = %s %s", ev.Type(), ev.Source())
		}
		if ev.DataContentType() != "application/json" || string(ev.Data()) != `{"hello":"ping"}` {
			t.Errorf("data = %s %q", ev.DataContentType(), ev.Data())
		}
		if v, _ := ev.Extensions()["team"].(string); v != "blue" {
			t.Errorf("extensions = %v", ev.Extensions())
		}
		if ev.Time().IsZero() || ev.ID() == "" {
			t.Errorf("time/id missing: %v %q", ev.Time(), ev.ID())
		}
	}
	if evs[0].ID() == evs[1].ID() {
		t.Error("two ticks sent the same id")
	}

	// Deleted: no more events.
	p.Delete("ns", "every-second")
	n := len(s.received())
	time.Sleep(1500 * time.Millisecond) // a whole period must pass to show nothing fires
	if got := len(s.received()); got > n+1 {
		t.Errorf("%d events after delete", got-n)
	}
}

func TestPingSendRetriesServerErrorsOnly(t *testing.T) {
	flaky := newSink(t, func(n int) int {
		if n < 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	p := NewPing(PingOptions{Retries: 3})
	defer p.Close()
	ev := NewPingEvent("/s", time.Now(), PingSpec{})
	if err := p.Send(context.Background(), flaky.srv.URL, ev); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := len(flaky.received()); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
	refused := newSink(t, func(int) int { return http.StatusBadRequest })
	if err := p.Send(context.Background(), refused.srv.URL, ev); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("send to a 400 sink: %v", err)
	}
	if got := len(refused.received()); got != 1 {
		t.Errorf("a 400 was retried: %d attempts", got)
	}
}

func TestPingScheduleTimezone(t *testing.T) {
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	next, err := Next(PingSpec{Schedule: "0 9 * * *", Timezone: "Asia/Tokyo"}, from)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("next 09:00 Tokyo after %v = %v, want %v", from, next.UTC(), want)
	}
	next, _ = Next(PingSpec{Schedule: "0 9 * * *"}, from)
	if want := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("UTC default: %v, want %v", next.UTC(), want)
	}
	p := NewPing(PingOptions{})
	defer p.Close()
	for _, c := range []struct {
		spec PingSpec
		want string
	}{
		{PingSpec{Schedule: "* * *", Sink: "http://x"}, "schedule"},
		{PingSpec{Schedule: "* * * * *", Timezone: "Mars/Base", Sink: "http://x"}, "timezone"},
		{PingSpec{Schedule: "* * * * *"}, "sink"},
	} {
		if err := p.Set("ns", "bad", c.spec); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Set(%+v) = %v, want an error about %s", c.spec, err, c.want)
		}
	}
}
