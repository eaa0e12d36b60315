// Package kube runs Skiff's control plane on Kubernetes (`skiff controller`): the same
// reconcilers, autoscaler and activation hub as `skiff up`, over a store backed by the API
// server (kubestore) and a runtime of Deployments and EndpointSlices (deployruntime), with the
// xDS server Envoy connects to. One replica leads at a time (a coordination.k8s.io Lease);
// only the leader reconciles, scales and serves xDS, and it labels its Pod (LeaderLabel) so
// the Service in front of it sends Envoy and `skiff extproc` to the leader; every replica is
// Ready (/readyz), since each serves the admission webhooks.
//
// Decisions: deletion cascades through owner references and Kubernetes' garbage collector
// (kube-controller-manager), as for any Kubernetes object. The autoscaler (KPA) scales each
// Revision's Deployment through its scale subresource; its input is what Envoy pushes to the
// metrics_service stat sink on the xDS port (or the admin /stats of ProxyStatsURLs) plus the
// requests held by the `skiff extproc` instances, which follow the leader's activation feed
// on the HTTP port. With Gateway API's CRDs installed, HTTPRoutes to Knative Services are
// routed and given status too (gatewayapi). Without an ext_proc address there is no activator, so revisions never
// scale to zero. Every replica, leading or not, serves Knative's two admission webhooks
// (package webhook): objects are defaulted and validated when written, as by `skiff apply`.
//
// With Config.Eventing, the leader also runs Knative Eventing's data plane (controlplane/eventing,
// as `skiff up` does): the broker ingress and the JetStream dispatchers on an external NATS
// cluster, and the PingSource adapter. Like xDS they run on the leader only, since the
// reconcilers that configure them do: the ingress endpoint sent to Envoy is this replica's
// (IngressAdvertise, the pod IP), the dispatchers' durable consumers are picked up by the next
// leader, and the cloudevents filter reaches Envoy as remote wasm code like WasmFilters.
package kube

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/client/proxyclient"
	"github.com/skiff-dev/skiff/controlplane/activation"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/eventing"
	"github.com/skiff-dev/skiff/controlplane/kube/certmanager"
	"github.com/skiff-dev/skiff/controlplane/kube/deployruntime"
	"github.com/skiff-dev/skiff/controlplane/kube/gatewayapi"
	"github.com/skiff-dev/skiff/controlplane/kube/kubestore"
	"github.com/skiff-dev/skiff/controlplane/kube/sourcedeploy"
	"github.com/skiff-dev/skiff/controlplane/kube/webhook"
	"github.com/skiff-dev/skiff/controlplane/pki"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/eventing/source/apiserver"
	"github.com/skiff-dev/skiff/telemetry"
)

