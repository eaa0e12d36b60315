package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-dev/skiff/api/duck"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// BrokerConfig is one Broker as the data plane needs it: its identity, its
// default delivery and its Triggers, with every destination already resolved to
// a URL by the control plane.
type BrokerConfig struct {
	// Namespace is the Broker's namespace (a DNS-1123 label).
	Namespace string
	// Name is the Broker's name (a DNS-1123 subdomain).
	Name string
	// Delivery is the default delivery of Triggers whose Delivery is nil
	// (spec.delivery of the Broker).
	Delivery *DeliverySpec
	// Triggers are the Broker's Triggers; names must be unique.
	Triggers []TriggerConfig
}

// TriggerConfig is one Trigger of a Broker.
type TriggerConfig struct {
	// Name is the Trigger's name (a DNS-1123 subdomain).
	Name string
	// Filter is the Trigger's spec.filter and spec.filters, compiled with
	// wasm-filters/cloudevents/eventfilter when the Broker is set.
	Filter eventfilter.Filter
	// Subscriber is the resolved absolute http(s) URL of spec.subscriber.
	Subscriber string
	// Delivery overrides the Broker's Delivery as a whole when not nil, as in
	// Knative.
	Delivery *DeliverySpec
}

// DeliverySpec is Knative's spec.delivery with the dead letter sink resolved to
// a URL. The zero value means one attempt, no timeout and no dead letter sink.
//
// An attempt fails when the request fails (connection error, per-attempt
// timeout), when the status is not 2xx, or when a 2xx response carries a
// non-empty body that is not a valid CloudEvent (Knative's broker treats that
// as 502 Bad Gateway). A failed attempt is retried, as Knative's dispatcher
// does (kncloudevents.SelectiveRetry), when the request failed or the status
// is 5xx, 408 or 429; any other failure is final at once. (Knative's
// kncloudevents also retries 404 and 409; Skiff does so only under
// [RetryRulesKnative], Options.RetryRules, so by default a missing path or a
// conflict dead-letters at once, as the issue it implements asks.) The n-th
// retry (n = 1, 2, ...) waits BackoffDelay×n under the linear policy and
// BackoffDelay×2^(n-1) under the exponential one, capped at [MaxBackoff]
// (Knative computes delay×2^i from a 0-based retry index i, which is the same
// exponential series; its linear series starts at zero, which Skiff follows only
// under [RetryRulesKnative]).
type DeliverySpec struct {
	// DeadLetterSink is the resolved URL of spec.delivery.deadLetterSink, or
	// "" for none. When an event's delivery fails for good it is sent there
	// with the extensions knativeerrordest, knativeerrorcode and
	// knativeerrordata; without one it is dropped (and logged).
	DeadLetterSink string
	// Retry is the number of retries after the first attempt (nil: 0).
	Retry *int32
	// BackoffPolicy is "linear" or "exponential" ("" means exponential).
	BackoffPolicy string
	// BackoffDelay is the ISO-8601 base delay between retries, e.g. PT0.2S
	// ("" means retry at once).
	BackoffDelay string
	// Timeout is the ISO-8601 duration of one attempt, e.g. PT10S ("" means
	// no timeout of Skiff's own).
	Timeout string
	// RetryAfterMax, when set (Knative's delivery-retryafter feature), makes a
	// retry after a 429 or 503 wait at least the response's Retry-After, capped
	// at this ISO-8601 duration ("PT0S" or "": Retry-After is not honoured).
	RetryAfterMax string
	// Format is the content mode of deliveries: "json" (structured) or
	// "binary"; "" means binary, as Knative's dispatcher sends by default.
	Format string
}

// FilterConfig returns the broker's entry in the proxy's cloudevents filter
// configuration (wasm-filters/cloudevents): its triggers' filters and the
// generation the ingress compares with the filter's x-skiff-broker-generation.
func (c BrokerConfig) FilterConfig() eventfilter.BrokerConfig {
	out := eventfilter.BrokerConfig{
		Broker:     c.Namespace + "/" + c.Name,
		Generation: filterGeneration(c),
		Triggers:   make([]eventfilter.TriggerConfig, 0, len(c.Triggers)),
	}
	for _, t := range c.Triggers {
		tc := eventfilter.TriggerConfig{Name: t.Name, Filters: t.Filter.Filters}
		if len(t.Filter.Attributes) > 0 {
			tc.Filter = &eventfilter.AttributesFilter{Attributes: t.Filter.Attributes}
		}
		out.Triggers = append(out.Triggers, tc)
	}
	return out
}

