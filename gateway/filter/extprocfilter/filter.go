package extprocfilter

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/upstream"
	"github.com/skiff-dev/skiff/telemetry"
)

// Envoy's response code details for ext_proc failures (the local replies
// themselves have no body).
const (
	detailsTimeout   = "ext_proc_error_per-message_timeout_exceeded"
	detailsGRPCError = "ext_proc_error_gRPC_error_%d"
)

// extProcFilter is one configured ext_proc filter.
type extProcFilter struct {
	name     string
	cfg      *config
	clusters *upstream.Manager
	pool     *connPool
	log      *slog.Logger
	stats    *filterStats
}

// Wrap implements filter.Filter.
func (f *extProcFilter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, next)
	})
}

// recvResult is one Recv outcome.
type recvResult struct {
	resp *extprocsvc.ProcessingResponse
	err  error
}

// stream is one Process call. Its receive goroutine is owned by the stream:
// close ends the call and waits for it.
type stream struct {
	client  extprocsvc.ExternalProcessor_ProcessClient
	cancel  context.CancelFunc
	msgs    chan recvResult
	wg      sync.WaitGroup
	release func()

	closed bool
	// failed and remoteClosed record how the processor ended the stream
	// (with an error status, or cleanly), for the streams_* stats.
	failed, remoteClosed bool
}

func (s *stream) recvLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		resp, err := s.client.Recv()
		select {
		case s.msgs <- recvResult{resp, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// closeStream half-closes and cancels the stream (the processor sees the
// end of the request), waits for the receive goroutine and counts
// streams_closed for a stream that had not already failed or been closed
// by the processor.
func (f *extProcFilter) closeStream(s *stream) {
	if s.closed {
		return
	}
	s.closed = true
	_ = s.client.CloseSend()
	s.cancel()
	s.wg.Wait()
	s.release()
	if !s.failed && !s.remoteClosed {
		f.stats.streamsClosed.Inc()
	}
}

// open starts a Process stream to the processor: a healthy host of the
// envoy_grpc cluster (picked by the cluster's load balancing policy), or
// the google_grpc target.
func (f *extProcFilter) open(ctx context.Context) (*stream, error) {
	target, direct := f.cfg.target, false
	connectTimeout := 5 * time.Second
	var tlsCfg *tls.Config
	done := func() {}
	if f.cfg.cluster != "" {
		cl := f.clusters.Get(f.cfg.cluster)
		if cl == nil {
			return nil, status.Errorf(codes.Unavailable, "ext_proc cluster %q not found", f.cfg.cluster)
		}
		host, err := cl.Pick(nil)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "ext_proc cluster %q: %v", f.cfg.cluster, err)
		}
		target, direct, tlsCfg = host.Address, true, cl.TLSConfig()
		if ct := cl.Raw().GetConnectTimeout(); ct != nil {
			connectTimeout = ct.AsDuration()
		}
		done = cl.StartRequest(host)
		cl.CountRequest(host)
	}
	cc, release, err := f.pool.get(target, f.cfg.authority, direct, connectTimeout, tlsCfg)
	if err != nil {
		done()
		return nil, status.Errorf(codes.Unavailable, "ext_proc connection to %s: %v", target, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	if len(f.cfg.initialMetadata) > 0 {
		kv := make([]string, 0, 2*len(f.cfg.initialMetadata))
		for _, h := range f.cfg.initialMetadata {
			v := h.GetValue()
			if len(h.GetRawValue()) > 0 {
				v = string(h.GetRawValue())
			}
			kv = append(kv, strings.ToLower(h.GetKey()), v)
		}
		sctx = metadata.AppendToOutgoingContext(sctx, kv...)
	}
	// A traced request's context goes to the processor in the stream's metadata, as
	// Envoy's gRPC client sends it.
	sctx = telemetry.InjectGRPC(sctx)
	client, err := extprocsvc.NewExternalProcessorClient(cc).Process(sctx)
	if err != nil {
		cancel()
		release()
		done()
		return nil, err
	}
	s := &stream{client: client, cancel: cancel, msgs: make(chan recvResult, 1), release: func() { release(); done() }}
	s.wg.Add(1)
	go s.recvLoop(sctx)
	return s, nil
}

// serve runs the filter for one request.
func (f *extProcFilter) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := r.Context()
	ri, _ := filter.RouteFromContext(ctx)
	if !f.cfg.sendRequestHeaders || f.disabledFor(ri) {
		next.ServeHTTP(w, r)
		return
	}
	st := filter.StateFromContext(ctx)
	timer := time.NewTimer(f.cfg.messageTimeout)
	defer timer.Stop()

	s, err := f.open(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away while connecting
		}
		f.stats.streamsFailed.Inc()
		f.onError(w, r, next, err)
		return
	}
	f.stats.streamsStarted.Inc()
	// The stream lives as long as the HTTP request: it is closed when the
	// response has been sent (next returned) or the client went away.
	defer f.closeStream(s)

	if err := s.client.Send(f.headersRequest(r, ri, st)); err != nil {
		// The stream is broken; Recv reports why.
		f.log.Debug("ext_proc send failed", "error", err)
	} else {
		f.stats.streamMsgsSent.Inc()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			f.stats.messageTimeouts.Inc()
			f.closeStream(s)
			if f.cfg.failureModeAllow {
				f.stats.failureModeAllowed.Inc()
				next.ServeHTTP(w, r)
				return
			}
			f.localReply(w, http.StatusGatewayTimeout, detailsTimeout)
			return
		case res := <-s.msgs:
			if res.err != nil {
				if errors.Is(res.err, io.EOF) {
					// Closed cleanly without an answer: as in Envoy, the
					// request goes on unprocessed.
					s.remoteClosed = true
					f.stats.streamsClosed.Inc()
					next.ServeHTTP(w, r)
					return
				}
				if ctx.Err() != nil {
					return
				}
				s.failed = true
				f.stats.streamsFailed.Inc()
				f.onError(w, r, next, res.err)
				return
			}
			resp := res.resp
			if d := resp.GetOverrideMessageTimeout(); d != nil {
				f.stats.overrideTimeoutReceived.Inc()
				if nd := d.AsDuration(); f.cfg.maxMessageTimeout > 0 && nd > 0 && nd <= f.cfg.maxMessageTimeout {
					timer.Reset(nd)
				} else {
					f.stats.overrideTimeoutIgnored.Inc()
				}
				continue
			}
			switch rr := resp.GetResponse().(type) {
			case *extprocsvc.ProcessingResponse_RequestHeaders:
				f.setDynamicMetadata(st, resp)
				f.stats.streamMsgsReceived.Inc()
				if err := f.applyHeadersResponse(r, st, rr.RequestHeaders.GetResponse()); err != nil {
					f.log.Debug("ext_proc mutation rejected", "error", err)
					f.closeStream(s)
					f.localReply(w, http.StatusInternalServerError, err.Error())
					return
				}
				timer.Stop()
				next.ServeHTTP(w, r)
				return
			case *extprocsvc.ProcessingResponse_ImmediateResponse:
				if f.cfg.disableImmediate {
					f.spurious(w, r, next, s)
					return
				}
				f.setDynamicMetadata(st, resp)
				f.stats.streamMsgsReceived.Inc()
				f.closeStream(s)
				f.immediateResponse(w, r, rr.ImmediateResponse)
				return
			default:
				f.spurious(w, r, next, s)
				return
			}
		}
	}
}

