package xds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
)

// ALPNProtocols are what the TLS listener offers, most preferred first.
var ALPNProtocols = []string{"h2", "http/1.1"}

// addTLSFilterChains gives l a tls_inspector (SNI is read before a filter chain is chosen)
// and one filter chain per certificate, sorted by name, each terminating TLS with the
// certificate's SDS secret and running hcm.
func addTLSFilterChains(l *listenerv3.Listener, hcm *listenerv3.Filter, certs []TLSCertificate) error {
	inspector, err := anypb.New(&tlsinspectorv3.TlsInspector{})
	if err != nil {
		return fmt.Errorf("tls_inspector: %w", err)
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       wellknown.TlsInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: inspector},
	}}
	sorted := slices.Clone(certs)
	slices.SortFunc(sorted, func(a, b TLSCertificate) int { return strings.Compare(a.Name, b.Name) })
	seen := map[string]string{}
	for _, c := range sorted {
		if c.Name == "" || len(c.Hosts) == 0 {
			return fmt.Errorf("certificate %q: a name and at least one host are required", c.Name)
		}
		for _, h := range c.Hosts {
			h = strings.ToLower(h)
			if other, dup := seen[h]; dup {
				return fmt.Errorf("host %q is in both certificates %q and %q", h, other, c.Name)
			}
			seen[h] = c.Name
		}
		ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams: &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
				Name: c.Name, SdsConfig: adsConfigSource(),
			}},
			AlpnProtocols: slices.Clone(ALPNProtocols),
		}}
		if err := ctx.ValidateAll(); err != nil {
			return fmt.Errorf("certificate %q: %w", c.Name, err)
		}
		a, err := anypb.New(ctx)
		if err != nil {
			return fmt.Errorf("certificate %q: %w", c.Name, err)
		}
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			Name:             c.Name,
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: slices.Clone(c.Hosts)},
			TransportSocket: &corev3.TransportSocket{
				Name:       wellknown.TransportSocketTls,
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a},
			},
			Filters: []*listenerv3.Filter{hcm},
		})
	}
	return nil
}

// TranslateSecret returns the SDS Secret of a certificate: its chain and key inline.
func TranslateSecret(c TLSCertificate) (*tlsv3.Secret, error) {
	s := &tlsv3.Secret{
		Name: c.Name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.CertPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.KeyPEM}},
		}},
	}
	if err := s.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate secret %q: %w", c.Name, err)
	}
	return s, nil
}

// CheckCertificate reports why a certificate cannot be served: a chain and key that do not
// parse or do not match, a leaf that has expired or is not yet valid at now, or a host of
// c.Hosts the leaf does not cover. Proxies are only ever sent certificates that pass, so one
// bad certificate fails its own hosts and no others.
func CheckCertificate(c TLSCertificate, now time.Time) error {
	if len(c.CertPEM) == 0 || len(c.KeyPEM) == 0 {
		return errors.New("the certificate or its key is empty")
	}
	pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return fmt.Errorf("the certificate and key do not load: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("the certificate does not parse: %w", err)
	}
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	for _, h := range c.Hosts {
		if err := leaf.VerifyHostname(strings.TrimPrefix(h, "*.")); err != nil && !strings.HasPrefix(h, "*.") {
			return fmt.Errorf("the certificate does not cover %s: %w", h, err)
		}
	}
	return nil
}
