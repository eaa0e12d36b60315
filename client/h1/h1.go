// Package h1 is an HTTP/1.1 round tripper that writes plain requests and reads their
// responses on the calling goroutine, over kept-alive connections of its own, as Envoy's
// codec does on its worker thread. http.Transport hands each request to a write goroutine
// and each response from a read goroutine: two goroutine wake-ups per request. The
// gateway's upstream clusters and the broker's deliveries use it; what it does not take
// (upgrades, streamed bodies of unknown length, TLS) goes to an http.Transport. It writes
// the requests it takes itself, the same bytes as Request.Write without its costs per
// request (write.go).
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// Transport is an HTTP/1.1 round tripper. Plain requests (http scheme, no upgrade, no
// Expect, a body of known small length) are written and their responses read on the
// calling goroutine over kept-alive connections of its own. http.Transport hands each
// request to a write goroutine and each response from a read goroutine: two goroutine
// wake-ups per request, which at one request in flight were most of what the gateway
// added over a plain reverse proxy. Everything else (upgrades, streamed bodies of unknown
// length, https) goes to the fallback http.Transport.
type Transport struct {
	fallback    *http.Transport
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration

	mu    sync.Mutex
	idle  map[string][]*h1Conn
	swept time.Time // when put last closed the connections idle past idleTimeout
}

// h1MaxBody is the largest request body sent on the calling goroutine. The whole body is
// written before the response is read, so a body larger than what the sockets' buffers
// hold could block against an upstream that answers before reading it; bigger bodies and
// bodies of unknown length take http.Transport, which reads and writes concurrently.
const h1MaxBody = 32 << 10

// h1Max1xx bounds the informational responses read before the final one, as
// http.Transport does.
const h1Max1xx = 5

// New returns a Transport that dials its connections with dial and sends what it does
// not take to fallback. It keeps up to fallback.MaxIdleConnsPerHost idle connections per
// host (http.DefaultMaxIdleConnsPerHost when zero), each for fallback.IdleConnTimeout (no
// limit when zero). A connection dial returns that is not a syscall.Conn may offer one
// through a NetConn method (as *tls.Conn does); then an idle connection the host closed is
// noticed before it is used.
func New(fallback *http.Transport, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Transport {
	maxIdle := fallback.MaxIdleConnsPerHost
	if maxIdle <= 0 {
		maxIdle = http.DefaultMaxIdleConnsPerHost
	}
	idleTimeout := fallback.IdleConnTimeout
	if idleTimeout <= 0 {
		idleTimeout = time.Duration(math.MaxInt64)
	}
	return &Transport{
		fallback:    fallback,
		dial:        dial,
		maxIdle:     maxIdle,
		idleTimeout: idleTimeout,
		idle:        map[string][]*h1Conn{},
	}
}

// plain reports whether req can be sent on the calling goroutine.
func plain(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 ||
		req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" {
		return false
	}
	if bodyless(req) {
		return true
	}
	return req.ContentLength > 0 && req.ContentLength <= h1MaxBody
}

func bodyless(req *http.Request) bool { return req.Body == nil || req.Body == http.NoBody }

// replayable reports whether req may be sent again after a kept-alive connection turned
// out closed: http.Transport's rule, an idempotent method and no body.
func replayable(req *http.Request) bool {
	if !bodyless(req) {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !plain(req) || t.proxied(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	addr := hostPort(req.URL)
	for {
		pc, reused, err := t.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, err := pc.roundTrip(ctx, req)
		if err == nil {
			return resp, nil
		}
		pc.close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		// A kept-alive connection the host closed while idle: a request without a body
		// whose write failed never reached it, and an idempotent one without a body may
		// be sent again even if it did, as http.Transport would. A body already read
		// from the client cannot be sent again.
		var stale *staleConnError
		if reused && errors.As(err, &stale) && (replayable(req) || !stale.written && bodyless(req)) {
			continue
		}
		return nil, err
	}
}

// hostPort is the host and port to connect to for u, an http URL: port 80 when it names
// none, as http.Transport does.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// proxied reports whether the fallback's Proxy (HTTP_PROXY, say) sends req to a proxy,
// which only http.Transport speaks to.
func (t *Transport) proxied(req *http.Request) bool {
	if t.fallback.Proxy == nil {
		return false
	}
	u, err := t.fallback.Proxy(req)
	return err != nil || u != nil
}

// CloseIdleConnections closes the kept-alive connections of both transports.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*h1Conn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.close()
		}
	}
	t.fallback.CloseIdleConnections()
}

// get returns a kept-alive connection to addr that is still open, or a new one.
func (t *Transport) get(ctx context.Context, addr string) (*h1Conn, bool, error) {
	for {
		t.mu.Lock()
		list := t.idle[addr]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.mu.Unlock()
		if time.Since(pc.idleAt) < t.idleTimeout && pc.open() {
			return pc, true, nil
		}
		pc.close()
	}
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	pc := &h1Conn{t: t, addr: addr, conn: conn, br: bufio.NewReader(conn), bw: bufio.NewWriter(conn)}
	pc.raw = rawConn(conn)
	return pc, false, nil
}

// rawConn is conn's socket, for peeking at an idle connection, or nil.
func rawConn(conn net.Conn) syscall.RawConn {
	for range 4 {
		if sc, ok := conn.(syscall.Conn); ok {
			raw, err := sc.SyscallConn()
			if err != nil {
				return nil
			}
			return raw
		}
		w, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		conn = w.NetConn()
	}
	return nil
}

