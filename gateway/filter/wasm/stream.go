package wasm

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-dev/skiff/gateway/filter"
)

// wasmFilter is one configured Wasm HTTP filter.
type wasmFilter struct {
	name string
	p    *plugin
}

// Wrap implements filter.Filter.
func (f *wasmFilter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.p.serve(w, r, next)
	})
}

// localResponse is a reply sent by the plugin (proxy_send_local_response).
type localResponse struct {
	status     int
	details    string
	body       []byte
	headers    [][2]string
	grpcStatus int32
}

// stream is one HTTP request's context in an instance. Its fields are
// touched only with the instance's mu held, except resume (a channel).
type stream struct {
	id    uint32
	inst  *instance
	req   *http.Request
	w     http.ResponseWriter
	state *filter.State

	// phase is where the request is: in the request headers callback or
	// before (0), past it (1), or in the response headers callback (2).
	phase    int
	respHdr  http.Header
	status   int
	local    *localResponse
	reset    bool
	resume   chan struct{}
	props    map[string][]byte
	finished bool

	// body is the request body data the plugin sees in
	// proxy_on_request_body (inBody): what is buffered so far.
	body        []byte
	inBody      bool
	bodyChanged bool
}

// MaxBufferedBody is the most request body the filter buffers for a plugin
// that stops the request (Envoy's default per-connection buffer limit);
// beyond it the request is answered 413, as Envoy does.
const MaxBufferedBody = 1 << 20

// bodyChunk is how much request body is read at a time.
const bodyChunk = 64 << 10

var errLocalReply = errors.New("wasm plugin sent a local reply")

// errStreamEnded is what the body reader returns once the stream it belongs
// to was answered and its context deleted: an upstream client (Go's
// transport) may still be reading the request body then, and the plugin must
// not be called for a context it no longer has.
var errStreamEnded = errors.New("wasm stream already ended")

// sendLocal records a local reply. It is sent instead of the upstream
// response when the plugin's callback returns, or, for a paused request,
// when the stream resumes.
func (s *stream) sendLocal(lr *localResponse) uint32 {
	if s.local != nil || s.finished {
		return statusBadArgument
	}
	if lr.status < 200 || lr.status > 599 {
		return statusBadArgument
	}
	s.local = lr
	s.resumeStream(false)
	return statusOK
}

// resumeStream wakes a paused request (continue_stream, close_stream).
func (s *stream) resumeStream(reset bool) {
	if reset {
		s.reset = true
	}
	if s.resume != nil {
		select {
		case s.resume <- struct{}{}:
		default:
		}
	}
}

// serve runs the plugin for one request.
func (p *plugin) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	inst, err := p.acquire()
	if err != nil {
		p.failStream(w, r, next)
		return
	}
	s := &stream{inst: inst, req: r, w: w, state: filter.StateFromContext(r.Context())}
	paused, ok := inst.startStream(s)
	defer inst.endStream(s)
	if !ok {
		p.failStream(w, r, next)
		return
	}
	hasBody := r.Body != nil && r.Body != http.NoBody
	switch {
	case paused && hasBody:
		if !inst.bufferBody(s, w, r, next) {
			return
		}
	case paused:
		if !inst.waitResume(s) {
			return // the client went away
		}
	case hasBody && inst.abi.requestBody != nil:
		r.Body = &bodyReader{s: s, inner: r.Body}
	}
	inst.mu.Lock()
	lr, reset, failed := s.local, s.reset, inst.failed
	inst.mu.Unlock()
	if reset {
		panic(http.ErrAbortHandler)
	}
	if lr != nil {
		writeLocal(w, lr)
		return
	}
	if failed && paused {
		// The VM failed while the plugin held the request (another stream
		// trapped): the request was never let through, so it fails by the
		// policy, as Envoy fails every stream of a failed VM.
		p.failStream(w, r, next)
		return
	}
	rw := &responseWriter{ResponseWriter: w, s: s}
	next.ServeHTTP(rw, r)
	if !rw.wroteHeader && r.Context().Err() == nil {
		rw.WriteHeader(http.StatusOK)
	}
}