// spurious handles an unexpected message as current Envoy does
// (envoy.reloadable_features.ext_proc_fail_close_spurious_resp, on by
// default): the stream is closed; with failure_mode_allow the request goes
// on unprocessed, otherwise it fails with the error status (500).
func (f *extProcFilter) spurious(w http.ResponseWriter, r *http.Request, next http.Handler, s *stream) {
	f.stats.spuriousMsgsReceived.Inc()
	f.log.Warn("spurious ext_proc response message")
	f.closeStream(s)
	if f.cfg.failureModeAllow {
		f.stats.failureModeAllowed.Inc()
		next.ServeHTTP(w, r)
		return
	}
	f.localReply(w, f.cfg.statusOnError, "unhandled message")
}

// onError applies failure_mode_allow to a stream that could not be opened
// or failed: continue as if the filter were absent, or answer with a local
// reply (500 unless status_on_error says otherwise).
func (f *extProcFilter) onError(w http.ResponseWriter, r *http.Request, next http.Handler, err error) {
	f.log.Debug("ext_proc stream failed", "error", err, "failure_mode_allow", f.cfg.failureModeAllow)
	if f.cfg.failureModeAllow {
		f.stats.failureModeAllowed.Inc()
		next.ServeHTTP(w, r)
		return
	}
	f.localReply(w, f.cfg.statusOnError, fmt.Sprintf(detailsGRPCError, status.Code(err)))
}

