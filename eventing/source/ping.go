// Package source runs Skiff's event sources in-process. Ping is Knative's
// PingSource adapter: it sends a dev.knative.sources.ping CloudEvent to a
// sink on a cron schedule.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	"github.com/robfig/cron/v3"
	"k8s.io/utils/clock"
)

// PingEventType is the type of every event a PingSource sends.
const PingEventType = "dev.knative.sources.ping"

// PingSpec is one PingSource as the adapter runs it, with the sink resolved.
type PingSpec struct {
	// Schedule is a standard five-field cron expression (no seconds field), or
	// a descriptor such as @hourly or @every 1m.
	Schedule string
	// Timezone is the IANA zone the schedule is read in; "" means UTC.
	Timezone string
	// ContentType is the event's datacontenttype; "" means none.
	ContentType string
	// Data is the event's data (spec.data, or spec.dataBase64 decoded).
	Data []byte
	// Sink is the absolute URL events are sent to.
	Sink string
	// Extensions are spec.ceOverrides.extensions, set on every event.
	Extensions map[string]string
}

// Ping runs PingSources: one schedule per source, on one scheduler goroutine,
// each firing sends one event. Its methods are safe for concurrent use. Events
// are sent at most once per tick: a send that fails after its retries is logged
// and dropped, as Knative's ping adapter does (the next tick sends a new event).
type Ping struct {
	log     *slog.Logger
	client  *http.Client
	retries int
	timeout time.Duration
	clock   clock.WithTicker

	mu      sync.Mutex
	entries map[string]*pingEntry
	// wake tells the scheduler the entries changed.
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

type pingEntry struct {
	sched  cron.Schedule
	spec   PingSpec
	source string
	next   time.Time
}

// PingOptions configure a Ping.
type PingOptions struct {
	// Client sends the events; give one that routes through the proxy so a
	// scaled-to-zero sink is activated. Nil means http.DefaultClient.
	Client *http.Client
	// Retries is how many times a failed send (network error, 5xx, 408, 429)
	// is tried again, 200ms apart doubling (default 3).
	Retries int
	// Timeout bounds each attempt (default 30s).
	Timeout time.Duration
	// Logger receives the adapter's logs; nil discards them.
	Logger *slog.Logger
	// Clock schedules the ticks (tests pass a fake one); nil means the real clock.
	Clock clock.WithTicker
}

// NewPing returns a running Ping with no sources; Close stops it.
func NewPing(opts PingOptions) *Ping {
	p := &Ping{
		log: opts.Logger, client: opts.Client, retries: opts.Retries, timeout: opts.Timeout, clock: opts.Clock,
		entries: map[string]*pingEntry{}, wake: make(chan struct{}, 1),
	}
	if p.clock == nil {
		p.clock = clock.RealClock{}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.client == nil {
		p.client = http.DefaultClient
	}
	if p.retries <= 0 {
		p.retries = 3
	}
	if p.timeout <= 0 {
		p.timeout = 30 * time.Second
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.run()
	return p
}

// run is the scheduler: it fires every entry whose time has come, as cron does
// (the next time counted from now), then sleeps until the earliest next time or a
// change of the entries.
func (p *Ping) run() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		now := p.clock.Now()
		var earliest time.Time
		for key, e := range p.entries {
			if !e.next.After(now) {
				p.fireLocked(key, e.source, e.spec, now)
				e.next = e.sched.Next(now)
			}
			if earliest.IsZero() || e.next.Before(earliest) {
				earliest = e.next
			}
		}
		p.mu.Unlock()
		var tick <-chan time.Time
		var timer clock.Timer
		if !earliest.IsZero() {
			timer = p.clock.NewTimer(earliest.Sub(now))
			tick = timer.C()
		}
		select {
		case <-p.ctx.Done():
		case <-p.wake:
		case <-tick:
		}
		if timer != nil {
			timer.Stop()
		}
		if p.ctx.Err() != nil {
			return
		}
	}
}

// changed wakes the scheduler.
func (p *Ping) changed() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Set schedules (or reschedules) the PingSource namespace/name. An unchanged
// spec keeps its schedule running untouched. The error names the field at
// fault (schedule, timezone, sink).
func (p *Ping) Set(namespace, name string, spec PingSpec) error {
	sched, err := parseSchedule(spec)
	if err != nil {
		return err
	}
	if spec.Sink == "" {
		return errors.New("sink: no URL")
	}
	tz := cmpOr(spec.Timezone, "UTC")
	key := namespace + "/" + name
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("ping source adapter is stopped")
	}
	if old, ok := p.entries[key]; ok && samePing(old.spec, spec) {
		return nil
	}
	source := fmt.Sprintf("/apis/v1/namespaces/%s/pingsources/%s", namespace, name)
	spec.Extensions = maps.Clone(spec.Extensions)
	spec.Data = slices.Clone(spec.Data)
	p.entries[key] = &pingEntry{sched: sched, spec: spec, source: source, next: sched.Next(p.clock.Now())}
	p.changed()
	p.log.Info("ping source scheduled", "source", key, "schedule", spec.Schedule, "timezone", tz, "sink", spec.Sink)
	return nil
}

