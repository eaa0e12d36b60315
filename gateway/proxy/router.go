package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/route"
)

// roundTripperFunc adapts roundTrip to http.RoundTripper for the ReverseProxy.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// router is the terminal filter (envoy.filters.http.router).
func (cm *ConnectionManager) router(w http.ResponseWriter, r *http.Request) {
	ri := infoFrom(r.Context())
	if st := filter.StateFromContext(r.Context()); st != nil && st.RouteCacheCleared() {
		cm.resolveRoute(r, ri, st)
	}
	rt := ri.route
	if rt == nil {
		cm.noRoute.Inc()
		cm.sendLocal(w, ri, &localReply{code: http.StatusNotFound, flag: "NR"})
		return
	}
	switch rt.Kind {
	case route.ActionDirect:
		cm.directResponse.Inc()
		cm.applyResponseHeaderOps(w.Header(), ri)
		cm.sendLocal(w, ri, &localReply{code: rt.Direct.Status, body: rt.Direct.Body})
		return
	case route.ActionRedirect:
		cm.redirects.Inc()
		cm.redirect(w, r, ri)
		return
	}
	cl := cm.opts.Clusters.Get(ri.clusterName)
	if cl == nil {
		cm.noCluster.Inc()
		cm.sendLocal(w, ri, &localReply{code: http.StatusServiceUnavailable, flag: "NC"})
		return
	}
	ri.cluster = cl
	ctx := r.Context()
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	ri.timeoutCtx = ctx
	cm.rp.ServeHTTP(w, r.WithContext(ctx))
}

func (cm *ConnectionManager) redirect(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	rd := ri.route.Redirect
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if rd.Scheme != "" {
		u.Scheme = rd.Scheme
	}
	if rd.Host != "" {
		u.Host = rd.Host
	}
	if rd.Port != 0 {
		u.Host = net.JoinHostPort(route.StripPort(u.Host), strconv.Itoa(int(rd.Port)))
	}
	if rd.Path != "" {
		u.Path = rd.Path
	} else if rd.PrefixRewrite != "" {
		if p, ok := ri.route.MatchedPrefix(r.URL.Path); ok {
			u.Path = rd.PrefixRewrite + strings.TrimPrefix(r.URL.Path, p)
		}
	}
	if rd.StripQuery {
		u.RawQuery = ""
	}
	code := rd.Status
	if code == 0 {
		code = http.StatusMovedPermanently
	}
	w.Header().Set("Location", u.String())
	cm.sendLocal(w, ri, &localReply{code: code})
}

// rewrite prepares the upstream request (ReverseProxy.Rewrite).
func (cm *ConnectionManager) rewrite(pr *httputil.ProxyRequest) {
	ri := infoFrom(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = "upstream.invalid" // set per attempt by roundTrip
	out.Host = pr.In.Host
	// ReverseProxy strips the X-Forwarded-* headers; the connection manager
	// already set them the way Envoy does.
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"} {
		if v := pr.In.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	rt := ri.route
	if rt.PrefixRewrite != "" {
		if p, ok := rt.MatchedPrefix(pr.In.URL.Path); ok {
			out.URL.Path = rt.PrefixRewrite + strings.TrimPrefix(pr.In.URL.Path, p)
			out.URL.RawPath = ""
		}
	} else if rt.RegexRewrite != nil {
		out.URL.Path = rt.RegexRewrite.ReplaceAllString(pr.In.URL.Path, rt.RegexSubstitute)
		out.URL.RawPath = ""
	}
	if rt.HostRewrite != "" {
		out.Host = rt.HostRewrite
	}
	// Most specific first, so the route configuration level wins, as in
	// Envoy with most_specific_header_mutations_wins unset.
	if ri.wc != nil {
		ri.wc.Headers.ApplyRequest(out.Header, pr.In.RemoteAddr)
	}
	rt.Headers.ApplyRequest(out.Header, pr.In.RemoteAddr)
	ri.vh.Headers.ApplyRequest(out.Header, pr.In.RemoteAddr)
	if t := cm.RouteTable(); t != nil {
		t.Headers.ApplyRequest(out.Header, pr.In.RemoteAddr)
	}
	if rt.Timeout > 0 {
		out.Header.Set("X-Envoy-Expected-Rq-Timeout-Ms", strconv.FormatInt(rt.Timeout.Milliseconds(), 10))
	}
	cm.injectTrace(pr.In.Context(), out.Header)
}

func (cm *ConnectionManager) applyResponseHeaderOps(h http.Header, ri *reqInfo) {
	if ri.wc != nil {
		ri.wc.Headers.ApplyResponse(h)
	}
	if ri.route != nil {
		ri.route.Headers.ApplyResponse(h)
	}
	if ri.vh != nil {
		ri.vh.Headers.ApplyResponse(h)
	}
	if t := cm.RouteTable(); t != nil {
		t.Headers.ApplyResponse(h)
	}
}

func (cm *ConnectionManager) modifyResponse(resp *http.Response) error {
	ri := infoFrom(resp.Request.Context())
	resp.Header.Set("X-Envoy-Upstream-Service-Time", strconv.FormatInt(ri.serviceTime.Milliseconds(), 10))
	cm.applyResponseHeaderOps(resp.Header, ri)
	return nil
}

func (cm *ConnectionManager) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ri := infoFrom(r.Context())
	if ri.badBody.Load() {
		// The upstream request failed because the downstream body is malformed.
		cm.sendCodecError(w, r, ri, http.StatusBadRequest)
		return
	}
	var lr *localReply
	if errors.As(err, &lr) {
		cm.sendLocal(w, ri, lr)
		return
	}
	if ri.timeoutCtx != nil && errors.Is(ri.timeoutCtx.Err(), context.DeadlineExceeded) {
		if ri.cluster != nil {
			ri.cluster.Counter("upstream_rq_timeout").Inc()
		}
		cm.sendLocal(w, ri, &localReply{code: http.StatusGatewayTimeout, body: BodyTimeout, flag: "UT"})
		return
	}
	if r.Context().Err() != nil {
		// The downstream went away.
		ri.flag("DC")
		ri.status = 499
		return
	}
	cm.opts.Logger.Debug("upstream error", "listener", cm.opts.Listener, "error", err)
	cm.sendLocal(w, ri, &localReply{code: http.StatusServiceUnavailable, body: BodyReset, flag: "UC"})
}
