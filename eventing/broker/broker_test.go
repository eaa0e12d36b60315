package broker

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-dev/skiff/internal/testwait"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// testEnv is an embedded JetStream, a Server on it and the ingress over HTTP.
type testEnv struct {
	emb     *Embedded
	srv     *Server
	ingress *httptest.Server
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// start runs a broker environment on dir; it is stopped at the end of the
// test unless stopped before.
// recordNakDelays records each redelivery delay the dispatcher asks JetStream for; the
// returned function lists them so far.
func (e *testEnv) recordNakDelays() func() []time.Duration {
	var mu sync.Mutex
	var delays []time.Duration
	e.srv.nakDelayed = func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		delays = append(delays, d)
	}
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(delays)
	}
}

func start(t testing.TB, dir string, opts Options) *testEnv {
	t.Helper()
	ctx := context.Background()
	emb, err := StartEmbedded(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	opts.URL = emb.ClientURL()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.AckWait == 0 {
		opts.AckWait = 2 * time.Second
	}
	srv, err := NewServer(ctx, opts)
	if err != nil {
		_ = emb.Close()
		t.Fatalf("NewServer: %v", err)
	}
	e := &testEnv{emb: emb, srv: srv, ingress: httptest.NewServer(srv)}
	t.Cleanup(e.stop)
	return e
}

func (e *testEnv) stop() {
	e.ingress.Close()
	_ = e.srv.Close()
	_ = e.emb.Close()
}

func (e *testEnv) url(ns, name string) string { return e.ingress.URL + "/" + ns + "/" + name }

// sink is a subscriber that records the events it receives.
type sink struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	seen     map[string]int // id -> requests
	events   []*event.Event
	arrivals map[string][]time.Time
	headers  []http.Header
	// respond answers a request; n is how many times this id has been seen.
	respond func(w http.ResponseWriter, ev *event.Event, n int)
}

func newSink(t testing.TB, respond func(w http.ResponseWriter, ev *event.Event, n int)) *sink {
	s := &sink{t: t, seen: map[string]int{}, arrivals: map[string][]time.Time{}, respond: respond}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	// Read the request with the CloudEvents SDK: an independent implementation
	// of the binding Skiff writes.
	ev, err := cehttp.NewEventFromHTTPRequest(r)
	if err != nil {
		s.t.Errorf("subscriber got an unreadable event: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if r.Header.Get("Ce-Specversion") == "" {
		s.t.Errorf("delivery is not in binary content mode: Content-Type %q", r.Header.Get("Content-Type"))
	}
	s.mu.Lock()
	s.seen[ev.ID()]++
	n := s.seen[ev.ID()]
	s.events = append(s.events, ev)
	s.arrivals[ev.ID()] = append(s.arrivals[ev.ID()], now)
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	if s.respond != nil {
		s.respond(w, ev, n)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *sink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *sink) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func (s *sink) ids() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.seen))
	for k, v := range s.seen {
		m[k] = v
	}
	return m
}

func (s *sink) all() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Event(nil), s.events...)
}

// waitFor is testwait.For, under the name this package's tests call.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, timeout, what, cond)
}

func newEvent(id, typ string, data any) event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("/test/source")
	ev.SetType(typ)
	if data != nil {
		_ = ev.SetData("application/json", data)
	}
	return ev
}

// post sends an event with the CloudEvents SDK's HTTP binding.
func post(client *http.Client, url string, ev event.Event, structured bool, hdr http.Header) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return 0, "", err
	}
	ctx := context.Background()
	if structured {
		ctx = binding.WithForceStructured(ctx)
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
		return 0, "", err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

func mustPost(t testing.TB, url string, ev event.Event, structured bool, hdr http.Header) {
	t.Helper()
	code, body, err := post(http.DefaultClient, url, ev, structured, hdr)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s %v", url, code, body, err)
	}
}

func ptr[T any](v T) *T { return &v }

