// Package proxyclient builds the HTTP client Skiff's own components use to reach
// Knative addresses (Service URLs, broker URLs): requests for hosts Skiff routes
// are sent to the proxy, keeping their Host, so they take the same path as a
// user's request — a scaled-to-zero revision is activated, traffic splits and
// containerConcurrency apply. Other URLs are dialled directly.
package proxyclient

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/client/h1"
	"github.com/skiff-dev/skiff/extproc"
)

// ClusterLocalSuffix is the suffix of the cluster-local names Skiff routes
// ({name}.{namespace}.svc.cluster.local).
const ClusterLocalSuffix = "svc.cluster.local"

// Config says which hosts go through the proxy and where it is.
type Config struct {
	// Domain is the serving domain: hosts equal to it or under it go to the proxy.
	Domain string
	// ProxyAddress returns the proxy's HTTP listener (host:port). It is asked
	// on every new connection, so it may change (e.g. a gateway that binds
	// an ephemeral port after the client is built).
	ProxyAddress func() string
	// LocalProxyAddress returns the proxy's cluster-local listener (host:port), which alone
	// serves cluster-local names ({name}.{namespace}.svc.cluster.local); nil sends them to
	// ProxyAddress too.
	LocalProxyAddress func() string
	// MaxIdleConnsPerHost bounds the kept-alive connections per host; zero means 256,
	// as deliveries to one subscriber run in parallel.
	MaxIdleConnsPerHost int
}

// Routed reports whether host (without port) is one the proxy routes for domain.
func Routed(domain, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, suffix := range []string{strings.ToLower(domain), ClusterLocalSuffix} {
		if suffix != "" && (host == suffix || strings.HasSuffix(host, "."+suffix)) {
			return true
		}
	}
	return false
}

// ClusterLocal reports whether host (without port) is a cluster-local name.
func ClusterLocal(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return strings.HasSuffix(host, "."+ClusterLocalSuffix)
}

// New returns a client whose connections to routed hosts are dialled to the
// proxy instead; the request line and Host header are left as they are.
func New(cfg Config) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // an HTTP_PROXY from the environment must not take Skiff's own hops elsewhere
	tr.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerHost
	if tr.MaxIdleConnsPerHost <= 0 {
		tr.MaxIdleConnsPerHost = 256
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, cfg.dialAddress(addr))
	}
	// Plain HTTP requests (every delivery of an event, through the proxy or not) are sent
	// and answered on the caller's goroutine; the rest (https, streamed bodies) through tr.
	return &http.Client{Transport: h1.New(tr, tr.DialContext)}
}

// dialAddress is where a connection to addr (host:port) goes: the proxy's local listener
// for a cluster-local name, its HTTP listener for another routed host, else addr itself.
func (c Config) dialAddress(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
	case c.LocalProxyAddress != nil && ClusterLocal(host):
		return c.LocalProxyAddress()
	case c.ProxyAddress != nil && Routed(c.Domain, host):
		return c.ProxyAddress()
	}
	return addr
}

// ProxyFailed reports whether an attempt made with a client from New failed in the proxy
// rather than at the destination, given the request and what Do returned: the request went to
// the proxy (a routed host) and the proxy could not be reached or its connection broke before
// it answered (refused or reset: a proxy starting or restarting; the proxy itself answers 503
// for an upstream that fails), or the proxy's activator answered that the destination's
// revision did not become ready in time. Such a failure says nothing about the destination;
// callers that count attempts (eventing's dispatcher) should wait and send again instead. A
// request whose own context ended (its timeout) is the destination's failure.
func (c Config) ProxyFailed(req *http.Request, resp *http.Response, err error) bool {
	if c.ProxyAddress == nil || !Routed(c.Domain, req.URL.Hostname()) {
		return false
	}
	if err != nil {
		return req.Context().Err() == nil
	}
	return resp != nil && resp.Header.Get(extproc.FailureHeader) == extproc.DetailActivationTimeout
}
