package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/xdsclient"
)

// Type URLs and names of the TLS pieces of a listener the gateway implements.
const (
	downstreamTLSTypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	tlsInspectorName     = "envoy.filters.listener.tls_inspector"
	tlsInspectorTypeURL  = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
)

// tlsSpec is a listener's TLS termination: its filter chains, each selected by SNI and
// naming the SDS secret that holds its certificate.
type tlsSpec struct {
	chains []tlsChain
}

// tlsChain is one TLS filter chain.
type tlsChain struct {
	name string
	// serverNames are exact names or "*.suffix" wildcards; empty matches any name.
	serverNames []string
	secret      string
	alpn        []string
	minVersion  uint16
	maxVersion  uint16
}

// secrets returns the SDS secret names the spec needs.
func (t *tlsSpec) secrets() []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, c := range t.chains {
		out = append(out, c.secret)
	}
	return out
}

// match picks the chain for a server name as Envoy does: an exact server name, else the
// longest wildcard suffix, else a chain without server names.
func (t *tlsSpec) match(sni string) *tlsChain {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	var best *tlsChain
	bestLen := -1
	for i := range t.chains {
		c := &t.chains[i]
		if len(c.serverNames) == 0 && bestLen < 0 {
			best, bestLen = c, 0
		}
		for _, n := range c.serverNames {
			n = strings.ToLower(n)
			switch {
			case n == sni:
				return c
			case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) && len(sni) > len(n)-1 && len(n) > bestLen:
				best, bestLen = c, len(n)
			}
		}
	}
	return best
}

// parseTLSChains validates a listener's filter chains for TLS termination: each has a
// DownstreamTlsContext transport socket with one SDS certificate over ADS (or the chain's
// only certificate), a match on server names only, and the same network filters (the
// gateway runs one HTTP connection manager per listener). It returns the spec and the common
// network filter.
func parseTLSChains(l *listenerv3.Listener, chains []*listenerv3.FilterChain) (*tlsSpec, *listenerv3.Filter, error) {
	for i, lf := range l.GetListenerFilters() {
		if lf.GetName() != tlsInspectorName && lf.GetTypedConfig().GetTypeUrl() != tlsInspectorTypeURL {
			return nil, nil, fmt.Errorf("listener_filters[%d] %q is not supported (only %s)", i, lf.GetName(), tlsInspectorName)
		}
	}
	spec := &tlsSpec{}
	var first *listenerv3.Filter
	seen := map[string]bool{}
	for i, fc := range chains {
		where := fmt.Sprintf("filter_chains[%d]", i)
		if len(fc.GetFilters()) != 1 {
			return nil, nil, fmt.Errorf("%s: exactly one network filter (the HTTP connection manager) is supported, got %d", where, len(fc.GetFilters()))
		}
		if first == nil {
			first = fc.GetFilters()[0]
		} else if !proto.Equal(first, fc.GetFilters()[0]) {
			return nil, nil, fmt.Errorf("%s: every filter chain must have the same HTTP connection manager", where)
		}
		m := fc.GetFilterChainMatch()
		if m != nil && !proto.Equal(m, &listenerv3.FilterChainMatch{ServerNames: m.GetServerNames()}) {
			return nil, nil, fmt.Errorf("%s.filter_chain_match: only server_names is supported", where)
		}
		for _, n := range m.GetServerNames() {
			if seen[strings.ToLower(n)] {
				return nil, nil, fmt.Errorf("%s.filter_chain_match: server name %q is matched by two filter chains", where, n)
			}
			seen[strings.ToLower(n)] = true
		}
		ts := fc.GetTransportSocket()
		if ts == nil {
			return nil, nil, fmt.Errorf("%s: a listener with several filter chains needs TLS on each (transport_socket)", where)
		}
		c, err := parseDownstreamTLS(ts)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.transport_socket: %w", where, err)
		}
		c.name, c.serverNames = fc.GetName(), slices.Clone(m.GetServerNames())
		spec.chains = append(spec.chains, c)
	}
	return spec, first, nil
}

