package main

import (
	"testing"

	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/tetratelabs/proxy-wasm-go-sdk/proxywasm/types"
)

// forwardedCases are every case of Knative's TestForwardedShimHandler
// (knative.dev/serving pkg/queue/forwarded_shim_test.go), plus a few more
// below it.
var forwardedCases = []struct {
	name               string
	xff, xfh, xfp, fwd string
	want               string
}{{
	name: "multiple xff",
	xff:  "127.0.0.1, ::1",
	xfh:  "h",
	xfp:  "p",
	want: `for=127.0.0.1;host=h;proto=p, for="[::1]"`,
}, {
	name: "single xff",
	xff:  "127.0.0.1",
	xfh:  "h",
	xfp:  "p",
	want: "for=127.0.0.1;host=h;proto=p",
}, {
	name: "multiple xff, no xfh, no xfp",
	xff:  "127.0.0.1, ::1",
	want: `for=127.0.0.1, for="[::1]"`,
}, {
	name: "multiple xff, no xfh",
	xff:  "127.0.0.1, ::1",
	xfp:  "p",
	want: `for=127.0.0.1;proto=p, for="[::1]"`,
}, {
	name: "multiple xff, no xfp",
	xff:  "127.0.0.1, ::1",
	xfh:  "h",
	want: `for=127.0.0.1;host=h, for="[::1]"`,
}, {
	name: "only xfh",
	xfh:  "h",
	want: "host=h",
}, {
	name: "only xfp",
	xfp:  "p",
	want: "proto=p",
}, {
	name: "only xfp and xfh",
	xfh:  "h",
	xfp:  "p",
	want: "host=h;proto=p",
}, {
	name: "broken for",
	xff:  ",,,",
	want: "for=, for=, for=",
}, {
	name: "existing fwd",
	xff:  "127.0.0.1, ::1",
	xfh:  "h",
	xfp:  "p",
	fwd:  "for=a, for=b",
	want: "for=a, for=b",
}, {
	name: "no xf* headers",
}, {
	// Not in Knative's test; what its algorithm gives. Envoy appends the peer
	// with "," and no space.
	name: "client chain as Envoy appends the peer",
	xff:  "1.2.3.4,127.0.0.1",
	xfp:  "http",
	want: "for=1.2.3.4;proto=http, for=127.0.0.1",
}, {
	name: "IPv6 peer alone",
	xff:  "::1",
	xfp:  "http",
	want: `for="[::1]";proto=http`,
}, {
	name: "trailing comma adds no element",
	xff:  "a,",
	want: "for=a",
}, {
	name: "empty first entry with host",
	xff:  ",a",
	xfh:  "h",
	want: "for=host=h, for=a",
}}

// TestForwarded runs the cases through the filter in the proxy-wasm host
// emulator: the Forwarded header the upstream would get.
func TestForwarded(t *testing.T) {
	for _, tc := range forwardedCases {
		t.Run(tc.name, func(t *testing.T) {
			opt := proxytest.NewEmulatorOption().WithVMContext(&vmContext{})
			host, reset := proxytest.NewHostEmulator(opt)
			defer reset()
			if st := host.StartPlugin(); st != types.OnPluginStartStatusOK {
				t.Fatalf("plugin start = %v", st)
			}
			hdrs := [][2]string{{":path", "/"}, {":method", "GET"}}
			for _, h := range [][2]string{{"x-forwarded-for", tc.xff}, {"x-forwarded-host", tc.xfh}, {"x-forwarded-proto", tc.xfp}, {"forwarded", tc.fwd}} {
				if h[1] != "" {
					hdrs = append(hdrs, h)
				}
			}
			id := host.InitializeHttpContext()
			if act := host.CallOnRequestHeaders(id, hdrs, true); act != types.ActionContinue {
				t.Fatalf("action = %v", act)
			}
			var got []string
			for _, h := range host.GetCurrentRequestHeaders(id) {
				if h[0] == "forwarded" {
					got = append(got, h[1])
				}
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("Forwarded = %q, want none", got)
			case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("Forwarded = %q, want %q", got, tc.want)
			}
			host.CompleteHttpContext(id)
		})
	}
}

// TestForwardedTrailingSpace covers a value the codecs never pass on (they trim
// a header value's trailing spaces): an entry of spaces is an empty element.
func TestForwardedTrailingSpace(t *testing.T) {
	if got, want := Forwarded("a, ", "", ""), "for=a, for="; got != want {
		t.Errorf("Forwarded = %q, want %q", got, want)
	}
}

func BenchmarkForwarded(b *testing.B) {
	for range b.N {
		Forwarded("127.0.0.1,127.0.0.2,::1", "http", "localhost")
	}
}
