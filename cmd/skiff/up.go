package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/eventing"
	"github.com/skiff-dev/skiff/controlplane/runtime/image"
	"github.com/skiff-dev/skiff/controlplane/runtime/local"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/gateway"
	"github.com/skiff-dev/skiff/telemetry"
	"github.com/skiff-dev/skiff/up"
)

func addControlPlaneFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("data-dir", ".skiff", "where resources, built binaries and logs are kept")
	f.String("work-dir", ".", "the Go module ko:// images are built in")
	f.String("api-addr", "127.0.0.1:7070", "address of the resource API (skiff apply/get/delete)")
	f.String("xds-addr", "127.0.0.1:18000", "address of the ADS server proxies connect to")
	f.String("domain", "localhost", "route hosts are {name}.{namespace}.{domain}")
	f.String("http-addr", "127.0.0.1:8080", "address the proxy's HTTP listener binds (sent to proxies over LDS)")
	f.String("https-addr", "127.0.0.1:8443", "address the proxy's TLS listener binds, once a certificate exists (external-domain-tls, DomainMapping tls); empty for none")
	f.String("local-http-addr", "127.0.0.1:8081", "address of the proxy's cluster-local listener, the only one serving cluster-local names ({name}.{namespace}.svc.cluster.local); empty serves them on --http-addr")
	f.String("system-namespace", "knative-serving", "namespace of Knative's config-network, config-domain and config-certmanager ConfigMaps (skiff apply -f them, or skiff up -f)")
	f.Duration("drain-timeout", time.Second, "how long a stopping instance keeps serving after it leaves the proxy's endpoints")
	f.Int("max-instances", local.DefaultMaxInstances(), "most instances (processes) the local runtime runs at once, across every revision; more wait, and a revision with none running is Unschedulable")
	f.String("extproc-addr", "127.0.0.1:18001", "address of the ext_proc activator this process serves")
	f.String("extproc-advertise", "", "ext_proc address proxies are told over CDS, e.g. standalone `skiff extproc` instances (default: --extproc-addr)")
	addAutoscalerFlags(f)
	addServingNodeFlags(f)
	f.String("wasm-dir", "bin/wasm", "where the proxy-wasm filter modules are (relative to --work-dir); in a source checkout they are built there first")
	f.Bool("eventing", true, "run Brokers, Triggers and PingSources (broker ingress, dispatcher, JetStream)")
	f.String("nats-url", "", "external NATS cluster with JetStream for broker events (default: an embedded NATS server storing under --data-dir/jetstream)")
	f.String("broker-ingress-addr", eventing.DefaultIngressAddress, "address of the broker ingress; proxies route http://broker-ingress.{domain}/{namespace}/{broker} to it")
	f.String("broker-ingress-advertise", "", "ip:port proxies are told to reach the broker ingress at (default: --broker-ingress-addr)")
	f.Duration("broker-ack-wait", broker.DefaultAckWait, "how long JetStream waits for a dispatcher that took an event and died before handing the event out again")
	f.String("delivery-retry-rules", string(broker.RetryRulesSkiff), "how failed deliveries are retried within a delivery spec's retry count: \"skiff\" (failed requests, 5xx, 408 and 429; the n-th linear retry waits backoffDelay×n) or \"knative\" (Knative's dispatcher: 404 and 409 too; the first linear retry at once, then backoffDelay×(n-1))")
	f.String("delivery-proxy-addr", "", "the proxy listener deliveries and PingSource events to Knative hosts go through, so scaled-to-zero subscribers are activated (default: --http-addr, with 0.0.0.0 read as 127.0.0.1)")
	f.String("oci-runtime", "runc", "the OCI runtime that runs container images (any image but ko:// and commands); \"none\" runs none. Needs root, runc and overlayfs; without them images are ImageUnsupported, saying why")
	f.String("image-cache-size", "10Gi", "most unpacked image layers kept under --data-dir/images; least recently used images no revision runs are evicted past it")
	f.StringSlice("registries-skipping-tag-resolving", image.DefaultSkipRegistries, "registries whose image tags are not resolved to digests at revision creation (Knative's config-deployment setting)")
	f.Duration("digest-resolution-timeout", image.DefaultResolveTimeout, "how long resolving one image tag to a digest may take (Knative's config-deployment setting)")
	f.Bool("forwarded-filter", true, forwardedFilterUsage)
	f.Bool("cloudevents-filter", true, "run the cloudevents wasm filter in the proxy in front of the broker ingress (validation and trigger matching in the proxy); without it the ingress does both")
	addAdmissionFlags(f, true)
	addObservabilityFlags(f, DefaultMetricsAddr)
}

