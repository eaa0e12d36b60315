package kube

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skiff-dev/skiff/controlplane/eventing"
	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/pki"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/extproc"
	"github.com/skiff-dev/skiff/gateway"
	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// tlsFiles writes the certificates of the controller's TLS Secret ns/name to files, as the
// Secret volumes of deploy/ mount them for Envoy and the activators.
func (c *cluster) tlsFiles(t testing.TB, ns, name string) (envoy, ext pki.Files) {
	t.Helper()
	var sec *corev1.Secret
	eventually(t, 30*time.Second, "TLS secret "+ns+"/"+name, func() bool {
		var err error
		sec, err = c.kube.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil
	})
	dir := t.TempDir()
	write := func(key string) string {
		p := filepath.Join(dir, key)
		if err := os.WriteFile(p, sec.Data[key], 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write(kube.SecretKeyCACert)
	return pki.Files{Cert: write(kube.SecretKeyEnvoyCert), Key: write(kube.SecretKeyEnvoyKey), CA: ca},
		pki.Files{Cert: write(kube.SecretKeyExtProcCert), Key: write(kube.SecretKeyExtProcKey), CA: ca}
}

// runGatewayMTLS is runGatewayAdmin for a gateway holding Envoy's certificate: ADS over mTLS
// (the controller's certificate names skiff-controlplane.<ns>.svc), and the static secrets
// the control plane's clusters name.
func runGatewayMTLS(t testing.TB, xdsAddr, adminAddr string, files pki.Files, ns string) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gw, err := gateway.New(gateway.Config{ADSAddress: xdsAddr, NodeID: "kube-e2e-tls", NodeCluster: "skiff-envoy",
		AdminAddress: adminAddr, Logger: log, ListenerAddressOverride: "127.0.0.1:0",
		TLS: &gateway.TLSConfig{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, XDSServerName: "skiff-controlplane." + ns + ".svc"}})
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = gw.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	var addr string
	// Generous: the listener comes once the gateway has fetched and compiled the wasm filters
	// (seconds under -race on a busy machine).
	eventually(t, 90*time.Second, "gateway listener from LDS over mTLS", func() bool {
		a, ok := gw.ListenerAddr(xds.ListenerName)
		if ok {
			addr = a.String()
		}
		return ok
	})
	return addr
}

// runExtProcTLS starts the activator serving ext_proc over mTLS on lis with the activators'
// certificate and following the controller's feed at baseURL (https) with it, as `skiff
// extproc --tls-cert ...` does.
func runExtProcTLS(t testing.TB, lis net.Listener, files pki.Files, baseURL, serverName string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pair, ca, err := files.Read()
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerConfig(pair, ca)
	if err != nil {
		t.Fatal(err)
	}
	clientTLS, err := pki.ClientConfig(pair, ca, serverName)
	if err != nil {
		t.Fatal(err)
	}
	feed := &extproc.Feed{BaseURL: baseURL, Instance: "extproc-tls", Logger: log, ReportEvery: 200 * time.Millisecond,
		Client: &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}}
	srv := extproc.New(extproc.Config{Logger: log, OnDemand: feed.Poke})
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))
	srv.Register(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Serve(lis) })
	wg.Go(func() { _ = feed.Run(ctx, srv) })
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })
}

// startNATSWithToken starts a NATS server with JetStream that requires token.
func startNATSWithToken(t testing.TB, token string) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), Authorization: token, NoSigs: true, NoLog: true, DisableJetStreamBanner: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.ClientURL()
}

const concurrencyOne = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: guarded
  namespace: default
