// Package route compiles Envoy RouteConfiguration resources into tables and
// matches requests against them the way Envoy does: virtual host by domain
// (exact, then suffix wildcard, then prefix wildcard, longest first, then
// "*"), then the first route of that virtual host whose match applies.
package route

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// DefaultTimeout is Envoy's default route timeout.
const DefaultTimeout = 15 * time.Second

// Table is a compiled RouteConfiguration.
type Table struct {
	// Name is the RouteConfiguration name.
	Name string

	exact      map[string]*VirtualHost
	suffixes   []wildcard // longest first
	prefixes   []wildcard // longest first
	star       *VirtualHost
	ignorePort bool
	// scope, when set, makes this a scoped table: it selects the table of a request's
	// scope by the request's host (see NewScoped).
	scope func(host string) *Table

	// RequestHeadersToAdd, RequestHeadersToRemove, ResponseHeadersToAdd and
	// ResponseHeadersToRemove come from the RouteConfiguration level.
	Headers HeaderOps
}

type wildcard struct {
	affix string
	vh    *VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name            string
	Routes          []*Route
	Retry           *RetryPolicy
	PerFilterConfig map[string]*anypb.Any
	Headers         HeaderOps
}

// ActionKind says what a route does with a matched request.
type ActionKind int

const (
	// ActionForward proxies to a cluster.
	ActionForward ActionKind = iota
	// ActionDirect answers with a fixed response.
	ActionDirect
	// ActionRedirect answers with a redirect.
	ActionRedirect
)

// WeightedCluster is one target of a weighted_clusters action.
type WeightedCluster struct {
	Name            string
	Weight          uint32
	PerFilterConfig map[string]*anypb.Any
	Headers         HeaderOps
}

// RetryPolicy is a route's retry_policy.
type RetryPolicy struct {
	// On is the set of retry_on conditions (e.g. "connect-failure", "reset").
	On map[string]bool
	// NumRetries is the number of retries after the first attempt.
	NumRetries int
	// PerTryTimeout bounds each attempt until its response starts; zero means only the
	// route timeout applies.
	PerTryTimeout time.Duration
	// PerTryIdleTimeout bounds the time an attempt may go without the upstream sending
	// anything, before its response starts and after; zero means none.
	PerTryIdleTimeout time.Duration
	// RetriableStatusCodes are the codes retried under "retriable-status-codes".
	RetriableStatusCodes map[int]bool
	// BaseInterval and MaxInterval shape the backoff between retries.
	BaseInterval, MaxInterval time.Duration
}

// DirectResponse is a direct_response action.
type DirectResponse struct {
	Status int
	Body   string
}

// Redirect is a redirect action.
type Redirect struct {
	Scheme, Host, Path, PrefixRewrite string
	Port                              uint32
	Status                            int
	StripQuery                        bool
}

// HeaderValue is one header to add.
type HeaderValue struct {
	Name, Value string
	Append      bool
	// IfAbsent adds the header only when the request has none (ADD_IF_ABSENT).
	IfAbsent bool
	// format is Value's substitution formatters, nil for a literal value.
	format headerFormat
}

// HeaderOps are header additions and removals at one level of the configuration.
type HeaderOps struct {
	RequestAdd     []HeaderValue
	RequestRemove  []string
	ResponseAdd    []HeaderValue
	ResponseRemove []string
}

// Route is a compiled route.
type Route struct {
	Name string
	Kind ActionKind

	// Cluster is the single target cluster, when not weighted.
	Cluster string
	// ClusterHeader names a request header holding the target cluster.
	ClusterHeader string
	// Weighted are the weighted targets; TotalWeight is their sum.
	Weighted    []WeightedCluster
	TotalWeight uint64

	// Timeout is the whole-request upstream timeout; zero disables it.
	Timeout time.Duration
	Retry   *RetryPolicy

	PrefixRewrite   string
	RegexRewrite    *regexp.Regexp
	RegexSubstitute string
	HostRewrite     string
	AutoHostRewrite bool

	Direct   *DirectResponse
	Redirect *Redirect

	Metadata        *corev3.Metadata
	PerFilterConfig map[string]*anypb.Any
	Headers         HeaderOps

	match matcher
}

