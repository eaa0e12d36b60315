package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/skiff-dev/skiff/client/h1"
	"github.com/skiff-dev/skiff/telemetry"
)

// Defaults of Options.
const (
	DefaultMaxAckPending  = 100
	DefaultAckWait        = 30 * time.Second
	DefaultMaxEventBytes  = 1 << 20
	DefaultPublishTimeout = 10 * time.Second
)

// Options configure a Server.
type Options struct {
	// Conn is the NATS connection to use; the Server does not close it. When
	// nil, URL is dialled and the connection is closed by Close.
	Conn *nats.Conn
	// URL is the NATS server to dial when Conn is nil: an Embedded server's
	// ClientURL in `skiff up`, an external NATS cluster in production.
	URL string
	// Auth is how to authenticate to URL (none when zero).
	Auth NATSAuth
	// TLS verifies the NATS servers when they require TLS (e.g. their CA in RootCAs); nil
	// uses the system roots. A server that does not require TLS is spoken to in plaintext.
	TLS *tls.Config
	// Client sends deliveries to subscribers and dead letter sinks, one request
	// per attempt (Skiff's own per-attempt timeout is applied through the
	// request's context). Give one whose transport sends every request through
	// the proxy, keeping the subscriber's Host, so that scaled-to-zero
	// subscribers are activated like any request. Nil means a client with
	// http.DefaultTransport's settings and up to 256 idle connections per host.
	Client *http.Client
	// Logger receives the Server's logs; nil discards them.
	Logger *slog.Logger
	// TriggerToken makes the ingress take the matching triggers from the
	// x-skiff-triggers request header of requests whose x-skiff-proxy-token
	// header equals it and whose x-skiff-broker-generation header equals the
	// broker's current BrokerConfig.FilterConfig().Generation (names the
	// broker does not have are ignored), instead of evaluating the filters.
	// It is the secret the proxy's cloudevents filter is given in its
	// configuration (eventfilter.FilterConfig.Token): a client reaching the
	// ingress directly cannot assert a match. Empty: the ingress always
	// evaluates the filters itself.
	TriggerToken string
	// DisableDispatch runs the ingress only (streams and consumers are still
	// created), for deployments that run dispatchers separately.
	DisableDispatch bool
	// HoldDispatch starts no dispatch loop until StartDispatch is called; the
	// ingress accepts and stores events meanwhile. The owner calls
	// StartDispatch once the proxy that deliveries go through serves, so that
	// none is sent to a proxy still starting.
	HoldDispatch bool
	// ProxyFailed reports whether a delivery attempt failed in Skiff's own
	// proxy rather than at the subscriber (the proxy unreachable, or its
	// activator timing out; see proxyclient.Config.ProxyFailed), given the
	// request and what Client.Do returned. Such an attempt is not counted: the
	// event is held, and sent again after a pause, as long as it takes. Nil:
	// every failure is the subscriber's.
	ProxyFailed func(req *http.Request, resp *http.Response, err error) bool
	// RetryRules is how failed deliveries are retried (within the delivery spec's
	// retry count): "" or RetryRulesSkiff (5xx, 408, 429 and failed requests; linear
	// backoff from one delay), RetryRulesKnative (404 and 409 too; linear backoff from
	// zero), as Knative's dispatcher.
	RetryRules RetryRules
	// MaxAckPending bounds the events in flight per trigger (default 100).
	MaxAckPending int
	// AckWait is how long JetStream waits for the outcome of a delivery before
	// handing the event out again (default 30s). Deliveries that take longer
	// keep their event with progress notices, so it only matters when a
	// dispatcher dies with events in hand.
	AckWait time.Duration
	// Replicas is the number of stream replicas in a NATS cluster (default 1).
	Replicas int
	// MaxEventBytes is the largest request body the ingress accepts, and the
	// largest reply read from a subscriber (default 1 MiB).
	MaxEventBytes int
	// PublishTimeout bounds the wait for JetStream's publish acknowledgements
	// (default 10s).
	PublishTimeout time.Duration
	// Tracer, when set, traces events as Knative's broker does: a span per event at the
	// ingress ("broker:<name>.<namespace>", continuing the request's traceparent) and per
	// delivery ("trigger:<name>.<namespace>", continuing the ingress span through the
	// stored message), whose context goes to the subscriber in traceparent. An event
	// without the CloudEvents distributed tracing extension gets it at the ingress: the
	// context it entered the broker in.
	Tracer trace.TracerProvider
	// Metrics, when set, records Knative's broker metrics (kn.eventing.dispatch.duration,
	// kn.eventing.process.duration).
	Metrics *telemetry.EventingMetrics
}

