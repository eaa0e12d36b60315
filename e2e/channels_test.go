package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	flowsv1 "github.com/skiff-dev/skiff/api/flows/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane"
)

// function is a CloudEvents function in the test process: it answers each event with
// what fn returns (nil: 200 and no reply), as a Knative function would.
func function(t testing.TB, fn func(ev event.Event) *event.Event) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := fn(*ev)
		if out == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		if err := cehttp.WriteResponseWriter(r.Context(), binding.ToMessage(out), http.StatusOK, w); err != nil {
			t.Errorf("write reply: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// appender replies with the event, its text data followed by suffix.
func appender(t testing.TB, suffix string) string {
	return function(t, func(ev event.Event) *event.Event {
		out := ev.Clone()
		_ = out.SetData("text/plain", string(ev.Data())+suffix)
		return &out
	})
}

// condition returns one condition of an object read through the API.
func (s *skiff) condition(kind, name string, typ duck.ConditionType) *duck.Condition {
	s.t.Helper()
	raw, err := s.api.Get(context.Background(), api.LookupKind(kind), "default", name)
	if err != nil {
		return nil
	}
	var o struct {
		Status duck.Status `json:"status"`
	}
	if err := jsonUnmarshal(raw, &o); err != nil {
		s.t.Fatal(err)
	}
	return o.Status.GetCondition(typ)
}

// channelYAML is an InMemoryChannel with n Subscriptions to rec's paths /sub-{i}.
func channelYAML(name string, n int, subscriber func(i int) string, delivery string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata:\n  name: %s\n", name)
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: %[1]s-sub-%[2]d
spec:
  channel:
    apiVersion: messaging.knative.dev/v1
    kind: InMemoryChannel
    name: %[1]s
  subscriber:
    uri: %[3]s
%[4]s`, name, i, subscriber(i), delivery)
	}
	return b.String()
}

// A Channel (spec.channelTemplate defaulted to InMemoryChannel) with three Subscriptions:
// its address is Knative's cluster-local channel address, routed through the gateway;
// every subscription gets every event; a Subscription's reply gets the subscriber's
// replies; physicalSubscription and the channel's subscriber list show the resolved URIs.
func TestChannelSubscriptionsFanOut(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, nil)
	step := appender(t, "+step")
	s.apply(`apiVersion: messaging.knative.dev/v1
kind: Channel
metadata:
  name: orders
` + fmt.Sprintf(`---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: a
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: orders}
  subscriber: {uri: %s}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: b
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: orders}
  subscriber: {uri: %s}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: c
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: orders}
  subscriber: {uri: %s}
  reply: {uri: %s}
`, rec.url("/a"), rec.url("/b"), step, rec.url("/reply")))
	var ch messagingv1.Channel
	s.waitReady("channel", "orders", &ch)
	const addr = "http://orders-kn-channel.default.svc.cluster.local"
	if ch.Status.Address == nil || ch.Status.Address.URL != addr || ch.Status.Channel == nil || ch.Status.Channel.Kind != "InMemoryChannel" ||
		ch.Spec.ChannelTemplate == nil || ch.Spec.ChannelTemplate.Kind != "InMemoryChannel" {
		t.Fatalf("channel status %+v template %+v", ch.Status, ch.Spec.ChannelTemplate)
	}
	var sub messagingv1.Subscription
	for _, n := range []string{"a", "b"} {
		s.waitReady("subscription", n, nil)
	}
	s.waitReady("subscription", "c", &sub)
	if ps := sub.Status.PhysicalSubscription; ps.SubscriberURI != step || ps.ReplyURI != rec.url("/reply") {
		t.Errorf("physicalSubscription %+v", ps)
	}
	var imc messagingv1.InMemoryChannel
	s.waitReady("imc", "orders", &imc)
	if len(imc.Spec.Subscribers) != 3 || len(imc.Status.Subscribers) != 3 {
		t.Errorf("backing channel subscribers: spec %+v status %+v", imc.Spec.Subscribers, imc.Status.Subscribers)
	}
	// Applying the channel's manifest again does not unsubscribe anyone.
	s.apply("apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata:\n  name: orders\n  ownerReferences: []\n")

	snd := newSender(s.http)
	const n = 100
	for i := range n {
		ev := newEvent(fmt.Sprintf("ev-%03d", i), "com.example.order", "/shop", "")
		_ = ev.SetData("text/plain", fmt.Sprint(i))
		if code, body, err := snd.send(addr, ev, i%2 == 0); err != nil || code != http.StatusAccepted {
			t.Fatalf("send %d: %d %s %v", i, code, body, err)
		}
	}
	for _, p := range []string{"/a", "/b", "/reply"} {
		eventually(t, time.Minute, fmt.Sprintf("%s to get all %d events", p, n), func() bool { return len(rec.accepted(p)) == n })
	}
	for _, ev := range rec.events("/reply")[:5] {
		if !strings.HasSuffix(string(ev.Data()), "+step") {
			t.Errorf("reply %s data %q, want the subscriber's reply", ev.ID(), ev.Data())
		}
	}
	// Events above the size limit are refused at the channel with 413.
	big := newEvent("big", "t", "/shop", "")
	_ = big.SetData("text/plain", strings.Repeat("x", 2<<20))
	if code, body, err := snd.send(addr, big, false); err != nil || code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB event: %d %s %v, want 413", code, body, err)
	}
}

// Bad input gets conditions naming the field, loses nothing and does not spin: a
// Subscription to a channel that does not exist yet (delivered to once it does), a
// subscriber that cannot be resolved, a subscriber refusing every event (retried as its
// delivery says, then dead-lettered), a Sequence with no steps (refused by the API).
func TestChannelBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, func(path string, _ *event.Event, _ int) (int, string) {
		if path == "/refuse" {
			return http.StatusInternalServerError, "no"
		}
		return http.StatusOK, ""
	})
	s.apply(fmt.Sprintf(`apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: early
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: later}
  subscriber: {uri: %s}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: nowhere
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: later}
  subscriber:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: missing}