func streamMsgs(t testing.TB, e *testEnv, ns, name string) uint64 {
	t.Helper()
	st, err := e.srv.JetStream().Stream(context.Background(), StreamName(ns, name))
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// Two triggers with different filters and 1,000 events of mixed types and
// content modes: each subscriber gets exactly the events its filter selects.
func TestFanOutByFilter(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	a, b := newSink(t, nil), newSink(t, nil)
	err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "default", Name: "default",
		Triggers: []TriggerConfig{
			{Name: "a", Subscriber: a.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "com.example.a"}}},
			{Name: "b.prefix", Subscriber: b.srv.URL, Filter: eventfilter.Filter{Filters: []eventfilter.Expression{{Prefix: map[string]string{"type": "com.example.b."}}}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	types := []string{"com.example.a", "com.example.b.created", "com.example.c", "com.example.b.deleted"}
	const total = 1000
	wantA, wantB := map[string]bool{}, map[string]bool{}
	for i := range total {
		id := fmt.Sprintf("ev-%04d", i)
		switch i % 4 {
		case 0:
			wantA[id] = true
		case 1, 3:
			wantB[id] = true
		}
	}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				ev := newEvent(fmt.Sprintf("ev-%04d", i), types[i%4], map[string]int{"i": i})
				ev.SetExtension("seq", fmt.Sprint(i))
				code, body, err := post(http.DefaultClient, e.url("default", "default"), ev, i%2 == 1, nil)
				if err != nil || code != http.StatusAccepted {
					t.Errorf("event %d: %d %s %v", i, code, body, err)
				}
			}
		})
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	if got, want := e.srv.Stats().Stored, uint64(len(wantA)+len(wantB)); got != want {
		t.Errorf("stored %d messages, want %d", got, want)
	}

	waitFor(t, 20*time.Second, "every matching event delivered", func() bool {
		return a.distinct() >= len(wantA) && b.distinct() >= len(wantB)
	})
	for name, c := range map[string]struct {
		s    *sink
		want map[string]bool
	}{"a": {a, wantA}, "b": {b, wantB}} {
		got := c.s.ids()
		if len(got) != len(c.want) {
			t.Errorf("trigger %s: %d distinct events, want %d", name, len(got), len(c.want))
		}
		for id := range got {
			if !c.want[id] {
				t.Errorf("trigger %s got %s, which its filter does not select", name, id)
			}
		}
	}
	// The events arrive whole: data, extensions, and no knativebrokerttl.
	for _, ev := range a.all()[:10] {
		var d struct{ I int }
		if err := json.Unmarshal(ev.Data(), &d); err != nil || fmt.Sprintf("ev-%04d", d.I) != ev.ID() {
			t.Errorf("event %s: data %q", ev.ID(), ev.Data())
		}
		if ev.DataContentType() != "application/json" {
			t.Errorf("event %s: datacontenttype %q", ev.ID(), ev.DataContentType())
		}
		ext := ev.Extensions()
		if ext["seq"] != fmt.Sprint(d.I) {
			t.Errorf("event %s: extension seq = %v", ev.ID(), ext["seq"])
		}
		if _, ok := ext[TTLExtension]; ok {
			t.Errorf("event %s: subscriber sees %s", ev.ID(), TTLExtension)
		}
		if _, ok := ext[ArrivalTimeExtension]; !ok {
			t.Errorf("event %s: no %s", ev.ID(), ArrivalTimeExtension)
		}
	}
	for _, h := range a.headers[:1] {
		if h.Get("Prefer") != "reply" {
			t.Errorf("Prefer header = %q, want reply", h.Get("Prefer"))
		}
	}
}