// Stats are counters of a Server since it started.
type Stats struct {
	// Accepted counts events answered 202 or re-entered as replies, matched or not.
	Accepted uint64
	// Stored counts the messages stored, one per matching trigger.
	Stored uint64
	// Invalid counts requests answered 400 because of the event.
	Invalid uint64
	// TTLExpired counts events (and replies) dropped because knativebrokerttl ran out.
	TTLExpired uint64
	// Delivered counts events a subscriber accepted.
	Delivered uint64
	// Retries counts failed attempts that were scheduled for a retry.
	Retries uint64
	// Replies counts replies that were stored back into their broker.
	Replies uint64
	// DeadLettered counts events the dead letter sink accepted.
	DeadLettered uint64
	// Dropped counts events given up: failed without a dead letter sink, or
	// refused by the dead letter sink too.
	Dropped uint64
	// ProxyFailures counts attempts that failed in Skiff's own proxy
	// (Options.ProxyFailed): not delivery attempts; the event waited and was
	// sent again.
	ProxyFailures uint64
}

type counters struct {
	accepted, stored, invalid, ttlExpired, delivered, retries, replies, deadLettered, dropped, proxyFailures atomic.Uint64
}

// Server is the broker ingress (it is the http.Handler of the broker URLs)
// and the dispatcher of every trigger of the brokers it is given, over one
// JetStream connection. Its methods are safe for concurrent use.
type Server struct {
	log            *slog.Logger
	nc             *nats.Conn
	ownsConn       bool
	js             jetstream.JetStream
	client         *http.Client
	triggerToken   []byte
	dispatch       bool
	proxyFailed    func(*http.Request, *http.Response, error) bool
	retryRules     RetryRules
	maxAckPending  int
	ackWait        time.Duration
	replicas       int
	maxEventBytes  int
	publishTimeout time.Duration
	tracer         trace.Tracer // nil: no spans
	metrics        *telemetry.EventingMetrics

	brokers atomic.Pointer[map[brokerKey]*brokerState]
	stats   counters

	mu     sync.Mutex // serialises configuration changes and Close
	loops  map[triggerKey]*loop
	closed bool
	// held is set until StartDispatch with Options.HoldDispatch; waiting holds
	// the consumers whose loops start then.
	held    bool
	waiting map[triggerKey]jetstream.Consumer
	// proxyWarned is when a proxy failure was last logged as a warning.
	proxyWarned atomic.Int64
	// acks sends the dispatcher's acknowledgements; stopped by Close.
	acks *acker
	// nakDelayed, when set (by tests, before the first broker), sees every wait
	// before a redelivery the dispatcher asks JetStream for.
	nakDelayed func(time.Duration)
}