spec:
  template:
    spec:
      containerConcurrency: 1
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
`

// In Kubernetes mode the doors are closed (issue 13, item 6): the controller creates a CA in
// a Secret and issues Envoy's and the activators' certificates into it; ADS, the activation
// feed and the wasm modules are served only over mTLS with them, ext_proc too, and NATS is
// reached with the credentials in its Secret. The gateway, holding Envoy's certificate,
// serves a revision whose requests go through the activator (containerConcurrency 1); a
// client without a certificate of the CA gets nothing from any of those ports.
func TestDoorsClosedOnKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, kube-apiserver and kube-controller-manager")
	}
	const ns, token = "default", "nats-secret-token"
	mods, err := wasmbuild.Locate(context.Background(), wasmbuild.Options{Root: moduleRoot(t), OutDir: t.TempDir(), Filters: []string{"cloudevents"}})
	if err != nil {
		t.Fatalf("build the cloudevents filter: %v", err)
	}
	filter := mods["cloudevents"]
	natsURL := startNATSWithToken(t, token)
	c := startCluster(t)
	startKubelet(t, c.kube)
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "skiff-nats", Namespace: ns},
		Data:       map[string][]byte{kube.SecretKeyNATSToken: []byte(token)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	extLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var proxyAddr sync.Map
	ctrl, _ := runControllerWith(t, c, "doors", func(cfg *kube.Config) {
		cfg.TLS = &kube.TLSConfig{SecretNamespace: ns, SecretName: "skiff-tls"}
		cfg.ExtProcAddress = extLis.Addr().String()
		cfg.HTTPAddress, cfg.WasmCodeAdvertise = httpAddr, httpAddr
		cfg.Eventing = &kube.EventingConfig{
			NATSURL: natsURL, NATSCredentialsSecret: ns + "/skiff-nats", IngressAddress: "127.0.0.1:0",
			ProxyAddress:      func() string { v, _ := proxyAddr.Load("gw"); s, _ := v.(string); return s },
			CloudEventsFilter: &xds.WasmFilter{Name: eventing.CloudEventsFilterName, Path: filter.Path, SHA256: filter.SHA256},
		}
	})
	envoyFiles, extFiles := c.tlsFiles(t, ns, "skiff-tls")
	runExtProcTLS(t, extLis, extFiles, "https://"+httpAddr, "skiff-controlplane."+ns+".svc")
	gw := runGatewayMTLS(t, ctrl.XDSAddr().String(), "127.0.0.1:0", envoyFiles, ns)
	proxyAddr.Store("gw", gw)

	c.createObjects(t, concurrencyOne)
	c.waitReady(t, servicesGVR, "guarded")
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last answer from guarded: %s", last)
		}
	})
	eventually(t, 60*time.Second, "guarded answers through the gateway and the activator, both over mTLS", func() bool {
		code, rev, body, err := getFrom(gw, "guarded.default.example.com", "/")
		last = fmt.Sprintf("%d %s %q %v", code, rev, body, err)
		return err == nil && code == 200 && rev == "guarded-00001"
	})
	// Eventing reached NATS with the token from its Secret: a Broker becomes Ready. The
	// gateway fetched the cloudevents filter from the controller over mTLS (https, its
	// certificate): the filter refuses a malformed event, naming the attribute.
	c.createObjects(t, fmt.Sprintf(brokerObjects, "http://127.0.0.1:1/unused"))
	b := c.waitReady(t, brokersGVR, "default")
	brokerURL, _, _ := unstructured.NestedString(b.Object, "status", "address", "url")
	eventually(t, 30*time.Second, "the cloudevents filter, fetched over mTLS, refusing a malformed event", func() bool {
		code, body := postEvent(t, gw, brokerURL, map[string]string{"Specversion": "1.0", "Id": "bad-1", "Source": "/e2e"})
		return code == http.StatusBadRequest && strings.Contains(body, "type")
	})

	// Nothing without a client certificate of the CA.
	stranger, err := pki.NewCA("stranger", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	strangerPair, _ := stranger.Issue("envoy", nil, pki.Client, time.Now())
	_, caPEM, _ := envoyFiles.Read()
	strangerTLS, _ := pki.ClientConfig(strangerPair, caPEM, "skiff-controlplane."+ns+".svc")
	noCertTLS := strangerTLS.Clone()
	noCertTLS.Certificates = nil
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":                   insecure.NewCredentials(),
		"TLS without a certificate":   credentials.NewTLS(noCertTLS),
		"a certificate of another CA": credentials.NewTLS(strangerTLS),
	} {
		if err := adsStream(ctrl.XDSAddr().String(), creds); err == nil {
			t.Errorf("ADS with %s: a response was served", name)
		}
		extTLS := creds
		if name != "plaintext" {
			cfg := noCertTLS.Clone()
			if name == "a certificate of another CA" {
				cfg = strangerTLS.Clone()
			}
			cfg.ServerName = "skiff-extproc." + ns + ".svc"
			extTLS = credentials.NewTLS(cfg)
		}
		if err := extProcStream(extLis.Addr().String(), extTLS); err == nil {
			t.Errorf("ext_proc with %s: a stream was served", name)
		}
	}
	for name, client := range map[string]*http.Client{
		"plaintext":                   {Timeout: 5 * time.Second},
		"TLS without a certificate":   {Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: noCertTLS}},
		"a certificate of another CA": {Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: strangerTLS}},
	} {
		for _, path := range []string{extproc.WatchPath, xds.WasmCodePath + "x.wasm"} {
			scheme := "https"
			if name == "plaintext" {
				scheme = "http"
			}
			resp, err := client.Get(scheme + "://" + httpAddr + path)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 400 {
					t.Errorf("GET %s with %s: %d %q, want no answer", path, name, resp.StatusCode, b)
				}
			}
		}
	}
	if nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("NATS accepted a client without the token: the test's server does not stand for deploy/'s")
	}
}

// adsStream opens an ADS stream with creds and waits for the first response.
func adsStream(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.listener.v3.Listener"}); err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

// extProcStream opens an ext_proc stream with creds and sends the request headers.
func extProcStream(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := extprocsvc.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvc.HttpHeaders{}}}); err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}
