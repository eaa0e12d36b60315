package e2e

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

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
