// Package codec applies Envoy's HTTP/1 codec limits to a listener's downstream
// connections, in front of Go's HTTP server, which parses requests more
// leniently than Envoy does:
//
//   - request headers larger than the HCM's max_request_headers_kb (default 60
//     KiB; Go's default is 1 MiB) or more numerous than
//     common_http_protocol_options.max_headers_count (default 100; Go has no
//     limit) are answered 431;
//   - a request with both Content-Length and Transfer-Encoding is answered 400
//     unless http_protocol_options.allow_chunked_length is set (Go drops the
//     Content-Length and reads the chunked body);
//   - a malformed chunked body (a bad chunk size or a missing CRLF after chunk
//     data) fails the request with 400 (through Go it surfaced as a failed body
//     read, which the router turned into 503).
//
// A Conn scans the bytes Go's server reads, following HTTP/1.1 message framing
// (request heads, Content-Length and chunked bodies, trailers) so that it
// knows where each request head starts on a keep-alive connection. It does not
// answer by itself: for each request head it queues a Verdict that the
// connection manager takes (NextVerdict) when Go hands it that request, and a
// malformed body makes the Conn's reads fail with ErrMalformedBody, which the
// connection manager turns into the 400. Connections that switch protocol (h2c
// prior knowledge, CONNECT, Upgrade) are not scanned past the switch.
package codec

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Envoy's defaults.
const (
	// DefaultMaxRequestHeadersKB is Envoy's default max_request_headers_kb.
	DefaultMaxRequestHeadersKB = 60
	// DefaultMaxHeadersCount is Envoy's default max_headers_count.
	DefaultMaxHeadersCount = 100
)

// Response code details of the verdicts, as Envoy names them.
const (
	DetailsHeadersTooLarge         = "http1.headers_too_large"
	DetailsTooManyHeaders          = "http1.too_many_headers"
	DetailsContentLengthAndChunked = "http1.content_length_and_chunked_not_allowed"
	DetailsCodecError              = "http1.codec_error"
)

const (
	// maxTrackedLine is how much of a header line is kept to read its name and value.
	maxTrackedLine = 256
	// maxChunkLine bounds a chunk-size line (Go's server has the same bound).
	maxChunkLine = 4096
	// maxVerdictsQueued bounds the verdicts of pipelined requests not yet taken.
	maxVerdictsQueued = 64
	http2Preface      = "PRI * HTTP/2.0"
)

// ErrMalformedBody is the error a Conn's reads fail with once the request body
// it is reading is not valid chunked encoding.
var ErrMalformedBody = errors.New("malformed HTTP/1.1 chunked request body")

// Settings are the limits applied, from the listener's HttpConnectionManager.
type Settings struct {
	// MaxRequestHeadersBytes bounds the sum of the header names and values of a
	// request (max_request_headers_kb × 1024); 0 means Envoy's default.
	MaxRequestHeadersBytes int
	// MaxHeadersCount bounds the number of request header fields; 0 means
	// Envoy's default.
	MaxHeadersCount int
	// AllowChunkedLength accepts a request with both Content-Length and
	// Transfer-Encoding: chunked (the Content-Length is ignored).
	AllowChunkedLength bool
}

func (s Settings) withDefaults() Settings {
	if s.MaxRequestHeadersBytes <= 0 {
		s.MaxRequestHeadersBytes = DefaultMaxRequestHeadersKB * 1024
	}
	if s.MaxHeadersCount <= 0 {
		s.MaxHeadersCount = DefaultMaxHeadersCount
	}
	return s
}

// Verdict is what the codec makes of one request head: Status 0 means the
// request is fine; otherwise it must be answered Status (with Details as
// Envoy's response code details) and the connection closed.
type Verdict struct {
	Status  int
	Details string
}

// Listener wraps accepted connections in Conns.
type Listener struct {
	net.Listener
	settings func() Settings
}

// NewListener returns ln with every accepted connection checked against the
// settings current when its request heads arrive.
func NewListener(ln net.Listener, settings func() Settings) *Listener {
	return &Listener{Listener: ln, settings: settings}
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, settings: l.settings}, nil
}

type connKey struct{}

