package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
	"github.com/skiff-dev/skiff/telemetry/otlptest"
)

// tlsFront terminates TLS with cert and forwards the decrypted stream to backend, counting
// completed handshakes: a collector reachable only over TLS.
func tlsFront(t *testing.T, cert tls.Certificate, backend string) (addr string, handshakes *atomic.Int64) {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	handshakes = &atomic.Int64{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close() // the exporter's idle connections too
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				handshakes.Add(1)
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
				<-done
			})
		}
	})
	return lis.Addr().String(), handshakes
}

// testCertificate returns a CA pool and a server certificate for name signed by it.
func testCertificate(t *testing.T, name string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tracing test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A tracing cluster with a TLS transport socket (naming the gateway's static CA secret) is
// reached over TLS, as Envoy reaches it, over gRPC and over HTTP: spans reach a collector
// that only speaks TLS.
func TestTracingClusterTLS(t *testing.T) {
	const sni = "collector.example"
	pool, cert := testCertificate(t, sni)
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			rcv := otlptest.Start(t)
			backend := rcv.GRPCAddr()
			if proto == "http" {
				backend = rcv.HTTPAddr()
			}
			addr, handshakes := tlsFront(t, cert, backend)
			host, port, _ := net.SplitHostPort(addr)
			p, _ := strconv.Atoi(port)

			tctx, err := anypb.New(&tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: &tlsv3.CommonTlsContext{
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "skiff-ca"}},
			}})
			if err != nil {
				t.Fatal(err)
			}
			cl := &clusterv3.Cluster{Name: "otel", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
				ConnectTimeout: durationpb.New(time.Second),
				LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "otel", Endpoints: []*endpointv3.LocalityLbEndpoints{{
					LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
							Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}}}}}}}},
				TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tctx}},
			}
			m := upstream.NewManager(stats.NewStore(), upstream.StaticSecrets{CAs: map[string]*x509.CertPool{"skiff-ca": pool}})
			if err := m.ApplyClusters(map[string]*clusterv3.Cluster{"otel": cl}); err != nil {
				t.Fatal(err)
			}

			oc := &tracev3.OpenTelemetryConfig{ServiceName: "tls-gateway"}
			if proto == "http" {
				oc.HttpService = &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: "https://" + sni + "/v1/traces",
					HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "otel"}, Timeout: durationpb.New(5 * time.Second)}}
			} else {
				oc.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "otel"}}}
			}
			oca, err := anypb.New(oc)
			if err != nil {
				t.Fatal(err)
			}
			tcfg := &hcmv3.HttpConnectionManager_Tracing{
				Provider:       &tracev3.Tracing_Http{Name: openTelemetryTracer, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: oca}},
				RandomSampling: &typev3.Percent{Value: 100},
			}
			ts := newTracers(m)
			defer ts.close()
			tr, key, err := ts.get(tcfg)
			if err != nil {
				t.Fatal(err)
			}
			_, span := tr.Start(context.Background(), "ingress")
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ts.mu.Lock()
			tp := ts.byKey[key].tp
			ts.mu.Unlock()
			if err := tp.ForceFlush(ctx); err != nil {
				t.Fatalf("exporting over the cluster's TLS: %v", err)
			}
			err = rcv.Wait(10*time.Second, func(spans []otlptest.Span, _ []otlptest.Point) bool {
				for _, s := range spans {
					if s.Service == "tls-gateway" && s.Name == "ingress" {
						return true
					}
				}
				return false
			})
			if err != nil {
				t.Fatalf("no span at the collector behind TLS: %v (handshakes %d)", err, handshakes.Load())
			}
			if handshakes.Load() == 0 {
				t.Fatal("spans arrived without a TLS handshake")
			}
		})
	}
}