// Config says how to reach the API server and where to serve.
type Config struct {
	// Rest is the API server connection (in-cluster or from a kubeconfig).
	Rest *rest.Config
	// XDSAddress serves ADS (and the metrics_service stat sink) to Envoy; default ":18000".
	XDSAddress string
	// HealthAddress serves /healthz and /readyz; default ":8081"; "-" disables it.
	HealthAddress string
	// HTTPAddress serves the activation feed `skiff extproc` follows (extproc.WatchPath,
	// PokePath, HeldPath) and the wasm modules Envoy fetches (xds.WasmCodePath); default
	// ":8090"; "-" disables it (and with it remote wasm modules).
	HTTPAddress string
	// Domain is the suffix of route hosts; default "example.com".
	Domain string
	// ProxyListenPort is the port the xDS listener tells Envoy to bind; default xds's default.
	ProxyListenPort uint32
	// ProxyHTTPSPort is Envoy's TLS listener (certificates from cert-manager, DomainMappings'
	// Secrets and Gateway listeners' certificateRefs, as SDS secrets); 0 means none.
	// HTTPSRedirectPort is where http-protocol Redirected sends clients; default 443 (the
	// skiff-ingress Service's port in front of it).
	ProxyHTTPSPort, HTTPSRedirectPort uint32
	// ProxyLocalPort is Envoy's cluster-local listener (the skiff-ingress-local Service), the
	// only one serving cluster-local names; 0 means none (they are served on ProxyListenPort).
	ProxyLocalPort uint32
	// ExtProcAddress is the ext_proc service ("host:port", e.g. the skiff-extproc Service)
	// Envoy is told to call for revisions in proxy mode. Empty means no activator: requests
	// always go straight to pods and revisions do not scale to zero.
	ExtProcAddress string
	// Autoscaler holds the cluster-wide autoscaling settings; nil takes Knative's defaults.
	Autoscaler *autoscaler.Config
	// Admission holds the settings objects are defaulted and validated with (config-features,
	// config-defaults, config-autoscaler); nil means Knative's defaults.
	Admission *config.Config
	// ReloadAdmission, when set, gives the webhooks the settings to use from then on; they
	// call it every ReloadAdmissionInterval (ConfigMaps edited in the cluster take effect
	// within it).
	ReloadAdmission func(context.Context) (*config.Config, error)
	// ReloadAdmissionInterval is how often the webhooks call ReloadAdmission; default 1m.
	ReloadAdmissionInterval time.Duration
	// LoadSettings, when set, makes the leader's settings (the autoscaler's, and
	// tag-header-based-routing) again from config-features, config-defaults,
	// config-autoscaler and config-br-defaults in SystemNamespace, and Eventing's
	// config-features in EventingNamespace, as they change, as Knative's controllers watch
	// their ConfigMaps; nil keeps those of the start.
	LoadSettings reconciler.SettingsLoader
	// EventingNamespace is Knative Eventing's system namespace, whose config-features (the
	// Eventing features: delivery-timeout, delivery-retryafter) the leader watches; default
	// knative-eventing. It may not exist: then Knative's defaults are in force.
	EventingNamespace string
	// WebhookAddress serves the defaulting and validation webhooks over TLS on every replica,
	// leading or not; default ":8443"; "-" disables them.
	WebhookAddress string
	// SystemNamespace holds the webhook's certificate Secret and the config-network,
	// config-domain and config-certmanager ConfigMaps the controller reads, as Knative reads
	// knative-serving's; default skiff-system.
	SystemNamespace string
	// WebhookService is the Service in front of the webhooks (the certificate's name);
	// WebhookHosts are more names or IPs for it (when the API server calls a URL).
	WebhookService string
	WebhookHosts   []string
	// StatSource is which proxy stats a revision's demand is read from (see
	// controlplane.Config.StatSource); RevisionMetrics needs the revision-metrics filter
	// among WasmFilters.
	StatSource autoscaler.StatSource
	// ProxyStatsURLs are admin endpoints whose /stats the autoscaler scrapes, for proxies
	// that do not push to the stat sink (the gateway); list a proxy here or have it push.
	ProxyStatsURLs []string
	// WasmFilters are the proxy-wasm filters every proxy runs first; their modules (Path,
	// SHA256) are served on HTTPAddress for Envoy to fetch from WasmCodeAdvertise.
	WasmFilters []xds.WasmFilter
	// WasmCodeAdvertise is the "host:port" Envoy reaches HTTPAddress at (e.g. the
	// skiff-controlplane Service's http port); required with WasmFilters.
	WasmCodeAdvertise string
	// ServingNodes selects the Envoys whose ACKs make Routes ready and whose NACKs are
	// reported (xds.Options.ServingNodes; zero: xds.DefaultServingNodeClusters, which
	// include deploy/'s --service-cluster skiff-envoy); XDSAckTimeout is how long one may
	// leave a response unanswered before it is no longer waited for (xds.Options.AckTimeout).
	ServingNodes  xds.NodeSelector
	XDSAckTimeout time.Duration
	// ScopedRoutes selects xds.Options.ScopedRoutes (--xds-route-layout scoped).
	ScopedRoutes bool
	// TLS, when set, serves ADS and the HTTP port (activation feed, wasm modules) over mTLS
	// with a CA kept in a Secret, and tells proxies to reach ext_proc and the modules over
	// mTLS too (see TLSConfig). Nil serves them in plaintext, to anyone who can reach them.
	TLS *TLSConfig
	// LeaseNamespace and LeaseName name the Lease for leader election; Identity is this replica's.
	LeaseNamespace, LeaseName, Identity string
	// PodNamespace and PodName are this replica's Pod (the downward API's POD_NAMESPACE and
	// POD_NAME): the leader puts LeaderLabel on it, which the skiff-controlplane Service
	// selects. Empty: no label (then only a single replica can be put behind that Service).
	PodNamespace, PodName string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election; defaults 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Workers is how many reconciles run at once; default DefaultWorkers.
	Workers int
	// QPS and Burst limit the controller's API client (client-go's token bucket); defaults
	// DefaultQPS and DefaultBurst.
	QPS   float32
	Burst int
	// StatusCoalesce is how long a Service, Configuration, Route or Revision still in
	// progress may go without writing the intermediate statuses it passes through
	// (reconciler.Config.StatusCoalesce); default DefaultStatusCoalesce, negative writes
	// every one, as Knative does.
	StatusCoalesce time.Duration
	// Eventing runs Brokers, Triggers and PingSources on the leader; nil leaves them not
	// Ready (reason EventingDisabled).
	Eventing *EventingConfig
	// Telemetry, when set, is where the leader's metrics (autoscaler, broker, xDS, work
	// queue) and spans (broker) go, its Prometheus scrape endpoint is /metrics on
	// HTTPAddress, and Envoy is told over LDS to trace to the same collector.
	Telemetry *telemetry.Telemetry
	Logger    *slog.Logger
}