// failStream answers a request whose plugin instance failed: on to the next
// filter when failing open, otherwise Envoy's 503 (wasm_fail_stream).
func (p *plugin) failStream(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if p.spec.policy == failOpen {
		next.ServeHTTP(w, r)
		return
	}
	p.log.Debug("wasm plugin failed closed", "details", FailStreamDetails)
	w.WriteHeader(http.StatusServiceUnavailable)
}

// startStream creates the request's context and runs
// proxy_on_request_headers. paused means the plugin stopped the request
// (until continue_stream or a local reply); ok is false when the instance
// failed.
func (inst *instance) startStream(s *stream) (paused, ok bool) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.failed || inst.closed {
		s.finished = true
		return false, false
	}
	s.id = inst.nextID
	inst.nextID++
	if inst.nextID == 0 {
		inst.nextID = rootContextID + 1
	}
	inst.streams[s.id] = s
	inst.effective = s
	defer func() { inst.effective = nil }()
	if _, err := inst.call(inst.abi.contextCreate, uint64(s.id), rootContextID); err != nil {
		return false, false
	}
	eos := uint64(0)
	if s.req.Body == nil || s.req.Body == http.NoBody {
		eos = 1
	}
	act, err := inst.call(inst.abi.requestHeaders, uint64(s.id), uint64(s.requestHeaderCount()), eos)
	s.phase = 1
	if err != nil {
		return false, false
	}
	if act == actionPause && s.local == nil && !s.reset {
		s.resume = make(chan struct{}, 1)
		return true, true
	}
	return false, true
}

// bufferBody runs proxy_on_request_body over the buffered body of a request
// whose headers the plugin stopped, until the plugin continues it (the
// request then goes on with the buffered body and the rest), answers it, or
// the body ends. false means the request was answered or failed already.
func (inst *instance) bufferBody(s *stream, w http.ResponseWriter, r *http.Request, next http.Handler) bool {
	inner := r.Body
	buf := make([]byte, bodyChunk)
	for {
		n, err := inner.Read(buf)
		eos := errors.Is(err, io.EOF)
		if err != nil && !eos {
			return false // the client went away or sent a broken body
		}
		inst.mu.Lock()
		s.body = append(s.body, buf[:n]...)
		if len(s.body) > MaxBufferedBody {
			inst.mu.Unlock()
			writeLocal(w, &localResponse{status: http.StatusRequestEntityTooLarge, body: []byte("Payload Too Large")})
			return false
		}
		if n == 0 && !eos {
			inst.mu.Unlock()
			continue
		}
		act, ok := inst.bodyCallbackLocked(s, eos)
		body, changed := s.body, s.bodyChanged
		cont := act == actionContinue && s.local == nil && !s.reset
		if !cont && eos && s.local == nil && !s.reset {
			s.resume = make(chan struct{}, 1)
		}
		inst.mu.Unlock()
		if !ok {
			inst.p.failStream(w, r, next)
			return false
		}
		switch {
		case cont, eos:
			if !cont && !inst.waitResume(s) {
				return false
			}
			if eos {
				r.Body = io.NopCloser(bytes.NewReader(body))
			} else {
				r.Body = struct {
					io.Reader
					io.Closer
				}{io.MultiReader(bytes.NewReader(body), inner), inner}
			}
			if changed && eos {
				r.ContentLength = int64(len(body))
				r.Header.Set("Content-Length", strconv.Itoa(len(body)))
				r.Header.Del("Transfer-Encoding")
			}
			return true
		}
		inst.mu.Lock()
		stop := s.local != nil || s.reset
		inst.mu.Unlock()
		if stop {
			return true // serve answers or resets
		}
	}
}

// bodyCallbackLocked runs proxy_on_request_body over s.body (mu held).
func (inst *instance) bodyCallbackLocked(s *stream, eos bool) (uint64, bool) {
	if inst.failed || inst.closed {
		return 0, false
	}
	if inst.abi.requestBody == nil {
		return actionContinue, true
	}
	inst.effective, s.inBody = s, true
	defer func() { inst.effective, s.inBody = nil, false }()
	e := uint64(0)
	if eos {
		e = 1
	}
	act, err := inst.call(inst.abi.requestBody, uint64(s.id), uint64(len(s.body)), e)
	if err != nil {
		return 0, false
	}
	return act, true
}