// loop is a running trigger dispatch loop.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// NewServer connects to JetStream and returns a Server with no brokers; add
// them with SetBroker. ctx bounds the connection set-up only: Close stops the
// Server.
func NewServer(ctx context.Context, opts Options) (*Server, error) {
	s := &Server{
		log:            opts.Logger,
		nc:             opts.Conn,
		client:         opts.Client,
		triggerToken:   []byte(opts.TriggerToken),
		dispatch:       !opts.DisableDispatch,
		proxyFailed:    opts.ProxyFailed,
		held:           opts.HoldDispatch,
		waiting:        make(map[triggerKey]jetstream.Consumer),
		maxAckPending:  opts.MaxAckPending,
		ackWait:        opts.AckWait,
		replicas:       opts.Replicas,
		maxEventBytes:  opts.MaxEventBytes,
		publishTimeout: opts.PublishTimeout,
		loops:          make(map[triggerKey]*loop),
		metrics:        opts.Metrics,
		retryRules:     cmp.Or(opts.RetryRules, RetryRulesSkiff),
	}
	if opts.Tracer != nil {
		s.tracer = opts.Tracer.Tracer(telemetry.ScopeIngress)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256 // deliveries to one subscriber run in parallel
		// Plain HTTP deliveries are sent and answered on the dispatching goroutine.
		s.client = &http.Client{Transport: h1.New(tr, tr.DialContext)}
	}
	if s.maxAckPending <= 0 {
		s.maxAckPending = DefaultMaxAckPending
	}
	if s.ackWait <= 0 {
		s.ackWait = DefaultAckWait
	}
	if s.replicas <= 0 {
		s.replicas = 1
	}
	if s.maxEventBytes <= 0 {
		s.maxEventBytes = DefaultMaxEventBytes
	}
	if s.publishTimeout <= 0 {
		s.publishTimeout = DefaultPublishTimeout
	}
	empty := map[brokerKey]*brokerState{}
	s.brokers.Store(&empty)

	if s.nc == nil {
		if opts.URL == "" {
			return nil, errors.New("creating broker server: neither a NATS connection nor a URL was given")
		}
		nopts := []nats.Option{
			nats.Name("skiff-broker"),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(250 * time.Millisecond),
			nats.Timeout(connectTimeout(ctx)),
		}
		if opts.TLS != nil {
			// Not nats.Secure: that would refuse a server without TLS; this config is
			// used whenever the server asks for TLS.
			tc := opts.TLS.Clone()
			nopts = append(nopts, func(o *nats.Options) error { o.TLSConfig = tc; return nil })
		}
		nc, err := nats.Connect(opts.URL, append(nopts, opts.Auth.options()...)...)
		if err != nil {
			return nil, fmt.Errorf("connecting to NATS at %s: %w", opts.URL, err)
		}
		s.nc, s.ownsConn = nc, true
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.closeConn()
		return nil, fmt.Errorf("creating JetStream context: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		s.closeConn()
		return nil, fmt.Errorf("checking that JetStream is enabled: %w", err)
	}
	s.js = js
	s.acks = newAcker(s.log)
	return s, nil
}

func connectTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
	}
	return 5 * time.Second
}

func (s *Server) closeConn() {
	if s.ownsConn {
		s.nc.Close()
	}
}

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Accepted:     c.accepted.Load(),
		Stored:       c.stored.Load(),
		Invalid:      c.invalid.Load(),
		TTLExpired:   c.ttlExpired.Load(),
		Delivered:    c.delivered.Load(),
		Retries:      c.retries.Load(),
		Replies:      c.replies.Load(),
		DeadLettered: c.deadLettered.Load(),
		Dropped:      c.dropped.Load(),

		ProxyFailures: c.proxyFailures.Load(),
	}
}

// JetStream returns the Server's JetStream context, for inspection.
func (s *Server) JetStream() jetstream.JetStream { return s.js }

// broker returns the current state of a broker, or nil.
func (s *Server) broker(k brokerKey) *brokerState { return (*s.brokers.Load())[k] }

// lookup returns the current state of a trigger and its broker, or nils.
func (s *Server) lookup(k triggerKey) (*brokerState, *triggerState) {
	b := s.broker(k.brokerKey)
	if b == nil {
		return nil, nil
	}
	t := b.byName[k.trigger]
	if t == nil {
		return nil, nil
	}
	return b, t
}

