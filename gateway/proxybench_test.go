package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// BenchmarkReverseProxyBaseline is BenchmarkGatewayWasm/off's request (POST, keep-alive,
// one backend) through a plain net/http/httputil.ReverseProxy in the same process: the
// baseline of the gateway's own per-request cost (issue 17).
//
//	go test -run '^$' -bench 'GatewayWasm/off|ReverseProxyBaseline' -benchmem ./gateway/
func BenchmarkReverseProxyBaseline(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer backend.Close()
	u, _ := url.Parse(backend.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	front := httptest.NewServer(rp)
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	for b.Loop() {
		postEvent(b, client, front.URL+"/")
	}
}
