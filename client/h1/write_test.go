package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
)

// closeCounter is a request body that counts its Close calls, and fails its reads with
// err once the data is read (io.EOF when err is nil).
type closeCounter struct {
	r      io.Reader
	err    error
	closed int
}

func (b *closeCounter) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && b.err != nil {
		err = b.err
	}
	return n, err
}

func (b *closeCounter) Close() error { b.closed++; return nil }

// writeCase is a request, built anew for each writer (its body is read once).
type writeCase struct {
	name string
	make func() (*http.Request, *closeCounter)
}

func request(method, target, body string, header http.Header) func() (*http.Request, *closeCounter) {
	return func() (*http.Request, *closeCounter) {
		var rc *closeCounter
		var r io.Reader
		if body != "" {
			rc = &closeCounter{r: strings.NewReader(body)}
			r = rc
		}
		req, err := http.NewRequest(method, target, r)
		if err != nil {
			panic(err)
		}
		if rc != nil {
			req.Body = rc // NewRequest would wrap it in a NopCloser
		}
		req.Header = header.Clone()
		return req, rc
	}
}

func with(f func() (*http.Request, *closeCounter), change func(*http.Request)) func() (*http.Request, *closeCounter) {
	return func() (*http.Request, *closeCounter) {
		req, rc := f()
		change(req)
		return req, rc
	}
}

// compareWrite writes c's request with writeRequest and with Request.Write and fails
// unless the bytes, the error and the body's closing are the same.
func compareWrite(t *testing.T, c writeCase) {
	t.Helper()
	write := func(w func(*bufio.Writer, *http.Request) error) (string, error, int) {
		req, rc := c.make()
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		err := w(bw, req)
		bw.Flush()
		closed := -1
		if rc != nil {
			closed = rc.closed
		}
		return buf.String(), err, closed
	}
	want, wantErr, wantClosed := write(func(bw *bufio.Writer, req *http.Request) error { return req.Write(onePiece{bw}) })
	got, gotErr, gotClosed := write(writeRequest)
	if got != want {
		t.Errorf("%s: writeRequest wrote\n%q\nRequest.Write\n%q", c.name, got, want)
	}
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Errorf("%s: writeRequest error %v, Request.Write %v", c.name, gotErr, wantErr)
	}
	if gotClosed != wantClosed {
		t.Errorf("%s: body closed %d times, by Request.Write %d", c.name, gotClosed, wantClosed)
	}
}

// TestWriteRequestLikeRequestWrite: what the transport writes itself is what
// Request.Write writes, byte for byte, errors and the body's Close included.
func TestWriteRequestLikeRequestWrite(t *testing.T) {
	ce := http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"42"}, "Ce-Source": {"/bench"}, "Ce-Type": {"bench"},
		"Content-Type": {"application/json"}, "X-Forwarded-For": {"127.0.0.1"}, "User-Agent": {""},
		"X-Skiff-Triggers": {"t0"}, "Accept-Encoding": {"gzip"},
	}
	cases := []writeCase{
		{"binary event", request("POST", "http://broker-ingress.skiff.local/default/b1", `{"order":1}`, ce)},
		{"GET, no headers", request("GET", "http://127.0.0.1:8080/", "", nil)},
		{"GET with query", request("GET", "http://h/a/b%20c?x=1&y=%2F", "", http.Header{"Accept": {"*/*"}})},
		{"empty path", request("GET", "http://h", "", nil)},
		{"HEAD", request("HEAD", "http://h/", "", nil)},
		{"DELETE without body", request("DELETE", "http://h/x", "", nil)},
		{"OPTIONS without body", request("OPTIONS", "http://h/x", "", http.Header{"Origin": {"x"}})},
		{"POST without body", request("POST", "http://h/x", "", nil)},
		{"PUT without body", request("PUT", "http://h/x", "", nil)},
		{"PATCH without body", request("PATCH", "http://h/x", "", nil)},
		{"extension method", request("PROPFIND", "http://h/x", "", nil)},
		{"empty method", with(request("GET", "http://h/x", "", nil), func(r *http.Request) { r.Method = "" })},
		{"user agent given", request("GET", "http://h/", "", http.Header{"User-Agent": {"  curl/8 \t"}})},
		{"user agent absent", request("GET", "http://h/", "", http.Header{"X": {"1"}})},
		{"user agent with no values", request("GET", "http://h/", "", http.Header{"User-Agent": {}})},
		{"several values, spaces", request("POST", "http://h/", "abc", http.Header{
			"Via": {"1.1 a", " 1.1 b ", ""}, "Zeta": {"z"}, "Alpha": {"\ta\t"}, "alpha": {"lower"}})},
		{"invalid names dropped", request("GET", "http://h/", "", http.Header{"Bad Name": {"x"}, "Ok": {"y"}, "X\x00": {"z"}})},
		{"excluded names", request("POST", "http://h/", "abc", http.Header{
			"Host": {"other"}, "Content-Length": {"99"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}, "Y": {"1"}})},
		{"Host field", with(request("GET", "http://h:81/", "", nil), func(r *http.Request) { r.Host = "front.example.com" })},
		{"URL host only", with(request("GET", "http://h:81/", "", nil), func(r *http.Request) { r.Host = "" })},
		{"line break in value", request("GET", "http://h/", "", http.Header{"X": {"a\r\nInjected: 1"}})},
		{"line break in user agent", request("GET", "http://h/", "", http.Header{"User-Agent": {"a\nb"}})},
		{"Close", with(request("GET", "http://h/", "", nil), func(r *http.Request) { r.Close = true })},
		{"Close with Connection: close", with(request("GET", "http://h/", "", http.Header{"Connection": {"close"}}), func(r *http.Request) { r.Close = true })},
		{"zone", with(request("GET", "http://h/", "", nil), func(r *http.Request) { r.Host = "[fe80::1%25eth0]:80" })},
		{"unicode host", with(request("GET", "http://h/", "", nil), func(r *http.Request) { r.Host = "bücher.example" })},
		{"invalid host", with(request("GET", "http://h/", "", nil), func(r *http.Request) { r.Host = "a b" })},
		{"control character in path", with(request("GET", "http://h/", "", nil), func(r *http.Request) { r.URL.Path = "/a\x01"; r.URL.RawPath = "" })},
		{"body longer than Content-Length", with(request("POST", "http://h/", "abcdef", nil), func(r *http.Request) { r.ContentLength = 3 })},
		{"body shorter than Content-Length", with(request("POST", "http://h/", "abc", nil), func(r *http.Request) { r.ContentLength = 6 })},
		{"body read error", func() (*http.Request, *closeCounter) {
			req, rc := request("POST", "http://h/", "abc", nil)()
			req.ContentLength = 6
			rc.err = errors.New("client went away")
			return req, rc
		}},
		{"NoBody with a length", with(request("POST", "http://h/", "", nil), func(r *http.Request) { r.Body = http.NoBody; r.ContentLength = 5 })},
		{"nil body with a length", with(request("POST", "http://h/", "", nil), func(r *http.Request) { r.ContentLength = 5 })},
		{"traced", with(request("GET", "http://h/", "", http.Header{"X": {"1"}}), func(r *http.Request) {
			*r = *r.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{WroteHeaderField: func(string, []string) {}}))
		})},
	}
	many := http.Header{}
	for i := range maxFastHeaders + 1 {
		many.Set(fmt.Sprintf("X-H%03d", i), "v")
	}
	cases = append(cases, writeCase{"more headers than sorted on the stack", request("GET", "http://h/", "", many)})
	for _, c := range cases {
		compareWrite(t, c)
	}
}