func (s *Server) storeBroker(k brokerKey, b *brokerState) {
	old := *s.brokers.Load()
	next := make(map[brokerKey]*brokerState, len(old)+1)
	for kk, v := range old {
		next[kk] = v
	}
	if b == nil {
		delete(next, k)
	} else {
		next[k] = b
	}
	s.brokers.Store(&next)
}

// SetBroker validates and applies a broker's configuration: it creates or
// updates the broker's stream and one durable consumer per trigger, deletes
// the consumers (and the stored events) of triggers that are gone, makes the
// ingress accept events for the broker and starts a dispatch loop per new
// trigger. Changes to a trigger's filter, subscriber or delivery apply to the
// events not yet delivered. Errors in the configuration are *FieldError (joined
// when there are several) with paths such as "triggers[0].delivery.timeout".
func (s *Server) SetBroker(ctx context.Context, cfg BrokerConfig) error {
	b, err := compileBroker(cfg)
	if err != nil {
		return fmt.Errorf("invalid configuration of broker %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	return s.apply(ctx, b)
}

// apply creates or updates the stream of a broker or channel and one durable consumer
// per trigger (subscriber), publishes its state to the ingress, removes what is gone and
// starts a dispatch loop per new trigger.
func (s *Server) apply(ctx context.Context, b *brokerState) error {
	key := b.key()
	what, each := "broker", "trigger"
	if key.channel {
		what, each = "channel", "subscriber"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("setting %s %s: server closed", what, key)
	}
	// New streams keep one copy of an event for all the triggers it is for (interest
	// retention: a message stays until every consumer whose filter takes it acknowledged
	// it). JetStream cannot change a stream's retention, so a work-queue stream made by an
	// earlier Skiff keeps working as it did, with a copy per trigger.
	retention := jetstream.InterestPolicy
	if existing, err := s.js.Stream(ctx, b.stream); err == nil {
		if existing.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
			retention = jetstream.WorkQueuePolicy
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("looking up stream %s of broker %s: %w", b.stream, key, err)
	}
	b.interest = retention == jetstream.InterestPolicy
	stream, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        b.stream,
		Description: "Skiff " + what + " " + key.String(),
		Subjects:    []string{b.subjectPrefix + ".*"},
		Retention:   retention,
		Storage:     jetstream.FileStorage,
		Replicas:    s.replicas,
		Discard:     jetstream.DiscardNew,
	})
	if err != nil {
		return fmt.Errorf("creating stream %s of %s %s: %w", b.stream, what, key, err)
	}
	consumers := make(map[string]jetstream.Consumer, len(b.triggers))
	for _, t := range b.triggers {
		cc := jetstream.ConsumerConfig{
			Durable:       t.consumer,
			Description:   "Skiff " + each + " " + key.String() + "/" + t.name,
			FilterSubject: t.subject,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       s.ackWait,
			MaxDeliver:    -1,
			MaxAckPending: s.maxAckPending,
		}
		if b.interest {
			// Its own events and the broker's fan-out messages (NATS 2.10 or later).
			cc.FilterSubject, cc.FilterSubjects = "", []string{t.subject, b.fanOut}
		}
		c, err := s.js.CreateOrUpdateConsumer(ctx, b.stream, cc)
		if err != nil {
			return fmt.Errorf("creating consumer %s of %s %s/%s: %w", t.consumer, each, key, t.name, err)
		}
		consumers[t.name] = c
	}
	s.storeBroker(key, b)

	// Remove what is gone: running loops of removed triggers, and consumers
	// with their events (also those left over from triggers removed while
	// this server was not running).
	for tk, l := range s.loops {
		if tk.brokerKey == key && b.byName[tk.trigger] == nil {
			l.stop()
			delete(s.loops, tk)
		}
	}
	for tk := range s.waiting {
		if tk.brokerKey == key && b.byName[tk.trigger] == nil {
			delete(s.waiting, tk)
		}
	}
	var errs []error
	names := stream.ConsumerNames(ctx)
	var stale []string
	for name := range names.Name() {
		if !slices.ContainsFunc(b.triggers, func(t *triggerState) bool { return t.consumer == name }) {
			stale = append(stale, name)
		}
	}
	if err := names.Err(); err != nil {
		errs = append(errs, fmt.Errorf("listing consumers of stream %s: %w", b.stream, err))
	}
	for _, name := range stale {
		if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("deleting consumer %s of removed %s: %w", name, each, err))
			continue
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(b.subjectPrefix+"."+name)); err != nil {
			errs = append(errs, fmt.Errorf("purging events of removed %s %s: %w", each, name, err))
		}
		s.log.Info("removed "+each, what, key.String(), "consumer", name)
	}

	if s.dispatch {
		for _, t := range b.triggers {
			tk := triggerKey{key, t.name}
			if s.held {
				s.waiting[tk] = consumers[t.name]
				continue
			}
			if _, running := s.loops[tk]; !running {
				s.loops[tk] = s.startLoop(tk, consumers[t.name])
			}
		}
	}
	s.log.Info(what+" set", what, key.String(), each+"s", len(b.triggers))
	return errors.Join(errs...)
}

