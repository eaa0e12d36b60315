package route

import (
	"net/http"
	"strings"
	"testing"
)

// Envoy's substitution formatters in request header values, as far as the gateway
// implements them: the downstream address with and without port, request headers
// (absent: "-"), "%%"; anything else is refused when the configuration is applied.
func TestHeaderFormat(t *testing.T) {
	h := http.Header{"X-Forwarded-Proto": {"https"}}
	for _, tc := range []struct{ in, remote, want string }{
		{"for=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%;proto=%REQ(X-Forwarded-Proto)%", "10.0.0.7:5123", "for=10.0.0.7;proto=https"},
		{"for=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "[::1]:5123", "for=::1"},
		{"%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.0.7:5123", "10.0.0.7:5123"},
		{"%REQ(x-missing)%", "", "-"},
		{"100%% %REQ(x-forwarded-proto)%", "", "100% https"},
	} {
		f, err := parseHeaderFormat(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := f.expand(h, tc.remote); got != tc.want {
			t.Errorf("%q from %s = %q, want %q", tc.in, tc.remote, got, tc.want)
		}
	}
	if f, err := parseHeaderFormat("plain"); f != nil || err != nil {
		t.Errorf("a literal compiles to %v, %v; want nil, nil", f, err)
	}
	for in, want := range map[string]string{
		"%START_TIME%":      "%START_TIME% is not supported",
		"%REQ(a?b)%":        "%REQ(a?b)% is not supported",
		"for=%DOWNSTREAM_R": "unterminated",
	} {
		if _, err := parseHeaderFormat(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", in, err, want)
		}
	}
}