// localReply sends Envoy's body-less ext_proc error reply.
func (f *extProcFilter) localReply(w http.ResponseWriter, code int, details string) {
	f.log.Debug("ext_proc local reply", "status", code, "details", details)
	w.WriteHeader(code)
}

// disabledFor reports whether the route (or the chosen weighted cluster)
// disables the filter with ExtProcPerRoute{disabled: true}.
func (f *extProcFilter) disabledFor(ri *filter.RouteInfo) bool {
	if ri == nil {
		return false
	}
	a, ok := ri.PerFilterConfig[f.name]
	if !ok {
		return false
	}
	inner, _, err := filter.UnwrapPerRoute(a)
	if err != nil || inner.GetTypeUrl() != PerRouteTypeURL {
		return false
	}
	pr, err := decodePerRoute(inner)
	if err != nil {
		return false // validated when the route configuration was accepted
	}
	return pr.GetDisabled()
}

// headersRequest builds the request_headers message: Envoy's pseudo-headers
// then the request headers (lower-case names, values in raw_value, as
// Envoy sends them), the requested attributes and forwarded metadata.
func (f *extProcFilter) headersRequest(r *http.Request, ri *filter.RouteInfo, st *filter.State) *extprocsvc.ProcessingRequest {
	hm := &corev3.HeaderMap{}
	add := func(k, v string) {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	add(":authority", r.Host)
	add(":path", r.URL.RequestURI())
	add(":method", r.Method)
	add(":scheme", scheme(r))
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range r.Header[k] {
			add(strings.ToLower(k), v)
		}
	}
	req := &extprocsvc.ProcessingRequest{
		Request: &extprocsvc.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvc.HttpHeaders{
			Headers:     hm,
			EndOfStream: r.Body == nil || r.Body == http.NoBody,
		}},
		ProtocolConfig: &extprocsvc.ProtocolConfiguration{
			RequestBodyMode:  extprocv3.ProcessingMode_NONE,
			ResponseBodyMode: extprocv3.ProcessingMode_NONE,
		},
	}
	if len(f.cfg.requestAttributes) > 0 {
		req.Attributes = map[string]*structpb.Struct{AttributesKey: f.attributes(r, ri)}
	}
	if md := f.forwardedMetadata(ri, st); md != nil {
		req.MetadataContext = md
	}
	return req
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// attributes evaluates the configured request_attributes. As in Envoy,
// unknown or unavailable attributes are left out; message-typed attributes
// (xds.route_metadata) are rendered as protobuf text format strings, which
// is what Envoy's CEL printer produces for them.
func (f *extProcFilter) attributes(r *http.Request, ri *filter.RouteInfo) *structpb.Struct {
	out := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	set := func(name, v string) { out.Fields[name] = structpb.NewStringValue(v) }
	for _, name := range f.cfg.requestAttributes {
		switch name {
		case "request.path":
			set(name, r.URL.RequestURI())
		case "request.url_path":
			set(name, r.URL.Path)
		case "request.host":
			set(name, r.Host)
		case "request.scheme":
			set(name, scheme(r))
		case "request.method":
			set(name, r.Method)
		case "request.query":
			set(name, r.URL.RawQuery)
		case "request.id":
			if v := r.Header.Get("X-Request-Id"); v != "" {
				set(name, v)
			}
		case "request.protocol":
			set(name, r.Proto)
		case "request.referer":
			if v := r.Header.Get("Referer"); v != "" {
				set(name, v)
			}
		case "request.useragent":
			if v := r.Header.Get("User-Agent"); v != "" {
				set(name, v)
			}
		case "source.address":
			set(name, r.RemoteAddr)
		case "destination.address":
			if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				set(name, a.String())
			}
		case "xds.cluster_name":
			if ri != nil && ri.Cluster != "" {
				set(name, ri.Cluster)
			}
		case "xds.route_name":
			if ri != nil {
				set(name, ri.Route)
			}
		case "xds.virtual_host_name":
			if ri != nil {
				set(name, ri.VirtualHost)
			}
		case "xds.route_metadata":
			if ri != nil {
				md := ri.Metadata
				if md == nil {
					md = &corev3.Metadata{}
				}
				set(name, prototext.MarshalOptions{}.Format(md))
			}
		}
	}
	return out
}