// StartDispatch starts the dispatch loops held back by Options.HoldDispatch,
// and those of triggers set from now on. Calling it again, without
// HoldDispatch, or after Close does nothing.
func (s *Server) StartDispatch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.held {
		return
	}
	s.held = false
	for tk, c := range s.waiting {
		if _, running := s.loops[tk]; !running {
			s.loops[tk] = s.startLoop(tk, c)
		}
		delete(s.waiting, tk)
	}
	s.log.Info("dispatching", "triggers", len(s.loops))
}

// DeleteBroker stops accepting and dispatching events for a broker and
// deletes its stream with every event not yet delivered. Deleting a broker
// that does not exist is not an error.
func (s *Server) DeleteBroker(ctx context.Context, namespace, name string) error {
	return s.remove(ctx, brokerKey{namespace: namespace, name: name}, streamName(namespace, name))
}

// remove stops a broker's or channel's ingress and loops and deletes its stream.
func (s *Server) remove(ctx context.Context, key brokerKey, stream string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("deleting %s: server closed", key)
	}
	s.storeBroker(key, nil)
	for tk, l := range s.loops {
		if tk.brokerKey == key {
			l.stop()
			delete(s.loops, tk)
		}
	}
	for tk := range s.waiting {
		if tk.brokerKey == key {
			delete(s.waiting, tk)
		}
	}
	if err := s.js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("deleting stream %s of %s: %w", stream, key, err)
	}
	s.log.Info("deleted", "what", key.String())
	return nil
}

// Close stops the dispatch loops (deliveries in flight are abandoned and
// their events handed back to JetStream at once), stops accepting events and
// closes the NATS connection if the Server dialled it. Events accepted and
// not yet delivered stay in JetStream for the next Server.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	empty := map[brokerKey]*brokerState{}
	s.brokers.Store(&empty)
	var wg sync.WaitGroup
	for tk, l := range s.loops {
		wg.Go(l.stop)
		delete(s.loops, tk)
	}
	wg.Wait()
	s.acks.stop()
	// Acks and naks are buffered writes: push them out before going.
	err := s.nc.FlushTimeout(time.Second)
	if s.ownsConn {
		s.nc.Close()
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("flushing NATS connection: %w", err)
	}
	return nil
}

func (l *loop) stop() {
	l.cancel()
	<-l.done
}

// NATSAuth is how to authenticate to a NATS server: a token, or a user and password.
type NATSAuth struct {
	Token          string
	User, Password string
}

// IsZero reports whether no credential is set.
func (a NATSAuth) IsZero() bool { return a == NATSAuth{} }

func (a NATSAuth) options() []nats.Option {
	var out []nats.Option
	if a.Token != "" {
		out = append(out, nats.Token(a.Token))
	}
	if a.User != "" || a.Password != "" {
		out = append(out, nats.UserInfo(a.User, a.Password))
	}
	return out
}
