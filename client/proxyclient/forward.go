package proxyclient

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"time"
)

// Forward is an HTTP forward proxy (what HTTP_PROXY names) for processes Skiff runs on
// this machine: a request for a host Skiff routes (the serving domain, *.svc.cluster.local)
// goes to Skiff's proxy keeping its Host (a cluster-local name to the proxy's local
// listener), as Skiff's own deliveries do; any other goes straight to its host. It lets a
// local ContainerSource reach its K_SINK, a Knative address no resolver on the machine
// knows. Plain HTTP requests are forwarded in absolute form; CONNECT tunnels are opened to
// the same place.
func Forward(cfg Config) http.Handler {
	client := New(cfg)
	rp := &httputil.ReverseProxy{
		// The request is already in absolute form: URL and Host say where it goes.
		Rewrite:   func(r *httputil.ProxyRequest) { r.Out.Host = r.In.Host },
		Transport: client.Transport,
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			connect(w, r, dialer, cfg)
			return
		}
		if !r.URL.IsAbs() || r.URL.Scheme != "http" {
			http.Error(w, "this is an HTTP forward proxy: send absolute http:// request URIs (HTTP_PROXY), or CONNECT", http.StatusBadRequest)
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// connect opens a CONNECT tunnel to the request's host (to Skiff's proxy for a routed
// host, its local listener for a cluster-local name) and copies bytes both ways until either side closes.
func connect(w http.ResponseWriter, r *http.Request, dialer *net.Dialer, cfg Config) {
	upstream, err := dialer.DialContext(r.Context(), "tcp", cfg.dialAddress(r.Host))
	if err != nil {
		http.Error(w, "dial "+r.Host+": "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "CONNECT is not supported on this connection", http.StatusInternalServerError)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(upstream, buf)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, upstream)
		done <- struct{}{}
	}()
	<-done // one side closed: close both, which ends the other copy
	client.Close()
	upstream.Close()
	<-done
}