// Match finds the virtual host and route for host and r. Either may be nil
// when nothing matches.
func (t *Table) Match(host string, r *http.Request) (*VirtualHost, *Route) {
	if t.scope != nil {
		sub := t.scope(host)
		if sub == nil {
			return nil, nil
		}
		return sub.Match(host, r)
	}
	vh := t.virtualHost(host)
	if vh == nil {
		return nil, nil
	}
	for _, rt := range vh.Routes {
		if rt.match.matches(r) {
			return vh, rt
		}
	}
	return vh, nil
}

func (t *Table) virtualHost(host string) *VirtualHost {
	host = strings.ToLower(host)
	if t.ignorePort {
		host = StripPort(host)
	}
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	for _, w := range t.suffixes {
		if len(host) > len(w.affix) && strings.HasSuffix(host, w.affix) {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if len(host) > len(w.affix) && strings.HasPrefix(host, w.affix) {
			return w.vh
		}
	}
	return t.star
}

// StripPort removes a trailing ":port" from host, keeping IPv6 brackets.
func StripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return host
}

// NewScoped returns the table of an HTTP connection manager with scoped routes (SRDS):
// each request is matched against the table lookup returns for its host (the scope key
// Envoy builds from the :authority header, compared exactly), or matches nothing when there
// is none. A scoped table has no header operations of its own, so the RouteConfiguration-level
// header operations of a scope's table are not applied (those of its virtual hosts, routes
// and clusters are); Skiff's control plane sets none there.
func NewScoped(name string, lookup func(host string) *Table) *Table {
	return &Table{Name: name, scope: lookup}
}

// Compile validates rc and compiles it into a Table. Any feature the gateway
// does not implement is an error, so the configuration is NACKed rather than
// silently served differently from Envoy.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	if err := rc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	if rc.GetVhds() != nil {
		return nil, fmt.Errorf("route configuration %q: vhds is not supported", rc.GetName())
	}
	t := &Table{Name: rc.GetName(), exact: map[string]*VirtualHost{}, ignorePort: rc.GetIgnorePortInHostMatching()}
	var err error
	if t.Headers, err = headerOps(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove()); err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	seen := map[string]string{}
	for i, v := range rc.GetVirtualHosts() {
		vh, err := compileVirtualHost(v)
		if err != nil {
			return nil, fmt.Errorf("route configuration %q: virtual_hosts[%d] (%s): %w", rc.GetName(), i, v.GetName(), err)
		}
		for _, d := range v.GetDomains() {
			d = strings.ToLower(d)
			if prev, dup := seen[d]; dup {
				return nil, fmt.Errorf("route configuration %q: only unique values for domains are permitted; domain %q is in virtual hosts %q and %q", rc.GetName(), d, prev, v.GetName())
			}
			seen[d] = v.GetName()
			switch {
			case d == "*":
				t.star = vh
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wildcard{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wildcard{d[:len(d)-1], vh})
			default:
				t.exact[d] = vh
			}
		}
	}
	byLen := func(ws []wildcard) {
		sort.SliceStable(ws, func(i, j int) bool { return len(ws[i].affix) > len(ws[j].affix) })
	}
	byLen(t.suffixes)
	byLen(t.prefixes)
	return t, nil
}

func compileVirtualHost(v *routev3.VirtualHost) (*VirtualHost, error) {
	vh := &VirtualHost{Name: v.GetName(), PerFilterConfig: v.GetTypedPerFilterConfig()}
	if v.GetRequireTls() != routev3.VirtualHost_NONE {
		return nil, errors.New("require_tls is not supported")
	}
	if len(v.GetVirtualClusters()) > 0 || len(v.GetRateLimits()) > 0 || v.GetCors() != nil {
		return nil, errors.New("virtual_clusters, rate_limits and cors are not supported")
	}
	var err error
	if vh.Headers, err = headerOps(v.GetRequestHeadersToAdd(), v.GetRequestHeadersToRemove(), v.GetResponseHeadersToAdd(), v.GetResponseHeadersToRemove()); err != nil {
		return nil, err
	}
	if v.GetRetryPolicy() != nil {
		if vh.Retry, err = compileRetry(v.GetRetryPolicy()); err != nil {
			return nil, err
		}
	}
	for i, r := range v.GetRoutes() {
		rt, err := compileRoute(r, vh)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] (%s): %w", i, r.GetName(), err)
		}
		vh.Routes = append(vh.Routes, rt)
	}
	return vh, nil
}

