package wasm

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestHeaderMapPairs checks proxy_get_header_map_pairs' serialisation of the
// request headers: pseudo-headers first, then every value by lower-case name,
// names sorted, from buffers reused across calls (a shorter map after a
// longer one leaves nothing behind).
func TestHeaderMapPairs(t *testing.T) {
	var sc pairScratch
	encode := func(h http.Header) [][2]string {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "http://broker.example/ns/b?x=1", nil)
		r.Header = h
		reqHeaders{&stream{req: r}}.appendPairs(&sc)
		sc.enc = encodePairs(sc.enc[:0], sc.pairs)
		sc.reset()
		got, ok := decodePairs(sc.enc)
		if !ok {
			t.Fatalf("decodePairs(%q) failed", sc.enc)
		}
		return got
	}
	want := func(h http.Header) [][2]string {
		out := [][2]string{{":authority", "broker.example"}, {":path", "/ns/b?x=1"}, {":method", "POST"}, {":scheme", "http"}}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range h {
				if !yield(k) {
					return
				}
			}
		}) {
			for _, v := range h[k] {
				out = append(out, [2]string{strings.ToLower(k), v})
			}
		}
		return out
	}
	long := http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"42"}, "Content-Type": {"application/json"},
		"X-Multi": {"a", "b"}, "lower-set-directly": {"v"}, "Ünïcode-Name": {"u"}, "Empty": {""},
	}
	if got, w := encode(long), want(long); !slices.Equal(got, w) {
		t.Errorf("pairs =\n%q\nwant\n%q", got, w)
	}
	short := http.Header{"Ce-Id": {"7"}}
	if got, w := encode(short), want(short); !slices.Equal(got, w) {
		t.Errorf("pairs after a longer map =\n%q\nwant\n%q", got, w)
	}
	if got, w := encode(http.Header{}), want(http.Header{}); !slices.Equal(got, w) {
		t.Errorf("pairs of no fields =\n%q\nwant\n%q", got, w)
	}
}
