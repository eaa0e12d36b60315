// Package extprocfilter is the gateway's Envoy external processing HTTP filter
// (envoy.filters.http.ext_proc): for each request it opens a gRPC
// ExternalProcessor.Process stream to the configured processor, sends the
// request headers (with the requested attributes) and applies the answer —
// header mutations, an immediate response, dynamic metadata — before the
// request goes on to the router. The stream stays open until the HTTP
// request is over (response sent or client gone), then is closed.
//
// The subset implemented is what Skiff uses: request headers only
// (response headers SKIP, bodies NONE, trailers SKIP), per-route and
// per-weighted-cluster ExtProcPerRoute{disabled}, failure_mode_allow,
// message_timeout / max_message_timeout, untyped metadata namespaces, and
// Envoy's ext_proc stats. Configuration asking for anything else is
// rejected (the listener is NACKed) rather than served differently from
// Envoy.
package extprocfilter

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/stats"
)

// Type URLs of the filter configuration and its per-route configuration.
const (
	ConfigTypeURL   = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
	PerRouteTypeURL = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"
)

// AttributesKey is the key of ProcessingRequest.attributes under which the
// filter puts the requested attributes (Envoy uses the filter's canonical
// name, whatever the HttpFilter is called).
const AttributesKey = "envoy.filters.http.ext_proc"

// DefaultMessageTimeout is Envoy's default message_timeout.
const DefaultMessageTimeout = 200 * time.Millisecond

// Factory builds ext_proc filters. It owns the gRPC connections to the
// external processors, shared by every filter it builds; Close releases them.
type Factory struct {
	pool *connPool
}

// NewFactory returns a Factory logging to logger (nil means slog.Default()).
func NewFactory(logger *slog.Logger) *Factory {
	if logger == nil {
		logger = slog.Default()
	}
	return &Factory{pool: newConnPool(logger)}
}

// Close closes every connection to an external processor. Requests still
// using a filter of this factory afterwards fail as if the processor were
// unreachable.
func (f *Factory) Close() { f.pool.closeAll() }

// ConfigTypes implements filter.Factory.
func (f *Factory) ConfigTypes() []string { return []string{ConfigTypeURL} }

// New implements filter.Factory. The filter uses its listener's clusters and
// stats from bc; with a zero bc it has a private stat store and can only use
// google_grpc.
func (f *Factory) New(bc filter.BuildContext, name string, config *anypb.Any) (filter.Filter, error) {
	var pb extprocv3.ExternalProcessor
	if err := config.UnmarshalTo(&pb); err != nil {
		return nil, fmt.Errorf("decoding ExternalProcessor: %w", err)
	}
	cfg, err := compile(&pb)
	if err != nil {
		return nil, err
	}
	if bc.Stats == nil {
		bc.Stats = stats.NewStore()
	}
	if bc.Logger == nil {
		bc.Logger = slog.Default()
	}
	if cfg.cluster != "" && bc.Clusters == nil {
		return nil, errors.New("grpc_service.envoy_grpc needs the gateway's cluster manager")
	}
	prefix := "http." + bc.StatPrefix + ".ext_proc."
	if cfg.statPrefix != "" {
		prefix += strings.TrimSuffix(cfg.statPrefix, ".") + "."
	}
	return &extProcFilter{
		name:     name,
		cfg:      cfg,
		clusters: bc.Clusters,
		pool:     f.pool,
		log:      bc.Logger.With("filter", name, "listener", bc.Listener),
		stats:    newFilterStats(bc.Stats, prefix),
	}, nil
}

// PerRouteConfigTypes implements filter.PerRouteValidator.
func (f *Factory) PerRouteConfigTypes() []string { return []string{PerRouteTypeURL} }

// ValidatePerRoute implements filter.PerRouteValidator: only
// ExtProcPerRoute{disabled: true|false} is supported; overrides are rejected.
func (f *Factory) ValidatePerRoute(config *anypb.Any) error {
	_, err := decodePerRoute(config)
	return err
}