// bodyReader streams the request body of a request the plugin let through
// at its headers, calling proxy_on_request_body on each chunk as the router
// reads it. Chunks the plugin stops (buffers) are held until it continues or
// the body ends; a local reply aborts the upstream request and replaces the
// response.
type bodyReader struct {
	s       *stream
	inner   io.ReadCloser
	pending []byte
	eos     bool
	failed  bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.eos {
			return 0, io.EOF
		}
		if b.failed {
			return 0, errLocalReply
		}
		if b.ended() {
			return 0, errStreamEnded
		}
		buf := make([]byte, min(len(p), bodyChunk))
		n, err := b.inner.Read(buf)
		eos := errors.Is(err, io.EOF)
		if err != nil && !eos {
			return 0, err
		}
		inst := b.s.inst
		inst.mu.Lock()
		if b.s.finished {
			inst.mu.Unlock()
			b.failed = true
			return 0, errStreamEnded
		}
		b.s.body = append(b.s.body, buf[:n]...)
		act, ok := inst.bodyCallbackLocked(b.s, eos)
		local := b.s.local != nil || b.s.reset
		if ok && !local && (act == actionContinue || eos) {
			b.pending, b.s.body = b.s.body, nil
		}
		inst.mu.Unlock()
		b.eos = eos
		if !ok {
			if inst.p.spec.policy == failOpen {
				inst.mu.Lock()
				b.pending, b.s.body = b.s.body, nil
				inst.mu.Unlock()
				continue
			}
			b.failed = true
			return 0, errLocalReply
		}
		if local {
			b.failed = true
			return 0, errLocalReply
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

func (b *bodyReader) Close() error { return b.inner.Close() }

// ended reports whether the stream is over (the reader outlived serve).
func (b *bodyReader) ended() bool {
	b.s.inst.mu.Lock()
	defer b.s.inst.mu.Unlock()
	return b.s.finished
}

// waitResume waits until a paused request is continued, answered or reset;
// false means the client went away.
func (inst *instance) waitResume(s *stream) bool {
	select {
	case <-s.resume:
		return true
	case <-s.req.Context().Done():
		return false
	}
}

// responseHeadersCallback runs proxy_on_response_headers; ok is false when
// the instance failed.
func (inst *instance) responseHeadersCallback(s *stream, code int, h http.Header) (ok bool) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.failed || inst.closed {
		return false
	}
	s.phase, s.status, s.respHdr = 2, code, h
	inst.effective = s
	defer func() { inst.effective = nil; s.phase = 1 }()
	if _, err := inst.call(inst.abi.responseHeaders, uint64(s.id), uint64(len(h)+1), 0); err != nil {
		return false
	}
	return true
}

// endStream runs proxy_on_done, proxy_on_log and proxy_on_delete and
// forgets the stream.
func (inst *instance) endStream(s *stream) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if _, ok := inst.streams[s.id]; !ok || inst.streams[s.id] != s {
		return
	}
	if !inst.failed && !inst.closed {
		inst.effective = s
		_, err := inst.call(inst.abi.done, uint64(s.id))
		if err == nil {
			_, err = inst.call(inst.abi.log, uint64(s.id))
		}
		if err == nil {
			_, _ = inst.call(inst.abi.delete, uint64(s.id))
		}
		inst.effective = nil
	}
	s.finished = true
	delete(inst.streams, s.id)
	inst.maybeCloseLocked()
}

// writeLocal sends a plugin's local reply.
func writeLocal(w http.ResponseWriter, lr *localResponse) {
	h := w.Header()
	for _, kv := range lr.headers {
		if strings.HasPrefix(kv[0], ":") {
			continue
		}
		h.Add(kv[0], kv[1])
	}
	if len(lr.body) > 0 {
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "text/plain")
		}
		h.Set("Content-Length", strconv.Itoa(len(lr.body)))
	}
	w.WriteHeader(lr.status)
	if len(lr.body) > 0 {
		_, _ = w.Write(lr.body)
	}
}

