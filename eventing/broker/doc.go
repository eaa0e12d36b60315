// Package broker is Skiff's Knative Broker data plane: the broker ingress, which
// stores every accepted CloudEvent durably in NATS JetStream (once for most of a
// broker's Triggers, else once per matching Trigger), and the dispatcher, which delivers the stored events to the Triggers'
// subscribers with Knative's delivery semantics (retry, linear or exponential
// backoff, per-attempt timeout, dead letter sink, replies back into the broker).
//
// # Layout in JetStream
//
// Each Broker is one stream, named skiff_<namespace>_<broker> (dots in the
// broker name become underscores), with file storage and interest retention
// (work-queue for streams made before fan-out, which keep a copy per Trigger),
// listening on skiff.<namespace>.<broker>.*. Each Trigger is one durable pull
// consumer, named after the Trigger, filtered on the subject
// skiff.<namespace>.<broker>.<trigger> and on the broker's FanOutSubject. A
// message is one event for one Trigger, or a fan-out message for the Triggers
// its HeaderTriggers lists (the others' dispatchers settle it without a
// delivery): the body is the event in the CloudEvents JSON format (structured
// mode), and the NATS headers carry the delivery metadata (HeaderBroker,
// HeaderTrigger or HeaderTriggers, HeaderAcceptedAt, HeaderPhase). Once every
// delivery's outcome is final the message is acknowledged by each consumer,
// which removes it from the stream. See eventing/README.md, "Fan-out".
//
// # Ingress
//
// [Server] is an http.Handler serving POST /{namespace}/{broker}. The request
// is parsed and validated with wasm-filters/cloudevents/eventfilter (binary or structured content
// mode); a bad event gets 400 and a JSON body {"error": "...", "reason": "..."}
// and is never stored. The matching Triggers come from the x-skiff-triggers
// request header when the request carries [Options].TriggerToken (so the
// proxy's cloudevents filter computed it, not a client), and are otherwise
// evaluated here with the same wasm-filters/cloudevents/eventfilter code. The event is published
// once (fan-out) or once per matching Trigger and the handler waits for every JetStream publish
// acknowledgement before answering 202 Accepted; if any publish fails it
// answers 503, so an event the sender saw accepted is stored.
//
// Loop prevention follows Knative's knativebrokerttl extension and its
// TTLDefaulter: an event without it, or whose value is not a number, gets
// [DefaultTTL]; one with it has it decremented, and an event whose TTL reaches
// 0 is dropped with 400, as Knative's ingress does. The TTL
// is removed before delivery to a subscriber and given back to the
// subscriber's reply, which re-enters the broker (and is decremented again).
//
// # Dispatch
//
// Every Trigger has its own loop pulling from its consumer with at most
// [Options].MaxAckPending events in flight. One JetStream delivery is one HTTP
// attempt in binary content mode (every attribute percent-encoded as the HTTP
// binding requires, the data byte for byte, with Knative's pass-through
// headers and Kn-Namespace), sent with the [http.Client] of
// [Options].Client (so that the caller can route deliveries through the proxy
// and activate scaled-to-zero subscribers). The attempt number is the
// message's JetStream delivery count, and a retry is a NakWithDelay, so
// retries and their backoff survive restarts. An attempt that fails in Skiff's
// own proxy rather than at the subscriber ([Options].ProxyFailed: the proxy not
// listening yet, a connection to it reset, its activator timing out) is no
// attempt: the event stays with the dispatcher, which sends it again after a
// pause (100ms doubling to 5s) for as long as it takes, counted in
// [Stats].ProxyFailures. With [Options].HoldDispatch nothing is delivered
// until [Server.StartDispatch], which the control plane calls once the proxy
// serves. See [DeliverySpec] for the retried status codes and the backoff
// formulas, and [Server] for dead lettering.
package broker
