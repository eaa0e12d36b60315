package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"

	"github.com/skiff-dev/skiff/controlplane/pki"
	"github.com/skiff-dev/skiff/extproc"
	"github.com/skiff-dev/skiff/telemetry"
)

func newExtProcCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "extproc",
		Short: "Run the ext_proc activator on its own, following a control plane (skiff up runs one inside)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			get := func(name string) string { v, _ := f.GetString(name); return v }
			listen, _ := f.GetString("listen")
			cpURL, _ := f.GetString("controlplane")
			instance, _ := f.GetString("instance")
			if instance == "" {
				instance, _ = os.Hostname()
			}
			timeout, _ := f.GetDuration("activation-timeout")
			depth, _ := f.GetInt("queue-depth")
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			t, _, _, stopTelemetry, err := startTelemetry(ctx, f, "skiff-extproc", nil, log)
			if err != nil {
				return err
			}
			defer stopTelemetry()
			metrics, err := telemetry.NewActivatorMetrics(t)
			if err != nil {
				return err
			}
			ecfg := extproc.Config{Logger: log, ActivationTimeout: timeout, QueueDepth: depth, Metrics: metrics}
			if t.Traces() {
				ecfg.Tracer = t.TracerProvider()
			}
			feed := &extproc.Feed{BaseURL: cpURL, Instance: instance, Logger: log}
			var gopts []grpc.ServerOption
			if files := (pki.Files{Cert: get("tls-cert"), Key: get("tls-key"), CA: get("tls-ca")}); files != (pki.Files{}) {
				// mTLS both ways: Envoy must present a certificate of the CA, and so does this
				// activator to the control plane's activation feed.
				serverTLS, clientTLS, err := extprocTLS(files, cpURL)
				if err != nil {
					return err
				}
				gopts = append(gopts, grpc.Creds(grpccreds.NewTLS(serverTLS)))
				feed.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}}
			}
			ecfg.OnDemand = feed.Poke
			srv := extproc.New(ecfg)
			lis, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			g := grpc.NewServer(gopts...)
			srv.Register(g)
			var wg sync.WaitGroup
			wg.Go(func() { _ = feed.Run(ctx, srv) })
			errs := make(chan error, 1)
			wg.Go(func() { errs <- g.Serve(lis) })
			log.Info("extproc serving", "address", lis.Addr().String(), "controlplane", cpURL)
			select {
			case <-ctx.Done():
			case err = <-errs:
			}
			cancel()
			g.GracefulStop()
			wg.Wait()
			if errors.Is(err, grpc.ErrServerStopped) {
				err = nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.String("listen", "127.0.0.1:9002", "gRPC address Envoy's ext_proc filter calls")
	f.String("controlplane", "http://127.0.0.1:7070", "the control plane's API URL, for the activation feed")
	f.String("instance", "", "this instance's name in held-request reports (default: the host name)")
	f.Duration("activation-timeout", 0, "longest a request waits for capacity (default 60s; the revision's timeoutSeconds if shorter)")
	f.Int("queue-depth", 0, "most requests waiting per revision before 503 (default 1000)")
	f.String("tls-cert", "", "this activator's certificate (PEM; e.g. extproc.crt mounted from the controller's TLS Secret): with --tls-key and --tls-ca, ext_proc is served over mTLS and the activation feed is followed over mTLS (an https --controlplane)")
	f.String("tls-key", "", "the key of --tls-cert (PEM)")
	f.String("tls-ca", "", "the CA whose certificates Envoy and the control plane must present (PEM; ca.crt)")
	addObservabilityFlags(f, "")
	return cmd
}

// extprocTLS builds the activator's server and feed-client TLS configurations from files; the
// control plane's name is --controlplane's host, which must be https.
func extprocTLS(files pki.Files, controlplane string) (server, client *tls.Config, err error) {
	if files.Cert == "" || files.Key == "" || files.CA == "" {
		return nil, nil, errors.New("--tls-cert, --tls-key and --tls-ca: give all three")
	}
	u, err := url.Parse(controlplane)
	if err != nil || u.Scheme != "https" {
		return nil, nil, fmt.Errorf("--controlplane %q: must be an https URL with TLS (the control plane's HTTP port requires a client certificate)", controlplane)
	}
	pair, ca, err := files.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-cert/--tls-key/--tls-ca: %w", err)
	}
	if server, err = pki.ServerConfig(pair, ca); err != nil {
		return nil, nil, fmt.Errorf("--tls-cert: %w", err)
	}
	if client, err = pki.ClientConfig(pair, ca, u.Hostname()); err != nil {
		return nil, nil, fmt.Errorf("--tls-cert: %w", err)
	}
	return server, client, nil
}