// EventingConfig configures the eventing data plane the leader runs (controlplane/eventing).
type EventingConfig struct {
	// NATSURL is the NATS cluster with JetStream that keeps the events (required: the
	// controller embeds no NATS server).
	NATSURL string
	// StreamReplicas is how many NATS servers keep each broker's stream (JetStream
	// replicas): the cluster's size (deploy/: 3); default 1, for a single server.
	StreamReplicas int
	// IngressAddress is where the broker ingress listens; default ":18002".
	IngressAddress string
	// IngressAdvertise is the ip:port Envoy reaches this replica's ingress at (the pod IP);
	// required unless IngressAddress names an IP.
	IngressAdvertise string
	// CloudEventsFilter is the cloudevents wasm module (Path, SHA256; the name defaults to
	// eventing.CloudEventsFilterName), served on HTTPAddress and sent to Envoy as remote
	// code, disabled but on the broker virtual host. Nil: Envoy runs no filter and the
	// ingress validates and matches every event itself.
	CloudEventsFilter *xds.WasmFilter
	// ProxyAddress returns the Envoy listener (host:port, e.g. the skiff-ingress Service)
	// deliveries and PingSource events to Knative hosts go through, so scaled-to-zero
	// subscribers are activated; required.
	ProxyAddress func() string
	// LocalProxyAddress returns Envoy's cluster-local listener (e.g. the skiff-ingress-local
	// Service), through which deliveries to cluster-local names go; nil sends them to
	// ProxyAddress.
	LocalProxyAddress func() string
	// AckWait is how long JetStream waits before handing out again an event whose
	// dispatcher went silent (e.g. a leader that died); default broker.DefaultAckWait.
	AckWait time.Duration
	// RetryRules is how failed deliveries are retried (broker.RetryRules).
	RetryRules broker.RetryRules
	// NATSCredentialsSecret ("namespace/name") holds the credentials NATS requires: key
	// "token", or "user" and "password". Created with a random token when it does not exist
	// (deploy/'s NATS server reads its token from it). Empty: NATS without credentials.
	NATSCredentialsSecret string
}

// Controller is a running `skiff controller`.
type Controller struct {
	cfg      Config
	log      *slog.Logger
	filters  []xds.WasmFilter // WasmFilters, and the cloudevents filter with eventing
	ceFilter string           // the cloudevents filter's name; "" without it
	xdsLis   net.Listener
	httpLis  net.Listener // nil when HTTPAddress is "-"
	hookLis  net.Listener // nil when WebhookAddress is "-"
	wasmCode http.Handler // nil without WasmFilters
	leader   atomic.Bool
	// started is set once a stale LeaderLabel is gone; hook is the webhook server (nil when
	// off): readyz reports on both.
	started atomic.Bool
	hook    atomic.Pointer[webhook.Server]
	pod     *leaderPod
}

