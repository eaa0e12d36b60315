package xds

import (
	"cmp"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Names of the static secrets (bootstrap static_resources.secrets, read from files mounted
// from the Secret the controller keeps) through which proxies reach Skiff's own services over
// mTLS: the client certificate they present and the CA they trust.
const (
	DefaultClientCertSecret = "skiff-client-cert"
	DefaultCASecret         = "skiff-ca"
	// TLSTransportSocketName is the transport socket of a TLS upstream.
	TLSTransportSocketName = "envoy.transport_sockets.tls"
)

// ProxyTLS says how proxies reach Skiff's own services (the skiff-extproc and skiff-wasm
// clusters) over mTLS. The clusters only name the secrets: the certificate and key never
// travel over xDS, and no file path is shared with the control plane.
type ProxyTLS struct {
	// ClientCertSecret and CASecret name the proxy's static secrets; defaults
	// DefaultClientCertSecret and DefaultCASecret.
	ClientCertSecret, CASecret string
	// ExtProcServerName and WasmServerName are the DNS names the ext_proc service's and the
	// controller's certificates carry: sent as SNI and required among the peer's SANs.
	ExtProcServerName, WasmServerName string
}

// transportSocket is the TLS transport socket of a cluster whose server is serverName; alpn
// lists the protocols offered (h2 for gRPC).
func (p *ProxyTLS) transportSocket(serverName string, alpn ...string) (*corev3.TransportSocket, error) {
	if serverName == "" {
		return nil, fmt.Errorf("proxy TLS: a server name is required")
	}
	ctx := &tlsv3.UpstreamTlsContext{
		Sni: serverName,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols: alpn,
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{
				{Name: cmp.Or(p.ClientCertSecret, DefaultClientCertSecret)},
			},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
							SanType: tlsv3.SubjectAltNameMatcher_DNS,
							Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: serverName}},
						}},
					},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: cmp.Or(p.CASecret, DefaultCASecret)},
				},
			},
		},
	}
	if err := ctx.ValidateAll(); err != nil {
		return nil, fmt.Errorf("proxy TLS: %w", err)
	}
	a, err := anypb.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("proxy TLS: %w", err)
	}
	return &corev3.TransportSocket{Name: TLSTransportSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}, nil
}

// secure adds the TLS transport socket for serverName to c.
func (p *ProxyTLS) secure(c *clusterv3.Cluster, serverName string, alpn ...string) error {
	if p == nil {
		return nil
	}
	ts, err := p.transportSocket(serverName, alpn...)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", c.GetName(), err)
	}
	c.TransportSocket = ts
	if err := c.ValidateAll(); err != nil {
		return fmt.Errorf("cluster %s: %w", c.GetName(), err)
	}
	return nil
}
