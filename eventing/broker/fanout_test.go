package broker

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

func typeFilter(typ string) eventfilter.Filter {
	return eventfilter.Filter{Attributes: map[string]string{"type": typ}}
}

// An event for most of a broker's triggers is stored once, not once per trigger; every
// trigger it is for gets it exactly once, the others never; the message leaves the stream
// when all of them are done. An event for a few of them is stored per trigger, as before.
func TestFanOutStoresOneCopy(t *testing.T) {
	e := start(t, t.TempDir(), Options{HoldDispatch: true})
	sinks := map[string]*sink{}
	cfg := BrokerConfig{Namespace: "ns", Name: "fan"}
	for _, tr := range []struct{ name, typ string }{{"a", "x"}, {"b", "x"}, {"c", "x"}, {"d", "y"}} {
		sinks[tr.name] = newSink(t, nil)
		cfg.Triggers = append(cfg.Triggers, TriggerConfig{Name: tr.name, Subscriber: sinks[tr.name].srv.URL, Filter: typeFilter(tr.typ)})
	}
	if err := e.srv.SetBroker(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustPost(t, e.url("ns", "fan"), newEvent(fmt.Sprintf("x%d", i), "x", map[string]int{"i": i}), i%2 == 0, nil)
	}
	for i := range 2 {
		mustPost(t, e.url("ns", "fan"), newEvent(fmt.Sprintf("y%d", i), "y", nil), false, nil)
	}
	// Nothing is dispatched yet: the stream holds what the ingress stored.
	if n := streamMsgs(t, e, "ns", "fan"); n != 5+2 {
		t.Errorf("%d messages stored, want 7: one per x event (for a, b and c) and one per y event (for d)", n)
	}
	if got := e.srv.Stats().Stored; got != 5*3+2 {
		t.Errorf("Stats().Stored = %d, want 17 (one per trigger an event is for)", got)
	}
	st, err := e.srv.JetStream().Stream(t.Context(), StreamName("ns", "fan"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(t.Context(), FanOutSubject("ns", "fan"))
	if err != nil {
		t.Fatalf("no fan-out message: %v", err)
	}
	if got := m.Header.Get(HeaderTriggers); got != "a,b,c" {
		t.Errorf("%s = %q, want a,b,c", HeaderTriggers, got)
	}

	e.srv.StartDispatch()
	waitFor(t, 10*time.Second, "every delivery", func() bool {
		return sinks["a"].requests() == 5 && sinks["b"].requests() == 5 && sinks["c"].requests() == 5 && sinks["d"].requests() == 2
	})
	waitFor(t, 5*time.Second, "an empty stream", func() bool { return streamMsgs(t, e, "ns", "fan") == 0 })
	for name, s := range sinks {
		want := map[string]int{"x0": 1, "x1": 1, "x2": 1, "x3": 1, "x4": 1}
		if name == "d" {
			want = map[string]int{"y0": 1, "y1": 1}
		}
		if got := s.ids(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("trigger %s got %v, want %v", name, got, want)
		}
		for _, ev := range s.all() {
			if name != "d" && string(ev.Data()) == "" {
				t.Errorf("trigger %s: event %s without its data", name, ev.ID())
			}
		}
	}
	if s := e.srv.Stats(); s.Delivered != 17 {
		t.Errorf("Stats().Delivered = %d, want 17", s.Delivered)
	}
}

// A trigger whose delivery of a fan-out event fails for good sends it to its own dead letter
// sink, once; the other triggers' deliveries are unaffected.
func TestFanOutDeadLetter(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	ok, dls := newSink(t, nil), newSink(t, nil)
	failing := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "boom")
	})
	err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "fdl",
		Triggers: []TriggerConfig{
			{Name: "ok", Subscriber: ok.srv.URL},
			{Name: "failing", Subscriber: failing.srv.URL,
				Delivery: &DeliverySpec{Retry: ptr[int32](1), BackoffDelay: "PT0.1S", DeadLetterSink: dls.srv.URL}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, e.url("ns", "fdl"), newEvent("e1", "t", map[string]string{"k": "v"}), false, nil)
	waitFor(t, 10*time.Second, "the dead letter", func() bool { return dls.requests() == 1 && ok.requests() == 1 })
	waitFor(t, 5*time.Second, "an empty stream", func() bool { return streamMsgs(t, e, "ns", "fdl") == 0 })
	if n := failing.ids()["e1"]; n != 2 {
		t.Errorf("failing subscriber: %d attempts, want 1 + 1 retry", n)
	}
	if got := dls.all()[0].Extensions()[ErrorDestExtension]; got != failing.srv.URL {
		t.Errorf("dead letter %s = %v, want the failing trigger's subscriber", ErrorDestExtension, got)
	}
	time.Sleep(100 * time.Millisecond) // nothing more may arrive
	if ok.requests() != 1 || dls.requests() != 1 {
		t.Errorf("ok got %d, dead letter sink %d; want 1 each", ok.requests(), dls.requests())
	}
}

// A broker stream made before fan-out (work-queue retention, which JetStream cannot change)
// keeps a copy per trigger and delivers as before.
func TestWorkQueueStreamKeepsCopies(t *testing.T) {
	e := start(t, t.TempDir(), Options{HoldDispatch: true})
	_, err := e.srv.JetStream().CreateStream(t.Context(), jetstream.StreamConfig{
		Name: StreamName("ns", "old"), Subjects: []string{"skiff.ns.old.*"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newSink(t, nil), newSink(t, nil)
	err = e.srv.SetBroker(t.Context(), BrokerConfig{Namespace: "ns", Name: "old",
		Triggers: []TriggerConfig{{Name: "a", Subscriber: a.srv.URL}, {Name: "b", Subscriber: b.srv.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustPost(t, e.url("ns", "old"), newEvent(fmt.Sprint(i), "t", nil), false, nil)
	}
	if n := streamMsgs(t, e, "ns", "old"); n != 6 {
		t.Errorf("%d messages stored, want a copy per trigger: 6", n)
	}
	e.srv.StartDispatch()
	waitFor(t, 10*time.Second, "every delivery", func() bool { return a.distinct() == 3 && b.distinct() == 3 })
	waitFor(t, 5*time.Second, "an empty stream", func() bool { return streamMsgs(t, e, "ns", "old") == 0 })
}
