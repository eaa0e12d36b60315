package codec

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// fakeConn serves data in reads of at most step bytes.
type fakeConn struct {
	net.Conn
	data string
	step int
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, io.EOF
	}
	n := min(len(p), f.step, len(f.data))
	copy(p, f.data[:n])
	f.data = f.data[n:]
	return n, nil
}

// readAll reads c to its end and returns what was read, the verdicts queued and the error.
func readAll(c *Conn) (string, []Verdict, error) {
	var sb strings.Builder
	buf := make([]byte, 4096)
	var err error
	for {
		var n int
		n, err = c.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	var vs []Verdict
	c.mu.Lock()
	vs = append(vs, c.verdicts...)
	c.mu.Unlock()
	return sb.String(), vs, err
}

func header(name string, size int) string { return name + ": " + strings.Repeat("v", size) + "\r\n" }

func TestVerdictsAndFraming(t *testing.T) {
	get := "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
	ok, tooLarge, tooMany := Verdict{}, Verdict{431, DetailsHeadersTooLarge}, Verdict{431, DetailsTooManyHeaders}
	badFraming := Verdict{400, DetailsContentLengthAndChunked}
	// A request head in a body: it would get a verdict of its own if the body were not skipped.
	smuggled := "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	many := func(n int) string {
		var sb strings.Builder
		sb.WriteString("GET / HTTP/1.1\r\n")
		for i := range n {
			sb.WriteString(header("x-h"+strings.Repeat("i", i%5), 1))
		}
		return sb.String() + "\r\n"
	}
	for _, tc := range []struct {
		name     string
		in       string
		settings Settings
		want     []Verdict
		err      error
	}{
		{"plain", get + get, Settings{}, []Verdict{ok, ok}, nil},
		// "host" (4) + "h" (1) + "x-big" (5) + value: 60 KiB exactly is accepted, one more byte is not.
		{"headers at the limit", "GET / HTTP/1.1\r\nHost: h\r\n" + header("x-big", 60*1024-10) + "\r\n", Settings{}, []Verdict{ok}, nil},
		{"headers over the limit", "GET / HTTP/1.1\r\nHost: h\r\n" + header("x-big", 60*1024-9) + "\r\n" + get, Settings{}, []Verdict{tooLarge, ok}, nil},
		{"configured limit", "GET / HTTP/1.1\r\n" + header("x-big", 2000) + "\r\n", Settings{MaxRequestHeadersBytes: 1024}, []Verdict{tooLarge}, nil},
		{"100 headers", many(100), Settings{}, []Verdict{ok}, nil},
		{"101 headers", many(101), Settings{}, []Verdict{tooMany}, nil},
		{"content-length and chunked", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get,
			Settings{}, []Verdict{badFraming, ok}, nil},
		{"content-length and chunked allowed", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			Settings{AllowChunkedLength: true}, []Verdict{ok}, nil},
		// A body that looks like a request head is skipped, by length or by chunks.
		{"content-length body", fmt.Sprintf("POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s", len(smuggled), smuggled) + get, Settings{}, []Verdict{ok, ok}, nil},
		{"chunked body with extensions and trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x;name=value\r\n%s\r\nA \r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n", len(smuggled), smuggled) + get, Settings{}, []Verdict{ok, ok}, nil},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", Settings{}, []Verdict{ok}, ErrMalformedBody},
		{"empty chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", Settings{}, []Verdict{ok}, ErrMalformedBody},
		{"chunk size overflow", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", Settings{}, []Verdict{ok}, ErrMalformedBody},
		{"chunk without CRLF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", Settings{}, []Verdict{ok}, ErrMalformedBody},
		{"h2c prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + "binary: " + header("x", 70*1024), Settings{}, nil, nil},
		{"upgrade", "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nzz\r\n" + header("x", 70*1024) + "\r\n", Settings{}, []Verdict{ok}, nil},
		{"HTTP/1.0 ignores transfer-encoding", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + get, Settings{}, []Verdict{ok, ok}, nil},
		{"leading empty lines", "\r\n\r\n" + get, Settings{}, []Verdict{ok}, nil},
	} {
		for _, step := range []int{1, 7, 1 << 20} {
			c := &Conn{Conn: &fakeConn{data: tc.in, step: step}, settings: func() Settings { return tc.settings }}
			got, vs, err := readAll(c)
			if tc.err == nil && !errors.Is(err, io.EOF) || tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("%s (reads of %d): error %v, want %v", tc.name, step, err, tc.err)
			}
			if tc.err == nil && got != tc.in {
				t.Errorf("%s (reads of %d): read %d bytes of %d", tc.name, step, len(got), len(tc.in))
			}
			if len(vs) != len(tc.want) {
				t.Errorf("%s (reads of %d): verdicts %v, want %v", tc.name, step, vs, tc.want)
				continue
			}
			for i := range vs {
				if vs[i] != tc.want[i] {
					t.Errorf("%s (reads of %d): verdict %d = %v, want %v", tc.name, step, i, vs[i], tc.want[i])
				}
			}
		}
	}
}

// The bytes before a malformed chunk are delivered; the error comes with the next read.
func TestMalformedChunkAfterGoodBytes(t *testing.T) {
	in := "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nxyz\r\n"
	c := &Conn{Conn: &fakeConn{data: in, step: len(in)}}
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != strings.TrimSuffix(in, "xyz\r\n") {
		t.Fatalf("first read: %q %v", buf[:n], err)
	}
	if _, err := c.Read(buf); !errors.Is(err, ErrMalformedBody) {
		t.Fatalf("second read: %v, want ErrMalformedBody", err)
	}
	if v := c.NextVerdict(); v != (Verdict{}) {
		t.Errorf("verdict %v", v)
	}
}