// New checks cfg and binds the xDS and HTTP listeners.
func New(cfg Config) (*Controller, error) {
	cfg.XDSAddress = cmp.Or(cfg.XDSAddress, ":18000")
	cfg.HealthAddress = cmp.Or(cfg.HealthAddress, ":8081")
	cfg.HTTPAddress = cmp.Or(cfg.HTTPAddress, ":8090")
	cfg.WebhookAddress = cmp.Or(cfg.WebhookAddress, ":8443")
	cfg.Domain = cmp.Or(cfg.Domain, "example.com")
	cfg.LeaseNamespace = cmp.Or(cfg.LeaseNamespace, "skiff-system")
	cfg.SystemNamespace = cmp.Or(cfg.SystemNamespace, "skiff-system")
	cfg.EventingNamespace = cmp.Or(cfg.EventingNamespace, config.EventingNamespace)
	cfg.HTTPSRedirectPort = cmp.Or(cfg.HTTPSRedirectPort, 443)
	cfg.LeaseName = cmp.Or(cfg.LeaseName, "skiff-controller")
	cfg.LeaseDuration = cmp.Or(cfg.LeaseDuration, 15*time.Second)
	cfg.RenewDeadline = cmp.Or(cfg.RenewDeadline, 10*time.Second)
	cfg.RetryPeriod = cmp.Or(cfg.RetryPeriod, 2*time.Second)
	cfg.Workers = cmp.Or(cfg.Workers, DefaultWorkers)
	cfg.StatusCoalesce = cmp.Or(cfg.StatusCoalesce, DefaultStatusCoalesce)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rest == nil {
		return nil, errors.New("kube controller: no API server configuration")
	}
	if cfg.Identity == "" {
		return nil, errors.New("kube controller: leader election identity is empty")
	}
	if cfg.StatSource == autoscaler.RevisionMetrics && !slices.ContainsFunc(cfg.WasmFilters, func(f xds.WasmFilter) bool {
		return f.Name == xds.RevisionMetricsFilterName
	}) {
		return nil, fmt.Errorf("kube controller: stat source %s needs the %s wasm filter in WasmFilters", cfg.StatSource, xds.RevisionMetricsFilterName)
	}
	c := &Controller{cfg: cfg, log: cfg.Logger.With("component", "kube-controller"), filters: slices.Clone(cfg.WasmFilters)}
	if cfg.Eventing != nil {
		ev := *cfg.Eventing // defaults are filled in on a copy
		if err := checkEventing(&ev); err != nil {
			return nil, fmt.Errorf("kube controller: eventing: %w", err)
		}
		if ev.CloudEventsFilter != nil {
			f := eventing.ListenerFilter(*ev.CloudEventsFilter)
			c.filters = append(c.filters, f)
			c.ceFilter = f.Name
		}
		c.cfg.Eventing = &ev
	}
	if len(c.filters) > 0 {
		if cfg.HTTPAddress == "-" || cfg.WasmCodeAdvertise == "" {
			return nil, errors.New("kube controller: wasm filters need an HTTP address to serve their modules and the address Envoy reaches it at (WasmCodeAdvertise)")
		}
		h, err := xds.WasmCodeHandler(c.filters)
		if err != nil {
			return nil, fmt.Errorf("kube controller: %w", err)
		}
		c.wasmCode = h
	}
	var err error
	if c.xdsLis, err = net.Listen("tcp", cfg.XDSAddress); err != nil {
		return nil, fmt.Errorf("kube controller: listen for xDS: %w", err)
	}
	if cfg.HTTPAddress != "-" {
		if c.httpLis, err = net.Listen("tcp", cfg.HTTPAddress); err != nil {
			c.xdsLis.Close()
			return nil, fmt.Errorf("kube controller: listen for HTTP (activation feed, wasm modules): %w", err)
		}
	}
	if cfg.WebhookAddress != "-" {
		if c.hookLis, err = net.Listen("tcp", cfg.WebhookAddress); err != nil {
			c.xdsLis.Close()
			if c.httpLis != nil {
				c.httpLis.Close()
			}
			return nil, fmt.Errorf("kube controller: listen for the admission webhooks: %w", err)
		}
	}
	return c, nil
}

// checkEventing fills in ev's defaults and refuses what cannot work in a cluster.
func checkEventing(ev *EventingConfig) error {
	if ev.NATSURL == "" {
		return errors.New("NATSURL (--nats-url) is required: events are kept in an external NATS cluster with JetStream")
	}
	if ev.ProxyAddress == nil {
		return errors.New("ProxyAddress (--delivery-proxy-addr) is required: deliveries go through Envoy")
	}
	ev.IngressAddress = cmp.Or(ev.IngressAddress, ":18002")
	addr := cmp.Or(ev.IngressAdvertise, ev.IngressAddress)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("broker ingress address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ev.IngressAdvertise == "" && (ip == nil || ip.IsUnspecified()) {
		return fmt.Errorf("IngressAdvertise (--broker-ingress-advertise) is required when the broker ingress listens on %q: Envoy must be told this pod's IP (e.g. $(POD_IP):18002 from the downward API)", ev.IngressAddress)
	}
	return nil
}

// XDSAddr is where the ADS server listens.
func (c *Controller) XDSAddr() net.Addr { return c.xdsLis.Addr() }

// HTTPAddr is where the activation feed and the wasm modules are served; nil if disabled.
func (c *Controller) HTTPAddr() net.Addr {
	if c.httpLis == nil {
		return nil
	}
	return c.httpLis.Addr()
}

