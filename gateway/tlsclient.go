package gateway

// This file holds the gateway's own certificate material (--tls-*): mTLS to the control
// plane's ADS server and the static secrets upstream TLS transport sockets name. TLS
// termination for downstream clients, with certificates over SDS, is in tls.go.

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/skiff-dev/skiff/gateway/upstream"
)

// Default names of the gateway's static secrets, the names deploy/envoy/bootstrap.yaml gives
// Envoy's (and the control plane's clusters refer to).
const (
	DefaultClientCertSecret = "skiff-client-cert"
	DefaultCASecret         = "skiff-ca"
)

// TLSConfig is the gateway's certificate material, as the files an Envoy bootstrap's static
// secrets point at (e.g. mounted from the controller's TLS Secret): the certificate it
// presents and the CA it trusts. With it the ADS connection is mTLS, and clusters whose TLS
// transport socket names ClientCertSecret and CASecret use them (ext_proc, the wasm modules).
type TLSConfig struct {
	// CertFile and KeyFile are the gateway's client certificate and key, CAFile the CA (PEM).
	CertFile, KeyFile, CAFile string
	// ClientCertSecret and CASecret are the secret names clusters use for them; defaults
	// DefaultClientCertSecret and DefaultCASecret.
	ClientCertSecret, CASecret string
	// XDSServerName is the name the ADS server's certificate must carry; default the host
	// of Config.ADSAddress.
	XDSServerName string
}

// tlsMaterial is a loaded TLSConfig.
type tlsMaterial struct {
	cert tls.Certificate
	pool *x509.CertPool
}

func (c *TLSConfig) load() (*tlsMaterial, error) {
	if c.CertFile == "" || c.KeyFile == "" || c.CAFile == "" {
		return nil, errors.New("gateway TLS: CertFile, KeyFile and CAFile are all required")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway TLS: %w", err)
	}
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("gateway TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("gateway TLS: %s holds no PEM certificate", c.CAFile)
	}
	return &tlsMaterial{cert: cert, pool: pool}, nil
}

// secrets returns the static secrets clusters may name.
func (c *TLSConfig) secrets(m *tlsMaterial) upstream.StaticSecrets {
	if m == nil {
		return upstream.StaticSecrets{}
	}
	return upstream.StaticSecrets{
		Certificates: map[string]tls.Certificate{cmp.Or(c.ClientCertSecret, DefaultClientCertSecret): m.cert},
		CAs:          map[string]*x509.CertPool{cmp.Or(c.CASecret, DefaultCASecret): m.pool},
	}
}

// clientConfig is the mTLS client configuration for a server named serverName.
func (m *tlsMaterial) clientConfig(serverName string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{m.cert}, RootCAs: m.pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// xdsDialOption is the ADS connection's transport credentials.
func (c *TLSConfig) xdsDialOption(m *tlsMaterial, adsAddress string) grpc.DialOption {
	name := c.XDSServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(adsAddress)
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(m.clientConfig(name)))
}

// xdsDialOptions are the ADS client's extra dial options: mTLS with TLS material.
func xdsDialOptions(cfg Config, m *tlsMaterial) []grpc.DialOption {
	if m == nil {
		return nil
	}
	return []grpc.DialOption{cfg.TLS.xdsDialOption(m, cfg.ADSAddress)}
}
