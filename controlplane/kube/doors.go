package kube

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/controlplane/pki"
	"github.com/skiff-dev/skiff/eventing/broker"
)

// Keys of the TLS Secret (Config.TLS): the CA, and the certificates the controller issues for
// Envoy (a client) and for the ext_proc activators (a server of Envoy's, a client of the
// controller's). Pods mount only the keys they need (items of a Secret volume).
const (
	SecretKeyCACert      = "ca.crt"
	SecretKeyCAKey       = "ca.key"
	SecretKeyEnvoyCert   = "envoy.crt"
	SecretKeyEnvoyKey    = "envoy.key"
	SecretKeyExtProcCert = "extproc.crt"
	SecretKeyExtProcKey  = "extproc.key"
	// SecretKeyNATSCert and SecretKeyNATSKey are the NATS servers' certificate (deploy/'s
	// StatefulSet: clients and cluster routes over TLS, routes verifying each other).
	SecretKeyNATSCert = "nats.crt"
	SecretKeyNATSKey  = "nats.key"
)

// Keys of the NATS credentials Secret (EventingConfig.NATSCredentialsSecret): token, or user
// and password (what the controller creates: deploy/'s NATS cluster makes that user the
// SKIFF account's, which has JetStream).
const (
	SecretKeyNATSToken    = "token"
	SecretKeyNATSUser     = "user"
	SecretKeyNATSPassword = "password"
)

// TLSConfig closes the cluster's doors with mTLS: ADS (and the metrics_service stat sink on
// the same port) and the HTTP port (activation feed, wasm modules) require a client
// certificate issued by the CA the controller keeps in a Secret, and proxies are told to
// reach ext_proc and the wasm modules with theirs (xds.ProxyTLS).
type TLSConfig struct {
	// SecretNamespace and SecretName name the Secret holding the CA and the issued
	// certificates (see the SecretKey constants); default skiff-system/skiff-tls. The
	// controller creates it on first start and renews the certificates in it.
	SecretNamespace, SecretName string
	// ControllerNames are the DNS names of the controller's serving certificate (issued in
	// memory at each start); default the skiff-controlplane Service's names in
	// SecretNamespace.
	ControllerNames []string
	// ExtProcNames are the DNS names of the activators' certificate; default the
	// skiff-extproc Service's names in SecretNamespace.
	ExtProcNames []string
	// NATSNames are the DNS names of the NATS servers' certificate; default the nats
	// Service's names and its pods' (*.nats.{namespace}.svc) in SecretNamespace.
	NATSNames []string
}

func (t *TLSConfig) withDefaults() TLSConfig {
	out := *t
	out.SecretNamespace = cmp.Or(out.SecretNamespace, "skiff-system")
	out.SecretName = cmp.Or(out.SecretName, "skiff-tls")
	if len(out.ControllerNames) == 0 {
		out.ControllerNames = serviceNames("skiff-controlplane", out.SecretNamespace)
	}
	if len(out.ExtProcNames) == 0 {
		out.ExtProcNames = serviceNames("skiff-extproc", out.SecretNamespace)
	}
	if len(out.NATSNames) == 0 {
		out.NATSNames = NATSNames(out.SecretNamespace)
	}
	return out
}

// NATSNames are the DNS names of the NATS servers' certificate the controller issues for
// deploy/'s StatefulSet in namespace ns: the nats Service's names and its pods'.
func NATSNames(ns string) []string {
	return append(serviceNames("nats", ns), "*.nats."+ns+".svc", "*.nats."+ns+".svc.cluster.local")
}

