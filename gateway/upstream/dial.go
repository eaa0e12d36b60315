package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Protocol is the HTTP protocol used towards a cluster's hosts.
type Protocol int

const (
	// HTTP1 is HTTP/1.1.
	HTTP1 Protocol = iota
	// HTTP2 is HTTP/2 with prior knowledge over cleartext (h2c).
	HTTP2
	// Downstream uses the downstream request's protocol.
	Downstream
)

// ConnectError is returned by a cluster's transports when a connection to a
// host could not be established (Envoy's "connection failure").
type ConnectError struct {
	Host    string
	Timeout bool
	Err     error
}

// Error implements error.
func (e *ConnectError) Error() string {
	return fmt.Sprintf("connecting to %s: %v", e.Host, e.Err)
}

// Unwrap returns the dial error.
func (e *ConnectError) Unwrap() error { return e.Err }

// Transport returns the round tripper for a request whose downstream used
// HTTP major version downstreamMajor.
func (c *Cluster) Transport(downstreamMajor int) http.RoundTripper {
	switch c.protocol {
	case HTTP2:
		return c.h2
	case Downstream:
		if downstreamMajor == 2 {
			return c.h2
		}
	}
	return c.h1
}

func (c *Cluster) dialer() *net.Dialer {
	return &net.Dialer{Timeout: c.connectTimeout, KeepAlive: 30 * time.Second}
}

func (c *Cluster) newTransport(h2 bool) *http.Transport {
	var p http.Protocols
	if h2 {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	return &http.Transport{
		DialContext:           c.dial(c.dialer(), h2),
		Protocols:             &p,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
}

// dial connects to a host of the cluster, with TLS (offering h2 or http/1.1 by ALPN unless
// the transport socket names protocols) when the cluster has a TLS transport socket; the
// transports then speak HTTP over the TLS connection as over a cleartext one.
func (c *Cluster) dial(d *net.Dialer, h2 bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var host *Host
		for _, h := range c.Hosts() {
			if h.Address == addr {
				host = h
				break
			}
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err // the request went away; not the host's fault
			}
			c.st.cxConnectFail.Inc()
			if host != nil {
				host.cxConnectFail.Add(1)
			}
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			if timeout {
				c.st.cxConnectTimeout.Inc()
			}
			return nil, &ConnectError{Host: addr, Timeout: timeout, Err: err}
		}
		if c.tls != nil {
			cfg := c.tls.Clone()
			if len(cfg.NextProtos) == 0 {
				cfg.NextProtos = []string{"http/1.1"}
				if h2 {
					cfg.NextProtos = []string{"h2"}
				}
			}
			tc := tls.Client(conn, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				c.st.cxConnectFail.Inc()
				if host != nil {
					host.cxConnectFail.Add(1)
				}
				return nil, &ConnectError{Host: addr, Err: err}
			}
			conn = tc
		}
		c.st.cxTotal.Inc()
		c.st.cxActive.Inc()
		if host != nil {
			host.cxActive.Add(1)
		}
		return &countedConn{Conn: conn, done: func() {
			c.st.cxActive.Dec()
			if host != nil {
				host.cxActive.Add(-1)
			}
		}}, nil
	}
}

type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

// NetConn returns the connection counted, whose socket h1.Transport peeks at.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}