`, rec.url("/early")))
	eventually(t, 30*time.Second, "the missing channel reported", func() bool {
		c := s.condition("subscription", "early", messagingv1.SubscriptionConditionReferencesResolved)
		return c != nil && c.Status == duck.Unknown && c.Reason == "ChannelReferenceFailed" &&
			strings.Contains(c.Message, "spec.channel") && strings.Contains(c.Message, "later")
	})
	s.apply(`apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata:
  name: later
spec:
  delivery:
    retry: 2
    backoffPolicy: linear
    backoffDelay: PT0.1S
` + fmt.Sprintf(`    deadLetterSink: {uri: %s}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: refuse
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: later}
  subscriber: {uri: %s}
`, rec.url("/dls"), rec.url("/refuse")))
	s.waitReady("subscription", "early", nil)
	s.waitReady("subscription", "refuse", nil)
	eventually(t, 30*time.Second, "the unresolvable subscriber reported", func() bool {
		c := s.condition("subscription", "nowhere", messagingv1.SubscriptionConditionReferencesResolved)
		return c != nil && c.Status == duck.False && c.Reason == "SubscriberResolveFailed" &&
			strings.Contains(c.Message, "spec.subscriber") && strings.Contains(c.Message, "missing")
	})
	snd := newSender(s.http)
	for i := range 10 {
		if code, body, err := snd.send("http://later-kn-channel.default.svc.cluster.local", newEvent(fmt.Sprint(i), "t", "/x", ""), false); err != nil || code != http.StatusAccepted {
			t.Fatalf("send: %d %s %v", code, body, err)
		}
	}
	eventually(t, 30*time.Second, "the early subscriber gets every event", func() bool { return len(rec.accepted("/early")) == 10 })
	eventually(t, 30*time.Second, "every refused event dead-lettered", func() bool { return len(rec.accepted("/dls")) == 10 })
	time.Sleep(500 * time.Millisecond) // would show a retry loop
	for i := range 10 {
		if n := len(rec.attempts("/refuse", fmt.Sprint(i))); n != 3 {
			t.Errorf("event %d: %d attempts at the refusing subscriber, want 1 + 2 retries", i, n)
		}
	}
	// The subscription that cannot resolve is not in the channel, and was never sent anything.
	var imc messagingv1.InMemoryChannel
	s.waitReady("imc", "later", &imc)
	if len(imc.Spec.Subscribers) != 2 {
		t.Errorf("channel subscribers %+v, want the 2 resolved subscriptions", imc.Spec.Subscribers)
	}
	// Deleting a Subscription takes it out of its channel.
	if err := s.api.Delete(context.Background(), api.LookupKind("subscription"), "default", "early"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the deleted subscription removed from the channel", func() bool {
		raw, err := s.api.Get(context.Background(), api.LookupKind("imc"), "default", "later")
		if err != nil {
			return false
		}
		var c messagingv1.InMemoryChannel
		return jsonUnmarshal(raw, &c) == nil && len(c.Spec.Subscribers) == 1
	})

	err := s.tryApply("apiVersion: flows.knative.dev/v1\nkind: Sequence\nmetadata:\n  name: empty\nspec:\n  steps: []\n")
	var apiErr *apiclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "spec.steps") {
		t.Errorf("a Sequence with no steps: %v, want 422 naming spec.steps", err)
	}
}

// withLocalListener gives the proxy its cluster-local listener, as `skiff up` does (the
// gateway binds it on an ephemeral port): channels' addresses are served there only.
func withLocalListener(cfg *controlplane.Config) {
	cfg.LocalListenAddress, cfg.LocalListenPort = "127.0.0.1", 8081
}

// A 3-step Sequence: each step appends to the event's data, the last step's reply
// reaches spec.reply; the Sequence's address is its first channel's; its children are
// owned and its status aggregates theirs. With the proxy's cluster-local listener, the
// channels are served there only, and each step's reply reaches the next channel through it.
func TestSequenceTransformsEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t), withLocalListener)
	rec := newRecorder(t, nil)
	s.apply(fmt.Sprintf(`apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: pipeline
