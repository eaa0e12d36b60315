package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/controlplane/pki"
)

// The TLS Secret is created once with a CA and the certificates of Envoy and the activators;
// a later start keeps the CA and the certificates, and renews them when they near their end.
func TestEnsureTLS(t *testing.T) {
	ctx := context.Background()
	kc := fake.NewClientset()
	cfg := (&TLSConfig{SecretNamespace: "skiff-system"}).withDefaults()
	now := time.Now()
	m, err := ensureTLS(ctx, kc, cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := kc.CoreV1().Secrets("skiff-system").Get(ctx, "skiff-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the TLS secret was not created: %v", err)
	}
	ca, err := pki.LoadCA(sec.Data[SecretKeyCACert], sec.Data[SecretKeyCAKey])
	if err != nil {
		t.Fatal(err)
	}
	for key, names := range map[string][]string{SecretKeyEnvoyCert: nil, SecretKeyExtProcCert: {"skiff-extproc.skiff-system.svc"}} {
		if ca.NeedsRenewal(sec.Data[key], names, now) {
			t.Errorf("%s is not a fresh certificate of the CA for %v", key, names)
		}
	}
	srv, err := pki.ParseCert(m.server.CertPEM)
	if err != nil || srv.VerifyHostname("skiff-controlplane.skiff-system.svc.cluster.local") != nil || srv.CheckSignatureFrom(ca.Cert) != nil {
		t.Errorf("controller certificate: %v", err)
	}

	again, err := ensureTLS(ctx, kc, cfg, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sec2, _ := kc.CoreV1().Secrets("skiff-system").Get(ctx, "skiff-tls", metav1.GetOptions{})
	if string(again.caPEM) != string(m.caPEM) || string(sec2.Data[SecretKeyEnvoyCert]) != string(sec.Data[SecretKeyEnvoyCert]) {
		t.Error("a second start replaced the CA or a certificate that did not need it")
	}
	later := now.Add(pki.CertLifetime * 3 / 4)
	if _, err := ensureTLS(ctx, kc, cfg, later); err != nil {
		t.Fatal(err)
	}
	sec3, _ := kc.CoreV1().Secrets("skiff-system").Get(ctx, "skiff-tls", metav1.GetOptions{})
	if string(sec3.Data[SecretKeyCACert]) != string(sec.Data[SecretKeyCACert]) || ca.NeedsRenewal(sec3.Data[SecretKeyEnvoyCert], nil, later) {
		t.Error("near their end, the certificates were not renewed under the same CA")
	}

	// A Secret that is not Skiff's CA is not overwritten: the controller says what is wrong.
	if _, err := kc.CoreV1().Secrets("other").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "skiff-tls", Namespace: "other"},
		Data: map[string][]byte{SecretKeyCACert: []byte("junk")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureTLS(ctx, kc, (&TLSConfig{SecretNamespace: "other"}).withDefaults(), now); err == nil || !strings.Contains(err.Error(), "other/skiff-tls") || !strings.Contains(err.Error(), SecretKeyCACert) {
		t.Errorf("broken secret: %v", err)
	}
}

// The NATS credentials Secret is created with a user and a random password when absent; a token or a user
// and password in it are used as they are.
func TestNATSCredentials(t *testing.T) {
	ctx := context.Background()
	kc := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "up", Namespace: "ns"}, Data: map[string][]byte{SecretKeyNATSUser: []byte("u"), SecretKeyNATSPassword: []byte("p")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "empty", Namespace: "ns"}},
	)
	a, err := natsCredentials(ctx, kc, "ns/new")
	if err != nil || len(a.Password) != 64 || a.User != NATSUser || a.Token != "" {
		t.Fatalf("created credentials %+v, %v: want user %s with a random password", a, err, NATSUser)
	}
	b, err := natsCredentials(ctx, kc, "ns/new")
	if err != nil || b != a {
		t.Errorf("read again: %+v %v, want the same credentials", b, err)
	}
	if up, err := natsCredentials(ctx, kc, "ns/up"); err != nil || up.User != "u" || up.Password != "p" {
		t.Errorf("user and password: %+v %v", up, err)
	}
	for ref, want := range map[string]string{"ns/empty": `has neither "token"`, "nons": "want namespace/name"} {
		if _, err := natsCredentials(ctx, kc, ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %s", ref, err, want)
		}
	}
}