// TestWriteRequestRandomHeaders compares the two writers on random header sets.
func TestWriteRequestRandomHeaders(t *testing.T) {
	names := []string{"Accept", "Ce-Id", "Ce-Type", "Content-Type", "User-Agent", "X-Request-Id", "Via",
		"Content-Length", "Host", "Transfer-Encoding", "Trailer", "x-lower", "Bad Name", "A", "Zz"}
	values := []string{"", " ", "v", " v ", "\tv", "a,b", "value with spaces", "é", "a\nb"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		h := http.Header{}
		for range rng.IntN(10) {
			n := names[rng.IntN(len(names))]
			for range 1 + rng.IntN(2) {
				h[n] = append(h[n], values[rng.IntN(len(values))])
			}
		}
		method := []string{"GET", "POST", "PUT", "DELETE", "HEAD"}[rng.IntN(5)]
		body := ""
		if method != "GET" && method != "HEAD" && rng.IntN(2) == 0 {
			body = strings.Repeat("x", 1+rng.IntN(100))
		}
		compareWrite(t, writeCase{fmt.Sprintf("random %d", i), request(method, "http://h/p?q=1", body, h)})
	}
}

// BenchmarkWriteRequest is the cost of writing a proxied CloudEvent's request head and
// body: writeRequest against Request.Write.
func BenchmarkWriteRequest(b *testing.B) {
	h := http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"42"}, "Ce-Source": {"/bench"}, "Ce-Type": {"bench"},
		"Ce-Sentat": {"1765150000000000000"}, "Content-Type": {"application/json"},
		"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Proto": {"http"}, "User-Agent": {""},
		"X-Request-Id": {"0b1c2d3e-1111-2222-3333-444455556666"}, "X-Skiff-Triggers": {"t0"},
		"X-Skiff-Broker-Generation": {"3f9a"}, "Accept-Encoding": {"gzip"},
	}
	body := `{"order":12345,"items":["a","b","c"]}`
	for _, w := range []struct {
		name  string
		write func(*bufio.Writer, *http.Request) error
	}{
		{"writeRequest", writeRequest},
		{"Request.Write", func(bw *bufio.Writer, r *http.Request) error { return r.Write(onePiece{bw}) }},
	} {
		b.Run(w.name, func(b *testing.B) {
			req, _ := http.NewRequest("POST", "http://broker-ingress.skiff.local/default/b1", nil)
			req.Header = h
			rd := strings.NewReader(body)
			bw := bufio.NewWriter(io.Discard)
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				req.ContentLength = int64(len(body))
				if err := w.write(bw, req); err != nil {
					b.Fatal(err)
				}
				bw.Flush()
			}
		})
	}
}
