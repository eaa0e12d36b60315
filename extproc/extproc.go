// Package extproc is Skiff's Envoy external processing (ext_proc) service. It does, inside the
// proxy's request path, what Knative's activator and queue-proxy breaker do:
//
//   - activation buffering: a request for a revision with no ready endpoint is held (the
//     request-headers message is not answered) until the control plane reports an endpoint
//     every proxy has ACKed, and the autoscaler is poked (Config.OnDemand);
//   - the per-pod breaker: with containerConcurrency N > 0 no pod ever has more than N requests
//     in flight; excess requests wait in one FIFO queue per revision, then are pinned to the
//     least-loaded pod with a free slot through Envoy dynamic metadata that the cluster's
//     override_host load-balancing policy reads.
//
// One gRPC Process stream is one HTTP request. The revision comes only from the
// `xds.cluster_name` request attribute, never from a header a client could forge. The
// stream stays open until the HTTP request ends; its end (half-close or cancellation) is
// what releases the request's concurrency slot. See README.md for the decisions.
package extproc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/skiff-dev/skiff/telemetry"
)

const (
	// AttributesNamespace is the key of ProcessingRequest.attributes under which Envoy's
	// ext_proc filter puts the attributes named in its request_attributes.
	AttributesNamespace = "envoy.filters.http.ext_proc"
	// ClusterAttribute is the request attribute naming the revision's Envoy cluster
	// ("namespace/revision").
	ClusterAttribute = "xds.cluster_name"
	// LBMetadataNamespace is the dynamic metadata namespace the cluster's override_host
	// load-balancing policy reads.
	LBMetadataNamespace = "envoy.lb"
	// DestinationEndpointKey is the key, inside LBMetadataNamespace, of the pod ("ip:port")
	// a request is pinned to; the same key Gateway API Inference Extension endpoint pickers use.
	DestinationEndpointKey = "x-gateway-destination-endpoint"

	// FailureHeader is on every answer the service gives in the destination's stead (a 503
	// for a timeout, a full queue, a deleted revision): its value is the failure's details,
	// e.g. DetailActivationTimeout. Skiff's own clients (eventing's dispatcher) read it to tell
	// the proxy's failures from the destination's.
	FailureHeader = "x-skiff-activation-failure"
	// DetailActivationTimeout is the details of the answer to a request whose revision did not
	// become ready within the activation timeout.
	DetailActivationTimeout = "skiff_activation_timeout"

	defaultActivationTimeout = 60 * time.Second
	defaultQueueDepth        = 1000
	// onDemandInterval is the per-revision debounce of Config.OnDemand.
	onDemandInterval = time.Second
)

// Revision is what the control plane tells the service about one revision's cluster.
type Revision struct {
	// ContainerConcurrency is the revision's containerConcurrency: the most requests one pod
	// may have in flight; 0 means unlimited (no pinning, Envoy load-balances).
	ContainerConcurrency int `json:"containerConcurrency,omitempty"`
	// Timeout bounds how long a request may wait for capacity: the revision's timeoutSeconds.
	// The effective bound is min(Timeout, Config.ActivationTimeout); 0 means the latter.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Endpoints are the "ip:port" of the revision's pods that are ready and whose EDS update
	// every proxy has ACKed.
	Endpoints []string `json:"endpoints,omitempty"`
}

// Config configures a Server.
type Config struct {
	// Logger receives the service's logs; slog.Default() when nil.
	Logger *slog.Logger
	// ActivationTimeout caps how long a request waits for capacity (default 60s); the
	// effective bound is min(Revision.Timeout, ActivationTimeout). The ext_proc filter's
	// message_timeout must be longer, or Envoy answers 504 before the service does.
	ActivationTimeout time.Duration
	// QueueDepth bounds the requests waiting per revision (default 1000); beyond it a request
	// is answered 503 at once.
	QueueDepth int
	// OnDemand is called when a request has to wait for a revision with no free capacity, so
	// that the autoscaler scales it up now (Knative's activator poke). It is called outside the
	// service's locks, on the request's goroutine, at most once per second per revision; it
	// should not block. May be nil.
	OnDemand func(cluster string)
	// Tracer, when set, records each request's wait for capacity as a span (Knative's
	// activator "throttler_try"), a child of the trace context the proxy sends in the
	// stream's gRPC metadata.
	Tracer trace.TracerProvider
	// Metrics, when set, records the requests held and in flight (Knative's activator
	// metrics) and how long each was held.
	Metrics *telemetry.ActivatorMetrics
}