// Next returns when a PingSource with this spec fires next after t.
func Next(spec PingSpec, t time.Time) (time.Time, error) {
	sched, err := parseSchedule(spec)
	if err != nil {
		return time.Time{}, err
	}
	return sched.Next(t), nil
}

// parseSchedule reads the cron schedule in the spec's timezone.
func parseSchedule(spec PingSpec) (cron.Schedule, error) {
	loc, err := time.LoadLocation(cmpOr(spec.Timezone, "UTC"))
	if err != nil {
		return nil, fmt.Errorf("timezone %q: not an IANA time zone name: %w", spec.Timezone, err)
	}
	// Knative's parser: five fields, or six with seconds first, or a descriptor.
	parser := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sched, err := parser.Parse(spec.Schedule)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec.Schedule, err)
	}
	if s, ok := sched.(*cron.SpecSchedule); ok {
		s.Location = loc // the schedule's fields are read in the source's timezone
	}
	return sched, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func samePing(a, b PingSpec) bool {
	return a.Schedule == b.Schedule && a.Timezone == b.Timezone && a.ContentType == b.ContentType &&
		string(a.Data) == string(b.Data) && a.Sink == b.Sink && maps.Equal(a.Extensions, b.Extensions)
}

// Delete stops the PingSource namespace/name; unknown sources are ignored.
func (p *Ping) Delete(namespace, name string) {
	key := namespace + "/" + name
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.entries[key]; ok {
		delete(p.entries, key)
		p.changed()
		p.log.Info("ping source stopped", "source", key)
	}
}

// Close stops every schedule and waits for sends in flight to end.
func (p *Ping) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// fireLocked runs on the scheduler with p.mu held; the send runs on its own
// goroutine so a slow sink does not delay other sources.
func (p *Ping) fireLocked(key, source string, spec PingSpec, at time.Time) {
	if p.closed {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ev := NewPingEvent(source, at, spec)
		if err := p.Send(p.ctx, spec.Sink, ev); err != nil {
			p.log.Warn("ping event not delivered", "source", key, "sink", spec.Sink, "id", ev.ID(), "error", err)
			return
		}
		p.log.Debug("ping event delivered", "source", key, "id", ev.ID())
	}()
}

// NewPingEvent builds the event a PingSource sends at time at.
func NewPingEvent(source string, at time.Time, spec PingSpec) cloudevents.Event {
	ev := cloudevents.NewEvent()
	ev.SetID(uuid.NewString())
	ev.SetType(PingEventType)
	ev.SetSource(source)
	ev.SetTime(at.UTC())
	for k, v := range spec.Extensions {
		ev.SetExtension(k, v)
	}
	if len(spec.Data) > 0 || spec.ContentType != "" {
		ev.DataEncoded = slices.Clone(spec.Data)
		if spec.ContentType != "" {
			ev.SetDataContentType(spec.ContentType)
		}
	}
	return ev
}

// Send posts ev to target in binary content mode with the CloudEvents HTTP
// binding, retrying network errors, 5xx, 408 and 429.
func (p *Ping) Send(ctx context.Context, target string, ev cloudevents.Event) error {
	proto, err := cloudevents.NewHTTP(cloudevents.WithTarget(target), cehttp.WithClient(*p.client))
	if err != nil {
		return fmt.Errorf("sending to %s: %w", target, err)
	}
	c, err := cloudevents.NewClient(proto, cloudevents.WithTimeNow(), cloudevents.WithUUIDs())
	if err != nil {
		return fmt.Errorf("sending to %s: %w", target, err)
	}
	if err := SendWithRetries(ctx, c, ev, p.retries, 200*time.Millisecond, p.timeout); err != nil {
		return fmt.Errorf("sending to %s: %w", target, err)
	}
	return nil
}