// filterGeneration digests what the proxy's trigger list depends on: the
// trigger names and filters, in order.
func filterGeneration(c BrokerConfig) string {
	type entry struct {
		Name   string
		Filter eventfilter.Filter
	}
	entries := make([]entry, len(c.Triggers))
	for i, t := range c.Triggers {
		entries[i] = entry{t.Name, t.Filter}
	}
	b, _ := json.Marshal(entries) // maps marshal with sorted keys: stable
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// MaxBackoff caps the wait before a retry, whatever the policy computes.
const MaxBackoff = 24 * time.Hour

// FieldError is a configuration error that names the offending field with a
// path such as "triggers[1].delivery.backoffDelay".
type FieldError struct {
	// Path is the offending field's path relative to the BrokerConfig.
	Path string
	// Message says what is wrong with it.
	Message string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Path + ": " + e.Message }

// Backoff policies of DeliverySpec.BackoffPolicy.
const (
	BackoffLinear      = "linear"
	BackoffExponential = "exponential"
)

// policy is a validated DeliverySpec.
type policy struct {
	retry       int
	exponential bool
	delay       time.Duration
	timeout     time.Duration
	deadLetter  string
	// retryAfterMax caps the Retry-After a 429 or 503 asks for; 0 ignores it.
	retryAfterMax time.Duration
	// structured sends deliveries in structured content mode (Format "json").
	structured bool
}

// retryWait is the wait before the n-th retry after a response that asked for
// retryAfter (Retry-After of a 429 or 503; 0 for none): the backoff, or
// retryAfter capped at retryAfterMax when that is longer, as kncloudevents'
// backoff function does with RetryAfterMaxDuration set (0 never honours it).
func (p policy) retryWait(n int, r RetryRules, retryAfter time.Duration) time.Duration {
	wait := p.backoff(n, r)
	if honoured := min(retryAfter, p.retryAfterMax); honoured > wait {
		return honoured
	}
	return wait
}

// backoff returns the wait before the n-th retry (n >= 1) under rules r.
func (p policy) backoff(n int, r RetryRules) time.Duration {
	if p.delay <= 0 || n < 1 {
		return 0
	}
	factor := float64(n)
	switch {
	case p.exponential:
		factor = math.Exp2(float64(n - 1))
	case r == RetryRulesKnative:
		factor = float64(n - 1)
	}
	d := float64(p.delay) * factor
	if d >= float64(MaxBackoff) {
		return MaxBackoff
	}
	return time.Duration(d)
}

// RetryRules names the rules a failed delivery is retried by: Skiff's (the default) or
// Knative's dispatcher's. They differ in two places, named and chosen rather than silent:
// which statuses are retried, and the linear backoff's first wait.
type RetryRules string

const (
	// RetryRulesSkiff retries failed requests (0), 5xx, 408 and 429 only: a subscriber
	// that is not there (404) or refuses the event (409) is not asked again. The n-th
	// linear retry waits BackoffDelay×n, the series Knative's documentation gives.
	RetryRulesSkiff RetryRules = "skiff"
	// RetryRulesKnative is Knative's dispatcher (pkg/kncloudevents/retries.go): 404 and
	// 409 are retried too (SelectiveRetry: a 404 while a pod becomes ready, a 409 its e2e
	// tests return), and the n-th linear retry waits BackoffDelay×(n-1), from the 0-based
	// attempt number go-retryablehttp hands its Backoff, so the first retry is at once.
	RetryRulesKnative RetryRules = "knative"
)

// ParseRetryRules reads a RetryRules setting; "" is the default, Skiff's.
func ParseRetryRules(s string) (RetryRules, error) {
	switch r := RetryRules(s); r {
	case "":
		return RetryRulesSkiff, nil
	case RetryRulesSkiff, RetryRulesKnative:
		return r, nil
	}
	return "", fmt.Errorf("%q is not a set of retry rules: want %q or %q", s, RetryRulesSkiff, RetryRulesKnative)
}

// retryable reports whether a failed attempt with this status code (0 for a
// failed request) may be retried.
func (r RetryRules) retryable(code int) bool {
	switch {
	case code == 0, code >= 500:
		return true
	case code == 408, code == 429:
		return true
	case code == 404, code == 409:
		return r == RetryRulesKnative
	}
	return false
}

func compilePolicy(d *DeliverySpec, path string) (policy, error) {
	var p policy
	p.exponential = true
	if d == nil {
		return p, nil
	}
	if d.Retry != nil {
		if *d.Retry < 0 {
			return p, &FieldError{path + ".retry", fmt.Sprintf("must be >= 0, not %d", *d.Retry)}
		}
		p.retry = int(*d.Retry)
	}
	switch d.BackoffPolicy {
	case "", BackoffExponential:
	case BackoffLinear:
		p.exponential = false
	default:
		return p, &FieldError{path + ".backoffPolicy", fmt.Sprintf("must be %q or %q, not %q", BackoffLinear, BackoffExponential, d.BackoffPolicy)}
	}
	var err error
	if d.BackoffDelay != "" {
		// A negative delay is taken, as by Knative, and waits for nothing.
		if p.delay, _, err = duck.ParseISO8601Duration(d.BackoffDelay); err != nil {
			return p, &FieldError{path + ".backoffDelay", err.Error()}
		}
	}
	if d.Timeout != "" {
		// A negative timeout is taken, as by Knative, whose dispatcher's http.Client then
		// has no timeout; so has this one (send times out only a positive one).
		var zero bool
		if p.timeout, zero, err = duck.ParseISO8601Duration(d.Timeout); err != nil {
			return p, &FieldError{path + ".timeout", err.Error()}
		}
		if zero {
			return p, &FieldError{path + ".timeout", "must not be zero"}
		}
	}
	if d.RetryAfterMax != "" {
		if p.retryAfterMax, _, err = duck.ParseISO8601Duration(d.RetryAfterMax); err != nil || p.retryAfterMax < 0 {
			return p, &FieldError{path + ".retryAfterMax", fmt.Sprintf("must be a duration of zero or more, not %q", d.RetryAfterMax)}
		}
	}
	switch d.Format {
	case "", "binary":
	case "json":
		p.structured = true
	default:
		return p, &FieldError{path + ".format", fmt.Sprintf("must be %q or %q, not %q", "json", "binary", d.Format)}
	}
	if d.DeadLetterSink != "" {
		if err := checkURL(d.DeadLetterSink); err != nil {
			return p, &FieldError{path + ".deadLetterSink", err.Error()}
		}
		p.deadLetter = d.DeadLetterSink
	}
	return p, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http or https URL", s)
	}
	return nil
}