func compileRoute(r *routev3.Route, vh *VirtualHost) (*Route, error) {
	rt := &Route{Name: r.GetName(), Metadata: r.GetMetadata(), PerFilterConfig: r.GetTypedPerFilterConfig()}
	m, err := compileMatch(r.GetMatch())
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	rt.match = m
	if rt.Headers, err = headerOps(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(), r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		return nil, err
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		rt.Kind = ActionForward
		if err := compileRouteAction(a.Route, rt, vh); err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
	case *routev3.Route_DirectResponse:
		rt.Kind = ActionDirect
		body, err := dataSource(a.DirectResponse.GetBody())
		if err != nil {
			return nil, fmt.Errorf("direct_response.body: %w", err)
		}
		rt.Direct = &DirectResponse{Status: int(a.DirectResponse.GetStatus()), Body: body}
	case *routev3.Route_Redirect:
		rt.Kind = ActionRedirect
		rd, err := compileRedirect(a.Redirect)
		if err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
		rt.Redirect = rd
	default:
		return nil, fmt.Errorf("action %T is not supported", a)
	}
	return rt, nil
}

func compileRouteAction(a *routev3.RouteAction, rt *Route, vh *VirtualHost) error {
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		rt.Cluster = cs.Cluster
	case *routev3.RouteAction_ClusterHeader:
		rt.ClusterHeader = cs.ClusterHeader
	case *routev3.RouteAction_WeightedClusters:
		for i, wc := range cs.WeightedClusters.GetClusters() {
			if wc.GetClusterHeader() != "" {
				return fmt.Errorf("weighted_clusters.clusters[%d].cluster_header is not supported", i)
			}
			h, err := headerOps(wc.GetRequestHeadersToAdd(), wc.GetRequestHeadersToRemove(), wc.GetResponseHeadersToAdd(), wc.GetResponseHeadersToRemove())
			if err != nil {
				return fmt.Errorf("weighted_clusters.clusters[%d]: %w", i, err)
			}
			w := wc.GetWeight().GetValue()
			rt.Weighted = append(rt.Weighted, WeightedCluster{Name: wc.GetName(), Weight: w, PerFilterConfig: wc.GetTypedPerFilterConfig(), Headers: h})
			rt.TotalWeight += uint64(w)
		}
		if rt.TotalWeight == 0 {
			return errors.New("weighted_clusters: sum of weights must be greater than 0")
		}
	default:
		return fmt.Errorf("cluster specifier %T is not supported", cs)
	}
	rt.Timeout = DefaultTimeout
	if a.GetTimeout() != nil {
		rt.Timeout = a.GetTimeout().AsDuration()
	}
	rt.Retry = vh.Retry
	if a.GetRetryPolicy() != nil {
		var err error
		if rt.Retry, err = compileRetry(a.GetRetryPolicy()); err != nil {
			return err
		}
	}
	rt.PrefixRewrite = a.GetPrefixRewrite()
	if rr := a.GetRegexRewrite(); rr != nil {
		re, err := regexp.Compile(rr.GetPattern().GetRegex())
		if err != nil {
			return fmt.Errorf("regex_rewrite.pattern: %w", err)
		}
		rt.RegexRewrite = re
		rt.RegexSubstitute = convertSubstitution(rr.GetSubstitution())
	}
	switch hr := a.GetHostRewriteSpecifier().(type) {
	case nil:
	case *routev3.RouteAction_HostRewriteLiteral:
		rt.HostRewrite = hr.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		rt.AutoHostRewrite = hr.AutoHostRewrite.GetValue()
	default:
		return fmt.Errorf("host rewrite %T is not supported", hr)
	}
	if a.GetClusterNotFoundResponseCode() != routev3.RouteAction_SERVICE_UNAVAILABLE && a.GetClusterNotFoundResponseCode() != routev3.RouteAction_NOT_FOUND {
		return errors.New("cluster_not_found_response_code is not supported")
	}
	return nil
}

