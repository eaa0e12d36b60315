package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// leaf parses the first certificate of a PEM chain.
func leaf(t *testing.T, chain []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(chain)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The CA is created once under its directory (the key private to its owner) and loaded again
// after a restart; what it issues verifies against ca.crt for the asked hosts only.
func TestLocalCAIssuesVerifiableCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	l, err := NewLocal(dir, LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key: %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	st, err := l.Certificate(context.Background(), Request{Owner: "Route/default/hello", Namespace: "default", Name: "route-1", Hosts: []string{"hello.default.localhost"}})
	if err != nil || st.State != Ready {
		t.Fatalf("Certificate = %+v, %v", st, err)
	}
	if _, err := tls.X509KeyPair(st.CertPEM, st.KeyPEM); err != nil {
		t.Fatalf("the issued pair does not load: %v", err)
	}
	caPEM, err := os.ReadFile(l.CACertPath())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := leaf(t, st.CertPEM)
	if _, err := c.Verify(x509.VerifyOptions{DNSName: "hello.default.localhost", Roots: pool}); err != nil {
		t.Errorf("verify against ca.crt: %v", err)
	}
	if _, err := c.Verify(x509.VerifyOptions{DNSName: "other.default.localhost", Roots: pool}); err == nil {
		t.Error("the certificate verifies for a host it was not issued for")
	}
	if got := c.NotAfter.Sub(c.NotBefore); got < DefaultLifetime || got > DefaultLifetime+2*time.Minute {
		t.Errorf("lifetime = %s, want %s", got, DefaultLifetime)
	}

	// The same request gets the same certificate; new hosts get a new one.
	again, _ := l.Certificate(context.Background(), Request{Owner: "Route/default/hello", Namespace: "default", Name: "route-1", Hosts: []string{"hello.default.localhost"}})
	if string(again.CertPEM) != string(st.CertPEM) {
		t.Error("an unchanged request was issued a new certificate")
	}
	other, _ := l.Certificate(context.Background(), Request{Owner: "Route/default/hello", Namespace: "default", Name: "route-1", Hosts: []string{"hi.default.localhost"}})
	if string(other.CertPEM) == string(st.CertPEM) {
		t.Error("changed hosts kept the old certificate")
	}

	// A restart loads the same CA.
	l2, err := NewLocal(dir, LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(l2.CACertPEM()) != string(caPEM) {
		t.Error("a second start made a new CA")
	}
}

func TestLocalCABadFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CACertFile), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(dir, LocalOptions{}); err == nil {
		t.Error("a ca.crt without its key was accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(dir, LocalOptions{}); err == nil {
		t.Error("a junk CA was accepted")
	}
}

// A certificate is renewed before it expires: Run reports its owner when a third of its
// lifetime is left (once), and asking again then gives a new certificate.
func TestLocalCARenewsBeforeExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l, err := NewLocal(t.TempDir(), LocalOptions{Lifetime: 3 * time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Owner: "Route/default/hello", Namespace: "default", Name: "route-1", Hosts: []string{"hello.default.localhost"}}
	first, _ := l.Certificate(context.Background(), req)
	renewed := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx, func(owner string) { renewed <- owner }) }()
	defer func() { cancel(); <-done }()

	select {
	case o := <-renewed:
		t.Fatalf("renewal of %s reported with 3h left", o)
	case <-time.After(50 * time.Millisecond):
	}
	mu.Lock()
	now = now.Add(2*time.Hour + time.Minute) // less than a third of the lifetime left
	mu.Unlock()
	l.wake <- struct{}{}
	select {
	case o := <-renewed:
		if o != req.Owner {
			t.Errorf("renewed owner %q, want %q", o, req.Owner)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no renewal reported")
	}
	next, _ := l.Certificate(context.Background(), req)
	if string(next.CertPEM) == string(first.CertPEM) {
		t.Fatal("a certificate due for renewal was not renewed")
	}
	if leaf(t, next.CertPEM).NotAfter.Before(clock().Add(2 * time.Hour)) {
		t.Error("the renewed certificate is not valid for a new lifetime")
	}
}