// brokerState is a validated, compiled BrokerConfig. It is immutable once
// published to the ingress.
type brokerState struct {
	namespace, name string
	// channel marks a channel (an InMemoryChannel), whose triggers are its subscribers.
	channel bool
	// generation is the broker's FilterConfig().Generation.
	generation string
	stream     string
	// subjectPrefix is the stream's subjects without the last token (the trigger's).
	subjectPrefix string
	// fanOut is the subject of the broker's fan-out messages (see HeaderTriggers).
	fanOut string
	// interest is set once SetBroker found (or made) the broker's stream with interest
	// retention, where one fan-out message serves several triggers; a work-queue stream,
	// made before fan-out existed, keeps a copy per trigger.
	interest bool
	triggers []*triggerState
	byName   map[string]*triggerState
}

// triggerState is a validated, compiled TriggerConfig.
type triggerState struct {
	name       string
	subject    string
	consumer   string
	filter     *eventfilter.Compiled
	subscriber string
	// reply is where a channel subscriber's replies go ("" drops them); brokers
	// take replies back in instead.
	reply  string
	policy policy
	// filterType is the trigger's filter on the event type, if any (a metric label).
	filterType string
}

// brokerKey names a broker, or a channel when channel is set.
type brokerKey struct {
	namespace, name string
	channel         bool
}

func (k brokerKey) String() string {
	if k.channel {
		return "channel " + k.namespace + "/" + k.name
	}
	return k.namespace + "/" + k.name
}

// key is the state's key in the Server's map.
func (b *brokerState) key() brokerKey {
	return brokerKey{namespace: b.namespace, name: b.name, channel: b.channel}
}

type triggerKey struct {
	brokerKey
	trigger string
}

func (k triggerKey) String() string { return k.brokerKey.String() + "/" + k.trigger }

// checkObjectName checks a broker's or channel's namespace and name, which make its JetStream
// stream's and its route's names.
func checkObjectName(namespace, name string) error {
	var errs []error
	for _, msg := range validation.IsDNS1123Label(namespace) {
		errs = append(errs, &FieldError{"namespace", fmt.Sprintf("%q: %s", namespace, msg)})
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, &FieldError{"name", fmt.Sprintf("%q: %s", name, msg)})
	}
	return errors.Join(errs...)
}