// decodePerRoute decodes and checks an ExtProcPerRoute.
func decodePerRoute(a *anypb.Any) (*extprocv3.ExtProcPerRoute, error) {
	var pr extprocv3.ExtProcPerRoute
	if err := a.UnmarshalTo(&pr); err != nil {
		return nil, fmt.Errorf("decoding ExtProcPerRoute: %w", err)
	}
	if err := pr.ValidateAll(); err != nil {
		return nil, fmt.Errorf("ExtProcPerRoute: %w", err)
	}
	if pr.GetOverrides() != nil {
		return nil, errors.New("ExtProcPerRoute.overrides is not supported (only disabled)")
	}
	return &pr, nil
}

// config is a compiled ExternalProcessor.
type config struct {
	// cluster is grpc_service.envoy_grpc.cluster_name; target is
	// grpc_service.google_grpc.target_uri. Exactly one is set.
	cluster, target string
	authority       string
	initialMetadata []*corev3.HeaderValue

	failureModeAllow   bool
	sendRequestHeaders bool
	requestAttributes  []string
	messageTimeout     time.Duration
	maxMessageTimeout  time.Duration
	statPrefix         string
	routeCacheAction   extprocv3.ExternalProcessor_RouteCacheAction
	disableImmediate   bool
	// statusOnError replaces 500 as the status of local replies for
	// processor errors (status_on_error).
	statusOnError int

	forwardNamespaces        []string
	clusterForwardNamespaces []string
	receiveNamespaces        map[string]bool
}

// compile validates an ExternalProcessor and rejects what is not implemented.
func compile(pb *extprocv3.ExternalProcessor) (*config, error) {
	if err := pb.ValidateAll(); err != nil {
		return nil, err
	}
	c := &config{
		failureModeAllow:   pb.GetFailureModeAllow(),
		sendRequestHeaders: true,
		requestAttributes:  pb.GetRequestAttributes(),
		messageTimeout:     DefaultMessageTimeout,
		statPrefix:         pb.GetStatPrefix(),
		routeCacheAction:   pb.GetRouteCacheAction(),
		disableImmediate:   pb.GetDisableImmediateResponse(),
		statusOnError:      500,
		receiveNamespaces:  map[string]bool{},
	}
	var unsupported []string
	if pb.GetHttpService() != nil {
		unsupported = append(unsupported, "http_service")
	}
	if pb.GetObservabilityMode() {
		unsupported = append(unsupported, "observability_mode")
	}
	if pb.GetMutationRules() != nil {
		unsupported = append(unsupported, "mutation_rules")
	}
	if pb.GetForwardRules() != nil {
		unsupported = append(unsupported, "forward_rules")
	}
	if pb.GetAllowModeOverride() {
		unsupported = append(unsupported, "allow_mode_override")
	}
	if pb.GetProcessingRequestModifier() != nil {
		unsupported = append(unsupported, "processing_request_modifier")
	}
	if pb.GetOnProcessingResponse() != nil {
		unsupported = append(unsupported, "on_processing_response")
	}
	if mo := pb.GetMetadataOptions(); mo != nil {
		if len(mo.GetForwardingNamespaces().GetTyped()) > 0 || len(mo.GetReceivingNamespaces().GetTyped()) > 0 || len(mo.GetClusterMetadataForwardingNamespaces().GetTyped()) > 0 {
			unsupported = append(unsupported, "metadata_options typed namespaces")
		}
		c.forwardNamespaces = mo.GetForwardingNamespaces().GetUntyped()
		c.clusterForwardNamespaces = mo.GetClusterMetadataForwardingNamespaces().GetUntyped()
		for _, ns := range mo.GetReceivingNamespaces().GetUntyped() {
			c.receiveNamespaces[ns] = true
		}
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("not supported by the gateway's ext_proc filter: %s", strings.Join(unsupported, ", "))
	}

	gs := pb.GetGrpcService()
	if gs == nil {
		return nil, errors.New("grpc_service is required")
	}
	switch t := gs.GetTargetSpecifier().(type) {
	case *corev3.GrpcService_EnvoyGrpc_:
		if t.EnvoyGrpc.GetRetryPolicy() != nil {
			return nil, errors.New("grpc_service.envoy_grpc.retry_policy is not supported")
		}
		c.cluster = t.EnvoyGrpc.GetClusterName()
		c.authority = t.EnvoyGrpc.GetAuthority()
		if c.authority == "" {
			c.authority = c.cluster // Envoy's default :authority is the cluster name
		}
	case *corev3.GrpcService_GoogleGrpc_:
		g := t.GoogleGrpc
		if g.GetChannelCredentials() != nil || len(g.GetCallCredentials()) > 0 || g.GetCallCredentialsPlugin() != nil {
			return nil, errors.New("grpc_service.google_grpc credentials are not supported (plaintext only)")
		}
		c.target = g.GetTargetUri()
	default:
		return nil, fmt.Errorf("grpc_service target %T is not supported", t)
	}
	c.initialMetadata = gs.GetInitialMetadata()

	pm := pb.GetProcessingMode()
	switch pm.GetRequestHeaderMode() {
	case extprocv3.ProcessingMode_DEFAULT, extprocv3.ProcessingMode_SEND:
	case extprocv3.ProcessingMode_SKIP:
		c.sendRequestHeaders = false
	}
	if pm.GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP {
		return nil, fmt.Errorf("processing_mode.response_header_mode %s is not supported (only SKIP; DEFAULT means SEND)", pm.GetResponseHeaderMode())
	}
	if pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE || pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE {
		return nil, errors.New("processing_mode body modes other than NONE are not supported")
	}
	if pm.GetRequestTrailerMode() == extprocv3.ProcessingMode_SEND || pm.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND {
		return nil, errors.New("processing_mode trailer mode SEND is not supported")
	}

	if pb.GetMessageTimeout() != nil {
		c.messageTimeout = pb.GetMessageTimeout().AsDuration()
	}
	if pb.GetMaxMessageTimeout() != nil {
		c.maxMessageTimeout = pb.GetMaxMessageTimeout().AsDuration()
	}
	if pb.GetDisableClearRouteCache() {
		if c.routeCacheAction != extprocv3.ExternalProcessor_DEFAULT {
			return nil, errors.New("disable_clear_route_cache and route_cache_action can not be set to none-default at the same time")
		}
		c.routeCacheAction = extprocv3.ExternalProcessor_RETAIN
	}
	if s := pb.GetStatusOnError(); s != nil && s.GetCode() != 0 {
		c.statusOnError = int(s.GetCode())
	}
	for i, a := range c.requestAttributes {
		if strings.TrimSpace(a) == "" {
			return nil, fmt.Errorf("request_attributes[%d]: empty attribute", i)
		}
	}
	return c, nil
}