// RevisionStats is the service's view of one revision's cluster.
type RevisionStats struct {
	// Held is the number of requests waiting for capacity: the autoscaler adds it to the
	// proxy's own concurrency, since held requests have not reached the cluster yet.
	Held int
	// InFlight is the number of requests released to the revision whose stream is still open.
	InFlight int
	// Total counts every request the service saw for the revision (released or failed).
	Total uint64
}

// Server is the ext_proc service. Create it with New, serve it with Register; it starts no
// goroutines of its own: a request is handled entirely on its gRPC handler goroutine.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	log               *slog.Logger
	activationTimeout time.Duration
	queueDepth        int
	onDemand          func(cluster string)
	tracer            trace.Tracer
	metrics           *telemetry.ActivatorMetrics

	mu   sync.Mutex
	revs map[string]*revision
}

// New returns a Server with cfg's defaults filled in.
func New(cfg Config) *Server {
	s := &Server{
		log:               cfg.Logger,
		activationTimeout: cmp.Or(cfg.ActivationTimeout, defaultActivationTimeout),
		queueDepth:        cmp.Or(cfg.QueueDepth, defaultQueueDepth),
		onDemand:          cfg.OnDemand,
		metrics:           cfg.Metrics,
		revs:              make(map[string]*revision),
	}
	if cfg.Tracer != nil {
		s.tracer = cfg.Tracer.Tracer(telemetry.ScopeActivator)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.activationTimeout < 0 {
		s.activationTimeout = defaultActivationTimeout
	}
	if s.queueDepth < 0 {
		s.queueDepth = defaultQueueDepth
	}
	return s
}

// Register serves s as envoy.service.ext_proc.v3.ExternalProcessor on g.
func (s *Server) Register(g *grpc.Server) {
	extprocv3.RegisterExternalProcessorServer(g, s)
}

// SetRevision records the current state of a revision's cluster ("namespace/revision") and
// releases, oldest first, as many held requests as the new endpoints have room for. The
// control plane calls it on every change.
func (s *Server) SetRevision(cluster string, r Revision) {
	if r.ContainerConcurrency < 0 {
		s.log.Warn("extproc: negative containerConcurrency treated as unlimited",
			"cluster", cluster, "containerConcurrency", r.ContainerConcurrency)
		r.ContainerConcurrency = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rev := s.revs[cluster]
	if rev == nil {
		rev = newRevision(cluster)
		s.revs[cluster] = rev
	}
	rev.known = true
	rev.cc = r.ContainerConcurrency
	rev.timeout = r.Timeout
	rev.setEndpointsLocked(r.Endpoints)
	rev.dispatchLocked()
}

// DeleteRevision forgets a revision's cluster; the requests held for it are answered 503.
// Requests already released finish normally.
func (s *Server) DeleteRevision(cluster string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rev := s.revs[cluster]
	if rev == nil {
		return
	}
	delete(s.revs, cluster)
	rev.gone = true
	rev.failAllLocked(&failure{
		status:  503,
		body:    fmt.Sprintf("skiff: revision %s was deleted while the request waited for it", cluster),
		details: "skiff_revision_deleted",
	})
}

// Stats returns a consistent snapshot of every revision the service knows or holds requests
// for, by cluster name.
func (s *Server) Stats() map[string]RevisionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]RevisionStats, len(s.revs))
	for name, rev := range s.revs {
		out[name] = RevisionStats{Held: rev.queue.Len(), InFlight: rev.inFlight, Total: rev.total}
	}
	return out
}