// responseWriter runs proxy_on_response_headers when the response headers
// are written, and replaces the response with the plugin's local reply or
// the fail-closed 503 when needed.
type responseWriter struct {
	http.ResponseWriter
	s           *stream
	wroteHeader bool
	discard     bool
}

// WriteHeader implements http.ResponseWriter.
func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		rw.ResponseWriter.WriteHeader(code) // informational: passed through
		return
	}
	rw.wroteHeader = true
	s, inst := rw.s, rw.s.inst
	inst.mu.Lock()
	lr := s.local
	inst.mu.Unlock()
	if lr != nil {
		rw.replace(lr) // sent from proxy_on_request_body while streaming
		return
	}
	if !inst.responseHeadersCallback(s, code, rw.Header()) {
		if inst.p.spec.policy != failOpen {
			rw.replace(nil)
			return
		}
		rw.ResponseWriter.WriteHeader(code)
		return
	}
	inst.mu.Lock()
	lr, status, failed := s.local, s.status, inst.failed
	inst.mu.Unlock()
	if lr != nil {
		rw.replace(lr)
		return
	}
	if failed && inst.p.spec.policy != failOpen {
		rw.replace(nil) // the plugin trapped while the body went upstream
		return
	}
	rw.ResponseWriter.WriteHeader(status)
}

