// Command forwarded is a proxy-wasm HTTP filter that gives a request the
// Forwarded header (RFC 7239) Knative's queue-proxy gives it
// (knative.dev/serving pkg/queue/forwarded_shim.go): when the request has no
// Forwarded header and has any of X-Forwarded-For, X-Forwarded-Proto and
// X-Forwarded-Host, Forwarded gets one "for=" element per X-Forwarded-For
// entry (spaces trimmed; an entry containing ':' is written "[...]" in
// quotes, as an IPv6 address must be), the first element also carrying
// "host=" (X-Forwarded-Host) and "proto=" (X-Forwarded-Proto):
//
//	X-Forwarded-For: 127.0.0.1, ::1   X-Forwarded-Host: h   X-Forwarded-Proto: p
//	Forwarded: for=127.0.0.1;host=h;proto=p, for="[::1]"
//
// A Forwarded header the request already has is kept. X-Forwarded-By is
// ignored, as in Knative. Each header is read as its first value, as
// queue-proxy's http.Header.Get does.
//
// The control plane runs the filter only on the requests the route's
// Forwarded formatter cannot describe (see controlplane/xds ForwardedFilter),
// through Envoy's composite filter; it takes no configuration.
//
// The filter is built to .wasm with `make wasm`; see wasm-filters/README.md.
package main

import (
	"strings"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// The VM context is registered in init: a wasip1 c-shared module runs its
// package initialisers (_initialize), never main.
func init() {
	proxywasm.SetVMContext(&vmContext{})
}

func main() {}

type vmContext struct {
	types.DefaultVMContext
}

// NewPluginContext implements types.VMContext.
func (*vmContext) NewPluginContext(uint32) types.PluginContext {
	return &pluginContext{}
}

type pluginContext struct {
	types.DefaultPluginContext
}

// NewHttpContext implements types.PluginContext.
func (*pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{}
}

type httpContext struct {
	types.DefaultHttpContext
}

// OnHttpRequestHeaders implements types.HttpContext.
func (*httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	if v, err := proxywasm.GetHttpRequestHeader("forwarded"); err == nil && v != "" {
		return types.ActionContinue
	}
	xff := header("x-forwarded-for")
	xfp := header("x-forwarded-proto")
	xfh := header("x-forwarded-host")
	if xff == "" && xfp == "" && xfh == "" {
		return types.ActionContinue
	}
	fwd := Forwarded(xff, xfp, xfh)
	// Replace rather than add: an empty Forwarded the client sent counts as none,
	// as with queue-proxy's Header.Get/Set.
	if err := proxywasm.ReplaceHttpRequestHeader("forwarded", fwd); err != nil {
		proxywasm.LogErrorf("forwarded: setting the Forwarded header: %v", err)
	}
	return types.ActionContinue
}

// header returns the request header's (first) value, "" when absent.
func header(name string) string {
	v, err := proxywasm.GetHttpRequestHeader(name)
	if err != nil {
		return ""
	}
	return v
}

// Forwarded returns the Forwarded header queue-proxy builds from the
// X-Forwarded-For (xff), -Proto (xfp) and -Host (xfh) values, any of them
// possibly empty.
func Forwarded(xff, xfp, xfh string) string {
	var b strings.Builder
	// for=, ;host=, ;proto= and ", for=" with room for IPv6 quoting per entry.
	b.Grow(len(xff) + len(xfp) + len(xfh) + 13 + 9*(strings.Count(xff, ",")+1))
	first, rest, more := strings.Cut(xff, ",")
	first = strings.TrimSpace(first)
	if xff != "" {
		b.WriteString("for=")
		writeNode(&b, first)
	}
	if xfh != "" {
		if first != "" {
			b.WriteByte(';')
		}
		b.WriteString("host=")
		b.WriteString(xfh)
	}
	if xfp != "" {
		if first != "" || xfh != "" {
			b.WriteByte(';')
		}
		b.WriteString("proto=")
		b.WriteString(xfp)
	}
	// queue-proxy stops at the end of the list: a trailing ',' adds no element.
	for more && rest != "" {
		var node string
		node, rest, more = strings.Cut(rest, ",")
		b.WriteString(", for=")
		writeNode(&b, strings.TrimSpace(node))
	}
	return b.String()
}

// writeNode writes one X-Forwarded-For entry as a Forwarded node: an entry
// with a ':' is taken for an IPv6 address, which RFC 7239 quotes in brackets.
func writeNode(b *strings.Builder, node string) {
	if !strings.Contains(node, ":") {
		b.WriteString(node)
		return
	}
	b.WriteString(`"[`)
	b.WriteString(node)
	b.WriteString(`]"`)
}
