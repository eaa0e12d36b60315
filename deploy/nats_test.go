package deploy_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/pki"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestNATSConfigServes runs nats-server (the release deploy/ names, embedded) on deploy/'s
// nats.conf, with the environment the StatefulSet gives it and a certificate issued for the
// names the controller issues it for (kube.NATSNames), only the ports and file paths moved
// to this machine: the configuration is accepted as a 3-route JetStream cluster with TLS
// (routes verifying each other), and a client gets in only over TLS, trusting Skiff's CA, as
// the SKIFF account's user; a wrong password is refused.
func TestNATSConfigServes(t *testing.T) {
	cm := find[corev1.ConfigMap](t, manifests(t), "ConfigMap", "nats-config")
	conf := cm.Data["nats.conf"]
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("skiff-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Issue("nats", kube.NATSNames("skiff-system"), pki.Server|pki.Client, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"ca.crt": ca.CertPEM, "nats.crt": pair.CertPEM, "nats.key": pair.KeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	client, cluster, monitor := freePort(t), freePort(t), freePort(t)
	conf = strings.NewReplacer(
		// The peers' routes: this server's own, and two not there (retried in the background).
		"nats-0.nats.skiff-system.svc.cluster.local:6222", fmt.Sprintf("127.0.0.1:%d", cluster),
		"nats-1.nats.skiff-system.svc.cluster.local:6222", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"nats-2.nats.skiff-system.svc.cluster.local:6222", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"/etc/nats/tls/", dir+"/", "/data", filepath.Join(dir, "data"),
		"0.0.0.0:4222", fmt.Sprintf("127.0.0.1:%d", client), "0.0.0.0:6222", fmt.Sprintf("127.0.0.1:%d", cluster),
		"0.0.0.0:8222", fmt.Sprintf("127.0.0.1:%d", monitor)).Replace(conf)
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POD_NAME", "nats-0")
	t.Setenv("NATS_USER", kube.NATSUser)
	t.Setenv("NATS_PASSWORD", "s3cret")
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses deploy/'s nats.conf: %v", err)
	}
	if opts.ServerName != "nats-0" || !opts.JetStream || opts.Cluster.Name != "skiff" || len(opts.Routes) != 3 ||
		opts.TLSConfig == nil || opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("nats.conf: server %q, jetstream %v, cluster %q with %d routes, client TLS %v, route TLS %v: want a 3-route JetStream cluster over mutually verified TLS",
			opts.ServerName, opts.JetStream, opts.Cluster.Name, len(opts.Routes), opts.TLSConfig != nil, opts.Cluster.TLSConfig)
	}
	// One server of it.
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	pool, err := pki.Pool(ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", client)
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: "nats.skiff-system.svc.cluster.local"}
	nc, err := nats.Connect(url, nats.UserInfo(kube.NATSUser, "s3cret"), func(o *nats.Options) error { o.TLSConfig = tc; return nil })
	if err != nil {
		t.Fatalf("connect as %s over TLS: %v", kube.NATSUser, err)
	}
	if !nc.TLSRequired() {
		t.Error("the server did not require TLS")
	}
	nc.Close()
	if nc, err := nats.Connect(url, nats.UserInfo(kube.NATSUser, "wrong"), func(o *nats.Options) error { o.TLSConfig = tc; return nil }); err == nil {
		nc.Close()
		t.Error("a wrong password was let in")
	}
}
