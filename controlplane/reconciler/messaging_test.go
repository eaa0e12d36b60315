package reconciler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	flowsv1 "github.com/skiff-dev/skiff/api/flows/v1"
	messagingv1 "github.com/skiff-dev/skiff/api/messaging/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/eventing/source"
)

// fakeEventing records the channels the reconcilers apply.
type fakeEventing struct {
	mu       sync.Mutex
	channels map[string]broker.ChannelConfig
}

func (f *fakeEventing) SetBroker(context.Context, broker.BrokerConfig) error { return nil }
func (f *fakeEventing) DeleteBroker(context.Context, string, string) error   { return nil }
func (f *fakeEventing) SetPingSource(string, string, source.PingSpec) error  { return nil }
func (f *fakeEventing) DeletePingSource(string, string)                      {}
func (f *fakeEventing) ChannelRouted(string, string) bool                    { return true }
func (f *fakeEventing) DeleteChannel(_ context.Context, ns, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.channels, ns+"/"+name)
	return nil
}
func (f *fakeEventing) SetChannel(_ context.Context, cfg broker.ChannelConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channels[cfg.Namespace+"/"+cfg.Name] = cfg
	return nil
}

func (f *fakeEventing) channel(name string) (broker.ChannelConfig, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.channels["default/"+name]
	return c, ok
}

type env struct {
	t  *testing.T
	c  *Controller
	st *store.Store
	ev *fakeEventing
}

func newEnv(t *testing.T) *env {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ev := &fakeEventing{channels: map[string]broker.ChannelConfig{}}
	return &env{t: t, st: st, ev: ev, c: New(Config{Store: st, Eventing: ev, Domain: "example.com"})}
}

// apply creates the objects of a multi-document YAML, defaulted and validated as the API does.
func (e *env) apply(doc string) {
	e.t.Helper()
	for _, d := range strings.Split(doc, "\n---\n") {
		var tm struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(d), &tm); err != nil {
			e.t.Fatal(err)
		}
		k := api.LookupGVK(tm.APIVersion, tm.Kind)
		obj := k.New()
		if err := yaml.UnmarshalStrict([]byte(d), obj); err != nil {
			e.t.Fatal(err)
		}
		if obj.GetNamespace() == "" {
			obj.SetNamespace("default") // as the API does, from the request's path
		}
		if errs := api.Errors(api.Admit(context.Background(), obj, nil)); errs != nil {
			e.t.Fatalf("%s: %v", tm.Kind, errs)
		}
		if err := e.st.Create(context.Background(), obj); err != nil {
			e.t.Fatal(err)
		}
	}
}

// settle reconciles every messaging object until nothing changes (a few rounds: each
// reconcile may create or update what the next reads).
func (e *env) settle() {
	e.t.Helper()
	ctx := context.Background()
	for range 8 {
		for _, kind := range messagingKinds {
			objs, err := store.ListAs[metaOnly](ctx, e.st, kind, "")
			if err != nil {
				e.t.Fatal(err)
			}
			for _, o := range objs {
				if err := e.c.reconcile(ctx, store.Key{Kind: kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name}); err != nil {
					e.t.Logf("reconcile %s %s: %v", kind, o.Metadata.Name, err)
				}
			}
		}
	}
}

func get[T any, PT interface {
	*T
	store.Object
}](e *env, kind, name string) *T {
	e.t.Helper()
	var o T
	if err := e.st.Get(context.Background(), store.Key{Kind: kind, Namespace: "default", Name: name}, PT(&o)); err != nil {
		e.t.Fatalf("get %s %s: %v", kind, name, err)
	}
	return &o
}

func cond(st *duck.Status, t duck.ConditionType) duck.Condition {
	if c := st.GetCondition(t); c != nil {
		return *c
	}
	return duck.Condition{}
}