// convertSubstitution turns RE2 "\1" backreferences into Go's "${1}".
func convertSubstitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			b.WriteString("${" + string(s[i+1]) + "}")
			i++
			continue
		}
		if s[i] == '$' {
			b.WriteString("$$")
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func compileRetry(p *routev3.RetryPolicy) (*RetryPolicy, error) {
	rp := &RetryPolicy{On: map[string]bool{}, NumRetries: 1, RetriableStatusCodes: map[int]bool{}, BaseInterval: 25 * time.Millisecond}
	for _, on := range strings.Split(p.GetRetryOn(), ",") {
		on = strings.TrimSpace(on)
		switch on {
		case "":
		case "connect-failure", "refused-stream", "reset", "5xx", "gateway-error", "retriable-status-codes":
			rp.On[on] = true
		default:
			// Other conditions (retriable-4xx, envoy-ratelimited, http3-post-connect-failure,
			// gRPC codes...) never trigger here; ignoring them only means fewer retries.
		}
	}
	if p.GetNumRetries() != nil {
		rp.NumRetries = int(p.GetNumRetries().GetValue())
	}
	if p.GetPerTryTimeout() != nil {
		rp.PerTryTimeout = p.GetPerTryTimeout().AsDuration()
	}
	if p.GetPerTryIdleTimeout() != nil {
		rp.PerTryIdleTimeout = p.GetPerTryIdleTimeout().AsDuration()
	}
	for _, c := range p.GetRetriableStatusCodes() {
		rp.RetriableStatusCodes[int(c)] = true
	}
	if b := p.GetRetryBackOff(); b != nil {
		rp.BaseInterval = b.GetBaseInterval().AsDuration()
		if b.GetMaxInterval() != nil {
			rp.MaxInterval = b.GetMaxInterval().AsDuration()
		}
	}
	if rp.MaxInterval == 0 {
		rp.MaxInterval = 10 * rp.BaseInterval
	}
	return rp, nil
}

func compileRedirect(r *routev3.RedirectAction) (*Redirect, error) {
	rd := &Redirect{Host: r.GetHostRedirect(), Port: r.GetPortRedirect(), StripQuery: r.GetStripQuery()}
	switch s := r.GetSchemeRewriteSpecifier().(type) {
	case nil:
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			rd.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		rd.Scheme = s.SchemeRedirect
	}
	switch p := r.GetPathRewriteSpecifier().(type) {
	case nil:
	case *routev3.RedirectAction_PathRedirect:
		rd.Path = p.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		rd.PrefixRewrite = p.PrefixRewrite
	default:
		return nil, fmt.Errorf("path rewrite %T is not supported", p)
	}
	switch r.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		rd.Status = http.StatusMovedPermanently
	case routev3.RedirectAction_FOUND:
		rd.Status = http.StatusFound
	case routev3.RedirectAction_SEE_OTHER:
		rd.Status = http.StatusSeeOther
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		rd.Status = http.StatusTemporaryRedirect
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		rd.Status = http.StatusPermanentRedirect
	}
	return rd, nil
}

func headerOps(reqAdd []*corev3.HeaderValueOption, reqRemove []string, respAdd []*corev3.HeaderValueOption, respRemove []string) (HeaderOps, error) {
	conv := func(in []*corev3.HeaderValueOption, formatters bool) ([]HeaderValue, error) {
		var out []HeaderValue
		for _, h := range in {
			v := h.GetHeader().GetValue()
			hv := HeaderValue{Name: h.GetHeader().GetKey(), Value: v}
			if strings.Contains(v, "%") {
				if !formatters {
					return nil, fmt.Errorf("header %q: substitution formatters in response header values are not supported", hv.Name)
				}
				f, err := parseHeaderFormat(v)
				if err != nil {
					return nil, fmt.Errorf("header %q: %w", hv.Name, err)
				}
				hv.format = f
			}
			hv.Append = h.GetAppendAction() == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			hv.IfAbsent = h.GetAppendAction() == corev3.HeaderValueOption_ADD_IF_ABSENT
			if h.GetAppend() != nil {
				hv.Append = h.GetAppend().GetValue()
			}
			out = append(out, hv)
		}
		return out, nil
	}
	var ops HeaderOps
	var err error
	if ops.RequestAdd, err = conv(reqAdd, true); err != nil {
		return ops, err
	}
	if ops.ResponseAdd, err = conv(respAdd, false); err != nil {
		return ops, err
	}
	ops.RequestRemove, ops.ResponseRemove = reqRemove, respRemove
	return ops, nil
}

