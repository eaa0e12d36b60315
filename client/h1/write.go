package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// maxFastHeaders is the most header fields writeRequest sorts on its stack; a request
// with more takes Request.Write.
const maxFastHeaders = 64

// defaultUserAgent is what Request.Write sends when the request has no User-Agent.
const defaultUserAgent = "Go-http-client/1.1"

// writeRequest writes a plain request (see plain) to bw as Request.Write does, byte for
// byte, without its costs per request: fmt for the request line, a sorter from a pool and
// a strings.Replacer per header value, a transferWriter. What it does not write the same
// way (a Host or header value with line breaks, a host needing punycode or with a zone, a
// request traced by httptrace, Close, CONNECT) goes to Request.Write. The body is closed,
// as Request.Write does.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	if !fastWritable(req) {
		return req.Write(onePiece{bw})
	}
	ruri := req.URL.RequestURI()
	if hasCTL(ruri) {
		return req.Write(onePiece{bw}) // which refuses it
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	length := int64(0) // Request.Write's outgoing length: none without a body
	if !bodyless(req) {
		length = req.ContentLength
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(ruri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	ua := defaultUserAgent
	if vs, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" { // before trimming: " " is sent as an empty User-Agent
		bw.WriteString("User-Agent: ")
		bw.WriteString(trimString(ua))
		bw.WriteString("\r\n")
	}
	if sendContentLength(method, length) {
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], length, 10))
		bw.WriteString("\r\n")
	}
	var keysBuf [maxFastHeaders]string
	keys := keysBuf[:0]
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue // Request.Write drops them too
		}
		for _, v := range req.Header[k] {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(trimString(v))
			bw.WriteString("\r\n")
		}
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		closeBody(req)
		return err
	}
	if bodyless(req) {
		return closeBody(req)
	}
	return writeBody(bw, req)
}

// fastWritable reports whether writeRequest writes req itself: a plain request (see
// plain, which leaves out trailers and transfer encodings) that Request.Write would send
// unchanged, with no more than maxFastHeaders header fields.
func fastWritable(req *http.Request) bool {
	if req.Close || req.Method == http.MethodConnect || len(req.Header) > maxFastHeaders ||
		httptrace.ContextClientTrace(req.Context()) != nil {
		return false
	}
	if bodyless(req) {
		if req.Body == nil && req.ContentLength != 0 {
			return false // Request.Write's error
		}
	} else if req.ContentLength <= 0 {
		return false
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	// Request.Write converts a host to punycode, blanks an invalid one and removes an IPv6
	// zone; the hosts this package sees need none of that.
	for i := 0; i < len(host); i++ {
		if c := host[i]; c < 0x21 || c >= 0x7f || c == '%' {
			return false
		}
	}
	if !httpguts.ValidHostHeader(host) {
		return false
	}
	if req.URL.Opaque != "" {
		return false
	}
	// A method with a space or line break would be written as it is by Request.Write too,
	// but it is not worth a second way of writing it.
	if !validMethod(req.Method) {
		return false
	}
	for _, vs := range req.Header {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return false // Request.Write turns line breaks into spaces
			}
		}
	}
	return true
}

// validMethod reports whether m is empty (GET) or an HTTP token.
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds an ASCII control character, which Request.Write refuses
// in the request URI.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b == 0x7f {
			return true
		}
	}
	return false
}

// sendContentLength is net/http's rule for a request without a transfer encoding whose
// body is of known length (zero for no body): a Content-Length when there is a body, and
// for an empty one with the methods many servers expect it of (POST, PUT, PATCH).
func sendContentLength(method string, n int64) bool {
	if n > 0 {
		return true
	}
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// trimString is textproto.TrimString: without leading and trailing ASCII white space.
func trimString(s string) string {
	for len(s) > 0 && isASCIISpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isASCIISpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isASCIISpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// bodyReadError is a failure to read the request's body, which Request.Write reports as
// a type of its own that does not unwrap either.
type bodyReadError struct{ error }

// limitedBody reads at most n bytes of r (io.LimitReader) and remembers the error r
// returned other than io.EOF, to tell a body that failed from a connection that did.
type limitedBody struct {
	r   io.Reader
	n   int64
	err error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// writeBody copies exactly req.ContentLength bytes of the body to bw, reads on to its
// end as Request.Write does (to tell a longer body from a complete one), and closes it. A
// body of another length is an error, as in Request.Write.
func writeBody(bw *bufio.Writer, req *http.Request) (err error) {
	defer func() {
		if cerr := closeBody(req); cerr != nil && err == nil {
			err = cerr
		}
	}()
	lb := &limitedBody{r: req.Body, n: req.ContentLength}
	n, err := bw.ReadFrom(lb)
	if err != nil {
		if lb.err != nil && errors.Is(err, lb.err) {
			return bodyReadError{err}
		}
		return err
	}
	extra, err := io.Copy(io.Discard, req.Body)
	if err != nil {
		return bodyReadError{err}
	}
	if n += extra; n != req.ContentLength {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
	}
	return nil
}

func closeBody(req *http.Request) error {
	if req.Body == nil {
		return nil
	}
	return req.Body.Close()
}
