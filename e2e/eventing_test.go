package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
	"github.com/skiff-dev/skiff/client/proxyclient"
)

// recorder is an event sink in the test process: it decodes every CloudEvent it gets
// (either content mode, with sdk-go), answers with what respond says (200 when nil) and
// records the deliveries per path.
type recorder struct {
	t       testing.TB
	srv     *httptest.Server
	respond func(path string, ev *event.Event, attempt int) (int, string)

	mu         sync.Mutex
	deliveries map[string][]delivery // path → every request, in arrival order
}

type delivery struct {
	ev     *event.Event
	at     time.Time
	status int
}

func newRecorder(t testing.TB, respond func(path string, ev *event.Event, attempt int) (int, string)) *recorder {
	r := &recorder{t: t, respond: respond, deliveries: map[string][]delivery{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) serve(w http.ResponseWriter, req *http.Request) {
	ev, err := binding.ToEvent(req.Context(), cehttp.NewMessageFromHttpRequest(req))
	if err != nil {
		http.Error(w, "not a CloudEvent: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	attempt := 1
	for _, d := range r.deliveries[req.URL.Path] {
		if d.ev.ID() == ev.ID() {
			attempt++
		}
	}
	code, body := http.StatusOK, ""
	if r.respond != nil {
		code, body = r.respond(req.URL.Path, ev, attempt)
	}
	r.deliveries[req.URL.Path] = append(r.deliveries[req.URL.Path], delivery{ev: ev, at: time.Now(), status: code})
	r.mu.Unlock()
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// url is the recorder's URL for a path.
func (r *recorder) url(path string) string { return r.srv.URL + path }

// accepted returns the ids a path answered 2xx, with how many times each.
func (r *recorder) accepted(path string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, d := range r.deliveries[path] {
		if d.status < 300 {
			out[d.ev.ID()]++
		}
	}
	return out
}

// events returns the events a path received, in arrival order.
func (r *recorder) events(path string) []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*event.Event, 0, len(r.deliveries[path]))
	for _, d := range r.deliveries[path] {
		out = append(out, d.ev)
	}
	return out
}

// attempts returns every delivery of one event id to a path.
func (r *recorder) attempts(path, id string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.deliveries[path] {
		if d.ev.ID() == id {
			out = append(out, d)
		}
	}
	return out
}

// sender posts CloudEvents to a broker URL through the gateway, as a client in the
// cluster would, with the sdk-go HTTP binding.
type sender struct {
	client *http.Client
}

func newSender(gateway string) *sender {
	return &sender{client: proxyclient.New(proxyclient.Config{Domain: "localhost", ProxyAddress: func() string { return gateway }})}
}

// send posts ev to url in binary or structured mode and returns the status and body.
func (s *sender) send(url string, ev event.Event, structured bool) (int, string, error) {
	ctx := context.Background()
	if structured {
		ctx = binding.WithForceStructured(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, "", err
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
		return 0, "", err
	}
	return s.raw(req)
}

// post posts a hand-made request (for malformed events).
func (s *sender) post(url string, header http.Header, body string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header = header
	return s.raw(req)
}

func (s *sender) raw(req *http.Request) (int, string, error) {
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func newEvent(id, typ, source, subject string) event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetType(typ)
	ev.SetSource(source)
	if subject != "" {
		ev.SetSubject(subject)
	}
	_ = ev.SetData(event.ApplicationJSON, map[string]string{"id": id})
	return ev
}

// brokerReady waits for a Broker and returns its address.
func (s *skiff) brokerReady(name string) string {
	s.t.Helper()
	var b eventingv1.Broker
	s.waitReady("broker", name, &b)
	if b.Status.Address.URL == "" {
		s.t.Fatalf("broker %s is Ready without status.address.url", name)
	}
	return b.Status.Address.URL
}

const brokerYAML = `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: %s
`

// Two Triggers with different filters on one Broker, subscribers that are Knative
// Services reached through the gateway, 1,000 events of mixed types sent concurrently in
// both content modes: each subscriber receives exactly the events its filter selects,
// none lost, and each event is stored once per matching Trigger.
func TestBrokerDeliversWhatEachTriggerSelects(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, nil)
	for _, sub := range []string{"orders", "shop"} {
		s.apply(fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %[1]s
spec:
  template:
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/event-display
          env:
            - name: FORWARD_URL
              value: %[2]s
`, sub, rec.url("/"+sub)))
	}
	s.apply(fmt.Sprintf(brokerYAML, "default") + `---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: orders-created
spec:
  broker: default
  filter:
    attributes:
      type: com.example.order.created
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: orders
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: shop
spec:
  broker: default
  filters:
    - any:
        - prefix:
            type: com.example.order.
        - cesql: "source LIKE '/users/%'"
    - not:
        exact:
          subject: skip
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: shop
`)
	url := s.brokerReady("default")
	if url != "http://broker-ingress.localhost/default/default" {
		t.Errorf("broker address = %s", url)
	}
	s.waitReady("trigger", "orders-created", nil)
	s.waitReady("trigger", "shop", nil)

	types := []string{"com.example.order.created", "com.example.order.paid", "com.example.user.signup"}
	sources := []string{"/shop/1", "/users/7", "/other"}
	subjects := []string{"", "keep", "skip"}
	const n = 1000
	wantOrders, wantShop := map[string]bool{}, map[string]bool{}
	events := make([]event.Event, n)
	for i := range events {
		typ, src, sub := types[i%3], sources[(i/3)%3], subjects[(i/9)%3]
		ev := newEvent(fmt.Sprintf("ev-%04d", i), typ, src, sub)
		events[i] = ev
		if typ == "com.example.order.created" {
			wantOrders[ev.ID()] = true
		}
		if (strings.HasPrefix(typ, "com.example.order.") || strings.HasPrefix(src, "/users/")) && sub != "skip" {
			wantShop[ev.ID()] = true
		}
	}
	snd := newSender(s.http)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				code, body, err := snd.send(url, events[i], i%2 == 1)
				if err != nil || code != http.StatusAccepted {
					t.Errorf("send %s: %d %s %v", events[i].ID(), code, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	check := func(path string, want map[string]bool) func() bool {
		return func() bool {
			got := rec.accepted(path)
			if len(got) < len(want) {
				return false
			}
			for id := range got {
				if !want[id] {
					t.Fatalf("%s received %s, which its trigger's filter does not select", path, id)
				}
			}
			return len(got) == len(want)
		}
	}
	eventually(t, 2*time.Minute, fmt.Sprintf("orders to receive its %d events", len(wantOrders)), check("/orders", wantOrders))
	eventually(t, 2*time.Minute, fmt.Sprintf("shop to receive its %d events", len(wantShop)), check("/shop", wantShop))
	st := s.cp.EventingStats()
	if st.Accepted != n || st.Stored != uint64(len(wantOrders)+len(wantShop)) || st.Invalid != 0 {
		t.Errorf("broker stats %+v: want %d accepted, %d stored (one per matching trigger)", st, n, len(wantOrders)+len(wantShop))
	}
	if got := proxyStat(t, s.adminURL, "wasmcustom.skiff_broker_events_accepted.default/default"); got != n {
		t.Errorf("the proxy's cloudevents filter saw %d valid events, want %d (is it in the path?)", got, n)
	}
	eventually(t, 30*time.Second, "every delivery settled", func() bool {
		return s.cp.EventingStats().Delivered >= uint64(len(wantOrders)+len(wantShop))
	})
}

// A subscriber failing its first 2 attempts gets the event on the 3rd, after exponential
// backoff; one that always fails sends the event to the dead letter sink with Knative's
// knativeerror* extensions. A Trigger with no delivery on a Broker applied with none retries
// as Knative's config-br-defaults has it: the Broker is stored with 10 retries, exponential
// from PT0.2S.
func TestDeliveryRetryBackoffAndDeadLetterSink(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, func(path string, _ *event.Event, attempt int) (int, string) {
		switch {
		case (path == "/flaky" || path == "/defaulted") && attempt <= 2:
			return http.StatusServiceUnavailable, "not yet"
		case path == "/broken":
			return http.StatusInternalServerError, "subscriber broke"
		}
		return http.StatusOK, ""
	})
	s.apply(fmt.Sprintf(brokerYAML, "default") + fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: flaky
spec:
  broker: default
  filter:
    attributes:
      type: flaky
  subscriber:
    uri: %s
  delivery:
    retry: 3
    backoffPolicy: exponential
    backoffDelay: PT0.2S
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: broken
spec:
  broker: default
  filter:
    attributes:
      type: broken
  subscriber:
    uri: %s
  delivery:
    retry: 2
    backoffPolicy: linear
    backoffDelay: PT0.1S
    deadLetterSink:
      uri: %s
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: defaulted
spec:
  broker: default
  filter:
    attributes:
      type: defaulted
  subscriber:
    uri: %s
`, rec.url("/flaky"), rec.url("/broken"), rec.url("/dls"), rec.url("/defaulted")))
	url := s.brokerReady("default")
	var br eventingv1.Broker
	s.waitReady("broker", "default", &br)
	if d := br.Spec.Delivery; d == nil || d.Retry == nil || *d.Retry != 10 || d.BackoffPolicy == nil || *d.BackoffPolicy != "exponential" ||
		d.BackoffDelay == nil || *d.BackoffDelay != "PT0.2S" || br.Annotations[eventingv1.BrokerClassAnnotation] != "MTChannelBasedBroker" {
		t.Errorf("broker stored as %+v (delivery %+v), want config-br-defaults' class and delivery", br.ObjectMeta.Annotations, br.Spec.Delivery)
	}
	s.waitReady("trigger", "defaulted", nil)
	s.waitReady("trigger", "flaky", nil)
	var tr eventingv1.Trigger
	s.waitReady("trigger", "broken", &tr)
	if tr.Status.DeadLetterSinkURI != rec.url("/dls") {
		t.Errorf("trigger broken: status.deadLetterSinkUri = %q", tr.Status.DeadLetterSinkURI)
	}
	snd := newSender(s.http)
	for i := range 5 {
		for _, typ := range []string{"flaky", "broken", "defaulted"} {
			if code, body, err := snd.send(url, newEvent(fmt.Sprintf("%s-%d", typ, i), typ, "/test", ""), false); err != nil || code != http.StatusAccepted {
				t.Fatalf("send: %d %s %v", code, body, err)
			}
		}
	}
	eventually(t, 30*time.Second, "the flaky subscriber to accept every event", func() bool { return len(rec.accepted("/flaky")) == 5 })
	eventually(t, 30*time.Second, "the dead letter sink to get every broken event", func() bool { return len(rec.accepted("/dls")) == 5 })
	eventually(t, 30*time.Second, "the subscriber of the Trigger without delivery to accept every event", func() bool { return len(rec.accepted("/defaulted")) == 5 })
	for i := range 5 {
		id := fmt.Sprintf("flaky-%d", i)
		a := rec.attempts("/flaky", id)
		if len(a) != 3 || a[2].status != http.StatusOK {
			t.Errorf("%s: %d attempts, want the 3rd to succeed", id, len(a))
			continue
		}
		// Exponential from 0.2s: the 1st retry waits 0.2s, the 2nd 0.4s.
		if d := a[1].at.Sub(a[0].at); d < 200*time.Millisecond {
			t.Errorf("%s: 1st retry after %s, want >= 200ms", id, d)
		}
		if d := a[2].at.Sub(a[1].at); d < 400*time.Millisecond {
			t.Errorf("%s: 2nd retry after %s, want >= 400ms (exponential)", id, d)
		}
		id = fmt.Sprintf("defaulted-%d", i)
		if a := rec.attempts("/defaulted", id); len(a) != 3 || a[2].status != http.StatusOK || a[2].at.Sub(a[1].at) < 400*time.Millisecond {
			t.Errorf("%s: %d attempts, want the 3rd to succeed after the broker's default exponential backoff", id, len(a))
		}
		id = fmt.Sprintf("broken-%d", i)
		if n := len(rec.attempts("/broken", id)); n != 3 {
			t.Errorf("%s: %d attempts at the subscriber, want 1 + 2 retries", id, n)
		}
		dl := rec.attempts("/dls", id)
		if len(dl) != 1 {
			t.Errorf("%s: %d dead letter deliveries, want 1", id, len(dl))
			continue
		}
		ext := dl[0].ev.Extensions()
		if ext["knativeerrordest"] != rec.url("/broken") || fmt.Sprint(ext["knativeerrorcode"]) != "500" ||
			ext["knativeerrordata"] != base64.StdEncoding.EncodeToString([]byte("subscriber broke")) {
			t.Errorf("%s: dead letter extensions %v", id, ext)
		}
		if dl[0].ev.Type() != "broken" || dl[0].ev.Source() != "/test" {
			t.Errorf("%s: the dead letter sink got %s", id, dl[0].ev)
		}
	}
}

// Malformed events get 400 with the reason from the proxy's cloudevents filter, and nothing
// is stored or delivered.
func TestMalformedEventsAreRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, nil)
	s.apply(fmt.Sprintf(brokerYAML, "default") + fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: all
spec:
  broker: default
  subscriber:
    uri: %s
`, rec.url("/all")))
	url := s.brokerReady("default")
	s.waitReady("trigger", "all", nil)
	binary := func(drop string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		for k, v := range map[string]string{"Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "t", "Ce-Specversion": "1.0"} {
			if k != drop {
				h.Set(k, v)
			}
		}
		return h
	}
	structured := http.Header{"Content-Type": {"application/cloudevents+json"}}
	snd := newSender(s.http)
	for _, c := range []struct {
		name   string
		header http.Header
		body   string
		reason string
	}{
		{"missing id", binary("Ce-Id"), `{}`, `"attribute":"id"`},
		{"missing source", binary("Ce-Source"), `{}`, `"attribute":"source"`},
		{"missing type", binary("Ce-Type"), `{}`, `"attribute":"type"`},
		{"missing specversion", http.Header{"Content-Type": {"application/json"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}}, `{}`, `specversion`},
		{"bad specversion", func() http.Header { h := binary(""); h.Set("Ce-Specversion", "0.9"); return h }(), `{}`, `specversion`},
		{"structured bad JSON", structured, `{"specversion": "1.0", "id": `, `"reason":"invalid_json"`},
		{"structured missing type", structured, `{"specversion":"1.0","id":"1","source":"/s"}`, `"attribute":"type"`},
	} {
		code, body, err := snd.post(url, c.header, c.body)
		if err != nil || code != http.StatusBadRequest || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %d %s %v, want 400 naming %s", c.name, code, body, err, c.reason)
		}
	}
	// A good event after them is delivered, and it is the only one.
	if code, body, err := snd.send(url, newEvent("good", "t", "/s", ""), false); err != nil || code != http.StatusAccepted {
		t.Fatalf("good event: %d %s %v", code, body, err)
	}
	eventually(t, 30*time.Second, "the good event delivered", func() bool { return len(rec.accepted("/all")) == 1 })
	if st := s.cp.EventingStats(); st.Stored != 1 {
		t.Errorf("stored %d events, want only the good one", st.Stored)
	}
	if got := rec.accepted("/all"); len(got) != 1 || got["good"] != 1 {
		t.Errorf("delivered %v", got)
	}
}

// A subscriber Service at zero pods is activated by a delivery (which goes through the
// proxy like any request), and its reply goes back into the broker, reaching the Trigger
// for the reply's type.
func TestDeliveryActivatesScaledToZeroSubscriber(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), fastAutoscaler, withEventing(t))
	rec := newRecorder(t, nil)
	s.apply(fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: sleepy
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/window: 6s
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/event-display
          env:
            - name: FORWARD_URL
              value: %s
            - name: REPLY_TYPE
              value: com.example.reply
---
`, rec.url("/sleepy")) + fmt.Sprintf(brokerYAML, "default") + fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: wake
spec:
  broker: default
  filter:
    attributes:
      type: com.example.wake
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: sleepy
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: replies
spec:
  broker: default
  filter:
    attributes:
      type: com.example.reply
  subscriber:
    uri: %s
`, rec.url("/replies")))
	s.waitReady("ksvc", "sleepy", nil)
	url := s.brokerReady("default")
	s.waitReady("trigger", "wake", nil)
	s.waitReady("trigger", "replies", nil)
	eventually(t, 60*time.Second, "sleepy-00001 scaled to zero", func() bool {
		r := s.revision("sleepy-00001")
		return replicas(r.Status.ActualReplicas) == 0 && replicas(r.Status.DesiredReplicas) == 0
	})
	if code, body, err := newSender(s.http).send(url, newEvent("wake-1", "com.example.wake", "/test", ""), false); err != nil || code != http.StatusAccepted {
		t.Fatalf("send: %d %s %v", code, body, err)
	}
	eventually(t, 60*time.Second, "the scaled-to-zero subscriber to get the event", func() bool { return rec.accepted("/sleepy")["wake-1"] > 0 })
	if n := replicas(s.revision("sleepy-00001").Status.DesiredReplicas); n < 1 {
		t.Errorf("desired replicas after the delivery = %d, want the revision scaled up", n)
	}
	eventually(t, 30*time.Second, "the subscriber's reply to reach the replies trigger", func() bool { return len(rec.accepted("/replies")) == 1 })
	r := rec.events("/replies")[0]
	if r.Type() != "com.example.reply" || string(r.Data()) != "wake-1" {
		t.Errorf("reply delivered: %s", r)
	}
}