// Process handles one HTTP request's ext_proc stream: it answers the request-headers message
// when the request may proceed (or must fail), then keeps the stream, and so the request's
// slot, until the proxy closes it.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	req, err := stream.Recv()
	if err != nil {
		return ignoreEnd(ctx, err)
	}
	hdrs, ok := req.GetRequest().(*extprocv3.ProcessingRequest_RequestHeaders)
	if !ok || hdrs == nil {
		// Misconfigured filter (request headers not sent): nothing to gate on.
		s.log.Warn("extproc: first message is not request headers; passing the request through",
			"message", fmt.Sprintf("%T", req.GetRequest()))
		if err := s.sendPassThrough(stream, req); err != nil {
			return err
		}
		return s.drain(ctx, stream)
	}
	cluster := clusterOf(req)
	if cluster == "" {
		s.log.Warn("extproc: request without the xds.cluster_name attribute")
		return sendImmediate(stream, &failure{
			status: 500,
			body: "skiff: the proxy sent no " + ClusterAttribute + " attribute to the ext_proc service;" +
				" the ext_proc filter must set request_attributes [\"" + ClusterAttribute + "\"]",
			details: "skiff_missing_cluster_attribute",
		})
	}

	actx, end := s.startHold(ctx, cluster)
	rev, sl, f, err := s.admit(actx, cluster)
	end(f, err)
	if err != nil {
		return err
	}
	if f != nil {
		return sendImmediate(stream, f)
	}
	defer s.active(ctx, cluster)()
	defer s.release(rev, sl)
	if err := stream.Send(continueResponse(sl)); err != nil {
		return fmt.Errorf("extproc: send release for %s: %w", cluster, err)
	}
	return s.drain(ctx, stream)
}

// admit decides one request's fate: a slot now, a slot after waiting in the revision's queue,
// or a failure. err is non-nil only when the stream's context ended while waiting.
func (s *Server) admit(ctx context.Context, cluster string) (*revision, slot, *failure, error) {
	now := time.Now()
	s.mu.Lock()
	rev := s.revs[cluster]
	if rev == nil {
		rev = newRevision(cluster)
		s.revs[cluster] = rev
	}
	rev.total++
	if rev.queue.Len() == 0 {
		if sl, ok := rev.acquireLocked(); ok {
			s.mu.Unlock()
			return rev, sl, nil, nil
		}
	}
	poke := s.onDemand != nil && now.Sub(rev.lastDemand) >= onDemandInterval
	if poke {
		rev.lastDemand = now
	}
	if rev.queue.Len() >= s.queueDepth {
		f := &failure{
			status:  503,
			body:    fmt.Sprintf("skiff: too many requests queued for %s (limit %d)", cluster, s.queueDepth),
			details: "skiff_queue_full",
		}
		s.mu.Unlock()
		if poke {
			s.onDemand(cluster)
		}
		return rev, slot{}, f, nil
	}
	w := &waiter{done: make(chan struct{})}
	rev.enqueueLocked(w)
	wait := s.activationTimeout
	if rev.timeout > 0 && rev.timeout < wait {
		wait = rev.timeout
	}
	s.mu.Unlock()

	if poke {
		s.onDemand(cluster)
	}
	s.log.Debug("extproc: request held", "cluster", cluster, "timeout", wait)
	defer s.held(ctx, cluster, w, now)()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-w.done:
	case <-timer.C:
	case <-ctx.Done():
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch w.outcome {
	case outcomeGranted:
		if ctx.Err() != nil {
			// Granted and cancelled at once: give the slot to the next in line.
			rev.releaseLocked(w.slot)
			rev.dispatchLocked()
			s.dropIfIdleLocked(rev)
			return rev, slot{}, nil, fmt.Errorf("extproc: request for %s ended while held: %w", cluster, context.Cause(ctx))
		}
		return rev, w.slot, nil, nil
	case outcomeFailed:
		return rev, slot{}, w.failure, nil
	}
	rev.removeLocked(w)
	w.outcome = outcomeFailed
	if err := ctx.Err(); err != nil {
		s.dropIfIdleLocked(rev)
		return rev, slot{}, nil, fmt.Errorf("extproc: request for %s ended while held: %w", cluster, context.Cause(ctx))
	}
	s.dropIfIdleLocked(rev)
	return rev, slot{}, timeoutFailure(rev, wait), nil
}