// WithConn returns ctx carrying c, for http.Server.ConnContext.
func WithConn(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*Conn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// FromContext returns the Conn a request arrived on, or nil.
func FromContext(ctx context.Context) *Conn {
	c, _ := ctx.Value(connKey{}).(*Conn)
	return c
}

// scanner states.
const (
	stHead = iota
	stBody
	stChunkSize
	stChunkData
	stChunkCR
	stChunkLF
	stTrailers
	stPassthrough
	stFailed
)

// Conn is a downstream connection whose request framing is checked.
type Conn struct {
	net.Conn
	settings func() Settings

	// Scanner state, touched only by Read (Go's server reads a connection
	// from one goroutine at a time).
	state     int
	remaining uint64 // body or chunk bytes still to skip
	line      []byte // the start of the current line (at most maxTrackedLine, or maxChunkLine for chunk sizes)
	lineLen   int    // the current line's full length
	lineLast  byte   // the current line's last byte
	head      headState
	err       error

	mu       sync.Mutex
	verdicts []Verdict
}

// headState is what is known about the request head being read.
type headState struct {
	started     bool // the request line was seen
	connect     bool // the method is CONNECT
	http10      bool // an HTTP/1.0 request, whose Transfer-Encoding Go ignores
	size, count int
	cl          []string
	te          []string
	upgrade     bool
	connUpgrade bool
}

// NextVerdict returns the verdict on the oldest request head not yet taken.
// Go's HTTP/1 server hands requests to handlers in order, one at a time, so
// the connection manager takes one per HTTP/1 request.
func (c *Conn) NextVerdict() Verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.verdicts) == 0 {
		return Verdict{}
	}
	v := c.verdicts[0]
	c.verdicts = c.verdicts[1:]
	return v
}

func (c *Conn) pushVerdict(v Verdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.verdicts) < maxVerdictsQueued {
		c.verdicts = append(c.verdicts, v)
	}
}

// Read implements net.Conn: it reads and scans. Bytes before a framing error
// are returned; the error comes with the next read.
func (c *Conn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.state != stPassthrough {
		if k, serr := c.scan(p[:n]); serr != nil {
			c.err, c.state = serr, stFailed
			if k > 0 {
				return k, nil
			}
			return 0, serr
		}
	}
	return n, err
}

// scan advances the scanner over b; on a framing error it returns how many
// bytes of b came before it.
func (c *Conn) scan(b []byte) (int, error) {
	i := 0
	for i < len(b) {
		switch c.state {
		case stPassthrough:
			return len(b), nil
		case stBody, stChunkData:
			n := min(uint64(len(b)-i), c.remaining)
			i += int(n)
			c.remaining -= n
			if c.remaining == 0 {
				if c.state == stBody {
					c.state = stHead
				} else {
					c.state = stChunkCR
				}
			}
		case stChunkCR:
			switch b[i] {
			case '\r':
				c.state = stChunkLF
			case '\n':
				c.state = stChunkSize
			default:
				return i, ErrMalformedBody
			}
			i++
		case stChunkLF:
			if b[i] != '\n' {
				return i, ErrMalformedBody
			}
			c.state = stChunkSize
			i++
		default: // line-oriented states: stHead, stChunkSize, stTrailers
			start := i
			j := bytes.IndexByte(b[i:], '\n')
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			c.appendLine(b[i:end])
			if j < 0 {
				if c.state == stChunkSize && c.lineLen > maxChunkLine {
					return start, ErrMalformedBody
				}
				return len(b), nil
			}
			i = end + 1
			line, full := c.line, c.lineLen
			if full > 0 && c.lineLast == '\r' {
				if len(line) == full {
					line = line[:len(line)-1]
				}
				full--
			}
			err := c.endLine(line, full)
			c.line, c.lineLen, c.lineLast = c.line[:0], 0, 0
			if err != nil {
				return start, err
			}
		}
	}
	return len(b), nil
}

// appendLine adds part of the current line, keeping only its start.
func (c *Conn) appendLine(part []byte) {
	limit := maxTrackedLine
	if c.state == stChunkSize {
		limit = maxChunkLine
	}
	if room := limit - len(c.line); room > 0 {
		c.line = append(c.line, part[:min(room, len(part))]...)
	}
	c.lineLen += len(part)
	if len(part) > 0 {
		c.lineLast = part[len(part)-1]
	}
}