// replace drops the upstream response and sends lr (nil: the fail-closed 503).
func (rw *responseWriter) replace(lr *localResponse) {
	rw.discard = true
	h := rw.Header()
	for k := range h {
		delete(h, k)
	}
	if lr == nil {
		rw.ResponseWriter.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	writeLocal(rw.ResponseWriter, lr)
}

// Write implements http.ResponseWriter.
func (rw *responseWriter) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.discard {
		return len(b), nil
	}
	return rw.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (rw *responseWriter) Flush() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.discard {
		return
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// headerMap is a header map a plugin reads and changes.
type headerMap interface {
	// appendPairs appends the pseudo-headers, then the fields sorted by
	// name, to sc.pairs, using sc.keys; names may have upper-case ASCII
	// letters, which encodePairs lower-cases.
	appendPairs(sc *pairScratch)
	setPairs([][2]string)
	get(key []byte) (string, bool)
	add(key, value string)
	replace(key, value string)
	remove(key string)
}

func (s *stream) requestHeaders() headerMap { return reqHeaders{s} }

func (s *stream) responseHeaders() headerMap {
	if s.phase != 2 {
		return nil
	}
	return respHeaders{s}
}

func (s *stream) requestHeaderCount() int {
	n := 4
	for _, v := range s.req.Header {
		n += len(v)
	}
	return n
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// pairScratch is an instance's buffers for serialising a header map
// (proxy_get_header_map_pairs), reused from call to call: the pairs, the
// sorted names and the serialised form.
type pairScratch struct {
	pairs [][2]string
	keys  []string
	enc   []byte
}

// reset drops the references the buffers hold to header strings.
func (sc *pairScratch) reset() {
	clear(sc.pairs)
	clear(sc.keys)
	sc.pairs, sc.keys = sc.pairs[:0], sc.keys[:0]
}

// appendSortedPairs appends h's values to sc.pairs sorted by name. A name
// with a non-ASCII byte is lower-cased here (strings.ToLower may change its
// length); the others are lower-cased by encodePairs as it copies them, so
// that no name is allocated.
func appendSortedPairs(sc *pairScratch, h http.Header) {
	keys := sc.keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lk := k
		if !isASCII(lk) {
			lk = strings.ToLower(lk)
		}
		for _, v := range h[k] {
			sc.pairs = append(sc.pairs, [2]string{lk, v})
		}
	}
	sc.keys = keys
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// reqHeaders is the request header map, with Envoy's pseudo-headers.
type reqHeaders struct{ s *stream }

func (m reqHeaders) appendPairs(sc *pairScratch) {
	r := m.s.req
	sc.pairs = append(sc.pairs, [2]string{":authority", r.Host}, [2]string{":path", r.URL.RequestURI()},
		[2]string{":method", r.Method}, [2]string{":scheme", scheme(r)})
	appendSortedPairs(sc, r.Header)
}

func (m reqHeaders) get(key []byte) (string, bool) {
	r := m.s.req
	if len(key) > 0 && key[0] == ':' {
		switch string(key) {
		case ":authority":
			return r.Host, true
		case ":path":
			return r.URL.RequestURI(), true
		case ":method":
			return r.Method, true
		case ":scheme":
			return scheme(r), true
		}
		return "", false
	}
	v := r.Header[textproto.CanonicalMIMEHeaderKey(string(key))]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// setPseudo applies a request pseudo-header; false for unknown ones.
func (m reqHeaders) setPseudo(key, value string) bool {
	r := m.s.req
	switch key {
	case ":authority":
		r.Host = value
	case ":path":
		if u, err := url.ParseRequestURI(value); err == nil {
			r.URL.Path, r.URL.RawPath, r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
			r.RequestURI = value
		}
	case ":method":
		r.Method = value
	case ":scheme":
	default:
		return strings.HasPrefix(key, ":")
	}
	return true
}

// changed tells the router to match the route again, as Envoy's Wasm filter
// clears the route cache whenever it changes request headers.
func (m reqHeaders) changed() {
	if m.s.state != nil {
		m.s.state.ClearRouteCache()
	}
}

func (m reqHeaders) add(key, value string) {
	key = strings.ToLower(key)
	if !m.setPseudo(key, value) {
		m.s.req.Header.Add(key, value)
	}
	m.changed()
}

func (m reqHeaders) replace(key, value string) {
	key = strings.ToLower(key)
	if !m.setPseudo(key, value) {
		m.s.req.Header.Set(key, value)
	}
	m.changed()
}

func (m reqHeaders) remove(key string) {
	if !strings.HasPrefix(key, ":") {
		m.s.req.Header.Del(key)
	}
	m.changed()
}

func (m reqHeaders) setPairs(pairs [][2]string) {
	h := m.s.req.Header
	for k := range h {
		delete(h, k)
	}
	for _, kv := range pairs {
		if !m.setPseudo(strings.ToLower(kv[0]), kv[1]) {
			h.Add(kv[0], kv[1])
		}
	}
	m.changed()
}

// respHeaders is the response header map, with :status.
type respHeaders struct{ s *stream }

func (m respHeaders) appendPairs(sc *pairScratch) {
	sc.pairs = append(sc.pairs, [2]string{":status", strconv.Itoa(m.s.status)})
	appendSortedPairs(sc, m.s.respHdr)
}

func (m respHeaders) get(key []byte) (string, bool) {
	if string(key) == ":status" {
		return strconv.Itoa(m.s.status), true
	}
	v := m.s.respHdr[textproto.CanonicalMIMEHeaderKey(string(key))]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func (m respHeaders) setStatus(key, value string) bool {
	if key != ":status" {
		return strings.HasPrefix(key, ":")
	}
	if c, err := strconv.Atoi(value); err == nil && c >= 200 && c <= 599 {
		m.s.status = c
	}
	return true
}

func (m respHeaders) add(key, value string) {
	if !m.setStatus(key, value) {
		m.s.respHdr.Add(key, value)
	}
}

func (m respHeaders) replace(key, value string) {
	if !m.setStatus(key, value) {
		m.s.respHdr.Set(key, value)
	}
}

func (m respHeaders) remove(key string) {
	if !strings.HasPrefix(key, ":") {
		m.s.respHdr.Del(key)
	}
}

func (m respHeaders) setPairs(pairs [][2]string) {
	for k := range m.s.respHdr {
		delete(m.s.respHdr, k)
	}
	for _, kv := range pairs {
		if !m.setStatus(kv[0], kv[1]) {
			m.s.respHdr.Add(kv[0], kv[1])
		}
	}
}