// parseDownstreamTLS reads a DownstreamTlsContext the gateway can serve.
func parseDownstreamTLS(ts *corev3.TransportSocket) (tlsChain, error) {
	var c tlsChain
	if ts.GetTypedConfig().GetTypeUrl() != downstreamTLSTypeURL {
		return c, fmt.Errorf("%q: only %s is supported", ts.GetName(), downstreamTLSTypeURL)
	}
	var ctx tlsv3.DownstreamTlsContext
	if err := anypb.UnmarshalTo(ts.GetTypedConfig(), &ctx, proto.UnmarshalOptions{}); err != nil {
		return c, fmt.Errorf("decoding DownstreamTlsContext: %w", err)
	}
	if err := ctx.ValidateAll(); err != nil {
		return c, err
	}
	if ctx.GetRequireClientCertificate().GetValue() || ctx.GetRequireSni().GetValue() || ctx.GetSessionTicketKeysType() != nil {
		return c, errors.New("require_client_certificate, require_sni and session ticket keys are not supported")
	}
	common := ctx.GetCommonTlsContext()
	if common.GetValidationContextType() != nil || len(common.GetTlsCertificates()) > 0 || len(common.GetTlsCertificateSdsSecretConfigs()) != 1 {
		return c, errors.New("exactly one certificate from SDS (tls_certificate_sds_secret_configs) and no validation context are supported")
	}
	sds := common.GetTlsCertificateSdsSecretConfigs()[0]
	if sds.GetSdsConfig().GetAds() == nil {
		return c, fmt.Errorf("secret %q: only sds_config over ADS is supported", sds.GetName())
	}
	c.secret = sds.GetName()
	c.alpn = slices.Clone(common.GetAlpnProtocols())
	for _, p := range c.alpn {
		if p != "h2" && p != "http/1.1" {
			return c, fmt.Errorf("alpn protocol %q is not supported (h2, http/1.1)", p)
		}
	}
	var err error
	if c.minVersion, err = tlsVersion(common.GetTlsParams().GetTlsMinimumProtocolVersion(), tls.VersionTLS12); err != nil {
		return c, fmt.Errorf("tls_minimum_protocol_version: %w", err)
	}
	if c.maxVersion, err = tlsVersion(common.GetTlsParams().GetTlsMaximumProtocolVersion(), tls.VersionTLS13); err != nil {
		return c, fmt.Errorf("tls_maximum_protocol_version: %w", err)
	}
	return c, nil
}

// tlsVersion maps an Envoy TLS version to Go's; TLS_AUTO is def (Envoy's server defaults are
// 1.2 and 1.3).
func tlsVersion(v tlsv3.TlsParameters_TlsProtocol, def uint16) (uint16, error) {
	switch v {
	case tlsv3.TlsParameters_TLS_AUTO:
		return def, nil
	case tlsv3.TlsParameters_TLSv1_0:
		return tls.VersionTLS10, nil
	case tlsv3.TlsParameters_TLSv1_1:
		return tls.VersionTLS11, nil
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%s is not supported", v)
}

// applySecrets validates SDS secrets (TLS certificates with inline chain and key) and
// installs them; a bad one rejects the update, keeping the previous secrets, as Envoy does.
func (g *Gateway) applySecrets(res map[string]xdsclient.Resource) error {
	certs := make(map[string]*tls.Certificate, len(res))
	for name, r := range res {
		s := r.Message.(*tlsv3.Secret)
		if err := s.ValidateAll(); err != nil {
			return fmt.Errorf("secret %q: %w", name, err)
		}
		tc := s.GetTlsCertificate()
		if tc == nil {
			return fmt.Errorf("secret %q: only tls_certificate secrets are supported", name)
		}
		chain, err := inlineBytes(tc.GetCertificateChain())
		if err != nil {
			return fmt.Errorf("secret %q: certificate_chain: %w", name, err)
		}
		key, err := inlineBytes(tc.GetPrivateKey())
		if err != nil {
			return fmt.Errorf("secret %q: private_key: %w", name, err)
		}
		pair, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return fmt.Errorf("secret %q: %w", name, err)
		}
		certs[name] = &pair
	}
	g.mu.Lock()
	g.secrets = certs
	g.mu.Unlock()
	return nil
}

func inlineBytes(ds *corev3.DataSource) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	}
	return nil, errors.New("only inline_bytes and inline_string are supported")
}

// secret returns the certificate of an SDS secret, if it has arrived.
func (g *Gateway) secret(name string) *tls.Certificate {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.secrets[name]
}

// tlsConfig is the TLS configuration of a listener: per connection, the filter chain the
// client's SNI selects and the certificate of its secret as the gateway holds it now, so
// renewed certificates and new chains apply to new connections without rebinding.
func (g *Gateway) tlsConfig(l *listener) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			spec := l.tlsSpec()
			if spec == nil {
				return nil, errors.New("the listener has no TLS configuration")
			}
			c := spec.match(hello.ServerName)
			if c == nil {
				g.stats.Counter("listener." + l.name + ".no_filter_chain_match").Inc()
				return nil, fmt.Errorf("no filter chain matches server name %q", hello.ServerName)
			}
			cert := g.secret(c.secret)
			if cert == nil {
				g.stats.Counter("listener." + l.name + ".ssl.connection_error").Inc()
				return nil, fmt.Errorf("secret %q has not arrived", c.secret)
			}
			g.stats.Counter("listener." + l.name + ".ssl.handshake").Inc()
			next := c.alpn
			if len(next) == 0 {
				next = []string{"http/1.1"}
			}
			return &tls.Config{
				Certificates: []tls.Certificate{*cert},
				NextProtos:   next,
				MinVersion:   c.minVersion,
				MaxVersion:   c.maxVersion,
			}, nil
		},
	}
}