// forwardedMetadata is the metadata_context: the configured untyped
// namespaces of the request's dynamic metadata, then of the cluster's
// metadata for namespaces not found there.
func (f *extProcFilter) forwardedMetadata(ri *filter.RouteInfo, st *filter.State) *corev3.Metadata {
	if len(f.cfg.forwardNamespaces) == 0 && len(f.cfg.clusterForwardNamespaces) == 0 {
		return nil
	}
	out := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	if st != nil {
		dyn := st.DynamicMetadata().GetFilterMetadata()
		for _, ns := range f.cfg.forwardNamespaces {
			if v, ok := dyn[ns]; ok {
				out.FilterMetadata[ns] = v
			}
		}
	}
	if ri != nil && f.clusters != nil && len(f.cfg.clusterForwardNamespaces) > 0 {
		if cl := f.clusters.Get(ri.Cluster); cl != nil {
			cmd := cl.Raw().GetMetadata().GetFilterMetadata()
			for _, ns := range f.cfg.clusterForwardNamespaces {
				if _, taken := out.FilterMetadata[ns]; !taken && cmd[ns] != nil {
					out.FilterMetadata[ns] = cmd[ns]
				}
			}
		}
	}
	return out
}

// setDynamicMetadata stores the response's dynamic metadata in the request
// state, for the namespaces listed in metadata_options.receiving_namespaces
// (Envoy drops every other namespace, and all of them when none is listed).
func (f *extProcFilter) setDynamicMetadata(st *filter.State, resp *extprocsvc.ProcessingResponse) {
	dm := resp.GetDynamicMetadata()
	if dm == nil || st == nil {
		return
	}
	for ns, v := range dm.GetFields() {
		if !f.cfg.receiveNamespaces[ns] {
			f.log.Debug("ext_proc dynamic metadata for a namespace not configured for receiving", "namespace", ns)
			continue
		}
		if s := v.GetStructValue(); s != nil {
			st.SetDynamicMetadata(ns, s)
		}
	}
}

// applyHeadersResponse applies a CommonResponse to the request. An error
// makes the filter answer 500, as Envoy does for an invalid mutation.
func (f *extProcFilter) applyHeadersResponse(r *http.Request, st *filter.State, cr *extprocsvc.CommonResponse) error {
	if cr == nil {
		return nil
	}
	if err := f.mutateRequest(r, cr.GetHeaderMutation()); err != nil {
		return err
	}
	if cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE {
		switch m := cr.GetBodyMutation().GetMutation().(type) {
		case *extprocsvc.BodyMutation_Body:
			r.Body = io.NopCloser(bytes.NewReader(m.Body))
			r.ContentLength = int64(len(m.Body))
			r.TransferEncoding = nil
			r.Header.Del("Content-Length")
		case *extprocsvc.BodyMutation_ClearBody:
			if m.ClearBody {
				r.Body = http.NoBody
				r.ContentLength = 0
				r.TransferEncoding = nil
				r.Header.Del("Content-Length")
			}
		}
	}
	if st == nil {
		return nil
	}
	mutated := len(cr.GetHeaderMutation().GetSetHeaders()) > 0 || len(cr.GetHeaderMutation().GetRemoveHeaders()) > 0
	switch f.cfg.routeCacheAction {
	case extprocv3.ExternalProcessor_CLEAR:
		st.ClearRouteCache()
	case extprocv3.ExternalProcessor_RETAIN:
		if cr.GetClearRouteCache() {
			f.stats.clearRouteCacheDisabled.Inc()
		}
	default:
		if cr.GetClearRouteCache() {
			if mutated {
				st.ClearRouteCache()
			} else {
				f.stats.clearRouteCacheIgnored.Inc()
			}
		}
	}
	return nil
}

// requestMutable reports whether Envoy's default mutation rules let an
// external processor change a request header: everything but host,
// :authority, :scheme, :method, other pseudo-headers (except :path) and
// x-envoy-* headers.
func requestMutable(name string) bool {
	switch {
	case name == ":path":
		return true
	case name == "host", strings.HasPrefix(name, ":"), strings.HasPrefix(name, "x-envoy-"):
		return false
	}
	return true
}

