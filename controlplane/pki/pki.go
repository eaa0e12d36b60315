// Package pki is the certificate authority Skiff keeps for its own connections in a cluster:
// it creates a CA, issues the certificates the controller, Envoy and the ext_proc activators
// present to each other (mTLS), and builds the tls.Configs that require them.
//
// Keys are ECDSA P-256. A CA is valid for 10 years, a certificate it issues for one year;
// NeedsRenewal says when one should be issued again (a third of its lifetime left).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Lifetimes of what the CA creates.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	CertLifetime = 365 * 24 * time.Hour
)

// Usage says what a certificate is for: serving TLS, presenting as a client, or both.
type Usage int

// Usages.
const (
	Server Usage = 1 << iota
	Client
)

// CA is a certificate authority with its key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertPEM and KeyPEM are the CA's certificate and key, PEM-encoded.
	CertPEM, KeyPEM []byte
}

// Pair is an issued certificate and its key, PEM-encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// NewCA creates a CA named commonName, valid from now for CALifetime.
func NewCA(commonName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("creating a CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Skiff"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the CA certificate: %w", err)
	}
	return parseCA(pemBlock("CERTIFICATE", der), keyPEM(key))
}

// LoadCA reads a CA from its PEM-encoded certificate and key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	return parseCA(certPEM, keyPEM)
}

func parseCA(certPEM, keyPEMBytes []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate: not a CA")
	}
	b, _ := pem.Decode(keyPEMBytes)
	if b == nil {
		return nil, errors.New("CA key: no PEM block")
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEMBytes}, nil
}

// Issue creates a certificate for commonName with the DNS names given, for usage, valid from
// now for CertLifetime (never past the CA's own end).
func (ca *CA) Issue(commonName string, dnsNames []string, usage Usage, now time.Time) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("issuing %s: key: %w", commonName, err)
	}
	notAfter := now.Add(CertLifetime)
	if ca.Cert.NotAfter.Before(notAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"Skiff"}},
		DNSNames:     dnsNames,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if usage&Server != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if usage&Client != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Pair{}, fmt.Errorf("issuing %s: %w", commonName, err)
	}
	return Pair{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: keyPEM(key)}, nil
}

// NeedsRenewal reports whether a PEM certificate should be issued again at now: it does not
// parse, was not issued by ca, lacks one of dnsNames, or has less than a third of its
// lifetime left.
func (ca *CA) NeedsRenewal(certPEM []byte, dnsNames []string, now time.Time) bool {
	cert, err := ParseCert(certPEM)
	if err != nil || cert.CheckSignatureFrom(ca.Cert) != nil {
		return true
	}
	for _, n := range dnsNames {
		if cert.VerifyHostname(n) != nil {
			return true
		}
	}
	return cert.NotAfter.Sub(now) < cert.NotAfter.Sub(cert.NotBefore)/3
}

// ParseCert parses the first PEM certificate in b.
func ParseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// Pool returns a pool holding the PEM certificates in caPEM.
func Pool(caPEM []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no PEM certificate in the CA bundle")
	}
	return p, nil
}

// ServerConfig is the tls.Config of a server presenting pair that requires every client to
// present a certificate issued by the CA in caPEM.
func ServerConfig(pair Pair, caPEM []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	pool, err := Pool(caPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientConfig is the tls.Config of a client presenting pair that trusts only the CA in caPEM
// and expects the server to be serverName.
func ClientConfig(pair Pair, caPEM []byte, serverName string) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	pool, err := Pool(caPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// Files names the PEM files of a certificate, its key and the CA bundle (as mounted from
// a Secret).
type Files struct {
	Cert, Key, CA string
}

// Read reads the files.
func (f Files) Read() (Pair, []byte, error) {
	var pair Pair
	var ca []byte
	var err error
	for _, x := range []struct {
		path string
		out  *[]byte
	}{{f.Cert, &pair.CertPEM}, {f.Key, &pair.KeyPEM}, {f.CA, &ca}} {
		if *x.out, err = os.ReadFile(x.path); err != nil {
			return Pair{}, nil, fmt.Errorf("reading TLS material: %w", err)
		}
	}
	return pair, ca, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("pki: reading random bytes: %v", err)) // crypto/rand does not fail
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		panic(fmt.Sprintf("pki: encoding a P-256 key: %v", err)) // cannot fail for a generated key
	}
	return pemBlock("EC PRIVATE KEY", der)
}