// controlPlaneTelemetry sets up the control plane's telemetry (flags and the
// config-observability among settings), serves its scrape endpoint until ctx ends, and
// puts it in cfg. The returned function flushes it.
func controlPlaneTelemetry(ctx context.Context, cmd *cobra.Command, settings []apiclient.Document, service string, cfg *controlplane.Config) (telemetry.Config, net.Addr, func(), error) {
	t, ocfg, addr, stop, err := startTelemetry(ctx, cmd.Flags(), service, settings, cfg.Logger)
	if err != nil {
		return ocfg, nil, nil, err
	}
	cfg.Telemetry = t
	return ocfg, addr, stop, nil
}

// controlPlaneConfig reads the flags; settings are the config-features, config-defaults and
// config-autoscaler ConfigMaps given to `skiff up -f`.
func controlPlaneConfig(cmd *cobra.Command, settings []apiclient.Document) (controlplane.Config, error) {
	f := cmd.Flags()
	get := func(name string) string { v, _ := f.GetString(name); return v }
	log, err := logger(cmd)
	if err != nil {
		return controlplane.Config{}, err
	}
	host, port, err := listenAddr("http-addr", get("http-addr"))
	if err != nil {
		return controlplane.Config{}, err
	}
	httpsHost, httpsPort, err := listenAddr("https-addr", get("https-addr"))
	if err != nil {
		return controlplane.Config{}, err
	}
	localHost, localPort, err := listenAddr("local-http-addr", get("local-http-addr"))
	if err != nil {
		return controlplane.Config{}, err
	}
	dataDir, err := filepath.Abs(get("data-dir"))
	if err != nil {
		return controlplane.Config{}, fmt.Errorf("--data-dir: %w", err)
	}
	workDir, err := filepath.Abs(get("work-dir"))
	if err != nil {
		return controlplane.Config{}, fmt.Errorf("--work-dir: %w", err)
	}
	drain, _ := f.GetDuration("drain-timeout")
	maxInstances, _ := f.GetInt("max-instances")
	if maxInstances <= 0 {
		return controlplane.Config{}, fmt.Errorf("--max-instances %d: must be positive", maxInstances)
	}
	images, err := imagesFlags(f)
	if err != nil {
		return controlplane.Config{}, err
	}
	a, source, err := autoscalerFlags(f)
	if err != nil {
		return controlplane.Config{}, err
	}
	serving, ackTimeout, err := servingNodeFlags(f)
	if err != nil {
		return controlplane.Config{}, err
	}
	scoped, err := routeLayoutFlag(f)
	if err != nil {
		return controlplane.Config{}, err
	}
	load := settingsLoader(f, settingsConfigMaps(settings), a, true)
	start, err := load(nil)
	if err != nil {
		return controlplane.Config{}, err
	}
	adm := start.Admission
	a = start.Autoscaler
	stats, _ := f.GetStringArray("proxy-stats") // `skiff controlplane` only
	var filters []xds.WasmFilter
	if source == autoscaler.RevisionMetrics {
		w, err := wasmFilter(cmd.Context(), workDir, get("wasm-dir"), "revision-metrics", xds.RevisionMetricsFilterName, "--autoscaler-metrics revision-metrics", log)
		if err != nil {
			return controlplane.Config{}, err
		}
		filters = append(filters, w)
	}
	if on, _ := f.GetBool("forwarded-filter"); on {
		w, err := forwardedFilter(cmd.Context(), workDir, get("wasm-dir"), log)
		if err != nil {
			// Requests still get Forwarded, from the route's formatter (for=CLIENT;proto=SCHEME).
			log.Warn("running without the forwarded wasm filter: Forwarded is the client's address and scheme only (--forwarded-filter=false silences this)", "err", err)
		} else {
			filters = append(filters, w)
		}
	}
	var ev *controlplane.EventingConfig
	if on, _ := f.GetBool("eventing"); on {
		ackWait, _ := f.GetDuration("broker-ack-wait")
		if ackWait <= 0 {
			return controlplane.Config{}, fmt.Errorf("--broker-ack-wait %s: must be positive", ackWait)
		}
		retry, err := broker.ParseRetryRules(get("delivery-retry-rules"))
		if err != nil {
			return controlplane.Config{}, fmt.Errorf("--delivery-retry-rules: %w", err)
		}
		ev = &controlplane.EventingConfig{
			NATSURL: get("nats-url"), IngressAddress: get("broker-ingress-addr"), IngressAdvertise: get("broker-ingress-advertise"),
			AckWait: ackWait, RetryRules: retry,
		}
		if addr := get("delivery-proxy-addr"); addr != "" {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return controlplane.Config{}, fmt.Errorf("--delivery-proxy-addr: %w", err)
			}
			ev.ProxyAddress = func() string { return addr }
		}
		if withFilter, _ := f.GetBool("cloudevents-filter"); withFilter {
			w, err := wasmFilter(cmd.Context(), workDir, get("wasm-dir"), "cloudevents", eventing.CloudEventsFilterName, "--cloudevents-filter", log)
			if err != nil {
				// Events are still validated and matched, by the ingress.
				log.Warn("running brokers without the cloudevents wasm filter (--cloudevents-filter=false silences this)", "err", err)
			} else {
				ev.CloudEventsFilter = &w
			}
		}
	}
	return controlplane.Config{
		DataDir: dataDir, WorkDir: workDir, Eventing: ev,
		APIAddress: get("api-addr"), XDSAddress: get("xds-addr"), ExtProcAddress: get("extproc-addr"), ExtProcAdvertise: get("extproc-advertise"), Domain: get("domain"),
		ProxyListenAddress: host, ProxyListenPort: port, ProxyStatsURLs: stats,
		HTTPSListenAddress: httpsHost, HTTPSListenPort: httpsPort, LocalListenAddress: localHost, LocalListenPort: localPort,
		SystemNamespace: get("system-namespace"),
		DrainTimeout:    drain, MaxInstances: maxInstances, Images: images, Autoscaler: &a, Admission: adm, LoadSettings: load, StatSource: source, WasmFilters: filters, Logger: log,
		ServingNodes: serving, XDSAckTimeout: ackTimeout, ScopedRoutes: scoped,
	}, nil
}

func newControlPlaneCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Run the control plane alone (API, reconcilers, local runtime, xDS) for an external Envoy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := controlPlaneConfig(cmd, nil)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			_, _, flush, err := controlPlaneTelemetry(ctx, cmd, nil, "skiff-controlplane", &cfg)
			if err != nil {
				return err
			}
			defer flush()
			cp, err := controlplane.New(cfg)
			if err != nil {
				return err
			}
			return cp.Run(ctx)
		},
	}
	addControlPlaneFlags(cmd)
	cmd.Flags().StringArray("proxy-stats", nil, "admin URL of each Envoy whose /stats the autoscaler reads, e.g. http://envoy:9901 (repeatable)")
	return cmd
}

func newUpCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up [-f FILE|DIR]",
		Short: "Run Skiff on this machine: control plane, local runtime and gateway in one process",
		Long: `Run Skiff on this machine: the control plane (resource API, reconcilers, local process
runtime, xDS server) and the gateway, which connects to the xDS server as an Envoy would.
Manifests given with -f are applied once the API is up; the ConfigMaps among them named
config-features, config-defaults and config-autoscaler (Knative's settings) configure
Skiff itself, before it starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, _ := cmd.Flags().GetStringArray("filename")
			var docs []apiclient.Document
			for _, f := range files {
				d, err := apiclient.ReadManifests(f, os.Stdin)
				if err != nil {
					return err
				}
				docs = append(docs, d...)
			}
			settings, docs := settingsDocs(docs)
			cfg, err := controlPlaneConfig(cmd, settings)
			if err != nil {
				return err
			}
			adminAddr, _ := cmd.Flags().GetString("admin-addr")
			if adminAddr == "" {
				return errors.New("--admin-addr: required: the autoscaler reads the gateway's /stats there")
			}
			gc, err := planGC(cmd.Flags(), os.Getenv)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			applyGC(ctx, gc, cfg.Logger)
			ocfg, metricsAt, flush, err := controlPlaneTelemetry(ctx, cmd, settings, "skiff-up", &cfg)
			if err != nil {
				return err
			}
			defer flush()
			requestLog := ocfg.EnableRequestLog
			if cmd.Flags().Changed("request-log") {
				requestLog, _ = cmd.Flags().GetBool("request-log")
			}
			var sotw bool
			switch mode, _ := cmd.Flags().GetString("gateway-xds"); mode {
			case "delta":
			case "sotw":
				sotw = true
			default:
				return fmt.Errorf("--gateway-xds %q: want delta or sotw", mode)
			}
			stack, err := up.Start(ctx, up.Config{ControlPlane: cfg, AdminAddress: adminAddr, RequestLog: requestLog, StateOfTheWorld: sotw})
			if err != nil {
				return err
			}
			cp := stack.ControlPlane()
			if len(docs) > 0 {
				if err := applyDocs(ctx, cmd, apiclient.New(cp.APIAddr().String()), docs); err != nil {
					cfg.Logger.Error("apply", "err", err)
				}
			}
			metrics := "off"
			if metricsAt != nil {
				metrics = "http://" + metricsAt.String() + "/metrics"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "skiff is up: API %s, HTTP %s, admin %s, metrics %s. Ctrl-C stops it.\n",
				cp.APIAddr(), net.JoinHostPort(cfg.ProxyListenAddress, strconv.Itoa(int(cfg.ProxyListenPort))), stack.AdminAddr(), metrics)
			if cfg.HTTPSListenPort != 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "HTTPS %s (certificates from the local CA %s: trust it, e.g. curl --cacert %s)\n",
					net.JoinHostPort(cfg.HTTPSListenAddress, strconv.Itoa(int(cfg.HTTPSListenPort))), cp.CACertPath(), cp.CACertPath())
			}
			if cfg.LocalListenPort != 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "cluster-local HTTP %s\n", net.JoinHostPort(cfg.LocalListenAddress, strconv.Itoa(int(cfg.LocalListenPort))))
			}
			err = stack.Wait()
			cancel()
			return err
		},
	}
	addControlPlaneFlags(cmd)
	cmd.Flags().String("admin-addr", "127.0.0.1:9901", "address of the gateway's admin endpoint (/stats, /ready)")
	cmd.Flags().StringArrayP("filename", "f", nil, "manifests to apply once up (repeatable)")
	cmd.Flags().String("gateway-xds", "delta", "how the gateway asks for its configuration: delta (incremental xDS, a change costs what changed) or sotw (state of the world, as Envoy's ADS default)")
	addGCFlags(cmd.Flags())
	cmd.Flags().Bool("request-log", false, "write a line in Envoy's access log format for every request to a revision into its log (.skiff/logs/<namespace>/<revision>.log, after \"[proxy] \"); default: config-observability's logging.enable-request-log")
	return cmd
}

func applyDocs(ctx context.Context, cmd *cobra.Command, c *apiclient.Client, docs []apiclient.Document) error {
	for _, d := range docs {
		res, err := c.Apply(ctx, d, "default")
		if err != nil {
			return fmt.Errorf("%s: %w", d.Source, err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), res)
	}
	return nil
}

func newGatewayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run Skiff's Envoy-compatible local data plane against an ADS server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			get := func(name string) string { v, _ := f.GetString(name); return v }
			delta, _ := f.GetBool("delta")
			gc, err := planGC(f, os.Getenv)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			applyGC(ctx, gc, log)
			t, _, _, stopTelemetry, err := startTelemetry(ctx, f, "skiff-gateway", nil, log)
			if err != nil {
				return err
			}
			defer stopTelemetry()
			cfg := gateway.Config{
				ADSAddress: get("xds-addr"), NodeID: get("node-id"), NodeCluster: get("node-cluster"),
				AdminAddress: get("admin-addr"), Delta: delta, Logger: log,
				WasmCacheDir: get("wasm-cache-dir"), Telemetry: t,
			}
			if tc := (gateway.TLSConfig{CertFile: get("tls-cert"), KeyFile: get("tls-key"), CAFile: get("tls-ca"), XDSServerName: get("xds-server-name")}); tc != (gateway.TLSConfig{}) {
				cfg.TLS = &tc
			}
			gw, err := gateway.New(cfg)
			if err != nil {
				return err
			}
			return gw.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.String("xds-addr", "127.0.0.1:18000", "ADS server to connect to")
	f.String("node-id", "skiff-gateway", "xDS node id")
	f.String("node-cluster", "skiff-gateway", "xDS node cluster")
	f.String("admin-addr", "127.0.0.1:9901", "admin endpoint (/stats, /stats/prometheus, /ready)")
	f.String("wasm-cache-dir", "", "keep compiled proxy-wasm modules here so a restart does not compile them again (default: none)")
	f.Bool("delta", false, "use incremental (delta) xDS instead of state of the world")
	f.String("tls-cert", "", "client certificate (PEM; e.g. envoy.crt from the controller's TLS Secret): with --tls-key and --tls-ca, ADS is mTLS and clusters naming the static secrets skiff-client-cert and skiff-ca use them, as Envoy's bootstrap in deploy/ does")
	f.String("tls-key", "", "the key of --tls-cert (PEM)")
	f.String("tls-ca", "", "the CA the control plane's and ext_proc's certificates are checked against (PEM)")
	f.String("xds-server-name", "", "the name the ADS server's certificate carries (default: --xds-addr's host)")
	addGCFlags(f)
	addObservabilityFlags(f, "")
	return cmd
}

// listenAddr parses the host:port of flag; empty is no listener (port 0).
func listenAddr(flag, addr string) (string, uint32, error) {
	if addr == "" {
		return "", 0, nil
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("--%s: %w", flag, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("--%s: port %q: want 0-65535", flag, portStr)
	}
	return host, uint32(port), nil
}

// imagesFlags reads how container images run: --oci-runtime, --image-cache-size,
// --registries-skipping-tag-resolving and --digest-resolution-timeout.
func imagesFlags(f *pflag.FlagSet) (controlplane.ImagesConfig, error) {
	runc, _ := f.GetString("oci-runtime")
	size, _ := f.GetString("image-cache-size")
	q, err := resource.ParseQuantity(size)
	if err != nil || q.Value() <= 0 {
		return controlplane.ImagesConfig{}, fmt.Errorf("--image-cache-size %q: want a positive size such as 10Gi", size)
	}
	skip, _ := f.GetStringSlice("registries-skipping-tag-resolving")
	timeout, _ := f.GetDuration("digest-resolution-timeout")
	if timeout <= 0 {
		return controlplane.ImagesConfig{}, fmt.Errorf("--digest-resolution-timeout %s: must be positive", timeout)
	}
	if skip == nil {
		skip = []string{}
	}
	return controlplane.ImagesConfig{Runc: runc, CacheBytes: q.Value(), SkipRegistries: skip, ResolveTimeout: timeout}, nil
}