// WebhookAddr is where the admission webhooks are served (TLS); nil if disabled.
func (c *Controller) WebhookAddr() net.Addr {
	if c.hookLis == nil {
		return nil
	}
	return c.hookLis.Addr()
}

// Leading reports whether this replica holds the Lease.
func (c *Controller) Leading() bool { return c.leader.Load() }

// Run campaigns for the Lease and reconciles while leading, until ctx is done or leadership
// is lost (then it returns, so the process restarts clean, as Kubernetes controllers do).
func (c *Controller) Run(ctx context.Context) error {
	defer c.xdsLis.Close()
	if c.httpLis != nil {
		defer c.httpLis.Close()
	}
	rc := c.clientConfig()
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kube controller: clientset: %w", err)
	}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kube controller: dynamic client: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	c.pod = &leaderPod{kc: kc, namespace: c.cfg.PodNamespace, name: c.cfg.PodName, log: c.log}
	if err := c.pod.unmark(); err != nil {
		// A restarted container must not keep the label of a leadership it lost.
		return fmt.Errorf("kube controller: %w", err)
	}
	if c.hookLis != nil {
		// Every replica serves the webhooks, so writes never wait for an election.
		hook := webhook.New(webhook.Config{Client: kc, Namespace: c.cfg.SystemNamespace, ServiceName: c.cfg.WebhookService,
			Hosts: c.cfg.WebhookHosts, Settings: c.cfg.Admission, Reload: c.cfg.ReloadAdmission, ReloadInterval: c.cfg.ReloadAdmissionInterval, Logger: c.cfg.Logger})
		c.hook.Store(hook)
		hctx, stopHook := context.WithCancel(ctx)
		defer stopHook()
		wg.Go(func() {
			if err := hook.Run(hctx, c.hookLis); err != nil {
				c.log.Error("admission webhooks stopped", "err", err)
			}
		})
	}
	if c.cfg.HealthAddress != "-" {
		srv, err := c.serveHealth()
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	c.started.Store(true)
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, c.cfg.LeaseNamespace, c.cfg.LeaseName,
		kc.CoreV1(), kc.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: c.cfg.Identity})
	if err != nil {
		return fmt.Errorf("kube controller: lease lock: %w", err)
	}
	runErr := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, ReleaseOnCancel: true, Name: c.cfg.LeaseName,
		LeaseDuration: c.cfg.LeaseDuration, RenewDeadline: c.cfg.RenewDeadline, RetryPeriod: c.cfg.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				c.log.Info("leading", "identity", c.cfg.Identity)
				runErr <- c.lead(lctx, kc, dc)
			},
			OnStoppedLeading: func() {
				c.leader.Store(false)
				c.log.Info("stopped leading", "identity", c.cfg.Identity)
			},
		},
	})
	if err != nil {
		return fmt.Errorf("kube controller: leader election: %w", err)
	}
	le.Run(ctx)
	select {
	case err := <-runErr:
		return err
	default:
		return ctx.Err()
	}
}

