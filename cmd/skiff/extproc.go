package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

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
			ocfg, err := observabilityConfig(f, nil)
			if err != nil {
				return err
			}
			t, err := setupTelemetry(ctx, f, "skiff-extproc", ocfg, true)
			if err != nil {
				return err
			}
			defer shutdownTelemetry(t, log)
			maddr, explicit := metricsAddr(f, t)
			if _, err := serveMetrics(ctx, maddr, explicit, t, log); err != nil {
				return err
			}
			metrics, err := telemetry.NewActivatorMetrics(t)
			if err != nil {
				return err
			}
			ecfg := extproc.Config{Logger: log, ActivationTimeout: timeout, QueueDepth: depth, Metrics: metrics}
			if t.Traces() {
				ecfg.Tracer = t.TracerProvider()
			}
			feed := &extproc.Feed{BaseURL: cpURL, Instance: instance, Logger: log}
			ecfg.OnDemand = feed.Poke
			srv := extproc.New(ecfg)
			lis, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			g := grpc.NewServer()
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
	addObservabilityFlags(f, "")
	return cmd
}