// apply applies additions and removals to h, the headers of a request or response from
// the downstream peer at remoteAddr.
func (o HeaderOps) apply(h http.Header, add []HeaderValue, remove []string, remoteAddr string) {
	for _, n := range remove {
		h.Del(n)
	}
	for _, hv := range add {
		if hv.IfAbsent && len(h.Values(hv.Name)) > 0 {
			continue
		}
		v := hv.Value
		if hv.format != nil {
			v = hv.format.expand(h, remoteAddr)
		}
		if hv.Append {
			h.Add(hv.Name, v)
		} else {
			h.Set(hv.Name, v)
		}
	}
}

// ApplyRequest applies the request header operations to h, the headers of a request from
// the downstream peer at remoteAddr (host:port, for the formatters that name it).
func (o HeaderOps) ApplyRequest(h http.Header, remoteAddr string) {
	o.apply(h, o.RequestAdd, o.RequestRemove, remoteAddr)
}

// ApplyResponse applies the response header operations to h.
func (o HeaderOps) ApplyResponse(h http.Header) { o.apply(h, o.ResponseAdd, o.ResponseRemove, "") }

func dataSource(ds *corev3.DataSource) (string, error) {
	switch s := ds.GetSpecifier().(type) {
	case nil:
		return "", nil
	case *corev3.DataSource_InlineString:
		return s.InlineString, nil
	case *corev3.DataSource_InlineBytes:
		return string(s.InlineBytes), nil
	default:
		return "", fmt.Errorf("data source %T is not supported", s)
	}
}

// matcher is a compiled RouteMatch.
type matcher struct {
	kind          int // 0 prefix, 1 path, 2 regex, 3 path_separated_prefix
	value         string
	re            *regexp.Regexp
	caseSensitive bool
	headers       []headerMatcher
	grpc          bool
}

func compileMatch(m *routev3.RouteMatch) (matcher, error) {
	out := matcher{caseSensitive: true}
	if m.GetCaseSensitive() != nil {
		out.caseSensitive = m.GetCaseSensitive().GetValue()
	}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.value = 0, p.Prefix
	case *routev3.RouteMatch_Path:
		out.kind, out.value = 1, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return out, fmt.Errorf("safe_regex: %w", err)
		}
		out.kind, out.re = 2, re
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.kind, out.value = 3, p.PathSeparatedPrefix
	default:
		return out, fmt.Errorf("path specifier %T is not supported", p)
	}
	if !out.caseSensitive {
		out.value = strings.ToLower(out.value)
	}
	if len(m.GetQueryParameters()) > 0 || m.GetRuntimeFraction() != nil || m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 || m.GetFilterState() != nil {
		return out, errors.New("query_parameters, runtime_fraction, tls_context, dynamic_metadata and filter_state matchers are not supported")
	}
	out.grpc = m.GetGrpc() != nil
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatcher(h)
		if err != nil {
			return out, fmt.Errorf("headers[%d] (%s): %w", i, h.GetName(), err)
		}
		out.headers = append(out.headers, hm)
	}
	return out, nil
}

func (m matcher) matches(r *http.Request) bool {
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.RawPath
	}
	if !m.caseSensitive && m.kind != 2 {
		path = strings.ToLower(path)
	}
	switch m.kind {
	case 0:
		if !strings.HasPrefix(path, m.value) {
			return false
		}
	case 1:
		if path != m.value {
			return false
		}
	case 2:
		if !m.re.MatchString(path) {
			return false
		}
	case 3:
		if path != m.value && !strings.HasPrefix(path, m.value+"/") {
			return false
		}
	}
	if m.grpc && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return false
	}
	for _, h := range m.headers {
		if !h.matches(r) {
			return false
		}
	}
	return true
}

// headerMatcher is a compiled HeaderMatcher.
type headerMatcher struct {
	name   string
	invert bool
	// present: only presence matters; presentWant is the wanted presence.
	present, presentWant, missingOK bool
	str                             func(string) bool
}

