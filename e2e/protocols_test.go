package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

const grpcServiceYAML = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: grpc
spec:
  template:
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/grpc-echo
          ports:
            - name: h2c
              containerPort: 8080
`

// gRPC to an h2c Service (port name h2c) through the proxy: over TLS (HTTP/2 by ALPN, the
// certificate from the local CA) and over cleartext h2c, unary and server-streaming calls.
func TestGRPCThroughTheProxy(t *testing.T) {
	s := startSkiff(t, t.TempDir(), withNetworking)
	s.apply(configMap("config-network", map[string]string{"external-domain-tls": "Enabled"}))
	s.apply(grpcServiceYAML)
	var svc servingv1.Service
	s.waitReady("ksvc", "grpc", &svc)
	if svc.Status.URL != "https://grpc.default.localhost" {
		t.Errorf("status.url = %q", svc.Status.URL)
	}
	httpsAddr := s.httpsAddr()
	tlsCreds := credentials.NewTLS(&tls.Config{RootCAs: s.localCA(), ServerName: "grpc.default.localhost"})
	for name, dial := range map[string]struct {
		addr  string
		creds credentials.TransportCredentials
	}{
		"TLS": {httpsAddr, tlsCreds},
		"h2c": {s.http, insecure.NewCredentials()},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := grpc.NewClient("passthrough:///"+dial.addr, grpc.WithTransportCredentials(dial.creds), grpc.WithAuthority("grpc.default.localhost"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := grpc_health_v1.NewHealthClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var hdr metadata.MD
			var resp *grpc_health_v1.HealthCheckResponse
			// The TLS listener may still be taking the certificate; retry until it serves.
			for {
				resp, err = client.Check(ctx, &grpc_health_v1.HealthCheckRequest{}, grpc.Header(&hdr))
				if err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING || first(hdr.Get("x-revision")) != "grpc-00001" {
				t.Errorf("Check = %v, x-revision %v; want SERVING from grpc-00001", resp.GetStatus(), hdr.Get("x-revision"))
			}
			stream, err := client.Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if m, err := stream.Recv(); err != nil || m.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
					t.Fatalf("Watch message %d: %v %v", i, m, err)
				}
			}
		})
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// WebSockets and server-sent events through the proxy, over TLS as over plain HTTP: a
// WebSocket echoes messages both ways on one upgraded connection; events stream as they are
// written (the first arrives long before the last is sent), over HTTP/2 with TLS.
func TestWebSocketsAndSSEThroughTheProxy(t *testing.T) {
	s := startSkiff(t, t.TempDir(), withNetworking)
	s.apply(configMap("config-network", map[string]string{"external-domain-tls": "Enabled"}))
	s.apply(serviceYAML("hello", "streams", ""))
	s.waitReady("ksvc", "hello", nil)
	httpsAddr := s.httpsAddr()
	ca := s.localCA()
	httpsGet(t, httpsAddr, "hello.default.localhost", "/", ca) // the certificate is served

	for name, tc := range map[string]struct {
		url  string
		addr string
		tls  *tls.Config
	}{
		"wss": {"wss://hello.default.localhost/ws", httpsAddr, &tls.Config{RootCAs: ca, ServerName: "hello.default.localhost"}},
		"ws":  {"ws://hello.default.localhost/ws", s.http, nil},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := websocket.NewConfig(tc.url, "http://hello.default.localhost")
			if err != nil {
				t.Fatal(err)
			}
			cfg.TlsConfig = tc.tls
			raw, err := net.DialTimeout("tcp", tc.addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var conn net.Conn = raw
			if tc.tls != nil {
				tc := tls.Client(raw, tc.tls)
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				conn = tc
			}
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			ws, err := websocket.NewClient(cfg, conn)
			if err != nil {
				t.Fatalf("WebSocket handshake through the proxy: %v", err)
			}
			for _, msg := range []string{"one", "two", "three"} {
				if err := websocket.Message.Send(ws, msg); err != nil {
					t.Fatal(err)
				}
				var got string
				if err := websocket.Message.Receive(ws, &got); err != nil {
					t.Fatal(err)
				}
				if got != "hello-00001: "+msg {
					t.Errorf("echo of %q = %q", msg, got)
				}
			}
		})
	}

	for name, tc := range map[string]struct {
		base string
		tr   *http.Transport
	}{
		"https": {"https://hello.default.localhost", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca, ServerName: "hello.default.localhost"}, ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, httpsAddr)
			}}},
		"http": {"http://hello.default.localhost", &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, s.http)
			}}},
	} {
		t.Run("sse-"+name, func(t *testing.T) {
			defer tc.tr.CloseIdleConnections()
			// 100 events take 5s to write: reading the first within 3s shows they stream.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.base+"/events?n=100", nil)
			resp, err := (&http.Client{Transport: tc.tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type = %q", ct)
			}
			if name == "https" && resp.ProtoMajor != 2 {
				t.Errorf("over TLS: %s, want HTTP/2", resp.Proto)
			}
			sc := bufio.NewScanner(resp.Body)
			var got []string
			for sc.Scan() && len(got) < 2 {
				if line := sc.Text(); strings.HasPrefix(line, "data: ") {
					got = append(got, strings.TrimPrefix(line, "data: "))
				}
			}
			if err := sc.Err(); err != nil || len(got) != 2 || got[0] != "hello-00001 1" || got[1] != "hello-00001 2" {
				t.Errorf("first events = %q, %v; want them as they are written, before the stream ends", got, err)
			}
		})
	}
}
