package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/controlplane/kube"
)

func newControllerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "run Skiff's controllers on Kubernetes (in-cluster, or with --kubeconfig) and serve xDS to Envoy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			kubeconfig, _ := f.GetString("kubeconfig")
			var rc *rest.Config
			if kubeconfig != "" {
				rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
			} else {
				rc, err = rest.InClusterConfig()
			}
			if err != nil {
				return fmt.Errorf("kubernetes connection (--kubeconfig %q): %w", kubeconfig, err)
			}
			identity, _ := f.GetString("leader-elect-identity")
			if identity == "" {
				if identity, err = os.Hostname(); err != nil {
					return fmt.Errorf("--leader-elect-identity: %w", err)
				}
			}
			cfg := kube.Config{Rest: rc, Identity: identity, Logger: log}
			cfg.XDSAddress, _ = f.GetString("xds-addr")
			cfg.HealthAddress, _ = f.GetString("health-addr")
			cfg.Domain, _ = f.GetString("domain")
			cfg.LeaseNamespace, _ = f.GetString("leader-elect-namespace")
			cfg.LeaseName, _ = f.GetString("leader-elect-lease")
			cfg.LeaseDuration, _ = f.GetDuration("leader-elect-lease-duration")
			cfg.RenewDeadline, _ = f.GetDuration("leader-elect-renew-deadline")
			cfg.RetryPeriod, _ = f.GetDuration("leader-elect-retry-period")
			port, _ := f.GetUint32("proxy-port")
			cfg.ProxyListenPort = port
			ctrl, err := kube.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return ctrl.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.String("kubeconfig", "", "kubeconfig file; empty means in-cluster configuration")
	f.String("xds-addr", ":18000", "address of the ADS server Envoy connects to (served by the leader only)")
	f.String("health-addr", ":8081", "address of /healthz and /readyz (ready only while leading)")
	f.String("domain", "example.com", "route hosts are {name}.{namespace}.{domain}")
	f.Uint32("proxy-port", 8080, "port of the HTTP listener Envoy is told to bind")
	f.String("leader-elect-namespace", "skiff-system", "namespace of the leader election Lease")
	f.String("leader-elect-lease", "skiff-controller", "name of the leader election Lease")
	f.String("leader-elect-identity", "", "this replica's identity in the Lease (default: the hostname, i.e. the pod name)")
	f.Duration("leader-elect-lease-duration", 0, "how long a Lease is valid without renewal (default 15s)")
	f.Duration("leader-elect-renew-deadline", 0, "how long the leader retries renewing before giving up (default 10s)")
	f.Duration("leader-elect-retry-period", 0, "how often candidates retry (default 2s)")
	return cmd
}
