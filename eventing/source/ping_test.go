package source

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/testwait"
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

// TestPingSendsScheduledEvents drives the schedule with a fake clock, so that each tick is
// one step of it and "nothing fires after Delete" is checked at the very instant the
// deleted source would have fired.
func TestPingSendsScheduledEvents(t *testing.T) {
	s := newSink(t, nil)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(t0)
	p := NewPing(PingOptions{Clock: clk})
	defer p.Close()
	err := p.Set("ns", "every-second", PingSpec{
		Schedule: "@every 1s", ContentType: "application/json", Data: []byte(`{"hello":"ping"}`),
		Sink: s.srv.URL, Extensions: map[string]string{"team": "blue"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		testwait.For(t, 10*time.Second, "the scheduler waiting for the next tick", clk.HasWaiters)
		clk.Step(time.Second)
		testwait.For(t, 10*time.Second, fmt.Sprintf("event %d", i), func() bool { return len(s.received()) >= i })
	}
	evs := s.received()
	if len(evs) != 2 {
		t.Fatalf("%d events after two ticks, want 2", len(evs))
	}
	for i, ev := range evs {
		if ev.Type() != PingEventType || ev.Source() != "/apis/v1/namespaces/ns/pingsources/every-second" {
			t.Errorf("type/source = %s %s", ev.Type(), ev.Source())
		}
		if ev.DataContentType() != "application/json" || string(ev.Data()) != `{"hello":"ping"}` {
			t.Errorf("data = %s %q", ev.DataContentType(), ev.Data())
		}
		if v, _ := ev.Extensions()["team"].(string); v != "blue" {
			t.Errorf("extensions = %v", ev.Extensions())
		}
		if want := t0.Add(time.Duration(i+1) * time.Second); !ev.Time().Equal(want) {
			t.Errorf("event %d time %v, want the tick's %v", i, ev.Time(), want)
		}
		if ev.ID() == "" {
			t.Errorf("id missing")
		}
	}
	if evs[0].ID() == evs[1].ID() {
		t.Error("two ticks sent the same id")
	}

	// Deleted: no more events. Another source on the same schedule fires at the instant the
	// deleted one would have; once its event is in and Close has waited for every send, the
	// deleted source has had its chance to fire.
	p.Delete("ns", "every-second")
	witness := newSink(t, nil)
	if err := p.Set("ns", "witness", PingSpec{Schedule: "@every 1s", Sink: witness.srv.URL}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the scheduler waiting for the next tick", clk.HasWaiters)
	clk.Step(time.Second)
	testwait.For(t, 10*time.Second, "the witness's event", func() bool { return len(witness.received()) == 1 })
	p.Close()
	if got := len(s.received()); got != 2 {
		t.Errorf("%d events after delete", got-2)
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