// Cases from Knative's subscription_test.go TestAllCases: "channel does not exist",
// "subscriber does not exist", "v1 imc+subscriber+reply", "v1 channel+v1 imc backing
// channel+subscriber", "v1 imc - delivery defaulting - full delivery spec" and "v1 imc+two
// subscribers for a channel".
func TestSubscriptionReconcile(t *testing.T) {
	e := newEnv(t)
	e.apply(`apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: early, namespace: default}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch}
  subscriber: {uri: "http://sub.example/a"}
  reply: {uri: "http://reply.example"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: lost, namespace: default}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch}
  subscriber:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: nowhere}`)
	e.settle()
	s := get[messagingv1.Subscription](e, messagingv1.KindSubscription, "early")
	if c := cond(&s.Status.Status, messagingv1.SubscriptionConditionReferencesResolved); c.Status != duck.Unknown || c.Reason != "ChannelReferenceFailed" ||
		!strings.Contains(c.Message, "spec.channel: InMemoryChannel default/ch not found") {
		t.Errorf("channel does not exist: %+v", c)
	}
	if c := cond(&s.Status.Status, messagingv1.SubscriptionConditionOIDCIdentityCreated); c.Status != duck.True || c.Reason != "authentication-oidc feature disabled" {
		t.Errorf("OIDCIdentityCreated %+v", c)
	}

	e.apply(`apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: ch, namespace: default}
spec:
  delivery:
    retry: 3
    backoffPolicy: linear
    backoffDelay: PT1S
    deadLetterSink: {uri: "http://dls.example"}
---
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata: {name: generic, namespace: default}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: via-channel, namespace: default}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: generic}
  subscriber: {uri: "http://sub.example/b"}
  delivery: {retry: 7}`)
	e.settle()
	s = get[messagingv1.Subscription](e, messagingv1.KindSubscription, "early")
	if !s.Status.IsReady() {
		t.Fatalf("early not ready: %+v", s.Status.Conditions)
	}
	if ps := s.Status.PhysicalSubscription; ps.SubscriberURI != "http://sub.example/a" || ps.ReplyURI != "http://reply.example" || ps.DeadLetterSinkURI != "http://dls.example" {
		t.Errorf("physicalSubscription %+v (the channel's dead letter sink is the default)", ps)
	}
	l := get[messagingv1.Subscription](e, messagingv1.KindSubscription, "lost")
	if c := cond(&l.Status.Status, messagingv1.SubscriptionConditionReferencesResolved); c.Status != duck.False || c.Reason != "SubscriberResolveFailed" ||
		!strings.Contains(c.Message, "Failed to resolve spec.subscriber") || !strings.Contains(c.Message, "nowhere not found") {
		t.Errorf("subscriber does not exist: %+v", c)
	}
	imc := get[messagingv1.InMemoryChannel](e, messagingv1.KindInMemoryChannel, "ch")
	if len(imc.Spec.Subscribers) != 1 {
		t.Fatalf("channel subscribers %+v, want only the resolved subscription", imc.Spec.Subscribers)
	}
	sub := imc.Spec.Subscribers[0]
	// "delivery defaulting - full delivery spec": the channel's delivery with the resolved DLS.
	if sub.UID != s.UID || *sub.Name != "early" || sub.SubscriberURI != "http://sub.example/a" || sub.ReplyURI != "http://reply.example" ||
		sub.Delivery == nil || *sub.Delivery.Retry != 3 || *sub.Delivery.BackoffPolicy != "linear" || sub.Delivery.DeadLetterSink.URIString() != "http://dls.example" {
		t.Errorf("subscriber entry %+v delivery %+v", sub, sub.Delivery)
	}
	if len(imc.Status.Subscribers) != 1 || imc.Status.Subscribers[0].Ready != duck.True || imc.Status.Address.URL != "http://ch-kn-channel.default.svc.cluster.local" {
		t.Errorf("channel status %+v", imc.Status)
	}
	cfg, ok := e.ev.channel("ch")
	if !ok || len(cfg.Subscribers) != 1 || cfg.Subscribers[0].Name != string(s.UID) || cfg.Subscribers[0].Reply != "http://reply.example" ||
		cfg.Subscribers[0].Delivery.DeadLetterSink != "http://dls.example" {
		t.Errorf("applied channel %+v", cfg)
	}
	// Through a Channel: its backing InMemoryChannel gets the subscriber.
	g := get[messagingv1.Channel](e, messagingv1.KindChannel, "generic")
	if !g.Status.IsReady() || g.Status.Channel == nil || g.Status.Channel.Kind != messagingv1.KindInMemoryChannel || len(g.Status.Subscribers) != 1 {
		t.Errorf("channel generic status %+v", g.Status)
	}
	backing := get[messagingv1.InMemoryChannel](e, messagingv1.KindInMemoryChannel, "generic")
	if len(backing.OwnerReferences) != 1 || backing.OwnerReferences[0].UID != g.UID || len(backing.Spec.Subscribers) != 1 || *backing.Spec.Subscribers[0].Delivery.Retry != 7 {
		t.Errorf("backing channel %+v", backing)
	}
	if vs := get[messagingv1.Subscription](e, messagingv1.KindSubscription, "via-channel"); !vs.Status.IsReady() {
		t.Errorf("via-channel not ready: %+v", vs.Status.Conditions)
	}

	// "subscription deleted": the channel drops its entry.
	if err := e.st.Delete(context.Background(), store.Key{Kind: messagingv1.KindSubscription, Namespace: "default", Name: "early"}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if imc := get[messagingv1.InMemoryChannel](e, messagingv1.KindInMemoryChannel, "ch"); len(imc.Spec.Subscribers) != 0 {
		t.Errorf("deleted subscription still in the channel: %+v", imc.Spec.Subscribers)
	}
	if cfg, _ := e.ev.channel("ch"); len(cfg.Subscribers) != 0 {
		t.Errorf("deleted subscription still applied: %+v", cfg.Subscribers)
	}
}

// A Channel whose template is not a channel Skiff runs says so on BackingChannelReady.
func TestChannelUnsupportedTemplate(t *testing.T) {
	e := newEnv(t)
	e.apply("apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: kafka, namespace: default}\nspec:\n  channelTemplate: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel}")
	e.settle()
	ch := get[messagingv1.Channel](e, messagingv1.KindChannel, "kafka")
	if c := cond(&ch.Status.Status, messagingv1.ChannelConditionBackingChannelReady); c.Status != duck.False || c.Reason != "ChannelFailure" ||
		!strings.Contains(c.Message, "spec.channelTemplate: kind KafkaChannel") {
		t.Errorf("BackingChannelReady %+v", c)
	}
}

// Cases from Knative's sequence_test.go TestAllCases: "threestepwithreply" and
// "threestepwithdeliveryontwo" (channels and subscriptions named, owned and chained as
// Knative's resources.NewSubscription makes them, the status aggregated),
// "sequenceupdate-remove-step" (the unwanted children removed).
func TestSequenceReconcile(t *testing.T) {
	e := newEnv(t)
	e.apply(`apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: seq, namespace: default}
spec:
  steps:
    - uri: "http://step.example/0"
    - uri: "http://step.example/1"
      delivery: {retry: 5}
    - uri: "http://step.example/2"
  reply: {uri: "http://reply.example"}`)
	e.settle()
	seq := get[flowsv1.Sequence](e, flowsv1.KindSequence, "seq")
	if !seq.Status.IsReady() {
		t.Fatalf("sequence not ready: %+v", seq.Status.Conditions)
	}
	if seq.Status.Address.URL != "http://seq-kn-sequence-0-kn-channel.default.svc.cluster.local" {
		t.Errorf("address %q", seq.Status.Address.URL)
	}
	for i := range 3 {
		name := fmt.Sprintf("seq-kn-sequence-%d", i)
		ch := get[messagingv1.InMemoryChannel](e, messagingv1.KindInMemoryChannel, name)
		sub := get[messagingv1.Subscription](e, messagingv1.KindSubscription, name)
		if len(ch.OwnerReferences) != 1 || ch.OwnerReferences[0].UID != seq.UID || len(sub.OwnerReferences) != 1 || sub.OwnerReferences[0].UID != seq.UID {
			t.Errorf("step %d: children not owned by the sequence", i)
		}
		want := "http://reply.example"
		if i < 2 {
			want = fmt.Sprintf("http://seq-kn-sequence-%d-kn-channel.default.svc.cluster.local", i+1)
		}
		if sub.Spec.Channel.Name != name || sub.Spec.Subscriber.URIString() != fmt.Sprintf("http://step.example/%d", i) || sub.Status.PhysicalSubscription.ReplyURI != want {
			t.Errorf("step %d subscription %+v physical %+v", i, sub.Spec, sub.Status.PhysicalSubscription)
		}
		if (i == 1) != (sub.Spec.Delivery != nil) {
			t.Errorf("step %d delivery %+v", i, sub.Spec.Delivery)
		}
		if seq.Status.ChannelStatuses[i].Channel.Name != name || seq.Status.SubscriptionStatuses[i].ReadyCondition.Status != duck.True {
			t.Errorf("step %d status %+v %+v", i, seq.Status.ChannelStatuses[i], seq.Status.SubscriptionStatuses[i])
		}
	}
	// Remove the last step: its channel and subscription go, step 1 now replies to spec.reply.
	seq.Spec.Steps = seq.Spec.Steps[:2]
	if err := e.st.Update(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
	e.settle()
	for _, kind := range []string{messagingv1.KindInMemoryChannel, messagingv1.KindSubscription} {
		if objs, _ := store.ListAs[metaOnly](context.Background(), e.st, kind, "default"); len(objs) != 2 {
			t.Errorf("%s after removing a step: %d, want 2", kind, len(objs))
		}
	}
	if sub := get[messagingv1.Subscription](e, messagingv1.KindSubscription, "seq-kn-sequence-1"); sub.Spec.Reply.URIString() != "http://reply.example" {
		t.Errorf("the new last step replies to %+v", sub.Spec.Reply)
	}
}

// Cases from Knative's parallel/resources/subscription_test.go ("without filter", "with
// filter") and parallel_test.go ("two branches, with filter and reply"): the filter
// subscription on the ingress channel replies into the branch's channel (no filter: the
// branch's channel is its subscriber); the branch's subscription replies to its reply, else
// spec.reply.
func TestParallelReconcile(t *testing.T) {
	e := newEnv(t)
	e.apply(`apiVersion: flows.knative.dev/v1
kind: Parallel
metadata: {name: par, namespace: default}
spec:
  branches:
    - filter: {uri: "http://filter.example"}
      subscriber: {uri: "http://sub.example/0"}
    - subscriber: {uri: "http://sub.example/1"}
      reply: {uri: "http://branch-reply.example"}
  reply: {uri: "http://reply.example"}`)
	e.settle()
	par := get[flowsv1.Parallel](e, flowsv1.KindParallel, "par")
	if !par.Status.IsReady() || par.Status.Address == nil || par.Status.Address.URL != "http://par-kn-parallel-kn-channel.default.svc.cluster.local" {
		t.Fatalf("parallel status %+v", par.Status)
	}
	f0 := get[messagingv1.Subscription](e, messagingv1.KindSubscription, "par-kn-parallel-filter-0")
	if f0.Spec.Channel.Name != "par-kn-parallel" || f0.Spec.Subscriber.URIString() != "http://filter.example" ||
		f0.Spec.Reply == nil || f0.Spec.Reply.Ref.Name != "par-kn-parallel-0" {
		t.Errorf("with filter: %+v", f0.Spec)
	}
	f1 := get[messagingv1.Subscription](e, messagingv1.KindSubscription, "par-kn-parallel-filter-1")
	if f1.Spec.Subscriber.Ref == nil || f1.Spec.Subscriber.Ref.Name != "par-kn-parallel-1" || f1.Spec.Reply != nil {
		t.Errorf("without filter: %+v", f1.Spec)
	}
	s0 := get[messagingv1.Subscription](e, messagingv1.KindSubscription, "par-kn-parallel-0")
	s1 := get[messagingv1.Subscription](e, messagingv1.KindSubscription, "par-kn-parallel-1")
	if s0.Spec.Channel.Name != "par-kn-parallel-0" || s0.Spec.Reply.URIString() != "http://reply.example" || s1.Spec.Reply.URIString() != "http://branch-reply.example" {
		t.Errorf("branch subscriptions %+v %+v", s0.Spec, s1.Spec)
	}
	if len(par.Status.BranchStatuses) != 2 || par.Status.BranchStatuses[0].FilterChannelStatus.Channel.Name != "par-kn-parallel-0" ||
		par.Status.IngressChannelStatus.Channel.Name != "par-kn-parallel" {
		t.Errorf("branch statuses %+v ingress %+v", par.Status.BranchStatuses, par.Status.IngressChannelStatus)
	}
	// The ingress channel fans out to both filter subscriptions.
	if cfg, _ := e.ev.channel("par-kn-parallel"); len(cfg.Subscribers) != 2 {
		t.Errorf("ingress channel subscribers %+v", cfg.Subscribers)
	}
}

// A Sequence without steps written straight to a cluster (no webhook) says why on its
// conditions, naming the field.
func TestSequenceWithoutSteps(t *testing.T) {
	e := newEnv(t)
	seq := &flowsv1.Sequence{}
	seq.Name, seq.Namespace = "empty", "default"
	seq.SetDefaults(context.Background())
	if err := e.st.Create(context.Background(), seq); err != nil {
		t.Fatal(err)
	}
	e.settle()
	seq = get[flowsv1.Sequence](e, flowsv1.KindSequence, "empty")
	if c := cond(&seq.Status.Status, duck.ConditionReady); c.Status != duck.False || c.Reason != "InvalidSpec" || !strings.Contains(c.Message, "spec.steps") {
		t.Errorf("Ready %+v", c)
	}
}

// A Channel reconciled before its backing InMemoryChannel ever was (so it has no address
// yet) is on its way, not failed: Addressable and Ready are Unknown, so that waiting for
// Ready waits (Knative says False, EmptyHostname, until the next reconcile); once the backing
// channel reports, the Channel is Ready with its address. (A wait that read the False
// failed TestChannelSubscriptionsFanOut on a loaded machine.)
func TestChannelBeforeItsBackingChannel(t *testing.T) {
	e := newEnv(t)
	e.apply("apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: early, namespace: default}\n")
	ctx := context.Background()
	if err := e.c.reconcile(ctx, store.Key{Kind: messagingv1.KindChannel, Namespace: "default", Name: "early"}); err != nil {
		t.Fatal(err)
	}
	ch := get[messagingv1.Channel](e, messagingv1.KindChannel, "early")
	if c := cond(&ch.Status.Status, messagingv1.ChannelConditionAddressable); c.Status != duck.Unknown || c.Reason != "EmptyHostname" {
		t.Errorf("Addressable %+v, want Unknown while the backing channel has not reported", c)
	}
	if c := cond(&ch.Status.Status, duck.ConditionReady); c.Status != duck.Unknown {
		t.Errorf("Ready %+v, want Unknown", c)
	}
	e.settle()
	ch = get[messagingv1.Channel](e, messagingv1.KindChannel, "early")
	if !ch.Status.IsReady() || ch.Status.Address == nil || ch.Status.Address.URL != "http://early-kn-channel.default.svc.cluster.local" {
		t.Errorf("after the backing channel's reconcile: %+v", ch.Status)
	}
}