// mutateRequest applies a HeaderMutation to the request headers with
// Envoy's semantics (append_action, or the legacy append flag, which
// defaults to overwriting).
func (f *extProcFilter) mutateRequest(r *http.Request, hm *extprocsvc.HeaderMutation) error {
	if hm == nil {
		return nil
	}
	for _, name := range hm.GetRemoveHeaders() {
		ln := strings.ToLower(name)
		if !httpguts.ValidHeaderFieldName(strings.TrimPrefix(ln, ":")) {
			f.stats.rejectedHeaderMutations.Inc()
			return errors.New("invalid character in remove_headers mutation")
		}
		if ln == ":path" || !requestMutable(ln) {
			f.stats.rejectedHeaderMutations.Inc()
			continue
		}
		r.Header.Del(ln)
	}
	for _, sh := range hm.GetSetHeaders() {
		h := sh.GetHeader()
		if h == nil {
			continue
		}
		if h.GetValue() != "" && len(h.GetRawValue()) > 0 {
			f.stats.rejectedHeaderMutations.Inc()
			return errors.New("only one of value or raw_value in the HeaderValue message should be set")
		}
		v := h.GetValue()
		if len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		ln := strings.ToLower(h.GetKey())
		if !httpguts.ValidHeaderFieldName(strings.TrimPrefix(ln, ":")) || !httpguts.ValidHeaderFieldValue(v) {
			f.stats.rejectedHeaderMutations.Inc()
			return errors.New("invalid character in set_headers mutation")
		}
		if !requestMutable(ln) {
			f.stats.rejectedHeaderMutations.Inc()
			continue
		}
		if ln == ":path" {
			u, err := url.ParseRequestURI(v)
			if err != nil {
				f.stats.rejectedHeaderMutations.Inc()
				continue
			}
			r.URL.Path, r.URL.RawPath, r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
			r.RequestURI = v
			continue
		}
		applySet(r.Header, ln, v, sh)
	}
	return nil
}

// applySet sets one header per the HeaderValueOption's append semantics.
func applySet(h http.Header, name, value string, sh *corev3.HeaderValueOption) {
	exists := len(h.Values(name)) > 0
	switch sh.GetAppendAction() {
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if !exists {
			h.Add(name, value)
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		h.Set(name, value)
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if exists {
			h.Set(name, value)
		}
	default:
		if sh.GetAppend().GetValue() {
			h.Add(name, value)
		} else {
			h.Set(name, value)
		}
	}
}

// immediateResponse sends the processor's ImmediateResponse as a local
// reply: its status (200 when unset or below 200), headers and body. A gRPC
// request gets a trailers-only gRPC answer, as Envoy's local replies do.
func (f *extProcFilter) immediateResponse(w http.ResponseWriter, r *http.Request, ir *extprocsvc.ImmediateResponse) {
	code := int(ir.GetStatus().GetCode())
	if code < 200 {
		code = http.StatusOK
	}
	hdr := w.Header()
	body := ir.GetBody()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		gs := httpToGRPCStatus(code)
		if ir.GetGrpcStatus() != nil {
			gs = int(ir.GetGrpcStatus().GetStatus())
		}
		hdr.Set("Content-Type", "application/grpc")
		hdr.Set("Grpc-Status", strconv.Itoa(gs))
		if len(body) > 0 {
			hdr.Set("Grpc-Message", url.PathEscape(string(body)))
		}
		code, body = http.StatusOK, nil
	} else if len(body) > 0 {
		hdr.Set("Content-Type", "text/plain")
	}
	if len(body) > 0 {
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
	}
	if hm := ir.GetHeaders(); hm != nil {
		for _, name := range hm.GetRemoveHeaders() {
			if !strings.HasPrefix(name, ":") {
				hdr.Del(name)
			}
		}
		for _, sh := range hm.GetSetHeaders() {
			h := sh.GetHeader()
			v := h.GetValue()
			if len(h.GetRawValue()) > 0 {
				v = string(h.GetRawValue())
			}
			name := strings.ToLower(h.GetKey())
			if strings.HasPrefix(name, ":") || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(v) {
				f.stats.rejectedHeaderMutations.Inc()
				continue
			}
			applySet(hdr, name, v, sh)
		}
	}
	f.log.Debug("ext_proc immediate response", "status", code, "details", ir.GetDetails())
	w.WriteHeader(code)
	if len(body) > 0 {
		_, _ = w.Write(body)
	}
}

// httpToGRPCStatus is Envoy's HTTP status to gRPC status mapping.
func httpToGRPCStatus(code int) int {
	switch code {
	case 400:
		return int(codes.Internal)
	case 401:
		return int(codes.Unauthenticated)
	case 403:
		return int(codes.PermissionDenied)
	case 404:
		return int(codes.Unimplemented)
	case 429, 502, 503, 504:
		return int(codes.Unavailable)
	default:
		return int(codes.Unknown)
	}
}