// A subscriber failing the first two attempts gets the event on the third,
// after exponentially growing waits: the dispatcher asks JetStream for exactly
// 200ms then 400ms (Knative's delay×2^(n-1)), and no retry comes earlier than
// asked. No upper bound on the wall clock: a loaded machine may be late.
func TestRetryWithExponentialBackoff(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	nakDelays := e.recordNakDelays()
	sub := newSink(t, func(w http.ResponseWriter, ev *event.Event, n int) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "retry",
		Delivery: &DeliverySpec{Retry: ptr[int32](3), BackoffPolicy: BackoffExponential, BackoffDelay: "PT0.2S"},
		Triggers: []TriggerConfig{{Name: "t", Subscriber: sub.srv.URL}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, e.url("ns", "retry"), newEvent("r1", "retry", nil), false, nil)
	waitFor(t, 10*time.Second, "delivery on the third attempt", func() bool {
		return e.srv.Stats().Delivered == 1
	})
	sub.mu.Lock()
	at := sub.arrivals["r1"]
	sub.mu.Unlock()
	if len(at) != 3 {
		t.Fatalf("%d attempts, want 3", len(at))
	}
	asked := nakDelays()
	if want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}; !slices.Equal(asked, want) {
		t.Errorf("waits asked of JetStream %v, want %v", asked, want)
	}
	g1, g2 := at[1].Sub(at[0]), at[2].Sub(at[1])
	t.Logf("waits before the retries: %v, %v", g1, g2)
	// JetStream's timers may fire a hair early on the clock the sink reads.
	const slack = 10 * time.Millisecond
	if g1 < 200*time.Millisecond-slack || g2 < 400*time.Millisecond-slack {
		t.Errorf("retries after %v and %v, earlier than the 200ms and 400ms asked", g1, g2)
	}
	if s := e.srv.Stats(); s.Retries != 2 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Failed deliveries reach the dead letter sink with Knative's error extensions:
// after the retries for retryable failures, at once for others.
func TestDeadLetterSink(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	dls := newSink(t, nil)
	failing := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "boom")
	})
	rejecting := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, strings.Repeat("x", 2000))
	})
	chatty := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) {
		_, _ = io.WriteString(w, "ok") // 200 with a body that is not an event
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String() + "/"
	_ = l.Close()

	delivery := &DeliverySpec{Retry: ptr[int32](2), BackoffPolicy: BackoffLinear, BackoffDelay: "PT0.1S", DeadLetterSink: dls.srv.URL}
	err = e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "dl", Delivery: delivery,
		Triggers: []TriggerConfig{
			{Name: "failing", Subscriber: failing.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "failing"}}},
			{Name: "rejecting", Subscriber: rejecting.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "rejecting"}}},
			{Name: "chatty", Subscriber: chatty.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "chatty"}}},
			{Name: "unreachable", Subscriber: closedURL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "unreachable"}}},
			{Name: "no-dls", Subscriber: failing.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "no-dls"}},
				Delivery: &DeliverySpec{Retry: ptr[int32](1)}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"failing", "rejecting", "chatty", "unreachable", "no-dls"} {
		mustPost(t, e.url("ns", "dl"), newEvent("id-"+typ, typ, map[string]string{"k": "v"}), false, nil)
	}
	waitFor(t, 10*time.Second, "four events dead-lettered and one dropped", func() bool {
		s := e.srv.Stats()
		return s.DeadLettered == 4 && s.Dropped == 1
	})
	byID := map[string]*event.Event{}
	for _, ev := range dls.all() {
		byID[ev.ID()] = ev
	}
	check := func(id, dest string, code int, dataPrefix string) {
		t.Helper()
		ev := byID[id]
		if ev == nil {
			t.Errorf("%s not dead-lettered", id)
			return
		}
		ext := ev.Extensions()
		if got := fmt.Sprint(ext[ErrorDestExtension]); got != dest {
			t.Errorf("%s: %s = %q, want %q", id, ErrorDestExtension, got, dest)
		}
		if got := fmt.Sprint(ext[ErrorCodeExtension]); got != fmt.Sprint(code) {
			t.Errorf("%s: %s = %q, want %d", id, ErrorCodeExtension, got, code)
		}
		data := fmt.Sprint(ext[ErrorDataExtension])
		if len(data) > ErrorDataMaxLength {
			t.Errorf("%s: %s is %d long", id, ErrorDataExtension, len(data))
		}
		raw, _ := base64.StdEncoding.DecodeString(data)
		if !strings.HasPrefix(string(raw), dataPrefix) {
			t.Errorf("%s: %s decodes to %q, want prefix %q", id, ErrorDataExtension, raw, dataPrefix)
		}
		if string(ev.Data()) != `{"k":"v"}` {
			t.Errorf("%s: data %q", id, ev.Data())
		}
	}
	check("id-failing", failing.srv.URL, 500, "boom")
	check("id-rejecting", rejecting.srv.URL, 400, "xxxx")
	check("id-chatty", chatty.srv.URL, 502, "ok")
	check("id-unreachable", closedURL, 500, "dispatch error: ")
	if len(byID["id-rejecting"].Extensions()[ErrorDataExtension].(string)) != ErrorDataMaxLength {
		t.Errorf("a long body is not truncated to %d characters", ErrorDataMaxLength)
	}
	if n := failing.ids()["id-failing"]; n != 3 {
		t.Errorf("retryable failure: %d attempts, want 1 + 2 retries", n)
	}
	if n := rejecting.ids()["id-rejecting"]; n != 1 {
		t.Errorf("non-retryable 400: %d attempts, want 1", n)
	}
	if n := chatty.ids()["id-chatty"]; n != 3 {
		t.Errorf("invalid reply (502): %d attempts, want 3", n)
	}
	if n := failing.ids()["id-no-dls"]; n != 2 {
		t.Errorf("no dead letter sink: %d attempts, want 2", n)
	}
	// The counters move when an outcome is final; the message leaves the stream once
	// JetStream has the dispatcher's ack, a moment later.
	waitFor(t, 5*time.Second, "no message left in the stream after final outcomes", func() bool {
		return streamMsgs(t, e, "ns", "dl") == 0
	})
}