spec:
  steps:
    - uri: %s
    - uri: %s
    - uri: %s
  reply:
    uri: %s
`, appender(t, "-one"), appender(t, "-two"), appender(t, "-three"), rec.url("/done")))
	var seq flowsv1.Sequence
	s.waitReady("sequence", "pipeline", &seq)
	if seq.Status.Address.URL != "http://pipeline-kn-sequence-0-kn-channel.default.svc.cluster.local" ||
		len(seq.Status.ChannelStatuses) != 3 || len(seq.Status.SubscriptionStatuses) != 3 {
		t.Fatalf("sequence status %+v", seq.Status)
	}
	for i := range 3 {
		if seq.Status.ChannelStatuses[i].Channel.Name != fmt.Sprintf("pipeline-kn-sequence-%d", i) ||
			seq.Status.SubscriptionStatuses[i].ReadyCondition.Status != duck.True {
			t.Errorf("step %d status %+v %+v", i, seq.Status.ChannelStatuses[i], seq.Status.SubscriptionStatuses[i])
		}
	}
	ev := newEvent("order-1", "com.example.order", "/shop", "")
	_ = ev.SetData("text/plain", "start")
	// A channel's address is cluster-local: not on the external listener.
	if code, body, err := newSender(s.http).send(seq.Status.Address.URL, ev, false); err != nil || code != http.StatusNotFound {
		t.Errorf("the channel's address on the external listener: %d %s %v, want 404", code, body, err)
	}
	if code, body, err := newSender(s.local).send(seq.Status.Address.URL, ev, false); err != nil || code != http.StatusAccepted {
		t.Fatalf("send: %d %s %v", code, body, err)
	}
	eventually(t, 30*time.Second, "the transformed event at spec.reply", func() bool { return len(rec.accepted("/done")) == 1 })
	if got := rec.events("/done")[0]; string(got.Data()) != "start-one-two-three" || got.ID() != "order-1" {
		t.Errorf("spec.reply got %s with data %q, want start-one-two-three", got.ID(), got.Data())
	}
	// Deleting the Sequence deletes its channels and subscriptions.
	if err := s.api.Delete(context.Background(), api.LookupKind("sequence"), "default", "pipeline"); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"imc", "subscription"} {
		if items, err := s.api.List(context.Background(), api.LookupKind(kind), "default"); err != nil || len(items) != 0 {
			t.Errorf("%s left after deleting the Sequence: %d %v", kind, len(items), err)
		}
	}
}

// A Parallel with two branches whose filters pass one event type each routes every event
// to the branch its type selects; the branches' replies go to spec.reply.
func TestParallelRoutesByType(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir(), withEventing(t))
	rec := newRecorder(t, nil)
	passType := func(typ string) string {
		return function(t, func(ev event.Event) *event.Event {
			if ev.Type() != typ {
				return nil // an empty answer: filtered out
			}
			return &ev
		})
	}
	tag := func(branch string) string {
		return function(t, func(ev event.Event) *event.Event {
			out := ev.Clone()
			out.SetExtension("branch", branch)
			return &out
		})
	}
	s.apply(fmt.Sprintf(`apiVersion: flows.knative.dev/v1
kind: Parallel
metadata:
  name: router
spec:
  branches:
    - filter: {uri: %s}
      subscriber: {uri: %s}
    - filter: {uri: %s}
      subscriber: {uri: %s}
  reply: {uri: %s}
