package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// tlsTransportSocket is the only transport socket supported: Envoy's TLS.
const tlsTransportSocket = "envoy.transport_sockets.tls"

// StaticSecrets are the gateway's certificates and trusted CAs by secret name, as an Envoy
// bootstrap's static_resources.secrets: a cluster's TLS transport socket refers to them by
// name (an SdsSecretConfig without sds_config), so keys never travel over xDS.
type StaticSecrets struct {
	Certificates map[string]tls.Certificate
	CAs          map[string]*x509.CertPool
}

// upstreamTLS builds the client tls.Config of a cluster's transport_socket; nil without one.
func (m *Manager) upstreamTLS(ts *corev3.TransportSocket) (*tls.Config, error) {
	if ts == nil {
		return nil, nil
	}
	if ts.GetName() != tlsTransportSocket {
		return nil, fmt.Errorf("transport_socket %q is not supported (only %s)", ts.GetName(), tlsTransportSocket)
	}
	var ctx tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	if err := ctx.ValidateAll(); err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	common := ctx.GetCommonTlsContext()
	if len(common.GetTlsCertificates()) > 0 {
		return nil, errors.New("transport_socket: inline tls_certificates are not supported (refer to a static secret with tls_certificate_sds_secret_configs)")
	}
	cfg := &tls.Config{ServerName: ctx.GetSni(), NextProtos: slices.Clone(common.GetAlpnProtocols()), MinVersion: tls.VersionTLS12}
	for _, sc := range common.GetTlsCertificateSdsSecretConfigs() {
		if sc.GetSdsConfig() != nil {
			return nil, fmt.Errorf("transport_socket: secret %q: only static secrets (no sds_config) are supported", sc.GetName())
		}
		cert, ok := m.secrets.Certificates[sc.GetName()]
		if !ok {
			return nil, fmt.Errorf("transport_socket: no static secret %q with a tls_certificate", sc.GetName())
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	var vc *tlsv3.CertificateValidationContext
	var caName string
	switch v := common.GetValidationContextType().(type) {
	case nil:
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		caName = v.ValidationContextSdsSecretConfig.GetName()
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		vc = v.CombinedValidationContext.GetDefaultValidationContext()
		caName = v.CombinedValidationContext.GetValidationContextSdsSecretConfig().GetName()
		if v.CombinedValidationContext.GetValidationContextSdsSecretConfig().GetSdsConfig() != nil {
			return nil, fmt.Errorf("transport_socket: secret %q: only static secrets (no sds_config) are supported", caName)
		}
	default:
		return nil, fmt.Errorf("transport_socket: validation context %T is not supported", v)
	}
	if caName == "" {
		// Envoy does not verify the server without a validation context; neither does
		// Go without RootCAs and with verification off, which the gateway refuses to do.
		return nil, errors.New("transport_socket: a validation context (a static secret with the trusted CA) is required")
	}
	pool, ok := m.secrets.CAs[caName]
	if !ok {
		return nil, fmt.Errorf("transport_socket: no static secret %q with a validation_context", caName)
	}
	cfg.RootCAs = pool
	var sans []string
	for _, sm := range vc.GetMatchTypedSubjectAltNames() {
		exact := sm.GetMatcher().GetExact()
		if sm.GetSanType() != tlsv3.SubjectAltNameMatcher_DNS || exact == "" {
			return nil, errors.New("transport_socket: only exact DNS subject alt name matchers are supported")
		}
		sans = append(sans, exact)
	}
	if len(sans) > 0 {
		// As Envoy: the chain must verify against the CA and the certificate must carry one
		// of the names (the SNI need not be one of them).
		cfg.InsecureSkipVerify = true // verified below, against the CA and the names
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("upstream TLS: no server certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter}); err != nil {
				return fmt.Errorf("upstream TLS: %w", err)
			}
			for _, n := range sans {
				if leaf.VerifyHostname(n) == nil {
					return nil
				}
			}
			return fmt.Errorf("upstream TLS: the server certificate carries none of %v", sans)
		}
	}
	return cfg, nil
}