// lead runs the reconcilers, the autoscaler, the xDS server and the HTTP server until ctx
// (the leadership) ends.
func (c *Controller) lead(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface) error {
	log := c.cfg.Logger
	st := kubestore.New(dc, log, c.cfg.Admission, kubestore.ConfigMapsIn(c.cfg.SystemNamespace),
		kubestore.ConfigMapNamed(c.cfg.EventingNamespace, config.FeaturesConfigName))
	// The runtime's informers call back before the reconcilers exist; the reconcilers'
	// first resync covers what they report meanwhile.
	var reconcilers atomic.Pointer[reconciler.Controller]
	revisionChanged := func(ns, name string) {
		if ctrl := reconcilers.Load(); ctrl != nil {
			ctrl.RevisionChanged(ns, name)
		}
	}
	rt := deployruntime.New(deployruntime.Config{Client: kc, Logger: log, OnChange: revisionChanged})
	sources := sourcedeploy.New(sourcedeploy.Config{Client: kc, Logger: log, OnChange: func(ns, name string) {
		if ctrl := reconcilers.Load(); ctrl != nil {
			ctrl.ContainerSourceChanged(ns, name)
		}
	}})
	defer st.Shutdown()
	defer rt.Shutdown()
	defer sources.Shutdown()
	if err := st.Start(ctx); err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}
	if err := sources.Start(ctx); err != nil {
		return err
	}
	obs, err := c.observability()
	if err != nil {
		return err
	}
	xopts := xds.Options{ListenerAddress: "0.0.0.0", ListenerPort: c.cfg.ProxyListenPort, ExtProcAddress: c.cfg.ExtProcAddress, WasmFilters: c.filters,
		HTTPSListenerAddress: "0.0.0.0", HTTPSListenerPort: c.cfg.ProxyHTTPSPort, HTTPSRedirectPort: c.cfg.HTTPSRedirectPort,
		LocalListenerAddress: "0.0.0.0", LocalListenerPort: c.cfg.ProxyLocalPort,
		Tracing: obs.proxyTracing, Metrics: obs.xds,
		ServingNodes: c.cfg.ServingNodes, AckTimeout: c.cfg.XDSAckTimeout, ScopedRoutes: c.cfg.ScopedRoutes}
	var serverTLS, natsTLS *tls.Config
	if c.cfg.TLS != nil {
		t := c.cfg.TLS.withDefaults()
		m, err := ensureTLS(ctx, kc, t, time.Now())
		if err != nil {
			return fmt.Errorf("kube controller: %w", err)
		}
		if serverTLS, err = pki.ServerConfig(m.server, m.caPEM); err != nil {
			return fmt.Errorf("kube controller: %w", err)
		}
		xopts.ProxyTLS = &xds.ProxyTLS{ExtProcServerName: t.ExtProcNames[0], WasmServerName: t.ControllerNames[0]}
		natsTLS = natsClientTLS(m.caPEM)
	}
	var natsAuth broker.NATSAuth
	if ev := c.cfg.Eventing; ev != nil && ev.NATSCredentialsSecret != "" {
		var err error
		if natsAuth, err = natsCredentials(ctx, kc, ev.NATSCredentialsSecret); err != nil {
			return fmt.Errorf("kube controller: %w", err)
		}
	}
	if len(c.filters) > 0 {
		xopts.WasmCodeServer = c.cfg.WasmCodeAdvertise
	}
	proxy, err := xds.NewServer(log, xopts)
	if err != nil {
		return fmt.Errorf("kube controller: %w", err)
	}
	defer proxy.Close()
	// Eventing stops before the proxy closes (deferred after it), so deliveries in flight
	// are handed back to JetStream for the next leader rather than counted as failures.
	rctx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	events, stopEvents, err := c.startEventing(proxy, cancelRun, natsAuth, natsTLS)
	if err != nil {
		return err
	}
	defer stopEvents()

	// The same autoscaler and activation hub as `skiff up`; the activators are the
	// standalone `skiff extproc` instances following the hub's feed.
	acfg := autoscaler.DefaultConfig()
	if c.cfg.Autoscaler != nil {
		acfg = *c.cfg.Autoscaler
	}
	var activator reconciler.Activator
	var hub *activation.Hub
	var scaler *autoscaler.Autoscaler
	hub = activation.New(nil, func(cluster string) { scaler.Poke(cluster) }, log)
	var held autoscaler.Metrics
	if c.cfg.ExtProcAddress != "" {
		activator, held = hub, autoscaler.MetricsFunc(hub.Held)
	} else {
		// Nothing would hold a request while a revision scales up from zero.
		acfg.EnableScaleToZero = false
	}
	acfg.OnChange = func(key string) {
		if ns, name, ok := strings.Cut(key, "/"); ok {
			revisionChanged(ns, name)
		}
	}
	sink := autoscaler.NewStatSink(c.cfg.StatSource, 10*time.Second)
	scaler = autoscaler.New(acfg, autoscaler.ProxyDemand(c.cfg.StatSource, sink, held, c.cfg.ProxyStatsURLs), log)
	if c.cfg.Telemetry != nil {
		stop, err := telemetry.RegisterAutoscaler(c.cfg.Telemetry, scaler.Scales)
		if err != nil {
			return fmt.Errorf("kube controller: %w", err)
		}
		defer stop()
	}
	rcfg := reconciler.Config{
		Store: st, Runtime: rt, Proxy: proxy, Domain: c.cfg.Domain, Logger: log,
		Autoscaler: scaler, AutoscalerDefaults: acfg, Activator: activator, SourceWorkloads: sources, QueueMetrics: obs.queue,
		SystemNamespace:       c.cfg.SystemNamespace,
		EventingNamespace:     c.cfg.EventingNamespace,
		StatusCoalesce:        max(c.cfg.StatusCoalesce, 0),
		TagHeaderBasedRouting: c.cfg.Admission != nil && c.cfg.Admission.Features.TagHeaderBasedRouting == config.Enabled,
	}
	if load := c.cfg.LoadSettings; load != nil {
		scaleToZero := acfg.EnableScaleToZero
		rcfg.LoadSettings = func(data map[string]map[string]string) (reconciler.Settings, error) {
			s, err := load(data)
			// Without activators nothing could hold a request to a revision at zero.
			s.Autoscaler.EnableScaleToZero = s.Autoscaler.EnableScaleToZero && scaleToZero
			return s, err
		}
		rcfg.OnSettings = []func(reconciler.Settings){func(s reconciler.Settings) {
			scaler.SetConfig(s.Autoscaler)
			st.SetSettings(s.Admission)
		}}
	}
	cmCtx, stopCM := context.WithCancel(ctx)
	defer stopCM()
	certProvider, err := c.startCertManager(cmCtx, kc, dc, func(owner string) {
		if k, err := store.ParseKey(owner); err == nil {
			if ctrl := reconcilers.Load(); ctrl != nil {
				ctrl.Enqueue(k)
			}
		}
	})
	if err != nil {
		return err
	}
	if certProvider != nil {
		defer func() { stopCM(); certProvider.Shutdown() }()
		rcfg.Certificates = certProvider
	}
	apiServerSources, err := c.apiServerSources(&reconcilers)
	if err != nil {
		return err
	}
	defer apiServerSources.Close()
	rcfg.ApiServerSources = apiServerSources
	if events != nil {
		rcfg.Eventing = events
	}
	ctrl := reconciler.New(rcfg)

	reconcilers.Store(ctrl)
	var gopts []grpc.ServerOption
	if serverTLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(serverTLS)))
	}
	g := grpc.NewServer(gopts...)
	proxy.Register(g)
	sink.Register(g)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = g.Serve(c.xdsLis) })
	defer g.Stop()
	if c.httpLis != nil {
		mux := http.NewServeMux()
		mux.Handle("/internal/activation/", hub.Handler())
		if c.wasmCode != nil {
			mux.Handle(xds.WasmCodePath, c.wasmCode)
		}
		if h := c.cfg.Telemetry.MetricsHandler(); h != nil {
			mux.Handle("/metrics", h)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		lis := c.httpLis
		if serverTLS != nil {
			// Nothing on this port is served without a client certificate of the CA.
			lis = tls.NewListener(lis, serverTLS.Clone())
		}
		wg.Go(func() { _ = srv.Serve(lis) })
		defer srv.Close() // before wg.Wait: ends the feed's streams
	}
	sctx, stopScaler := context.WithCancel(ctx)
	defer stopScaler()
	wg.Go(func() { _ = scaler.Run(sctx) })
	if err := c.startGatewayAPI(sctx, kc, dc, st, proxy, &wg); err != nil {
		return err
	}
	if events != nil {
		wg.Go(func() { events.StartDispatchWhenServing(sctx, ctrl.Synced(), proxy, eventing.DispatchWaitForProxy) })
	}
	c.leader.Store(true)
	// Proxies are handed to this replica (LeaderLabel) once it has everything programmed.
	wg.Go(func() { c.pod.markWhenSynced(sctx, ctrl.Synced()) })
	c.log.Info("reconciling", "xds", c.xdsLis.Addr().String(), "extproc", c.cfg.ExtProcAddress, "autoscaler-metrics", c.cfg.StatSource.String(), "eventing", events != nil)
	err = ctrl.Run(rctx, c.cfg.Workers)
	if cause := context.Cause(rctx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// startEventing connects to NATS, binds the broker ingress and programs its route on proxy,
// then serves it until stop is called; a failure of the ingress calls fail. Without
// Config.Eventing it returns a nil Eventing and a no-op stop.
func (c *Controller) startEventing(proxy *xds.Server, fail context.CancelCauseFunc, auth broker.NATSAuth, natsTLS *tls.Config) (*eventing.Eventing, func(), error) {
	ev := c.cfg.Eventing
	if ev == nil {
		return nil, func() {}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	pc := proxyclient.Config{Domain: c.cfg.Domain, ProxyAddress: ev.ProxyAddress, LocalProxyAddress: ev.LocalProxyAddress}
	events, err := eventing.New(ctx, eventing.Config{
		Domain: c.cfg.Domain, NATSURL: ev.NATSURL, NATSAuth: auth, NATSTLS: natsTLS, StreamReplicas: ev.StreamReplicas,
		IngressAddress: ev.IngressAddress, IngressAdvertise: ev.IngressAdvertise,
		Proxy: proxy, CloudEventsFilter: c.ceFilter, AckWait: ev.AckWait, RetryRules: ev.RetryRules, Logger: c.cfg.Logger,
		Client: proxyclient.New(pc), ProxyFailed: pc.ProxyFailed, Telemetry: c.cfg.Telemetry,
		// lead starts deliveries once Envoy serves this leader's configuration.
		HoldDispatch: true,
	})
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("kube controller: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := events.Run(ctx); err != nil && ctx.Err() == nil {
			fail(fmt.Errorf("kube controller: eventing: %w", err))
		}
	}()
	c.log.Info("eventing running", "nats", ev.NATSURL, "broker-ingress", events.IngressAddr().String(), "cloudevents-filter", c.ceFilter != "")
	return events, func() { cancel(); <-done }, nil
}

// startCertManager starts the cert-manager certificate provider (external-domain-tls in a
// cluster) if the API server has cert-manager's CRDs; without them it logs that and returns
// nil, and routes needing a certificate report CertificateProvisioned=False.
func (c *Controller) startCertManager(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, onChange func(string)) (*certmanager.Provider, error) {
	if c.cfg.ProxyHTTPSPort == 0 {
		return nil, nil
	}
	ok, err := certmanager.Installed(kc.Discovery())
	if err != nil {
		return nil, fmt.Errorf("kube controller: %w", err)
	}
	if !ok {
		c.log.Info("cert-manager CRDs not installed: external-domain-tls certificates cannot be issued (restart the controller after installing them)")
		return nil, nil
	}
	p := certmanager.New(certmanager.Config{Client: dc, OnChange: onChange, Logger: c.cfg.Logger})
	if err := p.Start(ctx); err != nil {
		p.Shutdown()
		return nil, fmt.Errorf("kube controller: %w", err)
	}
	return p, nil
}

// startGatewayAPI runs the Gateway API controller (HTTPRoutes to Knative Services) until
// ctx ends, if the API server has Gateway API's CRDs; without them it logs that and returns.
func (c *Controller) startGatewayAPI(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, st *kubestore.Store, proxy *xds.Server, wg *sync.WaitGroup) error {
	ok, err := gatewayapi.Installed(kc.Discovery())
	if err != nil {
		return fmt.Errorf("kube controller: %w", err)
	}
	if !ok {
		c.log.Info("Gateway API CRDs not installed: HTTPRoutes are not served (restart the controller after installing them)")
		return nil
	}
	gw := gatewayapi.New(gatewayapi.Config{Client: dc, Store: st, Proxy: proxy, Logger: c.cfg.Logger})
	if err := gw.Start(ctx); err != nil {
		gw.Shutdown()
		return fmt.Errorf("kube controller: %w", err)
	}
	cancel := st.Subscribe(gw.OnStoreEvent)
	wg.Go(func() {
		defer gw.Shutdown()
		defer cancel()
		gw.Run(ctx)
	})
	return nil
}

func (c *Controller) serveHealth() (*http.Server, error) {
	lis, err := net.Listen("tcp", c.cfg.HealthAddress)
	if err != nil {
		return nil, fmt.Errorf("kube controller: listen for health checks: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", c.readyz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }() // stopped by the caller's Close
	return srv, nil
}

// apiServerSources runs ApiServerSources' watches against the API server, each with its
// ServiceAccount's permissions (impersonated), sending events through Envoy when eventing
// says where it is.
func (c *Controller) apiServerSources(reconcilers *atomic.Pointer[reconciler.Controller]) (*apiserver.Manager, error) {
	b, err := apiserver.NewKubeBackend(c.cfg.Rest, c.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("kube controller: %w", err)
	}
	client := http.DefaultClient
	if ev := c.cfg.Eventing; ev != nil && ev.ProxyAddress != nil {
		// As deliveries: cluster-local sinks (channels, brokers) through the local listener.
		client = proxyclient.New(proxyclient.Config{Domain: c.cfg.Domain, ProxyAddress: ev.ProxyAddress, LocalProxyAddress: ev.LocalProxyAddress})
	}
	return apiserver.NewManager(b, apiserver.Options{Client: client, Logger: c.cfg.Logger, OnChange: func(key string) {
		if ctrl := reconcilers.Load(); ctrl != nil {
			ctrl.ApiServerSourceChanged(key)
		}
	}}), nil
}
