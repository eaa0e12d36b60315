package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// File names of the local CA under its directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Defaults of LocalOptions.
const (
	// DefaultLifetime is how long an issued certificate is valid, as Let's Encrypt's.
	DefaultLifetime = 90 * 24 * time.Hour
	// caLifetime is the local CA's validity.
	caLifetime = 10 * 365 * 24 * time.Hour
)

// LocalOptions tune a Local provider.
type LocalOptions struct {
	// Lifetime of issued certificates; default DefaultLifetime.
	Lifetime time.Duration
	// RenewBefore is how long before expiry a certificate is renewed; default a third of
	// Lifetime.
	RenewBefore time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Local issues certificates from a CA of its own, created on first use under a directory
// (ca.crt and ca.key, the key readable by its owner only) and kept across restarts, so a
// client that trusts ca.crt once trusts every host `skiff up` serves. Issued certificates are
// kept in memory and renewed RenewBefore their expiry: Run reports the owners due.
type Local struct {
	dir         string
	caCert      *x509.Certificate
	caKey       crypto.Signer
	caPEM       []byte
	lifetime    time.Duration
	renewBefore time.Duration
	now         func() time.Time

	mu     sync.Mutex
	issued map[string]*issued // by namespace/name
	wake   chan struct{}
}

type issued struct {
	owner           string
	hosts           []string
	certPEM, keyPEM []byte
	renewAt         time.Time
	// notified is set once Run has reported the certificate due, so it is reported once.
	notified bool
}

var _ Provider = (*Local)(nil)

// NewLocal loads the CA in dir, creating the directory and the CA when absent.
func NewLocal(dir string, opts LocalOptions) (*Local, error) {
	if opts.Lifetime <= 0 {
		opts.Lifetime = DefaultLifetime
	}
	if opts.RenewBefore <= 0 || opts.RenewBefore >= opts.Lifetime {
		opts.RenewBefore = opts.Lifetime / 3
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Local{dir: dir, lifetime: opts.Lifetime, renewBefore: opts.RenewBefore, now: opts.Now,
		issued: map[string]*issued{}, wake: make(chan struct{}, 1)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local CA: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		var err error
		if certPEM, keyPEM, err = newCA(l.now()); err != nil {
			return nil, fmt.Errorf("local CA: create: %w", err)
		}
		// The key first, so a crash never leaves a certificate whose key is lost.
		if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			return nil, fmt.Errorf("local CA: %w", err)
		}
		if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
			return nil, fmt.Errorf("local CA: %w", err)
		}
	case certErr != nil:
		return nil, fmt.Errorf("local CA: %w", certErr)
	case keyErr != nil:
		return nil, fmt.Errorf("local CA: %w", keyErr)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("local CA: %s holds no PEM certificate", certPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("local CA: %s: %w", certPath, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("local CA: %s holds no PEM key", keyPath)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("local CA: %s: %w", keyPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("local CA: %s is not the key of %s", keyPath, certPath)
	}
	l.caCert, l.caKey, l.caPEM = cert, key, certPEM
	return l, nil
}

// newCA makes a self-signed CA certificate and its key.
func newCA(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{"Skiff"}, CommonName: "Skiff local CA " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// CACertPath is the CA certificate's file, for clients to trust.
func (l *Local) CACertPath() string { return filepath.Join(l.dir, CACertFile) }

// CACertPEM is the CA certificate.
func (l *Local) CACertPEM() []byte { return l.caPEM }

// Certificate returns a certificate for req.Hosts signed by the CA: the one issued before
// under the same name while its hosts are the same and it is not due for renewal, else a new
// one. It is always Ready (issuing is local and takes a millisecond).
func (l *Local) Certificate(_ context.Context, req Request) (Status, error) {
	if len(req.Hosts) == 0 {
		return Status{State: Failed, Reason: "NoHosts", Message: "a certificate needs at least one host"}, nil
	}
	key := req.Namespace + "/" + req.Name
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.issued[key]; c != nil && c.owner == req.Owner && sameHosts(c.hosts, req.Hosts) && now.Before(c.renewAt) {
		return Status{State: Ready, CertPEM: c.certPEM, KeyPEM: c.keyPEM}, nil
	}
	certPEM, keyPEM, notAfter, err := l.issue(req.Hosts, now)
	if err != nil {
		return Status{State: Failed, Reason: "IssueFailed", Message: err.Error()}, nil
	}
	l.issued[key] = &issued{owner: req.Owner, hosts: slices.Clone(req.Hosts), certPEM: certPEM, keyPEM: keyPEM, renewAt: notAfter.Add(-l.renewBefore)}
	select {
	case l.wake <- struct{}{}: // Run recomputes its next renewal
	default:
	}
	return Status{State: Ready, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// issue signs a new certificate for hosts.
func (l *Local) issue(hosts []string, now time.Time) (certPEM, keyPEM []byte, notAfter time.Time, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	notAfter = now.Add(l.lifetime)
	if notAfter.After(l.caCert.NotAfter) {
		notAfter = l.caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{Organization: []string{"Skiff"}},
		NotBefore:    now.Add(-time.Minute), // tolerate a client clock slightly behind
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(hosts[0]) <= 64 {
		tmpl.Subject.CommonName = hosts[0]
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, l.caCert, &key.PublicKey, l.caKey)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), l.caPEM...)
	return chain, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), notAfter, nil
}

// Release forgets owner's certificates except those named in keep.
func (l *Local) Release(_ context.Context, owner string, keep []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, c := range l.issued {
		if c.owner == owner && !slices.ContainsFunc(keep, func(name string) bool { return hasName(key, name) }) {
			delete(l.issued, key)
		}
	}
}

// hasName reports whether key ("namespace/name") names name.
func hasName(key, name string) bool {
	return len(key) > len(name) && key[len(key)-len(name)-1:] == "/"+name
}

// Run calls renew with the owner of every certificate due for renewal, when it is due (its
// owner's reconcile then asks for it again and gets a new one), until ctx ends.
func (l *Local) Run(ctx context.Context, renew func(owner string)) {
	for {
		l.mu.Lock()
		now := l.now()
		var next time.Time
		var due []string
		for _, c := range l.issued {
			switch {
			case c.notified:
			case !now.Before(c.renewAt):
				c.notified = true
				due = append(due, c.owner)
			case next.IsZero() || c.renewAt.Before(next):
				next = c.renewAt
			}
		}
		l.mu.Unlock()
		slices.Sort(due)
		for _, o := range slices.Compact(due) {
			renew(o)
		}
		wait := time.Hour // a periodic look keeps the loop right whatever the clock does
		if !next.IsZero() && next.Sub(now) < wait {
			wait = max(next.Sub(now), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-l.wake:
			t.Stop()
		case <-t.C:
		}
	}
}