// release gives back the slot of a released request whose stream ended.
func (s *Server) release(rev *revision, sl slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rev.releaseLocked(sl)
	rev.dispatchLocked()
	s.dropIfIdleLocked(rev)
}

// dropIfIdleLocked forgets an unknown revision (one that SetRevision never described) once no
// request refers to it, so that names the control plane never confirms do not accumulate.
func (s *Server) dropIfIdleLocked(rev *revision) {
	if rev.known || rev.gone || !rev.idleLocked() {
		return
	}
	if s.revs[rev.cluster] == rev {
		delete(s.revs, rev.cluster)
	}
	rev.gone = true
}

// drain keeps the stream open until the proxy ends it, answering any message a misconfigured
// filter sends so that the request is never stuck.
func (s *Server) drain(ctx context.Context, stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return ignoreEnd(ctx, err)
		}
		if err := s.sendPassThrough(stream, req); err != nil {
			return err
		}
	}
}

func (s *Server) sendPassThrough(stream extprocv3.ExternalProcessor_ProcessServer, req *extprocv3.ProcessingRequest) error {
	if req.GetObservabilityMode() {
		return nil
	}
	resp := passThrough(req)
	if resp == nil {
		return nil
	}
	if err := stream.Send(resp); err != nil {
		return fmt.Errorf("extproc: send pass-through: %w", err)
	}
	return nil
}

// ignoreEnd maps the normal ends of a stream (half-close, cancellation) to nil.
func ignoreEnd(ctx context.Context, err error) error {
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("extproc: receive: %w", err)
}

// clusterOf reads the xds.cluster_name attribute Envoy attached to the request.
func clusterOf(req *extprocv3.ProcessingRequest) string {
	attrs := req.GetAttributes()[AttributesNamespace]
	if attrs == nil {
		return ""
	}
	return attrs.GetFields()[ClusterAttribute].GetStringValue()
}

func timeoutFailure(rev *revision, wait time.Duration) *failure {
	if len(rev.endpoints) == 0 {
		return &failure{
			status:  503,
			body:    fmt.Sprintf("skiff: revision %s did not become ready within %s", rev.cluster, wait),
			details: DetailActivationTimeout,
		}
	}
	return &failure{
		status: 503,
		body: fmt.Sprintf("skiff: revision %s had no free capacity within %s (containerConcurrency %d, %d of %d pods busy)",
			rev.cluster, wait, rev.cc, rev.busyEndpointsLocked(), len(rev.endpoints)),
		details: "skiff_capacity_timeout",
	}
}

// continueResponse releases the request, pinned to sl's pod when it has one.
func continueResponse(sl slot) *extprocv3.ProcessingResponse {
	resp := &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{Status: extprocv3.CommonResponse_CONTINUE},
			},
		},
	}
	if sl.endpoint != "" {
		resp.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{
			LBMetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				DestinationEndpointKey: structpb.NewStringValue(sl.endpoint),
			}}),
		}}
	}
	return resp
}

func sendImmediate(stream extprocv3.ExternalProcessor_ProcessServer, f *failure) error {
	resp := &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ImmediateResponse{
			ImmediateResponse: &extprocv3.ImmediateResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode(f.status)},
				Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
					Header: &corev3.HeaderValue{Key: FailureHeader, RawValue: []byte(f.details)},
				}}},
				Body:    []byte(f.body),
				Details: f.details,
			},
		},
	}
	if err := stream.Send(resp); err != nil {
		return fmt.Errorf("extproc: send immediate response %d: %w", f.status, err)
	}
	return nil
}

// passThrough is the "change nothing" answer to any message other than the request headers.
func passThrough(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}