func compileHeaderMatcher(h *routev3.HeaderMatcher) (headerMatcher, error) {
	hm := headerMatcher{name: strings.ToLower(h.GetName()), invert: h.GetInvertMatch(), missingOK: h.GetTreatMissingHeaderAsEmpty()}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		hm.present, hm.presentWant = true, true
	case *routev3.HeaderMatcher_PresentMatch:
		hm.present, hm.presentWant = true, s.PresentMatch
	case *routev3.HeaderMatcher_ExactMatch:
		v := s.ExactMatch
		hm.str = func(x string) bool { return x == v }
	case *routev3.HeaderMatcher_PrefixMatch:
		v := s.PrefixMatch
		hm.str = func(x string) bool { return strings.HasPrefix(x, v) }
	case *routev3.HeaderMatcher_SuffixMatch:
		v := s.SuffixMatch
		hm.str = func(x string) bool { return strings.HasSuffix(x, v) }
	case *routev3.HeaderMatcher_ContainsMatch:
		v := s.ContainsMatch
		hm.str = func(x string) bool { return strings.Contains(x, v) }
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := regexp.Compile("^(?:" + s.SafeRegexMatch.GetRegex() + ")$")
		if err != nil {
			return hm, err
		}
		hm.str = re.MatchString
	case *routev3.HeaderMatcher_StringMatch:
		f, err := StringMatcher(s.StringMatch)
		if err != nil {
			return hm, err
		}
		hm.str = f
	default:
		return hm, fmt.Errorf("header match %T is not supported", s)
	}
	return hm, nil
}

// StringMatcher compiles Envoy's StringMatcher: exact, prefix, suffix or contains, each with
// ignore_case, or safe_regex, which must match the whole value (and ignores ignore_case).
func StringMatcher(sm *matcherv3.StringMatcher) (func(string) bool, error) {
	fold := sm.GetIgnoreCase()
	norm := func(s string) string {
		if fold {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		v := norm(p.Exact)
		return func(x string) bool { return norm(x) == v }, nil
	case *matcherv3.StringMatcher_Prefix:
		v := norm(p.Prefix)
		return func(x string) bool { return strings.HasPrefix(norm(x), v) }, nil
	case *matcherv3.StringMatcher_Suffix:
		v := norm(p.Suffix)
		return func(x string) bool { return strings.HasSuffix(norm(x), v) }, nil
	case *matcherv3.StringMatcher_Contains:
		v := norm(p.Contains)
		return func(x string) bool { return strings.Contains(norm(x), v) }, nil
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return nil, fmt.Errorf("safe_regex %q: %w", p.SafeRegex.GetRegex(), err)
		}
		return re.MatchString, nil
	default:
		return nil, fmt.Errorf("string match %T is not supported", p)
	}
}

// headerValue returns a request header (or pseudo-header) the way Envoy sees
// it: multiple values joined with ",".
func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case ":authority", "host":
		return r.Host, r.Host != ""
	case ":method":
		return r.Method, true
	case ":path":
		return r.URL.RequestURI(), true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs := r.Header.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	return strings.Join(vs, ","), true
}

func (h headerMatcher) matches(r *http.Request) bool {
	v, ok := headerValue(r, h.name)
	if h.present {
		return (ok == h.presentWant) != h.invert
	}
	if !ok {
		if !h.missingOK {
			return false // a missing header never matches, even inverted
		}
		v = ""
	}
	return h.str(v) != h.invert
}

// PickWeighted picks a weighted cluster given n uniformly random in [0, TotalWeight).
func (r *Route) PickWeighted(n uint64) *WeightedCluster {
	for i := range r.Weighted {
		w := uint64(r.Weighted[i].Weight)
		if n < w {
			return &r.Weighted[i]
		}
		n -= w
	}
	return &r.Weighted[len(r.Weighted)-1]
}

// MatchedPrefix returns the part of path that a prefix_rewrite replaces: the
// matched prefix for prefix matches, the whole path for path matches.
func (r *Route) MatchedPrefix(path string) (string, bool) {
	switch r.match.kind {
	case 0, 3:
		if len(path) >= len(r.match.value) {
			return path[:len(r.match.value)], true
		}
	case 1:
		return path, true
	}
	return "", false
}