`, passType("com.example.order"), tag("orders"), passType("com.example.refund"), tag("refunds"), rec.url("/out")))
	var par flowsv1.Parallel
	s.waitReady("parallel", "router", &par)
	if par.Status.Address == nil || par.Status.Address.URL != "http://router-kn-parallel-kn-channel.default.svc.cluster.local" || len(par.Status.BranchStatuses) != 2 {
		t.Fatalf("parallel status %+v", par.Status)
	}
	snd := newSender(s.http)
	types := []string{"com.example.order", "com.example.refund", "com.example.other"}
	sent := time.Now()
	for i := range 30 {
		if code, body, err := snd.send(par.Status.Address.URL, newEvent(fmt.Sprint(i), types[i%3], "/shop", ""), false); err != nil || code != http.StatusAccepted {
			t.Fatalf("send: %d %s %v", code, body, err)
		}
	}
	logged := false
	eventually(t, 30*time.Second, "20 routed events", func() bool {
		n := len(rec.accepted("/out"))
		if n != 20 && !logged && time.Since(sent) > 25*time.Second {
			logged = true // which events arrived, should the wait fail
			t.Logf("%d of 20 routed events after %v: %v", n, time.Since(sent).Round(time.Second), rec.accepted("/out"))
		}
		return n == 20
	})
	time.Sleep(300 * time.Millisecond) // an event of the other type would arrive meanwhile
	for _, ev := range rec.events("/out") {
		want := map[string]string{"com.example.order": "orders", "com.example.refund": "refunds"}[ev.Type()]
		if want == "" || ev.Extensions()["branch"] != want {
			t.Errorf("event %s of type %s went through branch %v", ev.ID(), ev.Type(), ev.Extensions()["branch"])
		}
	}
	if n := len(rec.events("/out")); n != 20 {
		t.Errorf("%d events out, want 20 (10 per branch, none of the other type)", n)
	}
}

// The 1,000 events a client sent and had accepted by a channel with three subscriptions
// reach each subscription at least once although `skiff up` is killed (SIGKILL) while the
// client sends and the subscribers refuse everything; the restarted `skiff up` delivers
// them.
func TestChannelKeepsEventsAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the skiff binary")
	}
	var subscribersUp atomic.Bool
	rec := newRecorder(t, func(string, *event.Event, int) (int, string) {
		if !subscribersUp.Load() {
			return http.StatusServiceUnavailable, "down for maintenance"
		}
		return http.StatusOK, ""
	})
	u := newUpProcess(t)
	first := u.start()
	u.waitAPI(first)
	u.apply(channelYAML("durable", 3, func(i int) string { return rec.url(fmt.Sprintf("/sub-%d", i)) },
		"  delivery:\n    retry: 1000\n    backoffPolicy: linear\n    backoffDelay: PT0.1S\n"))
	for i := range 3 {
		u.waitReady(first, "subscription", fmt.Sprintf("durable-sub-%d", i))
	}
	u.waitReady(first, "imc", "durable")
	const addr = "http://durable-kn-channel.default.svc.cluster.local"

	snd := newSender(u.localAddr)
	const want = 1000
	var mu sync.Mutex
	accepted := map[string]bool{}
	var sending sync.WaitGroup
	var next atomic.Int64
	stop := make(chan struct{})
	for range 8 {
		sending.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := next.Add(1) - 1
				if i >= want {
					return
				}
				id := fmt.Sprintf("ev-%04d", i)
				code, _, err := snd.send(addr, newEvent(id, "t", "/restart", ""), i%2 == 0)
				if err == nil && code == http.StatusAccepted {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}
		})
	}
	eventually(t, time.Minute, "300 events accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 300
	})
	u.kill(first)
	close(stop)
	sending.Wait()
	killedAfter := len(accepted)
	if len(rec.events("/sub-0")) == 0 {
		t.Fatal("no delivery was attempted before the kill")
	}

	subscribersUp.Store(true)
	second := u.start()
	u.waitAPI(second)
	// What the killed process did not answer 202 (not sent yet, or cut off) is sent to
	// the restarted one, so that all 1,000 are accepted once.
	for i := range want {
		id := fmt.Sprintf("ev-%04d", i)
		if accepted[id] {
			continue
		}
		eventually(t, time.Minute, "the channel accepting "+id, func() bool {
			code, _, err := snd.send(addr, newEvent(id, "t", "/restart", ""), false)
			return err == nil && code == http.StatusAccepted
		})
		accepted[id] = true
	}
	t.Logf("the first skiff up was killed after accepting %d events", killedAfter)
	for i := range 3 {
		path := fmt.Sprintf("/sub-%d", i)
		eventually(t, 2*time.Minute, fmt.Sprintf("%s to get all %d accepted events", path, len(accepted)), func() bool {
			got := rec.accepted(path)
			for id := range accepted {
				if got[id] == 0 {
					return false
				}
			}
			return true
		})
	}
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// upProcess runs the skiff binary's `skiff up` on fixed loopback ports and one data
// directory, so that it can be killed and started again.
type upProcess struct {
	t    *testing.T
	args []string
	// localAddr is the proxy's cluster-local listener, which alone serves channels.
	localAddr string
	client    *apiclient.Client
	started   []*process
}

func newUpProcess(t *testing.T) *upProcess {
	bin, root, data := skiffBinary(t), moduleRoot(t), t.TempDir()
	apiAddr, localAddr := freeAddr(t), freeAddr(t)
	u := &upProcess{t: t, localAddr: localAddr, client: apiclient.New(apiAddr)}
	u.args = []string{bin, "up", "--data-dir", data, "--work-dir", root, "--wasm-dir", filepath.Join(shared.dir, "wasm-bin"),
		"--api-addr", apiAddr, "--xds-addr", freeAddr(t), "--http-addr", freeAddr(t), "--admin-addr", freeAddr(t),
		"--https-addr", freeAddr(t), "--local-http-addr", localAddr,
		"--extproc-addr", freeAddr(t), "--broker-ingress-addr", freeAddr(t), "--broker-ack-wait", "2s"}
	t.Cleanup(func() {
		for _, p := range u.started {
			select {
			case err := <-p.exited:
				p.exited <- err
				continue
			default:
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
				t.Errorf("skiff up did not stop on SIGTERM\n%s", p.output())
			}
		}
	})
	return u
}

// start starts `skiff up`; its output goes to a file, shown when a wait fails.
func (u *upProcess) start() *process {
	u.t.Helper()
	f, err := os.CreateTemp(u.t.TempDir(), "skiff-up-*.log")
	if err != nil {
		u.t.Fatal(err)
	}
	defer f.Close()
	p := &process{cmd: exec.Command(u.args[0], u.args[1:]...), log: f.Name(), exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	u.started = append(u.started, p)
	return p
}

// kill sends SIGKILL (no shutdown code runs) and waits for the process to go.
func (u *upProcess) kill(p *process) {
	u.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		u.t.Fatal(err)
	}
	p.exited <- <-p.exited // keep it there for the cleanup to see
}

// waitAPI waits until the process's API answers.
func (u *upProcess) waitAPI(p *process) {
	u.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := u.client.List(context.Background(), api.LookupKind("broker"), "default"); err == nil {
			return
		}
		select {
		case err := <-p.exited:
			u.t.Fatalf("skiff up exited: %v\n%s", err, p.output())
		default:
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("skiff up's API did not answer in 60s\n%s", p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (u *upProcess) apply(manifest string) {
	u.t.Helper()
	docs, err := apiclient.ReadManifests("-", strings.NewReader(manifest))
	if err != nil {
		u.t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := u.client.Apply(context.Background(), d, "default"); err != nil {
			u.t.Fatal(err)
		}
	}
}

func (u *upProcess) waitReady(p *process, kind, name string) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := apiclient.WaitReady(ctx, u.client, api.LookupKind(kind), "default", name); err != nil {
		u.t.Fatalf("wait for %s %s: %v\n%s", kind, name, err, p.output())
	}
}

// examples/sequence.yaml works as its comment says: an event sent to the Sequence's
// address (on the cluster-local listener, as in skiff up) goes through both event-display
// steps, Knative Services reached at their cluster-local addresses, and the last reply
// (step2.done) reaches the sequence-end Service, whose log shows it.
func TestSequenceExample(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	dir := t.TempDir()
	s := startSkiff(t, dir, withEventing(t), withLocalListener)
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "sequence.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.apply(string(b))
	var seq flowsv1.Sequence
	s.waitReady("sequence", "pipeline", &seq)
	ev := newEvent("example-1", "start", "/me", "")
	if code, body, err := newSender(s.local).send(seq.Status.Address.URL, ev, false); err != nil || code != http.StatusAccepted {
		t.Fatalf("send: %d %s %v", code, body, err)
	}
	eventually(t, time.Minute, "sequence-end to log the step2.done reply", func() bool {
		log, _ := os.ReadFile(filepath.Join(dir, "logs", "default", "sequence-end-00001.log"))
		return strings.Contains(string(log), "step2.done")
	})
}
