package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/api/config"
)

// Keys of the certificate Secret, as Knative names them.
const (
	CACertKey     = "ca-cert.pem"
	ServerCertKey = "server-cert.pem"
	ServerKeyKey  = "server-key.pem"
)

// Defaults of Config.
const (
	DefaultSecretName     = "skiff-webhook-certs"
	DefaultServiceName    = "skiff-webhook"
	DefaultMutatingName   = "defaulting.webhook.skiff.dev"
	DefaultValidatingName = "validation.webhook.skiff.dev"
)

// certLifetime is how long a certificate is made for; renewBefore is how long before it
// expires it is replaced.
const (
	certLifetime = 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// Config says where the webhooks keep their certificate and which configurations they serve.
type Config struct {
	Client kubernetes.Interface
	// Namespace holds the certificate Secret (and the webhook Service); default skiff-system.
	Namespace string
	// SecretName is the certificate Secret's name; default skiff-webhook-certs.
	SecretName string
	// ServiceName is the Service in front of the replicas; the certificate is for
	// {ServiceName}.{Namespace}.svc (and .svc.cluster.local). Default skiff-webhook.
	ServiceName string
	// Hosts are more names or IP addresses the certificate is for (e.g. 127.0.0.1 when the
	// API server reaches the webhook by URL).
	Hosts []string
	// MutatingName and ValidatingName are the configurations whose caBundle is kept.
	MutatingName, ValidatingName string
	// Settings are what objects are defaulted and validated with; nil: Knative's defaults.
	Settings *config.Config
	// Reload, when set, is called every ReloadInterval for the settings to use from then on
	// (e.g. config-features edited in the cluster); an error keeps the current ones.
	Reload func(context.Context) (*config.Config, error)
	// ReloadInterval is how often Reload is called; default Resync.
	ReloadInterval time.Duration
	// Resync is how often the Secret and the caBundles are checked again; default 1m.
	Resync time.Duration
	Logger *slog.Logger
}

// Server serves both webhooks on one TLS listener.
type Server struct {
	cfg  Config
	log  *slog.Logger
	adm  *admitter
	cert atomic.Pointer[tls.Certificate]
	ca   atomic.Pointer[[]byte]
	mux  *http.ServeMux
	// warned remembers configurations found missing, so that is logged once each.
	mu     sync.Mutex
	warned map[string]bool
}

// New returns a Server; Run serves it.
func New(cfg Config) *Server {
	cfg.Namespace = cmp.Or(cfg.Namespace, "skiff-system")
	cfg.SecretName = cmp.Or(cfg.SecretName, DefaultSecretName)
	cfg.ServiceName = cmp.Or(cfg.ServiceName, DefaultServiceName)
	cfg.MutatingName = cmp.Or(cfg.MutatingName, DefaultMutatingName)
	cfg.ValidatingName = cmp.Or(cfg.ValidatingName, DefaultValidatingName)
	cfg.Resync = cmp.Or(cfg.Resync, time.Minute)
	cfg.ReloadInterval = cmp.Or(cfg.ReloadInterval, cfg.Resync)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Settings == nil {
		cfg.Settings = config.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "webhook"), mux: http.NewServeMux(), warned: map[string]bool{}}
	a := &admitter{log: s.log}
	a.settings.Store(cfg.Settings)
	s.adm = a
	s.mux.Handle(DefaultingPath, a.handler(true))
	s.mux.Handle(ValidationPath, a.handler(false))
	return s
}

// Handler serves the two webhooks (without TLS: Run adds it).
func (s *Server) Handler() http.Handler { return s.mux }

// CABundle is the PEM CA the served certificate chains to (nil before Run has one).
func (s *Server) CABundle() []byte {
	if p := s.ca.Load(); p != nil {
		return *p
	}
	return nil
}

// Run gets (or makes) the certificate, serves the webhooks on lis over TLS, and keeps the
// certificate and the configurations' caBundle current until ctx ends.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	defer lis.Close()
	// Until there is a certificate there is nothing to serve: retry, as the API server or
	// the Secret may not be reachable yet.
	for {
		err := s.sync(ctx)
		if s.cert.Load() != nil {
			if err != nil {
				s.log.Warn("webhook certificate", "err", err)
			}
			break
		}
		s.log.Warn("no webhook certificate yet", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		}}}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(lis, "", "") }()
	t := time.NewTicker(s.cfg.Resync)
	defer t.Stop()
	reload := time.NewTicker(s.cfg.ReloadInterval)
	defer reload.Stop()
	for {
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			<-errc
			return nil
		case err := <-errc:
			return fmt.Errorf("webhook server: %w", err)
		case <-t.C:
			if err := s.sync(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("keeping the webhook certificate", "err", err)
			}
		case <-reload.C:
			s.reload(ctx)
		}
	}
}

// reload takes the settings Reload returns, keeping the current ones on error.
func (s *Server) reload(ctx context.Context) {
	if s.cfg.Reload == nil {
		return
	}
	cfg, err := s.cfg.Reload(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("keeping the admission settings", "err", err)
		}
		return
	}
	s.adm.settings.Store(cfg)
}

// sync makes sure the Secret holds a valid certificate for our names, serves it, and puts its
// CA into the configurations.
func (s *Server) sync(ctx context.Context) error {
	sec, err := s.ensureSecret(ctx)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(sec.Data[ServerCertKey], sec.Data[ServerKeyKey])
	if err != nil {
		return fmt.Errorf("webhook certificate in Secret %s/%s: %w", s.cfg.Namespace, s.cfg.SecretName, err)
	}
	ca := bytes.Clone(sec.Data[CACertKey])
	s.cert.Store(&cert)
	s.ca.Store(&ca)
	return s.ensureCABundles(ctx, ca)
}