// Events accepted but not delivered survive a restart of JetStream and the
// dispatcher, and are all delivered afterwards.
func TestRestartDurability(t *testing.T) {
	dir := t.TempDir()
	var up sync.Mutex
	ok := false
	sub := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) {
		up.Lock()
		defer up.Unlock()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	cfg := BrokerConfig{
		Namespace: "ns", Name: "durable",
		Delivery: &DeliverySpec{Retry: ptr[int32](1000), BackoffPolicy: BackoffLinear, BackoffDelay: "PT0.1S"},
		Triggers: []TriggerConfig{{Name: "t", Subscriber: sub.srv.URL}},
	}
	const total = 300
	e := start(t, dir, Options{})
	if err := e.srv.SetBroker(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	for i := range total {
		mustPost(t, e.url("ns", "durable"), newEvent(fmt.Sprintf("d-%d", i), "durable", map[string]int{"i": i}), i%2 == 0, nil)
	}
	// At most MaxAckPending events are in flight (retrying) at once.
	waitFor(t, 10*time.Second, "attempts and retries", func() bool { return sub.requests() >= 300 })
	e.stop()
	if d := e.srv.Stats().Delivered; d != 0 {
		t.Fatalf("%d delivered before the restart", d)
	}

	up.Lock()
	ok = true
	up.Unlock()
	e2 := start(t, dir, Options{})
	if err := e2.srv.SetBroker(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "every event delivered after the restart", func() bool {
		return e2.srv.Stats().Delivered >= total
	})
	if got := e2.srv.Stats().Delivered; got != total {
		t.Errorf("delivered %d, want %d", got, total)
	}
	waitFor(t, 5*time.Second, "an empty stream", func() bool { return streamMsgs(t, e2, "ns", "durable") == 0 })
}

// Bad requests get 4xx with a JSON reason and nothing is stored.
func TestIngressRejects(t *testing.T) {
	// Ingress only, so that what is stored stays in the stream.
	e := start(t, t.TempDir(), Options{MaxEventBytes: 4096, DisableDispatch: true})
	sub := newSink(t, nil)
	if err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "b",
		Triggers: []TriggerConfig{{Name: "all", Subscriber: sub.srv.URL}},
	}); err != nil {
		t.Fatal(err)
	}
	binary := func(drop string) http.Header {
		h := http.Header{"Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}, "Ce-Specversion": {"1.0"}, "Content-Type": {"application/json"}}
		h.Del(drop)
		return h
	}
	structured := http.Header{"Content-Type": {"application/cloudevents+json"}}
	url := e.url("ns", "b")
	cases := []struct {
		name, method, url string
		header            http.Header
		body              string
		status            int
		reason            string
	}{
		{"missing id", "POST", url, binary("Ce-Id"), `{}`, 400, "missing_attribute"},
		{"missing source", "POST", url, binary("Ce-Source"), `{}`, 400, "missing_attribute"},
		{"missing type", "POST", url, binary("Ce-Type"), `{}`, 400, "missing_attribute"},
		{"missing specversion", "POST", url, binary("Ce-Specversion"), `{}`, 400, ""},
		{"wrong specversion", "POST", url, http.Header{"Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}, "Ce-Specversion": {"0.9"}}, ``, 400, "unsupported_specversion"},
		{"structured bad JSON", "POST", url, structured, `{"specversion":"1.0","id":`, 400, "invalid_json"},
		{"structured missing id", "POST", url, structured, `{"specversion":"1.0","source":"/s","type":"t"}`, 400, "missing_attribute"},
		{"not an event", "POST", url, http.Header{"Content-Type": {"application/json"}}, `{"hello":1}`, 400, "not_cloudevent"},
		{"ttl exhausted", "POST", url, func() http.Header { h := binary(""); h.Set("Ce-Knativebrokerttl", "1"); return h }(), `{}`, 400, "ttl_exhausted"},
		{"too large", "POST", url, binary(""), `"` + strings.Repeat("x", 5000) + `"`, 413, "too_large"},
		{"unknown broker", "POST", e.url("ns", "nope"), binary(""), `{}`, 404, "broker_not_found"},
		// ingress_handler_test.go TestHandler: "malformed request URI", "root request URI".
		{"bad path", "POST", e.ingress.URL + "/ns", binary(""), `{}`, 400, "malformed_path"},
		{"malformed path", "POST", e.ingress.URL + "/knative/ns/b", binary(""), `{}`, 400, "malformed_path"},
		{"root path", "POST", e.ingress.URL + "/", binary(""), `{}`, 404, "not_found"},
		{"GET", "GET", url, nil, ``, 405, "method_not_allowed"},
		{"PUT", "PUT", url, binary(""), `{}`, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
			for k, v := range c.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error, Reason string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if resp.StatusCode != c.status || body.Error == "" || (c.reason != "" && body.Reason != c.reason) {
				t.Errorf("got %d %+v, want %d reason %q", resp.StatusCode, body, c.status, c.reason)
			}
			if c.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	if n := streamMsgs(t, e, "ns", "b"); n != 0 {
		t.Errorf("%d messages stored from bad requests", n)
	}
	if s := e.srv.Stats(); s.Stored != 0 || s.TTLExpired != 1 {
		t.Errorf("stats %+v", s)
	}
	// Good ones for contrast: a TTL that is decremented, one that is not a
	// number and is reset to the default as Knative's TTLDefaulter does
	// (issue 22 item 5), and a 0.3 event (item 3).
	for i, c := range []struct {
		ttl     string
		wantTTL float64
		sv      string
	}{{"7", 6, "1.0"}, {"many", DefaultTTL, "1.0"}, {"", DefaultTTL, "0.3"}} {
		h := binary("")
		h.Set("Ce-Specversion", c.sv)
		if c.ttl != "" {
			h.Set("Ce-Knativebrokerttl", c.ttl)
		}
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"ok":true}`))
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("good event (ttl %q): %v %v", c.ttl, resp, err)
		}
		resp.Body.Close()
		if n := streamMsgs(t, e, "ns", "b"); n != uint64(i+1) {
			t.Errorf("%d messages stored, want %d", n, i+1)
		}
		st, _ := e.srv.JetStream().Stream(t.Context(), StreamName("ns", "b"))
		m, err := st.GetLastMsgForSubject(t.Context(), Subject("ns", "b", "all"))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := decodeStored(m.Header, m.Data)
		if err != nil {
			t.Fatalf("stored event does not read back: %v", err)
		}
		if stored.Attributes[TTLExtension] != strconv.Itoa(int(c.wantTTL)) || stored.Attributes["specversion"] != c.sv || stored.Attributes["id"] != "1" || m.Header.Get(HeaderTrigger) != "all" {
			t.Errorf("ttl %q: stored %s with headers %v, want TTL %v", c.ttl, m.Data, m.Header, c.wantTTL)
		}
	}
}

// OPTIONS is the CloudEvents webhook handshake (webhook spec section 4.2),
// answered as Knative's ingress does (ingress_handler_test.go TestHandler,
// "valid method OPTIONS").
func TestIngressWebhookHandshake(t *testing.T) {
	e := start(t, t.TempDir(), Options{DisableDispatch: true})
	req, _ := http.NewRequest(http.MethodOptions, e.url("ns", "b"), nil)
	req.Header.Set("WebHook-Request-Origin", "eventemitter.example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("WebHook-Allowed-Origin") != "*" || resp.Header.Get("WebHook-Allowed-Rate") != "*" ||
		resp.Header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}
}

// A subscriber's reply is an event of the broker again, in either content mode.
func TestRepliesReenterTheBroker(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	processed := newSink(t, nil)
	orders := newSink(t, func(w http.ResponseWriter, ev *event.Event, _ int) {
		reply := newEvent("reply-"+ev.ID(), "order.processed", map[string]string{"order": ev.ID()})
		ctx := context.Background()
		if strings.HasSuffix(ev.ID(), "s") {
			ctx = binding.WithForceStructured(ctx)
		}
		if err := cehttp.WriteResponseWriter(ctx, binding.ToMessage(&reply), http.StatusOK, w); err != nil {
			t.Errorf("writing reply: %v", err)
		}
	})
	if err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "replies",
		Triggers: []TriggerConfig{
			{Name: "orders", Subscriber: orders.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "order.created"}}},
			{Name: "processed", Subscriber: processed.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "order.processed"}}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	mustPost(t, e.url("ns", "replies"), newEvent("o1-b", "order.created", nil), false, nil)
	mustPost(t, e.url("ns", "replies"), newEvent("o2-s", "order.created", nil), true, nil)
	waitFor(t, 10*time.Second, "both replies delivered", func() bool { return processed.distinct() == 2 })
	for _, ev := range processed.all() {
		var d struct{ Order string }
		_ = json.Unmarshal(ev.Data(), &d)
		if ev.ID() != "reply-"+d.Order || ev.Type() != "order.processed" {
			t.Errorf("reply %s: type %s data %s", ev.ID(), ev.Type(), ev.Data())
		}
	}
	// The sink has the replies before the dispatcher has settled their deliveries.
	waitFor(t, 5*time.Second, "4 deliveries and 2 replies counted", func() bool {
		s := e.srv.Stats()
		return s.Replies == 2 && s.Delivered == 4
	})
}

// A subscriber that answers every event with another one it receives itself
// is stopped by knativebrokerttl.
func TestTTLBreaksReplyLoops(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	loop := newSink(t, func(w http.ResponseWriter, ev *event.Event, _ int) {
		reply := newEvent(ev.ID()+"+", "loop", nil)
		_ = cehttp.WriteResponseWriter(context.Background(), binding.ToMessage(&reply), http.StatusOK, w)
	})
	if err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "loop",
		Triggers: []TriggerConfig{{Name: "loop", Subscriber: loop.srv.URL}},
	}); err != nil {
		t.Fatal(err)
	}
	ev := newEvent("l", "loop", nil)
	ev.SetExtension(TTLExtension, 4)
	mustPost(t, e.url("ns", "loop"), ev, false, nil)
	// 4 is decremented to 3 by the ingress; each reply takes one more.
	waitFor(t, 10*time.Second, "the third reply dropped", func() bool { return e.srv.Stats().TTLExpired == 1 })
	waitFor(t, 5*time.Second, "the third delivery settled", func() bool { return e.srv.Stats().Delivered == 3 })
	if got := loop.ids(); len(got) != 3 || got["l"] != 1 || got["l+"] != 1 || got["l++"] != 1 {
		t.Errorf("deliveries %v, want l, l+, l++ once each", got)
	}
	if s := e.srv.Stats(); s.Replies != 2 {
		t.Errorf("stats %+v", s)
	}
}

// With the proxy's token the proxy's x-skiff-triggers decides; without the
// header, or without the token (a client that reaches the ingress directly,
// issue 13 item 3), the ingress evaluates the filters itself.
func TestTriggerHeader(t *testing.T) {
	const token = "s3cret"
	e := start(t, t.TempDir(), Options{TriggerToken: token})
	a, b := newSink(t, nil), newSink(t, nil)
	cfg := BrokerConfig{
		Namespace: "ns", Name: "hdr",
		Triggers: []TriggerConfig{
			{Name: "a", Subscriber: a.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "a"}}},
			{Name: "b", Subscriber: b.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "b"}}},
		},
	}
	if err := e.srv.SetBroker(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	gen := cfg.FilterConfig().Generation
	url := e.url("ns", "hdr")
	mustPost(t, url, newEvent("by-header", "a", nil), false, http.Header{TriggersHeader: {" b , unknown,b"}, eventfilter.GenerationHeader: {gen}, eventfilter.TokenHeader: {token}})
	mustPost(t, url, newEvent("by-filter", "a", nil), false, nil)
	mustPost(t, url, newEvent("none", "a", nil), true, http.Header{TriggersHeader: {""}, eventfilter.GenerationHeader: {gen}, eventfilter.TokenHeader: {token}})
	// A list computed from another trigger set (the proxy lagging behind) is
	// not followed: the filters decide.
	mustPost(t, url, newEvent("stale", "a", nil), false, http.Header{TriggersHeader: {"b"}, eventfilter.GenerationHeader: {"old"}, eventfilter.TokenHeader: {token}})
	// Forged by a client that knows the generation but not the token (none,
	// a wrong one, or the right one twice with a wrong one): the filters decide.
	for i, tok := range [][]string{nil, {"guess"}, {token, "guess"}} {
		h := http.Header{TriggersHeader: {"b"}, eventfilter.GenerationHeader: {gen}}
		if tok != nil {
			h[http.CanonicalHeaderKey(eventfilter.TokenHeader)] = tok
		}
		mustPost(t, url, newEvent(fmt.Sprintf("forged-%d", i), "a", nil), false, h)
	}
	if s := e.srv.Stats(); s.Stored != 6 || s.Accepted != 7 {
		t.Fatalf("stats %+v", s)
	}
	waitFor(t, 5*time.Second, "six deliveries", func() bool { return e.srv.Stats().Delivered == 6 })
	if got := b.ids(); len(got) != 1 || got["by-header"] != 1 {
		t.Errorf("b got %v, want only by-header: a forged list was followed", got)
	}
	if got := a.ids(); len(got) != 5 || got["by-filter"] != 1 || got["stale"] != 1 || got["forged-0"] != 1 || got["forged-1"] != 1 || got["forged-2"] != 1 {
		t.Errorf("a got %v", got)
	}

	// Without trust, the header is ignored.
	e2 := start(t, t.TempDir(), Options{})
	if err := e2.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "hdr",
		Triggers: []TriggerConfig{{Name: "b", Subscriber: b.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "b"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	mustPost(t, e2.url("ns", "hdr"), newEvent("spoofed", "a", nil), false, http.Header{TriggersHeader: {"b"}})
	if s := e2.srv.Stats(); s.Stored != 0 {
		t.Errorf("an untrusted header was followed: %+v", s)
	}
}

// Triggers removed from a broker lose their consumer and events; a deleted
// broker loses its stream and URL.
func TestRemoveTriggerAndBroker(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	a := newSink(t, nil)
	stuck := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) { w.WriteHeader(http.StatusServiceUnavailable) })
	cfg := BrokerConfig{
		Namespace: "ns", Name: "rm",
		Delivery: &DeliverySpec{Retry: ptr[int32](100), BackoffDelay: "PT1S"},
		Triggers: []TriggerConfig{{Name: "a", Subscriber: a.srv.URL}, {Name: "stuck", Subscriber: stuck.srv.URL}},
	}
	if err := e.srv.SetBroker(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	mustPost(t, e.url("ns", "rm"), newEvent("x", "x", nil), false, nil)
	waitFor(t, 5*time.Second, "first attempts", func() bool { return a.distinct() == 1 && stuck.distinct() == 1 })
	cfg.Triggers = cfg.Triggers[:1]
	if err := e.srv.SetBroker(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	js := e.srv.JetStream()
	if _, err := js.Consumer(t.Context(), StreamName("ns", "rm"), "stuck"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("consumer of a removed trigger: %v", err)
	}
	if n := streamMsgs(t, e, "ns", "rm"); n != 0 {
		t.Errorf("%d events left for a removed trigger", n)
	}
	if err := e.srv.DeleteBroker(t.Context(), "ns", "rm"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), StreamName("ns", "rm")); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream of a deleted broker: %v", err)
	}
	code, _, _ := post(http.DefaultClient, e.url("ns", "rm"), newEvent("y", "y", nil), false, nil)
	if code != http.StatusNotFound {
		t.Errorf("POST to a deleted broker: %d", code)
	}
}

func TestSetBrokerValidation(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	good := TriggerConfig{Name: "t", Subscriber: "http://sub.example/"}
	cases := []struct {
		name string
		cfg  BrokerConfig
		path string
	}{
		{"namespace", BrokerConfig{Namespace: "Bad_NS", Name: "b"}, "namespace"},
		{"name", BrokerConfig{Namespace: "ns", Name: ""}, "name"},
		{"trigger name", BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{{Name: "a/b", Subscriber: "http://x/"}}}, "triggers[0].name"},
		{"duplicate", BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{good, good}}, "triggers[1].name"},
		{"subscriber", BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{{Name: "t", Subscriber: "sub"}}}, "triggers[0].subscriber"},
		{"backoffDelay", BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{{Name: "t", Subscriber: "http://x/", Delivery: &DeliverySpec{BackoffDelay: "5s"}}}}, "triggers[0].delivery.backoffDelay"},
		{"broker backoffPolicy", BrokerConfig{Namespace: "ns", Name: "b", Delivery: &DeliverySpec{BackoffPolicy: "quadratic"}}, "delivery.backoffPolicy"},
		{"timeout", BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{{Name: "t", Subscriber: "http://x/", Delivery: &DeliverySpec{Timeout: "PT0S"}}}}, "triggers[0].delivery.timeout"},
		{"retry", BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{{Name: "t", Subscriber: "http://x/", Delivery: &DeliverySpec{Retry: ptr[int32](-1)}}}}, "triggers[0].delivery.retry"},
		{"deadLetterSink", BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{{Name: "t", Subscriber: "http://x/", Delivery: &DeliverySpec{DeadLetterSink: "/dls"}}}}, "triggers[0].delivery.deadLetterSink"},
		{"filter", BrokerConfig{Namespace: "ns", Name: "b", Triggers: []TriggerConfig{{Name: "t", Subscriber: "http://x/", Filter: eventfilter.Filter{Filters: []eventfilter.Expression{{Exact: map[string]string{"a": "b"}, Prefix: map[string]string{"a": "b"}}}}}}}, "triggers[0].filters[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := e.srv.SetBroker(t.Context(), c.cfg)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError", err)
			}
			if !strings.HasPrefix(fe.Path, c.path) {
				t.Errorf("error %q names %q, want %q", err, fe.Path, c.path)
			}
		})
	}
}

// An event is answered 202 only once JetStream has acknowledged storing it, in the binary
// stored form, and 503 with Retry-After when it could not be stored.
func TestIngressAnswersAfterTheStoreAcks(t *testing.T) {
	e := start(t, t.TempDir(), Options{DisableDispatch: true, PublishTimeout: 2 * time.Second})
	sub := newSink(t, nil)
	if err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "b",
		Triggers: []TriggerConfig{{Name: "all", Subscriber: sub.srv.URL}},
	}); err != nil {
		t.Fatal(err)
	}
	mustPost(t, e.url("ns", "b"), newEvent("1", "t", map[string]int{"n": 1}), false, nil)
	if n := streamMsgs(t, e, "ns", "b"); n != 1 {
		t.Fatalf("%d messages stored when the 202 came, want 1", n)
	}
	st, _ := e.srv.JetStream().Stream(t.Context(), StreamName("ns", "b"))
	m, err := st.GetLastMsgForSubject(t.Context(), Subject("ns", "b", "all"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderStored) != storedBinary || string(m.Data) != `{"n":1}` {
		t.Errorf("stored %s with headers %v, want the binary form", m.Data, m.Header)
	}

	// Without the stream nothing acknowledges the publish.
	if err := e.srv.JetStream().DeleteStream(t.Context(), StreamName("ns", "b")); err != nil {
		t.Fatal(err)
	}
	code, body, err := post(http.DefaultClient, e.url("ns", "b"), newEvent("2", "t", map[string]int{"n": 2}), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"reason":"not_stored"`) {
		t.Errorf("POST without a stream: %d %s, want 503 not_stored", code, body)
	}
}

// A subscriber answering 404 or 409 is not asked again by default; under Knative's retry
// set (Options.RetryRules, `--delivery-retry-rules knative`) it is, as Knative's
// dispatcher retries them, and the event is dead-lettered after the retries.
func TestRetryRulesKnative(t *testing.T) {
	for _, tc := range []struct {
		set          RetryRules
		wantAttempts int
	}{{"", 1}, {RetryRulesKnative, 3}} {
		t.Run(cmp.Or(string(tc.set), "default"), func(t *testing.T) {
			e := start(t, t.TempDir(), Options{RetryRules: tc.set})
			dls := newSink(t, nil)
			missing := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) { w.WriteHeader(http.StatusNotFound) })
			conflict := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) { w.WriteHeader(http.StatusConflict) })
			err := e.srv.SetBroker(t.Context(), BrokerConfig{
				Namespace: "ns", Name: "rs",
				Delivery: &DeliverySpec{Retry: ptr[int32](2), BackoffPolicy: BackoffLinear, BackoffDelay: "PT0.05S", DeadLetterSink: dls.srv.URL},
				Triggers: []TriggerConfig{
					{Name: "missing", Subscriber: missing.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "missing"}}},
					{Name: "conflict", Subscriber: conflict.srv.URL, Filter: eventfilter.Filter{Attributes: map[string]string{"type": "conflict"}}},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{"missing", "conflict"} {
				mustPost(t, e.url("ns", "rs"), newEvent("id-"+typ, typ, nil), false, nil)
			}
			waitFor(t, 10*time.Second, "both events dead-lettered", func() bool { return len(dls.all()) == 2 })
			if n := missing.ids()["id-missing"]; n != tc.wantAttempts {
				t.Errorf("404: %d attempts, want %d", n, tc.wantAttempts)
			}
			if n := conflict.ids()["id-conflict"]; n != tc.wantAttempts {
				t.Errorf("409: %d attempts, want %d", n, tc.wantAttempts)
			}
		})
	}
}
