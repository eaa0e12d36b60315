package broker

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// proxyFailureHeader marks a test subscriber's answer as the proxy's own failure.
const proxyFailureHeader = "X-Test-Proxy-Failure"

// testProxyFailed stands in for proxyclient.Config.ProxyFailed: a failed connection, or an
// answer marked as the proxy's.
func testProxyFailed(_ *http.Request, resp *http.Response, err error) bool {
	return err != nil || resp.Header.Get(proxyFailureHeader) != ""
}

// Issue 13, item 2: a failure to reach Skiff's own proxy (connection refused while it starts,
// an activation timeout) counted as the subscriber's failure, so with no retry configured the
// event was acknowledged and dropped. Such failures are no attempts now: the event waits and is
// sent again, and the trigger's retry budget (here none) is untouched.
func TestProxyFailuresAreNotAttempts(t *testing.T) {
	e := start(t, t.TempDir(), Options{ProxyFailed: testProxyFailed})
	// The "proxy" is not listening at first: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// Once it listens, its activator times out twice before the subscriber answers.
	sub := newSink(t, func(w http.ResponseWriter, _ *event.Event, n int) {
		if n <= 2 {
			w.Header().Set(proxyFailureHeader, "activation timeout")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	if err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "b",
		Triggers: []TriggerConfig{{Name: "t", Subscriber: "http://" + addr + "/"}}, // no retry
	}); err != nil {
		t.Fatal(err)
	}
	mustPost(t, e.url("ns", "b"), newEvent("e1", "t", nil), false, nil)
	waitFor(t, 10*time.Second, "refused connections", func() bool { return e.srv.Stats().ProxyFailures >= 2 })
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	proxy := &httptest.Server{Listener: l, Config: &http.Server{Handler: sub.srv.Config.Handler}}
	proxy.Start()
	t.Cleanup(proxy.Close)

	waitFor(t, 20*time.Second, "the delivery", func() bool { return e.srv.Stats().Delivered == 1 })
	st := e.srv.Stats()
	if st.Dropped != 0 || st.Retries != 0 || st.ProxyFailures < 4 {
		t.Errorf("stats %+v, want nothing dropped, no retry used, at least 4 proxy failures (2 refused, 2 activation timeouts)", st)
	}
	if got := sub.ids(); got["e1"] != 3 {
		t.Errorf("the subscriber saw e1 %d times, want 3 (two proxy failures, then the delivery)", got["e1"])
	}
}

// With HoldDispatch nothing is pulled from JetStream until StartDispatch; the ingress stores
// events meanwhile.
func TestHoldDispatchUntilStarted(t *testing.T) {
	e := start(t, t.TempDir(), Options{HoldDispatch: true})
	sub := newSink(t, nil)
	if err := e.srv.SetBroker(t.Context(), BrokerConfig{
		Namespace: "ns", Name: "b", Triggers: []TriggerConfig{{Name: "t", Subscriber: sub.srv.URL}},
	}); err != nil {
		t.Fatal(err)
	}
	mustPost(t, e.url("ns", "b"), newEvent("e1", "t", nil), false, nil)
	cons, err := e.srv.JetStream().Consumer(context.Background(), StreamName("ns", "b"), "t")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 1 || info.NumAckPending != 0 || info.Delivered.Consumer != 0 {
		t.Fatalf("consumer %+v: want the event stored and not handed to any dispatcher", info)
	}
	e.srv.StartDispatch()
	waitFor(t, 10*time.Second, "the delivery", func() bool { return sub.ids()["e1"] == 1 })
}

// A channel's deliveries are sent past the proxy's own failures as a broker's are: neither
// the subscriber's send nor the send of its reply is an attempt when the proxy fails it, and
// a reply the proxy failed is sent again on its own, without calling the subscriber again.
func TestChannelProxyFailuresAreNotAttempts(t *testing.T) {
	e := start(t, t.TempDir(), Options{ProxyFailed: testProxyFailed})
	in := channelIngress(t, e)
	step := newSink(t, func(w http.ResponseWriter, ev *event.Event, n int) {
		if n <= 2 {
			w.Header().Set(proxyFailureHeader, "activation timeout")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		replyWith("+a")(w, ev, n)
	})
	reply := newSink(t, func(w http.ResponseWriter, _ *event.Event, n int) {
		if n == 1 {
			w.Header().Set(proxyFailureHeader, "activation timeout")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	if err := e.srv.SetChannel(t.Context(), ChannelConfig{Namespace: "ns", Name: "ch", Subscribers: []SubscriberConfig{
		{Name: "step", Subscriber: step.srv.URL, Reply: reply.srv.URL}, // no retry
	}}); err != nil {
		t.Fatal(err)
	}
	if code, body := postChannel(t, in, "ns", "ch", newEvent("e1", "t", nil), false); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	waitFor(t, 20*time.Second, "the delivery and its reply", func() bool { return e.srv.Stats().Delivered == 1 })
	st := e.srv.Stats()
	if st.Dropped != 0 || st.Retries != 0 || st.ProxyFailures != 3 || st.Replies != 1 {
		t.Errorf("stats %+v, want nothing dropped, no retry used, 3 proxy failures, 1 reply", st)
	}
	if got := step.ids()["e1"]; got != 3 {
		t.Errorf("the subscriber saw e1 %d times, want 3 (two proxy failures, then the delivery)", got)
	}
	if got := reply.ids()["e1+a"]; got != 2 {
		t.Errorf("the reply destination saw the reply %d times, want 2 (a proxy failure, then the reply)", got)
	}
}

// A channel's dispatchers are held by HoldDispatch as a broker's: its events are stored and
// wait for StartDispatch.
func TestHoldDispatchHoldsChannels(t *testing.T) {
	e := start(t, t.TempDir(), Options{HoldDispatch: true})
	in := channelIngress(t, e)
	sub := newSink(t, nil)
	if err := e.srv.SetChannel(t.Context(), ChannelConfig{Namespace: "ns", Name: "ch", Subscribers: []SubscriberConfig{
		{Name: "s", Subscriber: sub.srv.URL},
	}}); err != nil {
		t.Fatal(err)
	}
	if code, body := postChannel(t, in, "ns", "ch", newEvent("e1", "t", nil), false); code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	cons, err := e.srv.JetStream().Consumer(context.Background(), ChannelStreamName("ns", "ch"), "s")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 1 || info.NumAckPending != 0 || info.Delivered.Consumer != 0 {
		t.Fatalf("consumer %+v: want the event stored and not handed to any dispatcher", info)
	}
	e.srv.StartDispatch()
	waitFor(t, 10*time.Second, "the delivery", func() bool { return sub.ids()["e1"] == 1 })
}
