package pki

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// handshake runs a TLS handshake between the two configs over an in-memory pipe and returns
// the server's error.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		c := tls.Client(b, client)
		err := c.Handshake()
		if err == nil {
			_, err = c.Read(make([]byte, 1)) // TLS 1.3: the server's verdict on our certificate
		}
		errc <- err
		c.Close()
	}()
	s := tls.Server(a, server)
	err := s.Handshake()
	if err == nil {
		_, _ = s.Write([]byte("x"))
	}
	<-errc
	return err
}

func TestMutualTLS(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("skiff-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := LoadCA(ca.CertPEM, ca.KeyPEM); err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadCA: %v", err)
	}
	other, _ := NewCA("other", now)
	if _, err := LoadCA(ca.CertPEM, other.KeyPEM); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("LoadCA with another CA's key: %v", err)
	}
	server, err := ca.Issue("controller", []string{"skiff-controlplane.skiff-system.svc"}, Server, now)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := ca.Issue("envoy", nil, Client, now)
	intruder, _ := other.Issue("envoy", nil, Client, now)
	serverOnly, _ := ca.Issue("extproc", []string{"x"}, Server, now)

	scfg, err := ServerConfig(server, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := func(p Pair, name string) *tls.Config {
		c, err := ClientConfig(p, ca.CertPEM, name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := handshake(t, scfg, ccfg(client, "skiff-controlplane.skiff-system.svc")); err != nil {
		t.Errorf("client of the CA: %v", err)
	}
	noCert := ccfg(client, "skiff-controlplane.skiff-system.svc")
	noCert.Certificates = nil
	for name, c := range map[string]*tls.Config{
		"no client certificate":                noCert,
		"a certificate of another CA":          ccfg(intruder, "skiff-controlplane.skiff-system.svc"),
		"a certificate not meant for a client": ccfg(serverOnly, "skiff-controlplane.skiff-system.svc"),
		"expecting another server name":        ccfg(client, "evil.example"),
	} {
		if err := handshake(t, scfg, c); err == nil {
			t.Errorf("%s: the handshake succeeded", name)
		}
	}

	if ca.NeedsRenewal(client.CertPEM, nil, now) {
		t.Error("a new certificate needs renewal")
	}
	if !ca.NeedsRenewal(client.CertPEM, nil, now.Add(CertLifetime*3/4)) {
		t.Error("a certificate with a quarter of its life left does not need renewal")
	}
	if !ca.NeedsRenewal(server.CertPEM, []string{"skiff-extproc.skiff-system.svc"}, now) {
		t.Error("a certificate without a wanted name does not need renewal")
	}
	if !ca.NeedsRenewal(intruder.CertPEM, nil, now) || !ca.NeedsRenewal([]byte("junk"), nil, now) {
		t.Error("a foreign or broken certificate does not need renewal")
	}
}