// put keeps pc for the next request to its host. Now and then it also closes the
// connections idle past the idle timeout, which http.Transport does with a timer each.
func (t *Transport) put(pc *h1Conn) {
	now := time.Now()
	pc.idleAt = now
	var expired []*h1Conn
	t.mu.Lock()
	list := t.idle[pc.addr]
	if len(list) < t.maxIdle {
		t.idle[pc.addr] = append(list, pc)
		pc = nil
	}
	if now.Sub(t.swept) > t.idleTimeout/4 {
		t.swept = now
		expired = t.removeLocked(func(addr string, c *h1Conn) bool { return now.Sub(c.idleAt) > t.idleTimeout })
	}
	t.mu.Unlock()
	if pc != nil {
		pc.close()
	}
	for _, c := range expired {
		c.close()
	}
}

// KeepOnly closes the idle connections to hosts whose address keep refuses: a host gone
// from the cluster (a pod scaled away) takes its kept-alive connections with it, as
// Envoy drains the connection pools of removed hosts.
func (t *Transport) KeepOnly(keep func(addr string) bool) {
	t.mu.Lock()
	gone := t.removeLocked(func(addr string, _ *h1Conn) bool { return !keep(addr) })
	t.mu.Unlock()
	for _, c := range gone {
		c.close()
	}
}

// removeLocked takes the idle connections drop selects out of the pool and returns them.
func (t *Transport) removeLocked(drop func(addr string, c *h1Conn) bool) []*h1Conn {
	var out []*h1Conn
	for addr, list := range t.idle {
		kept := list[:0]
		for _, c := range list {
			if drop(addr, c) {
				out = append(out, c)
			} else {
				kept = append(kept, c)
			}
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = kept
		}
	}
	return out
}

// h1Conn is one HTTP/1.1 connection to a host.
type h1Conn struct {
	t      *Transport
	addr   string
	conn   net.Conn
	raw    syscall.RawConn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// peekFn is pc.peek, bound once: a closure made per open() escaped to the heap, an
	// allocation per request.
	peekFn func(fd uintptr) bool
	alive  bool // what peek found
	peekB  [1]byte
}

// staleConnError is a failure on a connection before any of the response arrived.
type staleConnError struct {
	written bool // the request reached the connection
	err     error
}

func (e *staleConnError) Error() string { return e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

// open reports whether the idle connection is still usable: the host has neither closed
// it nor sent anything unasked. It peeks without blocking, so a closed kept-alive
// connection (Node's servers close them after 5 s) is seldom picked; the stale-connection
// retry covers the race that is left.
func (pc *h1Conn) open() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	if pc.raw == nil {
		return true
	}
	pc.alive = false
	if pc.peekFn == nil {
		pc.peekFn = pc.peek
	}
	err := pc.raw.Read(pc.peekFn)
	return err == nil && pc.alive
}

// peek looks at the socket without blocking (a syscall.RawConn.Read callback): an idle
// connection is alive when nothing can be read yet.
func (pc *h1Conn) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), pc.peekB[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	pc.alive = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
	return true
}

func (pc *h1Conn) close() { pc.conn.Close() }

// roundTrip writes req and reads the response's head. The connection is closed when ctx
// ends before the body has been read, as http.Transport does.
func (pc *h1Conn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { pc.conn.Close() })
	// Head and body go out in one write (Flush below) when they fit the buffer: the body
	// here is small and of known length (plain).
	if err := writeRequest(pc.bw, req); err != nil {
		stop()
		return nil, &staleConnError{err: fmt.Errorf("write request: %w", err)}
	}
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, &staleConnError{err: fmt.Errorf("write request: %w", err)}
	}
	// Nothing at all read back (EOF, reset) is the closed kept-alive connection case.
	if _, err := pc.br.Peek(1); err != nil {
		stop()
		return nil, &staleConnError{written: true, err: fmt.Errorf("read response: %w", err)}
	}
	var resp *http.Response
	for n := 0; ; n++ {
		var err error
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			stop()
			return nil, fmt.Errorf("read response: %w", err)
		}
		code := resp.StatusCode
		if code < 100 || code >= 200 {
			break
		}
		if code == http.StatusSwitchingProtocols || n == h1Max1xx {
			stop()
			return nil, fmt.Errorf("read response: unexpected %d", code)
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				stop()
				return nil, err
			}
		}
	}
	keep := !resp.Close && !req.Close
	resp.Body = &h1Body{rc: resp.Body, pc: pc, stop: stop, keep: keep}
	return resp, nil
}

// onePiece is a buffered writer that Request.Write does not recognise as a
// *bufio.Writer, so it does not flush the request's head before the body: given a
// *bufio.Writer, Request.Write flushes the head on its own before a body it does not know
// to be in memory (a proxied request's), a second system call per request. It is an
// io.ByteWriter, so Request.Write does not add a buffer of its own either.
type onePiece struct{ *bufio.Writer }

// h1Body returns its connection to the pool when the body has been read to its end, and
// closes it when the body is closed before.
type h1Body struct {
	rc   io.ReadCloser
	pc   *h1Conn
	stop func() bool
	keep bool
	once sync.Once
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.release(err == io.EOF)
	}
	return n, err
}

// Close implements io.Closer. It does not drain the body (http's Close would read a
// streamed body to its end): a body not read to its end costs the connection.
func (b *h1Body) Close() error {
	b.release(b.rc == http.NoBody)
	return nil
}

func (b *h1Body) release(atEOF bool) {
	b.once.Do(func() {
		// stop false: ctx ended and the connection is being closed.
		if b.stop() && atEOF && b.keep {
			b.pc.t.put(b.pc)
			return
		}
		b.pc.close()
	})
}