// filterStats are Envoy's http.<prefix>.ext_proc.* counters.
type filterStats struct {
	streamsStarted, streamMsgsSent, streamMsgsReceived, spuriousMsgsReceived *stats.Counter
	streamsClosed, streamsFailed, failureModeAllowed, messageTimeouts        *stats.Counter
	rejectedHeaderMutations, overrideTimeoutReceived, overrideTimeoutIgnored *stats.Counter
	clearRouteCacheIgnored, clearRouteCacheDisabled                          *stats.Counter
}

func newFilterStats(s *stats.Store, p string) *filterStats {
	return &filterStats{
		streamsStarted:          s.Counter(p + "streams_started"),
		streamMsgsSent:          s.Counter(p + "stream_msgs_sent"),
		streamMsgsReceived:      s.Counter(p + "stream_msgs_received"),
		spuriousMsgsReceived:    s.Counter(p + "spurious_msgs_received"),
		streamsClosed:           s.Counter(p + "streams_closed"),
		streamsFailed:           s.Counter(p + "streams_failed"),
		failureModeAllowed:      s.Counter(p + "failure_mode_allowed"),
		messageTimeouts:         s.Counter(p + "message_timeouts"),
		rejectedHeaderMutations: s.Counter(p + "rejected_header_mutations"),
		overrideTimeoutReceived: s.Counter(p + "override_message_timeout_received"),
		overrideTimeoutIgnored:  s.Counter(p + "override_message_timeout_ignored"),
		clearRouteCacheIgnored:  s.Counter(p + "clear_route_cache_ignored"),
		clearRouteCacheDisabled: s.Counter(p + "clear_route_cache_disabled"),
	}
}