func compileBroker(c BrokerConfig) (*brokerState, error) {
	if err := checkObjectName(c.Namespace, c.Name); err != nil {
		return nil, err
	}
	var errs []error
	if _, err := compilePolicy(c.Delivery, "delivery"); err != nil {
		errs = append(errs, err)
	}
	b := &brokerState{
		namespace:     c.Namespace,
		name:          c.Name,
		generation:    filterGeneration(c),
		stream:        streamName(c.Namespace, c.Name),
		subjectPrefix: "skiff." + c.Namespace + "." + token(c.Name),
		fanOut:        FanOutSubject(c.Namespace, c.Name),
		byName:        make(map[string]*triggerState, len(c.Triggers)),
	}
	for i, tc := range c.Triggers {
		path := fmt.Sprintf("triggers[%d]", i)
		t, err := compileTrigger(b, tc, c.Delivery, path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := b.byName[t.name]; dup {
			errs = append(errs, &FieldError{path + ".name", fmt.Sprintf("%q is used by another trigger", t.name)})
			continue
		}
		b.byName[t.name] = t
		b.triggers = append(b.triggers, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

func compileTrigger(b *brokerState, tc TriggerConfig, brokerDelivery *DeliverySpec, path string) (*triggerState, error) {
	if tc.Name == "" {
		return nil, &FieldError{path + ".name", "a name is required"}
	}
	if msgs := validation.IsDNS1123Subdomain(tc.Name); len(msgs) > 0 {
		return nil, &FieldError{path + ".name", fmt.Sprintf("%q: %s", tc.Name, strings.Join(msgs, "; "))}
	}
	if tc.Subscriber == "" {
		return nil, &FieldError{path + ".subscriber", "a subscriber URL is required"}
	}
	if err := checkURL(tc.Subscriber); err != nil {
		return nil, &FieldError{path + ".subscriber", err.Error()}
	}
	compiled, err := eventfilter.Compile(tc.Filter)
	if err != nil {
		var fe *eventfilter.FieldError
		if errors.As(err, &fe) {
			return nil, &FieldError{path + "." + fe.Path, fe.Message}
		}
		return nil, &FieldError{path + ".filter", err.Error()}
	}
	d, dpath := tc.Delivery, path+".delivery"
	if d == nil {
		d, dpath = brokerDelivery, "delivery"
	}
	p, err := compilePolicy(d, dpath)
	if err != nil {
		return nil, err
	}
	return &triggerState{
		name:       tc.Name,
		subject:    subjectName(b.namespace, b.name, tc.Name),
		consumer:   token(tc.Name),
		filter:     compiled,
		subscriber: tc.Subscriber,
		policy:     p,
		filterType: tc.Filter.Attributes["type"],
	}, nil
}

// token turns a validated Kubernetes name into a NATS subject token or stream
// and consumer name: DNS-1123 names have no '_', so mapping '.' to '_' is
// reversible and leaves no '.', '*', '>' or whitespace.
func token(name string) string { return strings.ReplaceAll(name, ".", "_") }

// streamName is the JetStream stream of a broker. A namespace is a DNS-1123
// label, without '.' or '_', so the first '_' after the prefix ends it.
func streamName(namespace, name string) string {
	return "skiff_" + namespace + "_" + token(name)
}

// subjectName is the subject of a trigger's events.
func subjectName(namespace, broker, trigger string) string {
	return "skiff." + namespace + "." + token(broker) + "." + token(trigger)
}

// fanOutToken is the last subject token of a broker's fan-out messages: '_' is in no
// trigger's token, so it names no trigger.
const fanOutToken = "_fanout"

// FanOutSubject returns the JetStream subject of a broker's fan-out messages: one stored
// event for every trigger listed in its HeaderTriggers.
func FanOutSubject(namespace, broker string) string {
	return "skiff." + namespace + "." + token(broker) + "." + fanOutToken
}

// StreamName returns the JetStream stream holding the events of a broker.
func StreamName(namespace, broker string) string { return streamName(namespace, broker) }

// Subject returns the JetStream subject holding the events of a trigger.
func Subject(namespace, broker, trigger string) string {
	return subjectName(namespace, broker, trigger)
}

// IngressHostPrefix is the first label of the broker ingress host: broker
// URLs are http://broker-ingress.{domain}/{namespace}/{broker}, like
// Knative's http://broker-ingress.knative-eventing.svc.cluster.local/{namespace}/{broker}.
const IngressHostPrefix = "broker-ingress"

// IngressHost is the host of every broker URL under a serving domain.
func IngressHost(domain string) string { return IngressHostPrefix + "." + domain }

// URL is a broker's address (status.address.url) under a serving domain.
func URL(domain, namespace, name string) string {
	return "http://" + IngressHost(domain) + "/" + namespace + "/" + name
}
