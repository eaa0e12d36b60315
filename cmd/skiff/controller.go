package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/eventing"
	"github.com/skiff-dev/skiff/controlplane/kube"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/broker"
)

// controllerEventing reads the eventing flags; nil without --nats-url.
func controllerEventing(cmd *cobra.Command, log *slog.Logger) (*kube.EventingConfig, error) {
	f := cmd.Flags()
	get := func(name string) string { v, _ := f.GetString(name); return v }
	if get("nats-url") == "" {
		return nil, nil
	}
	ev := &kube.EventingConfig{NATSURL: get("nats-url"), IngressAddress: get("broker-ingress-addr"), IngressAdvertise: get("broker-ingress-advertise"),
		NATSCredentialsSecret: get("nats-credentials-secret")}
	if s := ev.NATSCredentialsSecret; s != "" {
		if ns, name, ok := strings.Cut(s, "/"); !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("--nats-credentials-secret %q: want namespace/name", s)
		}
	}
	_, port, err := net.SplitHostPort(ev.IngressAddress)
	if err != nil {
		return nil, fmt.Errorf("--broker-ingress-addr: %w", err)
	}
	if podIP := os.Getenv("POD_IP"); ev.IngressAdvertise == "" && podIP != "" {
		ev.IngressAdvertise = net.JoinHostPort(podIP, port)
	}
	if ev.StreamReplicas, _ = f.GetInt("nats-stream-replicas"); ev.StreamReplicas < 1 || ev.StreamReplicas > 5 {
		return nil, fmt.Errorf("--nats-stream-replicas %d: must be 1 to 5 (JetStream's limit), the NATS cluster's size", ev.StreamReplicas)
	}
	if ev.AckWait, _ = f.GetDuration("broker-ack-wait"); ev.AckWait <= 0 {
		return nil, fmt.Errorf("--broker-ack-wait %s: must be positive", ev.AckWait)
	}
	if ev.RetryRules, err = broker.ParseRetryRules(get("delivery-retry-rules")); err != nil {
		return nil, fmt.Errorf("--delivery-retry-rules: %w", err)
	}
	proxy := get("delivery-proxy-addr")
	if _, _, err := net.SplitHostPort(proxy); err != nil {
		return nil, fmt.Errorf("--delivery-proxy-addr: %w", err)
	}
	ev.ProxyAddress = func() string { return proxy }
	if local := get("delivery-local-proxy-addr"); local != "" {
		if _, _, err := net.SplitHostPort(local); err != nil {
			return nil, fmt.Errorf("--delivery-local-proxy-addr: %w", err)
		}
		ev.LocalProxyAddress = func() string { return local }
	}
	if on, _ := f.GetBool("cloudevents-filter"); on {
		w, err := wasmFilter(cmd.Context(), ".", get("wasm-dir"), "cloudevents", eventing.CloudEventsFilterName, "--cloudevents-filter", log)
		if err != nil {
			return nil, fmt.Errorf("%w (--cloudevents-filter=false leaves validation and matching to the broker ingress)", err)
		}
		ev.CloudEventsFilter = &w
	}
	return ev, nil
}

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
			cfg.Workers, _ = f.GetInt("workers")
			cfg.QPS, _ = f.GetFloat32("kube-api-qps")
			cfg.Burst, _ = f.GetInt("kube-api-burst")
			if cfg.StatusCoalesce, _ = f.GetDuration("status-coalesce"); cfg.StatusCoalesce == 0 {
				cfg.StatusCoalesce = -1 // every intermediate status written
			}
			cfg.PodName, _ = f.GetString("pod-name")
			cfg.PodNamespace, _ = f.GetString("pod-namespace")
			port, _ := f.GetUint32("proxy-port")
			cfg.ProxyListenPort = port
			cfg.ProxyHTTPSPort, _ = f.GetUint32("proxy-https-port")
			cfg.HTTPSRedirectPort, _ = f.GetUint32("https-redirect-port")
			cfg.ProxyLocalPort, _ = f.GetUint32("proxy-local-port")
			cfg.HTTPAddress, _ = f.GetString("http-addr")
			cfg.ExtProcAddress, _ = f.GetString("extproc-advertise")
			a, source, err := autoscalerFlags(f)
			if err != nil {
				return err
			}
			systemNS, _ := f.GetString("system-namespace")
			cfg.SystemNamespace = systemNS
			cfg.WebhookAddress, _ = f.GetString("webhook-addr")
			cfg.WebhookService, _ = f.GetString("webhook-service")
			cfg.WebhookHosts, _ = f.GetStringArray("webhook-host")
			cfg.EventingNamespace, _ = f.GetString("eventing-system-namespace")
			kc, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return fmt.Errorf("read settings: %w", err)
			}
			reader := &kube.SettingsReader{Client: kc, SystemNamespace: systemNS, EventingNamespace: cfg.EventingNamespace, Logger: log}
			// The webhooks follow edits of the ConfigMaps (every minute); the leader's autoscaler
			// and reconcilers as they happen (LoadSettings). All three make them with load.
			load := settingsLoader(f, nil, a, false)
			settings := func(ctx context.Context) (reconciler.Settings, error) {
				data, err := reader.Read(ctx)
				if err != nil {
					return reconciler.Settings{}, fmt.Errorf("read settings: %w", err)
				}
				return load(data)
			}
			start, err := settings(cmd.Context())
			if err != nil {
				return err
			}
			cfg.Admission, a = start.Admission, start.Autoscaler
			cfg.LoadSettings = load
			cfg.ReloadAdmission = func(ctx context.Context) (*config.Config, error) {
				s, err := settings(ctx)
				return s.Admission, err
			}
			cfg.ProxyStatsURLs, _ = f.GetStringArray("proxy-stats")
			cfg.Autoscaler, cfg.StatSource = &a, source
			if cfg.ServingNodes, cfg.XDSAckTimeout, err = servingNodeFlags(f); err != nil {
				return err
			}
			if cfg.ScopedRoutes, err = routeLayoutFlag(f); err != nil {
				return err
			}
			if cfg.TLS, err = controllerTLS(f); err != nil {
				return err
			}
			cfg.WasmCodeAdvertise, _ = f.GetString("wasm-advertise")
			if source == autoscaler.RevisionMetrics {
				dir, _ := f.GetString("wasm-dir")
				w, err := wasmFilter(cmd.Context(), ".", dir, "revision-metrics", xds.RevisionMetricsFilterName, "--autoscaler-metrics revision-metrics", log)
				if err != nil {
					return err
				}
				cfg.WasmFilters = append(cfg.WasmFilters, w)
			}
			if on, _ := f.GetBool("forwarded-filter"); on && cfg.WasmCodeAdvertise == "" {
				// Envoy fetches modules from --wasm-advertise; without it there is no way to send one.
				log.Warn("not sending the forwarded wasm filter: Envoy fetches modules from --wasm-advertise, which is not set; Forwarded is the client's address and scheme only (--forwarded-filter=false silences this)")
			} else if on {
				dir, _ := f.GetString("wasm-dir")
				w, err := forwardedFilter(cmd.Context(), ".", dir, log)
				if err != nil {
					return fmt.Errorf("%w (--forwarded-filter=false leaves Forwarded to the routes' formatter: for=CLIENT;proto=SCHEME)", err)
				}
				cfg.WasmFilters = append(cfg.WasmFilters, w)
			}
			if cfg.Eventing, err = controllerEventing(cmd, log); err != nil {
				return err
			}
			if cfg.WasmCodeAdvertise == "" && (len(cfg.WasmFilters) > 0 || cfg.Eventing != nil && cfg.Eventing.CloudEventsFilter != nil) {
				return errors.New("--wasm-advertise: required with wasm filters: the host:port Envoy fetches the modules from (this process's --http-addr)")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			odocs, err := clusterObservability(ctx, rc, systemNS)
			if err != nil {
				return err
			}
			// With --tls, --http-addr answers only clients with a certificate of the CA, so
			// Prometheus scrapes a cleartext port of its own, as Knative's controller serves
			// its metrics on :9090 (serving config/core/deployments/controller.yaml).
			t, _, _, stopTelemetry, err := startTelemetry(ctx, f, "skiff-controller", odocs, log)
			if err != nil {
				return err
			}
			defer stopTelemetry()
			cfg.Telemetry = t
			ctrl, err := kube.New(cfg)
			if err != nil {
				return err
			}
			return ctrl.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.String("kubeconfig", "", "kubeconfig file; empty means in-cluster configuration")
	f.String("xds-addr", ":18000", "address of the ADS server Envoy connects to (served by the leader only)")
	f.String("health-addr", ":8081", "address of /healthz and /readyz (every replica is ready once it serves the webhooks; the leader is the Pod labelled skiff.dev/leader=true)")
	f.String("domain", "example.com", "route hosts are {name}.{namespace}.{domain}")
	f.Uint32("proxy-port", 8080, "port of the HTTP listener Envoy is told to bind")
	f.Uint32("proxy-https-port", 8443, "port of the TLS listener Envoy is told to bind (certificates from cert-manager and DomainMappings' Secrets, over SDS); 0 for none")
	f.Uint32("https-redirect-port", 443, "port http-protocol Redirected sends clients to (the skiff-ingress Service's https port)")
	f.Uint32("proxy-local-port", 8081, "port of Envoy's cluster-local listener (the skiff-ingress-local Service), the only one serving cluster-local names; 0 serves them on --proxy-port")
	f.String("http-addr", ":8090", "address of the activation feed `skiff extproc` follows and of the wasm modules Envoy fetches (leader only)")
	f.String("extproc-advertise", "", "ext_proc address (host:port) Envoy is told to call for revisions in proxy mode, e.g. the skiff-extproc Service; empty: no activator, and no scale to zero")
	f.String("wasm-dir", "/var/lib/skiff/wasm", "where the proxy-wasm modules are (from `make wasm`); in a source checkout they are built there first")
	f.String("wasm-advertise", "", "host:port Envoy fetches the wasm modules from, i.e. --http-addr behind the skiff-controlplane Service")
	addAutoscalerFlags(f)
	addServingNodeFlags(f)
	addAdmissionFlags(f, false)
	f.String("webhook-addr", ":8443", "address of the defaulting and validation admission webhooks (TLS, every replica); \"-\" disables them")
	f.String("webhook-service", "skiff-webhook", "the Service the API server calls the webhooks through: their certificate is for {service}.{system-namespace}.svc")
	f.StringArray("webhook-host", nil, "another name or IP address for the webhooks' certificate, for an API server that calls them by URL (repeatable)")
	f.String("system-namespace", envOr("POD_NAMESPACE", "skiff-system"), "namespace of Skiff's own objects (the controller's own, as Knative reads knative-serving's): the config-features, config-defaults, config-autoscaler and config-br-defaults ConfigMaps read at start, the config-network, config-domain and config-certmanager ConfigMaps followed while running, and the webhook's certificate Secret")
	f.String("eventing-system-namespace", config.EventingNamespace, "namespace of Knative Eventing's config-features (delivery-timeout, delivery-retryafter), read at start, by the webhooks every minute, and followed by the leader; it may not exist (Knative's defaults then)")
	f.StringArray("proxy-stats", nil, "admin URL of a proxy whose /stats the autoscaler scrapes, for proxies that do not push to the metrics_service stat sink (repeatable)")
	f.String("nats-url", "", "NATS cluster with JetStream keeping broker events, e.g. nats://nats.skiff-system.svc.cluster.local:4222; empty: no eventing (Brokers, Triggers and PingSources are not Ready)")
	f.String("nats-credentials-secret", "skiff-system/skiff-nats", "namespace/name of the Secret with the credentials NATS requires (key token, or user and password); created with a random token if absent; empty: none")
	f.Int("nats-stream-replicas", 1, "how many servers of the NATS cluster keep each broker's stream (JetStream replicas, 1-5): the cluster's size, e.g. 3 for deploy/'s")
	f.Bool("tls", true, "serve ADS and --http-addr over mTLS with a CA kept in --tls-secret (created on first start), and tell Envoy to reach ext_proc and the wasm modules over mTLS; false serves them in plaintext to anyone who can reach them")
	f.String("tls-secret", "skiff-system/skiff-tls", "namespace/name of the Secret holding the CA and the certificates of Envoy and the activators")
	f.StringSlice("tls-controller-names", nil, "DNS names of the controller's serving certificate (default: the skiff-controlplane Service's names in --tls-secret's namespace)")
	f.StringSlice("tls-extproc-names", nil, "DNS names of the activators' certificate (default: the skiff-extproc Service's names in --tls-secret's namespace)")
	f.String("broker-ingress-addr", ":18002", "address of the broker ingress (leader only); Envoy routes http://broker-ingress.{domain}/{namespace}/{broker} to it")
	f.String("broker-ingress-advertise", "", "ip:port Envoy reaches this replica's broker ingress at (default: $POD_IP from the downward API with --broker-ingress-addr's port)")
	f.Duration("broker-ack-wait", broker.DefaultAckWait, "how long JetStream waits for a dispatcher that took an event and died (e.g. a lost leader) before handing the event out again")
	f.String("delivery-retry-rules", string(broker.RetryRulesSkiff), "how failed deliveries are retried within a delivery spec's retry count: \"skiff\" (failed requests, 5xx, 408 and 429; the n-th linear retry waits backoffDelay×n) or \"knative\" (Knative's dispatcher: 404 and 409 too; the first linear retry at once, then backoffDelay×(n-1))")
	f.String("delivery-proxy-addr", "skiff-ingress.skiff-system.svc.cluster.local:80", "the Envoy listener deliveries and PingSource events to Knative hosts go through, so scaled-to-zero subscribers are activated")
	f.String("delivery-local-proxy-addr", "skiff-ingress-local.skiff-system.svc.cluster.local:80", "the Envoy cluster-local listener deliveries to cluster-local names ({name}.{namespace}.svc.cluster.local) go through; empty sends them to --delivery-proxy-addr")
	f.Bool("forwarded-filter", true, forwardedFilterUsage)
	f.Bool("cloudevents-filter", true, "send Envoy the cloudevents wasm filter (from --wasm-dir) in front of the broker ingress: validation and trigger matching in the proxy")
	f.String("leader-elect-namespace", "skiff-system", "namespace of the leader election Lease")
	f.String("leader-elect-lease", "skiff-controller", "name of the leader election Lease")
	f.String("leader-elect-identity", "", "this replica's identity in the Lease (default: the hostname, i.e. the pod name)")
	f.Duration("leader-elect-lease-duration", 0, "how long a Lease is valid without renewal (default 15s)")
	f.Duration("leader-elect-renew-deadline", 0, "how long the leader retries renewing before giving up (default 10s)")
	f.Duration("leader-elect-retry-period", 0, "how often candidates retry (default 2s)")
	addObservabilityFlags(f, "")
	f.Int("workers", kube.DefaultWorkers, "how many reconciles run at once")
	f.Float32("kube-api-qps", kube.DefaultQPS, "queries per second the controller's API client may make (client-go's rate limiter)")
	f.Int("kube-api-burst", kube.DefaultBurst, "burst of the controller's API client above --kube-api-qps")
	f.Duration("status-coalesce", kube.DefaultStatusCoalesce, "how long a Service, Configuration, Route or Revision still in progress (Ready Unknown) may go without writing the intermediate statuses it passes through; statuses reaching Ready True or False are written at once; 0 writes every one, as Knative does")
	f.String("pod-name", os.Getenv("POD_NAME"), "this replica's Pod, which the leader labels "+kube.LeaderLabel+"=true for the skiff-controlplane Service to select (default $POD_NAME); empty: no label")
	f.String("pod-namespace", os.Getenv("POD_NAMESPACE"), "the namespace of --pod-name (default $POD_NAMESPACE)")
	return cmd
}

// controllerTLS reads the --tls flags; nil with --tls=false.
func controllerTLS(f *pflag.FlagSet) (*kube.TLSConfig, error) {
	if on, _ := f.GetBool("tls"); !on {
		return nil, nil
	}
	ref, _ := f.GetString("tls-secret")
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("--tls-secret %q: want namespace/name", ref)
	}
	t := &kube.TLSConfig{SecretNamespace: ns, SecretName: name}
	t.ControllerNames, _ = f.GetStringSlice("tls-controller-names")
	t.ExtProcNames, _ = f.GetStringSlice("tls-extproc-names")
	return t, nil
}