// serviceNames are the DNS names of a Service, the shortest fully qualified first.
func serviceNames(name, ns string) []string {
	return []string{name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local", name + "." + ns, name}
}

// tlsMaterial is what the controller serves with: the CA bundle clients are checked against
// and its own serving certificate.
type tlsMaterial struct {
	caPEM  []byte
	server pki.Pair
}

// ensureTLS reads the TLS Secret, creating it (a new CA and the certificates of Envoy and the
// activators) when it does not exist and renewing certificates that need it, and issues the
// controller's serving certificate.
func ensureTLS(ctx context.Context, kc kubernetes.Interface, cfg TLSConfig, now time.Time) (tlsMaterial, error) {
	secrets := kc.CoreV1().Secrets(cfg.SecretNamespace)
	what := cfg.SecretNamespace + "/" + cfg.SecretName
	sec, err := secrets.Get(ctx, cfg.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ca, err := pki.NewCA("skiff-ca", now)
		if err != nil {
			return tlsMaterial{}, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: cfg.SecretName, Namespace: cfg.SecretNamespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "skiff"}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{SecretKeyCACert: ca.CertPEM, SecretKeyCAKey: ca.KeyPEM},
		}
		if err := issueInto(sec, ca, cfg, now); err != nil {
			return tlsMaterial{}, err
		}
		created, err := secrets.Create(ctx, sec, metav1.CreateOptions{})
		switch {
		case err == nil:
			sec = created
		case apierrors.IsAlreadyExists(err): // another replica was first
			if sec, err = secrets.Get(ctx, cfg.SecretName, metav1.GetOptions{}); err != nil {
				return tlsMaterial{}, fmt.Errorf("reading TLS secret %s: %w", what, err)
			}
		default:
			return tlsMaterial{}, fmt.Errorf("creating TLS secret %s: %w", what, err)
		}
	} else if err != nil {
		return tlsMaterial{}, fmt.Errorf("reading TLS secret %s: %w", what, err)
	}
	ca, err := pki.LoadCA(sec.Data[SecretKeyCACert], sec.Data[SecretKeyCAKey])
	if err != nil {
		return tlsMaterial{}, fmt.Errorf("TLS secret %s (keys %s, %s): %w", what, SecretKeyCACert, SecretKeyCAKey, err)
	}
	if ca.NeedsRenewal(sec.Data[SecretKeyEnvoyCert], nil, now) || ca.NeedsRenewal(sec.Data[SecretKeyExtProcCert], cfg.ExtProcNames, now) ||
		ca.NeedsRenewal(sec.Data[SecretKeyNATSCert], cfg.NATSNames[:1], now) {
		sec = sec.DeepCopy()
		if err := issueInto(sec, ca, cfg, now); err != nil {
			return tlsMaterial{}, err
		}
		if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			return tlsMaterial{}, fmt.Errorf("renewing the certificates in TLS secret %s: %w", what, err)
		}
	}
	server, err := ca.Issue("skiff-controller", cfg.ControllerNames, pki.Server, now)
	if err != nil {
		return tlsMaterial{}, err
	}
	return tlsMaterial{caPEM: ca.CertPEM, server: server}, nil
}

// issueInto issues Envoy's and the activators' certificates into sec.
func issueInto(sec *corev1.Secret, ca *pki.CA, cfg TLSConfig, now time.Time) error {
	envoy, err := ca.Issue("skiff-envoy", nil, pki.Client, now)
	if err != nil {
		return err
	}
	ext, err := ca.Issue("skiff-extproc", cfg.ExtProcNames, pki.Server|pki.Client, now)
	if err != nil {
		return err
	}
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[SecretKeyEnvoyCert], sec.Data[SecretKeyEnvoyKey] = envoy.CertPEM, envoy.KeyPEM
	sec.Data[SecretKeyExtProcCert], sec.Data[SecretKeyExtProcKey] = ext.CertPEM, ext.KeyPEM
	nats, err := ca.Issue("nats", cfg.NATSNames, pki.Server|pki.Client, now)
	if err != nil {
		return err
	}
	sec.Data[SecretKeyNATSCert], sec.Data[SecretKeyNATSKey] = nats.CertPEM, nats.KeyPEM
	return nil
}

// NATSUser is the user the controller creates in the NATS credentials Secret.
const NATSUser = "skiff"

// natsCredentials reads the NATS credentials Secret "namespace/name", creating it with the
// user NATSUser and a random password when it does not exist (deploy/'s NATS cluster makes
// its SKIFF account's user from it).
func natsCredentials(ctx context.Context, kc kubernetes.Interface, ref string) (broker.NATSAuth, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return broker.NATSAuth{}, fmt.Errorf("NATS credentials secret %q: want namespace/name", ref)
	}
	secrets := kc.CoreV1().Secrets(ns)
	sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return broker.NATSAuth{}, fmt.Errorf("NATS credentials: %w", err)
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "skiff"}},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{SecretKeyNATSUser: []byte(NATSUser), SecretKeyNATSPassword: []byte(hex.EncodeToString(b))},
		}
		created, cerr := secrets.Create(ctx, sec, metav1.CreateOptions{})
		switch {
		case cerr == nil:
			sec, err = created, nil
		case apierrors.IsAlreadyExists(cerr):
			sec, err = secrets.Get(ctx, name, metav1.GetOptions{})
		default:
			err = cerr
		}
	}
	if err != nil {
		return broker.NATSAuth{}, fmt.Errorf("NATS credentials secret %s: %w", ref, err)
	}
	auth := broker.NATSAuth{
		Token: string(sec.Data[SecretKeyNATSToken]),
		User:  string(sec.Data[SecretKeyNATSUser]), Password: string(sec.Data[SecretKeyNATSPassword]),
	}
	if auth.IsZero() {
		return auth, fmt.Errorf("NATS credentials secret %s: has neither %q nor %q and %q", ref, SecretKeyNATSToken, SecretKeyNATSUser, SecretKeyNATSPassword)
	}
	if auth.Token != "" && auth.User != "" {
		return auth, errors.New("NATS credentials secret " + ref + ": give a token or a user and password, not both")
	}
	return auth, nil
}

// natsClientTLS verifies NATS servers that require TLS against the system roots and the
// controller's CA (deploy/'s NATS cluster serves the certificate issued into the TLS Secret).
func natsClientTLS(caPEM []byte) *tls.Config {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
}