// names are what the certificate must cover.
func (s *Server) names() []string {
	svc := s.cfg.ServiceName + "." + s.cfg.Namespace
	return append([]string{svc + ".svc", svc, svc + ".svc.cluster.local"}, s.cfg.Hosts...)
}

// ensureSecret returns the certificate Secret, creating it or renewing its certificate when
// missing, expiring or not for our names. Replicas race safely: the first write wins, the
// others read it.
func (s *Server) ensureSecret(ctx context.Context) (*corev1.Secret, error) {
	secrets := s.cfg.Client.CoreV1().Secrets(s.cfg.Namespace)
	for attempt := 0; attempt < 5; attempt++ {
		sec, err := secrets.Get(ctx, s.cfg.SecretName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			data, err := newCertificates(s.names())
			if err != nil {
				return nil, err
			}
			sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.cfg.SecretName, Namespace: s.cfg.Namespace}, Data: data}
			created, err := secrets.Create(ctx, sec, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue // another replica made it: use theirs
			}
			if err != nil {
				return nil, fmt.Errorf("create webhook certificate Secret %s/%s: %w", s.cfg.Namespace, s.cfg.SecretName, err)
			}
			s.log.Info("made the webhook certificate", "secret", s.cfg.SecretName, "names", s.names())
			return created, nil
		case err != nil:
			return nil, fmt.Errorf("read webhook certificate Secret %s/%s: %w", s.cfg.Namespace, s.cfg.SecretName, err)
		}
		if why := s.stale(sec); why != "" {
			data, err := newCertificates(s.names())
			if err != nil {
				return nil, err
			}
			sec.Data = data
			updated, err := secrets.Update(ctx, sec, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("renew webhook certificate Secret %s/%s: %w", s.cfg.Namespace, s.cfg.SecretName, err)
			}
			s.log.Info("renewed the webhook certificate", "secret", s.cfg.SecretName, "why", why)
			return updated, nil
		}
		return sec, nil
	}
	return nil, fmt.Errorf("webhook certificate Secret %s/%s: too many concurrent writers", s.cfg.Namespace, s.cfg.SecretName)
}

// stale says why the Secret's certificate must be replaced, or "".
func (s *Server) stale(sec *corev1.Secret) string {
	block, _ := pem.Decode(sec.Data[ServerCertKey])
	if block == nil || len(sec.Data[CACertKey]) == 0 || len(sec.Data[ServerKeyKey]) == 0 {
		return "incomplete"
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "unreadable"
	}
	if time.Until(cert.NotAfter) < renewBefore {
		return "expiring"
	}
	for _, n := range s.names() {
		if err := cert.VerifyHostname(n); err != nil {
			return "not for " + n
		}
	}
	return ""
}

// ensureCABundles puts ca into every webhook of the two configurations. A configuration not
// installed (yet) is logged once and left: deploy/ creates them.
func (s *Server) ensureCABundles(ctx context.Context, ca []byte) error {
	adm := s.cfg.Client.AdmissionregistrationV1()
	var errs []error
	mut, err := adm.MutatingWebhookConfigurations().Get(ctx, s.cfg.MutatingName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		s.missing("MutatingWebhookConfiguration " + s.cfg.MutatingName)
	case err != nil:
		errs = append(errs, fmt.Errorf("read MutatingWebhookConfiguration %s: %w", s.cfg.MutatingName, err))
	default:
		changed := false
		for i := range mut.Webhooks {
			if !bytes.Equal(mut.Webhooks[i].ClientConfig.CABundle, ca) {
				mut.Webhooks[i].ClientConfig.CABundle, changed = ca, true
			}
		}
		if changed {
			if _, err := adm.MutatingWebhookConfigurations().Update(ctx, mut, metav1.UpdateOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("set caBundle of MutatingWebhookConfiguration %s: %w", s.cfg.MutatingName, err))
			}
		}
	}
	val, err := adm.ValidatingWebhookConfigurations().Get(ctx, s.cfg.ValidatingName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		s.missing("ValidatingWebhookConfiguration " + s.cfg.ValidatingName)
	case err != nil:
		errs = append(errs, fmt.Errorf("read ValidatingWebhookConfiguration %s: %w", s.cfg.ValidatingName, err))
	default:
		changed := false
		for i := range val.Webhooks {
			if !bytes.Equal(val.Webhooks[i].ClientConfig.CABundle, ca) {
				val.Webhooks[i].ClientConfig.CABundle, changed = ca, true
			}
		}
		if changed {
			if _, err := adm.ValidatingWebhookConfigurations().Update(ctx, val, metav1.UpdateOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("set caBundle of ValidatingWebhookConfiguration %s: %w", s.cfg.ValidatingName, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Server) missing(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.warned[what] {
		s.warned[what] = true
		s.log.Warn(what + " is not installed: objects are not defaulted and validated when written (kubectl apply -k deploy/ installs it)")
	}
}

// newCertificates makes a CA and a server certificate it signs for names (DNS names, or IP
// addresses), in the Secret's keys.
func newCertificates(names []string) (map[string][]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webhook CA key: %w", err)
	}
	now := time.Now()
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"skiff.dev"}, CommonName: "skiff-webhook-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLifetime),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("webhook CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{Organization: []string{"skiff.dev"}, CommonName: names[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range slices.Compact(slices.Clone(names)) {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("webhook certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		CACertKey:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		ServerCertKey: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ServerKeyKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}
