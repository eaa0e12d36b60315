package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/stats"
)

func tlsCluster(t *testing.T, certSecret, caSecret, san string) *clusterv3.Cluster {
	t.Helper()
	ctx := &tlsv3.UpstreamTlsContext{Sni: "svc.example", CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: certSecret}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}}}}},
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: caSecret},
		}},
	}}
	a, err := anypb.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &clusterv3.Cluster{Name: "secured", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		TransportSocket: &corev3.TransportSocket{Name: tlsTransportSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}}
}

// A cluster's TLS transport socket names the gateway's static secrets, as Envoy's names its
// bootstrap's: known names give the cluster a TLS configuration (SNI, client certificate,
// CA), unknown ones are refused naming the secret, and other transport sockets are refused.
func TestClusterTransportSocket(t *testing.T) {
	m := NewManager(stats.NewStore(), StaticSecrets{
		Certificates: map[string]tls.Certificate{"client": {}},
		CAs:          map[string]*x509.CertPool{"ca": x509.NewCertPool()},
	})
	if err := m.ApplyClusters(map[string]*clusterv3.Cluster{"secured": tlsCluster(t, "client", "ca", "svc.example")}); err != nil {
		t.Fatal(err)
	}
	cfg := m.Get("secured").TLSConfig()
	if cfg == nil || cfg.ServerName != "svc.example" || len(cfg.Certificates) != 1 || cfg.RootCAs == nil || cfg.VerifyConnection == nil {
		t.Errorf("TLS config %+v, want SNI, the client certificate, the CA and a SAN check", cfg)
	}
	for name, c := range map[string]*clusterv3.Cluster{
		`no static secret "other-client"`: tlsCluster(t, "other-client", "ca", "svc.example"),
		`no static secret "other-ca"`:     tlsCluster(t, "client", "other-ca", "svc.example"),
	} {
		if err := m.ApplyClusters(map[string]*clusterv3.Cluster{"secured": c}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("want an error containing %s, got %v", name, err)
		}
	}
	raw := tlsCluster(t, "client", "ca", "svc.example")
	raw.TransportSocket.Name = "envoy.transport_sockets.alts"
	if err := m.ApplyClusters(map[string]*clusterv3.Cluster{"secured": raw}); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("another transport socket: %v", err)
	}
}