// endLine handles one complete line (without its line ending); full is its
// length, of which line may hold only the start.
func (c *Conn) endLine(line []byte, full int) error {
	switch c.state {
	case stChunkSize:
		n, ok := parseChunkSize(line, full)
		if !ok {
			return ErrMalformedBody
		}
		if n == 0 {
			c.state = stTrailers
		} else {
			c.state, c.remaining = stChunkData, n
		}
		return nil
	case stTrailers:
		if full == 0 {
			c.state = stHead
		}
		return nil
	}
	h := &c.head
	if !h.started {
		if full == 0 {
			return nil // empty lines before a request line are ignored (RFC 9112 2.2)
		}
		if bytes.HasPrefix(line, []byte(http2Preface)) {
			c.state = stPassthrough // h2c with prior knowledge
			return nil
		}
		h.started = true
		method, _, _ := bytes.Cut(line, []byte(" "))
		h.connect = string(method) == http.MethodConnect // compared without allocating
		h.http10 = bytes.HasSuffix(line, []byte(" HTTP/1.0"))
		return nil
	}
	if full == 0 {
		c.endHead()
		return nil
	}
	h.count++
	name, rest, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		h.size += full // not a header field (Go refuses the request); counted all the same
		return nil
	}
	// Envoy counts names and values, without the value's surrounding
	// whitespace; a value longer than what was kept counts in full but for
	// its leading whitespace.
	value := bytes.TrimLeft(rest, " \t")
	if len(line) == full {
		value = bytes.TrimRight(value, " \t")
		h.size += len(name) + len(value)
	} else {
		h.size += full - 1 - (len(rest) - len(value))
	}
	// Compared in place: converting every header name to a string cost an allocation per
	// header line.
	switch {
	case bytes.EqualFold(name, []byte("content-length")):
		h.cl = append(h.cl, string(value))
	case bytes.EqualFold(name, []byte("transfer-encoding")):
		h.te = append(h.te, string(value))
	case bytes.EqualFold(name, []byte("upgrade")):
		h.upgrade = true
	case bytes.EqualFold(name, []byte("connection")):
		for tok := range bytes.SplitSeq(value, []byte(",")) {
			if bytes.EqualFold(bytes.TrimSpace(tok), []byte("upgrade")) {
				h.connUpgrade = true
			}
		}
	}
	return nil
}

// endHead queues the verdict on a complete request head and sets up reading
// its body the way Go's server will.
func (c *Conn) endHead() {
	h := c.head
	c.head = headState{}
	s := Settings{}
	if c.settings != nil {
		s = c.settings()
	}
	s = s.withDefaults()
	var v Verdict
	switch {
	case h.count > s.MaxHeadersCount:
		v = Verdict{Status: http.StatusRequestHeaderFieldsTooLarge, Details: DetailsTooManyHeaders}
	case h.size > s.MaxRequestHeadersBytes:
		v = Verdict{Status: http.StatusRequestHeaderFieldsTooLarge, Details: DetailsHeadersTooLarge}
	case len(h.cl) > 0 && len(h.te) > 0 && !s.AllowChunkedLength:
		v = Verdict{Status: http.StatusBadRequest, Details: DetailsContentLengthAndChunked}
	}
	c.pushVerdict(v)
	switch {
	case h.connect || h.upgrade && h.connUpgrade:
		c.state = stPassthrough // the connection may carry another protocol next
	case len(h.te) > 0 && !h.http10:
		if len(h.te) == 1 && strings.EqualFold(strings.TrimSpace(h.te[0]), "chunked") {
			c.state = stChunkSize
		} else {
			c.state = stPassthrough // Go answers 501 or 400 and closes the connection
		}
	case len(h.cl) > 0:
		n, ok := contentLength(h.cl)
		switch {
		case !ok:
			c.state = stPassthrough // Go answers 400 and closes the connection
		case n > 0:
			c.state, c.remaining = stBody, n
		default:
			c.state = stHead
		}
	default:
		c.state = stHead
	}
}

// contentLength parses the Content-Length values of a request, which must all
// be the same non-negative decimal number.
func contentLength(values []string) (uint64, bool) {
	var n uint64
	for i, v := range values {
		v = strings.TrimSpace(v)
		if v == "" || strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return 0, false
		}
		m, err := strconv.ParseUint(v, 10, 63)
		if err != nil || i > 0 && m != n {
			return 0, false
		}
		n = m
	}
	return n, true
}

// parseChunkSize parses a chunk-size line: hex digits, optionally followed by
// whitespace and chunk extensions (";name=value").
func parseChunkSize(line []byte, full int) (uint64, bool) {
	if full > maxChunkLine || len(line) != full {
		return 0, false
	}
	size, _, _ := bytes.Cut(line, []byte(";")) // chunk extensions are ignored
	size = bytes.TrimRight(size, " \t")
	if len(size) == 0 || len(size) > 16 {
		return 0, false
	}
	var n uint64
	for _, b := range size {
		var d byte
		switch {
		case '0' <= b && b <= '9':
			d = b - '0'
		case 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}
