package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// channelIngress serves ServeChannel; postChannel sends to a channel by its Host.
func channelIngress(t testing.TB, e *testEnv) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(e.srv.ServeChannel))
	t.Cleanup(srv.Close)
	return srv
}

func postChannel(t testing.TB, ingress *httptest.Server, ns, name string, ev event.Event, structured bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ingress.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = ChannelHost(ns, name)
	ctx := context.Background()
	if structured {
		ctx = binding.WithForceStructured(ctx)
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// replyWith answers every delivery with a reply event whose data appends suffix to the
// received data, as a Sequence step does.
func replyWith(suffix string) func(w http.ResponseWriter, ev *event.Event, n int) {
	return func(w http.ResponseWriter, ev *event.Event, _ int) {
		r := ev.Clone()
		r.SetID(ev.ID() + suffix)
		_ = r.SetData("text/plain", string(ev.Data())+suffix)
		if err := cehttp.WriteResponseWriter(context.Background(), binding.ToMessage(&r), http.StatusOK, w); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}
}

// Every subscriber of a channel gets every event (fan-out), stored once per subscriber;
// the event reaches each as it was sent, without the broker's extensions.
func TestChannelFanOut(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	in := channelIngress(t, e)
	subs := []*sink{newSink(t, nil), newSink(t, nil), newSink(t, nil)}
	cfg := ChannelConfig{Namespace: "default", Name: "orders"}
	for i, s := range subs {
		cfg.Subscribers = append(cfg.Subscribers, SubscriberConfig{Name: fmt.Sprintf("sub-%d", i), Subscriber: s.srv.URL})
	}
	if err := e.srv.SetChannel(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	const total = 200
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < total; i += 8 {
				ev := newEvent(fmt.Sprintf("ev-%03d", i), "com.example", map[string]int{"i": i})
				if code, body := postChannel(t, in, "default", "orders", ev, i%2 == 0); code != http.StatusAccepted {
					t.Errorf("event %d: %d %s", i, code, body)
				}
			}
		})
	}
	wg.Wait()
	if got := e.srv.Stats().Stored; got != total*3 {
		t.Errorf("stored %d messages, want %d", got, total*3)
	}
	for i, s := range subs {
		waitFor(t, 20*time.Second, fmt.Sprintf("subscriber %d gets all %d events", i, total), func() bool { return s.distinct() == total })
	}
	for _, ev := range subs[0].all()[:5] {
		ext := ev.Extensions()
		if _, ok := ext[ArrivalTimeExtension]; ok {
			t.Errorf("event %s: a channel adds %s", ev.ID(), ArrivalTimeExtension)
		}
		if _, ok := ext[TTLExtension]; ok {
			t.Errorf("event %s: a channel adds %s", ev.ID(), TTLExtension)
		}
	}
	// A broker of the same name is another stream: the channel is untouched by it.
	if err := e.srv.SetBroker(t.Context(), BrokerConfig{Namespace: "default", Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.DeleteBroker(t.Context(), "default", "orders"); err != nil {
		t.Fatal(err)
	}
	if code, body := postChannel(t, in, "default", "orders", newEvent("after", "t", nil), false); code != http.StatusAccepted {
		t.Errorf("after the broker of the same name went: %d %s", code, body)
	}
}

// A subscriber's reply goes to the subscription's reply (as a Sequence step feeds the
// next); without a reply destination it is dropped; a subscriber left empty sends the
// event straight to the reply; a 2xx answer that is not a CloudEvent is no reply.
func TestChannelReplies(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	in := channelIngress(t, e)
	reply := newSink(t, nil)
	step := newSink(t, replyWith("+a"))
	noReply := newSink(t, replyWith("+b"))
	plain := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("thanks"))
	})
	err := e.srv.SetChannel(t.Context(), ChannelConfig{Namespace: "ns", Name: "ch", Subscribers: []SubscriberConfig{
		{Name: "step", Subscriber: step.srv.URL, Reply: reply.srv.URL + "/step"},
		{Name: "noreply", Subscriber: noReply.srv.URL},
		{Name: "forward", Reply: reply.srv.URL + "/forward"},
		{Name: "plain", Subscriber: plain.srv.URL, Reply: reply.srv.URL + "/plain"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvent("e1", "t", nil)
	_ = ev.SetData("text/plain", "x")
	if code, body := postChannel(t, in, "ns", "ch", ev, false); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	waitFor(t, 10*time.Second, "the reply and the forwarded event", func() bool { return reply.requests() == 2 && plain.requests() == 1 && noReply.requests() == 1 })
	got := map[string]string{}
	for _, r := range reply.all() {
		got[r.ID()] = string(r.Data())
	}
	if got["e1+a"] != "x+a" || got["e1"] != "x" || len(got) != 2 {
		t.Errorf("reply destination got %v, want the step's reply e1+a (x+a) and the forwarded e1 (x)", got)
	}
	// The counters move after the subscriber answered: wait for them, then check none
	// went past.
	waitFor(t, 10*time.Second, "1 reply sent and 4 deliveries counted", func() bool {
		s := e.srv.Stats()
		return s.Replies >= 1 && s.Delivered >= 4
	})
	if s := e.srv.Stats(); s.Replies != 1 || s.Delivered != 4 {
		t.Errorf("stats %+v: want 1 reply sent, 4 deliveries", s)
	}
	// Nothing is delivered twice.
	time.Sleep(300 * time.Millisecond)
	if reply.requests() != 2 || step.requests() != 1 {
		t.Errorf("extra deliveries: reply %d, step %d", reply.requests(), step.requests())
	}
}

// A reply the reply destination refuses fails the attempt: it is retried, then the
// original event goes to the dead letter sink with knativeerrordest naming the reply, as
// Knative's dispatcher does.
func TestChannelReplyFailureIsDeadLettered(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	in := channelIngress(t, e)
	step := newSink(t, replyWith("+a"))
	down := newSink(t, func(w http.ResponseWriter, _ *event.Event, _ int) { w.WriteHeader(http.StatusServiceUnavailable) })
	dls := newSink(t, nil)
	err := e.srv.SetChannel(t.Context(), ChannelConfig{Namespace: "ns", Name: "ch",
		Delivery:    &DeliverySpec{Retry: ptr[int32](2), BackoffDelay: "PT0.1S", DeadLetterSink: dls.srv.URL},
		Subscribers: []SubscriberConfig{{Name: "s", Subscriber: step.srv.URL, Reply: down.srv.URL + "/next"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postChannel(t, in, "ns", "ch", newEvent("e1", "t", map[string]int{"a": 1}), false); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	waitFor(t, 10*time.Second, "the dead-lettered event", func() bool { return dls.requests() == 1 })
	got := dls.all()[0]
	ext := got.Extensions()
	if got.ID() != "e1" || ext[ErrorDestExtension] != down.srv.URL+"/next" || ext[ErrorCodeExtension] != "503" {
		t.Errorf("dead letter %s: extensions %v, want the original event with the reply as %s", got.ID(), ext, ErrorDestExtension)
	}
	if n := down.requests(); n != 3 {
		t.Errorf("the reply destination got %d attempts, want 3 (1 + 2 retries)", n)
	}
}

// The channel ingress answers as the broker's: 404 for a host that is no channel, 413
// over the size limit, 400 for a bad event, 405 for GET; nothing of those is stored.
func TestChannelIngressRejects(t *testing.T) {
	e := start(t, t.TempDir(), Options{MaxEventBytes: 4096})
	in := channelIngress(t, e)
	sub := newSink(t, nil)
	if err := e.srv.SetChannel(t.Context(), ChannelConfig{Namespace: "ns", Name: "ch", Subscribers: []SubscriberConfig{{Name: "s", Subscriber: sub.srv.URL}}}); err != nil {
		t.Fatal(err)
	}
	big := newEvent("big", "t", nil)
	_ = big.SetData("text/plain", strings.Repeat("x", 5000))
	if code, body := postChannel(t, in, "ns", "ch", big, false); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too_large") {
		t.Errorf("too large: %d %s", code, body)
	}
	if code, body := postChannel(t, in, "ns", "nope", newEvent("x", "t", nil), false); code != http.StatusNotFound || !strings.Contains(body, "channel_not_found") {
		t.Errorf("unknown channel: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodPost, in.URL, strings.NewReader("{}"))
	req.Host = ChannelHost("ns", "ch")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("not a CloudEvent: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, in.URL, nil)
	req.Host = ChannelHost("ns", "ch")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	if s := e.srv.Stats(); s.Stored != 0 {
		t.Errorf("stored %d events from refused requests", s.Stored)
	}
}

// Events a channel accepted are delivered by the next server on the same store, and
// removing a subscriber deletes its undelivered events while the others keep theirs.
func TestChannelDurabilityAndSubscriberRemoval(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, Options{DisableDispatch: true})
	in := channelIngress(t, e)
	a, b := newSink(t, nil), newSink(t, nil)
	cfg := ChannelConfig{Namespace: "ns", Name: "ch", Subscribers: []SubscriberConfig{{Name: "a", Subscriber: a.srv.URL}, {Name: "b", Subscriber: b.srv.URL}}}
	if err := e.srv.SetChannel(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if code, body := postChannel(t, in, "ns", "ch", newEvent(fmt.Sprint(i), "t", nil), false); code != http.StatusAccepted {
			t.Fatalf("%d %s", code, body)
		}
	}
	e.stop()
	e2 := start(t, dir, Options{})
	cfg.Subscribers = cfg.Subscribers[:1] // b is gone
	if err := e2.srv.SetChannel(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a gets the 20 events after the restart", func() bool { return a.distinct() == 20 })
	st, err := e2.srv.JetStream().Stream(t.Context(), ChannelStreamName("ns", "ch"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the stream is empty", func() bool {
		info, err := st.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	})
	if b.requests() != 0 {
		t.Errorf("the removed subscriber got %d events", b.requests())
	}
	if err := e2.srv.DeleteChannel(t.Context(), "ns", "ch"); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.srv.JetStream().Stream(t.Context(), ChannelStreamName("ns", "ch")); err == nil {
		t.Error("the stream outlived DeleteChannel")
	}
}

func TestSetChannelValidation(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	err := e.srv.SetChannel(t.Context(), ChannelConfig{Namespace: "ns", Name: "ch", Subscribers: []SubscriberConfig{
		{Name: "ok", Subscriber: "http://a.example"},
		{Name: "ok", Subscriber: "http://b.example"},
		{Name: "none"},
		{Name: "rel", Subscriber: "/relative"},
		{Name: "bad-delivery", Subscriber: "http://c.example", Delivery: &DeliverySpec{BackoffDelay: "2s"}},
	}})
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want field errors", err)
	}
	for _, want := range []string{"subscribers[1].name", "subscribers[2]:", "subscribers[3].subscriber", "subscribers[4].delivery.backoffDelay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestChannelHost(t *testing.T) {
	if h := ChannelHost("default", "my.ch"); h != "my.ch-kn-channel.default.svc.cluster.local" {
		t.Errorf("ChannelHost = %s", h)
	}
	for host, want := range map[string][2]string{
		"orders-kn-channel.default.svc.cluster.local":      {"default", "orders"},
		"orders-kn-channel.default.svc.cluster.local:80":   {"default", "orders"},
		"Orders-KN-Channel.Default.svc.cluster.local.":     {"default", "orders"},
		"a.b-kn-channel.ns.svc.cluster.local":              {"ns", "a.b"},
		"orders.default.svc.cluster.local":                 {},
		"-kn-channel.default.svc.cluster.local":            {},
		"orders-kn-channel.svc.cluster.local":              {},
		"broker-ingress.localhost":                         {},
		"orders-kn-channel.default.svc.cluster.local.evil": {},
	} {
		ns, name, ok := ParseChannelHost(host)
		if ok != (want[0] != "") || ns != want[0] || name != want[1] {
			t.Errorf("ParseChannelHost(%q) = %q %q %v, want %v", host, ns, name, ok, want)
		}
	}
}

// A channel delivers as a broker does (issue 22): attribute values percent-encoded in the
// binary headers (the HTTP binding, 3.1.3.2), and Knative's pass-through headers of the
// sender's request carried on, others not.
func TestChannelDeliveryHeaders(t *testing.T) {
	e := start(t, t.TempDir(), Options{})
	in := channelIngress(t, e)
	sub := newSink(t, nil)
	if err := e.srv.SetChannel(t.Context(), ChannelConfig{Namespace: "ns", Name: "ch", Subscribers: []SubscriberConfig{
		{Name: "s", Subscriber: sub.srv.URL},
	}}); err != nil {
		t.Fatal(err)
	}
	ev := newEvent("e1", "t", nil)
	ev.SetExtension("pct", "100% \"sure\" é")
	req, err := http.NewRequest(http.MethodPost, in.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = ChannelHost("ns", "ch")
	if err := cehttp.WriteRequest(context.Background(), binding.ToMessage(&ev), req); err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", "req-1")
	req.Header.Set("Knative-Trace", "k")
	req.Header.Set("X-Other", "o")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d", resp.StatusCode)
	}
	waitFor(t, 10*time.Second, "the delivery", func() bool { return sub.requests() == 1 })
	sub.mu.Lock()
	h := sub.headers[0]
	sub.mu.Unlock()
	if got := h.Get("Ce-Pct"); got != "100%25%20%22sure%22%20%C3%A9" {
		t.Errorf("Ce-Pct %q, want the value percent-encoded", got)
	}
	if h.Get("X-Request-Id") != "req-1" || h.Get("Knative-Trace") != "k" || h.Get("X-Other") != "" || h.Get(NamespaceHeader) != "ns" {
		t.Errorf("delivery headers %v: want X-Request-Id, Knative-Trace and Kn-Namespace, not X-Other", h)
	}
}
