// Package controlplane assembles Skiff's control plane for one machine: the embedded store,
// the resource API, the reconcilers, the local runtime and the xDS server that proxies
// (Envoy or `skiff gateway`) connect to.
package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
	"github.com/skiff-dev/skiff/client/proxyclient"
	"github.com/skiff-dev/skiff/controlplane/activation"
	"github.com/skiff-dev/skiff/controlplane/apiserver"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/certs"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/eventing"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/dispatch"
	"github.com/skiff-dev/skiff/controlplane/runtime/image"
	"github.com/skiff-dev/skiff/controlplane/runtime/local"
	"github.com/skiff-dev/skiff/controlplane/runtime/oci"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/extproc"
	"github.com/skiff-dev/skiff/telemetry"
)

// Config says where the control plane keeps its data and listens.
type Config struct {
	// DataDir holds the store file, built binaries and logs.
	DataDir string
	// WorkDir is where `ko://` images are built (the user's Go module).
	WorkDir string
	// APIAddress serves the resource API (skiff apply/get/delete); default 127.0.0.1:7070.
	APIAddress string
	// XDSAddress serves ADS to proxies; default 127.0.0.1:18000.
	XDSAddress string
	// Domain is the suffix of route hosts; default "localhost".
	Domain string
	// ProxyListenAddress and ProxyListenPort are what the xDS listener tells proxies to bind.
	ProxyListenAddress string
	ProxyListenPort    uint32
	// HTTPSListenAddress and HTTPSListenPort place the proxies' TLS listener; port 0 means
	// none. Its certificates come from a local CA under {DataDir}/tls (external-domain-tls)
	// and from DomainMappings' Secrets.
	HTTPSListenAddress string
	HTTPSListenPort    uint32
	// LocalListenAddress and LocalListenPort place the proxies' cluster-local listener, the
	// only one serving cluster-local names; port 0 means none (they are then served on the
	// HTTP listener).
	LocalListenAddress string
	LocalListenPort    uint32
	// SystemNamespace is where Knative's config-network, config-domain and
	// config-certmanager ConfigMaps are read; default reconciler.DefaultSystemNamespace.
	SystemNamespace string
	// DrainTimeout is how long a stopping instance keeps serving after leaving EDS.
	DrainTimeout time.Duration
	// MaxInstances bounds the local runtime's instances (processes) at once, across every
	// revision; 0 means local.DefaultMaxInstances().
	MaxInstances int
	// ExtProcAddress serves the ext_proc activator proxies call; default 127.0.0.1:18001.
	ExtProcAddress string
	// ExtProcAdvertise is the ext_proc address proxies are told (the "skiff-extproc" cluster),
	// when they should reach standalone `skiff extproc` instances instead; default ExtProcAddress.
	ExtProcAdvertise string
	// ProxyStatsURLs are the admin endpoints (Envoy's, or the gateway's) whose /stats the
	// autoscaler reads, e.g. http://127.0.0.1:9901. Envoys configured with the metrics_service
	// stat sink (deploy/envoy/bootstrap.yaml) push their stats to the xDS port instead: list a
	// proxy here or have it push, not both, or its requests count twice.
	ProxyStatsURLs []string
	// Autoscaler holds the cluster-wide autoscaling settings; nil takes Knative's defaults
	// (autoscaler.DefaultConfig).
	Autoscaler *autoscaler.Config
	// Admission holds the settings every write to the API is defaulted and validated with
	// (config-features, config-defaults, config-autoscaler); nil means Knative's defaults.
	Admission *config.Config
	// LoadSettings, when set, makes the settings in force again from config-features,
	// config-defaults, config-autoscaler and config-br-defaults written to SystemNamespace
	// while running (replacing Admission and Autoscaler's settings, as Knative follows edits
	// of its ConfigMaps); nil keeps those of the start.
	LoadSettings reconciler.SettingsLoader
	// StatSource is which proxy stats the autoscaler reads a revision's demand from:
	// autoscaler.ClusterStats (default: Envoy's upstream cluster stats plus the requests the
	// activator holds) or autoscaler.RevisionMetrics (the revision-metrics wasm filter, which
	// counts held requests itself and must then be among WasmFilters, named
	// xds.RevisionMetricsFilterName).
	StatSource autoscaler.StatSource
	// WasmFilters are the proxy-wasm filters every proxy runs first in its HTTP chain.
	WasmFilters []xds.WasmFilter
	// ServingNodes selects the proxies whose ACKs make Routes ready and whose NACKs are
	// reported (xds.Options.ServingNodes; zero: xds.DefaultServingNodeClusters, which
	// include the gateway's default node cluster); XDSAckTimeout is how long one may leave
	// a response unanswered before it is no longer waited for (xds.Options.AckTimeout).
	ServingNodes  xds.NodeSelector
	XDSAckTimeout time.Duration
	// ScopedRoutes selects the scoped route layout (xds.Options.ScopedRoutes).
	ScopedRoutes bool
	// Eventing runs Brokers, Triggers and PingSources; nil leaves them not Ready
	// (reason EventingDisabled).
	Eventing *EventingConfig
	// Images configures running container images with runc (when it can run here).
	Images ImagesConfig
	// Telemetry, when set, is where the control plane's metrics (autoscaler, activator,
	// broker, xDS, work queue) and spans (activator, broker) go; proxies are told over LDS
	// to trace to the same collector (Telemetry.Tracing). Nil records nothing.
	Telemetry *telemetry.Telemetry
	Logger    *slog.Logger
}

// EventingConfig configures the eventing data plane (controlplane/eventing).
type EventingConfig struct {
	// NATSURL selects an external NATS cluster with JetStream; empty embeds a
	// NATS server storing events under {DataDir}/jetstream.
	NATSURL string
	// IngressAddress is where the broker ingress listens; default
	// eventing.DefaultIngressAddress. IngressAdvertise is the ip:port proxies
	// reach it at (default: the bound address).
	IngressAddress, IngressAdvertise string
	// CloudEventsFilter is the cloudevents Wasm module (Path, SHA256; the name
	// defaults to eventing.CloudEventsFilterName). The control plane adds it to
	// the listener, disabled but on the broker virtual host, and keeps its
	// configuration. Nil: proxies run no filter and the ingress validates and
	// matches every event itself.
	CloudEventsFilter *xds.WasmFilter
	// ProxyAddress is the proxy's HTTP listener (host:port) through which
	// deliveries and PingSource events reach Knative Services and brokers, so
	// scaled-to-zero subscribers are activated. Nil means the listener
	// address proxies are told (ProxyListenAddress:ProxyListenPort, with an
	// unspecified IP read as loopback).
	ProxyAddress func() string
	// LocalProxyAddress is the proxy's cluster-local listener, through which deliveries to
	// cluster-local names go. Nil means the local listener proxies are told
	// (LocalListenAddress:LocalListenPort), or ProxyAddress without one.
	LocalProxyAddress func() string
	// AckWait is how long JetStream waits before handing out again an event
	// whose dispatcher went silent (e.g. was killed); default 30s.
	AckWait time.Duration
	// RetryRules is how failed deliveries are retried (broker.RetryRules).
	RetryRules broker.RetryRules
}

// ControlPlane is a running control plane; its listeners are bound by New.
type ControlPlane struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	xds     *xds.Server
	runtime *dispatch.Runtime
	process *local.Runtime
	oci     *oci.Runtime // nil when images cannot run here
	images  *image.Store // nil when images cannot run here
	ctrl    *reconciler.Controller
	scaler  *autoscaler.Autoscaler
	extproc *extproc.Server
	hub     *activation.Hub
	events  *eventing.Eventing // nil without Config.Eventing
	sources *sourceWorkloads
	srcLis  net.Listener // the ContainerSources' forward proxy (sources.go)
	sink    *autoscaler.StatSink
	ca      *certs.Local
	apiLis  net.Listener
	xdsLis  net.Listener
	extLis  net.Listener
	// stopMetrics unregisters the autoscaler's gauges.
	stopMetrics func()

	extMu   sync.Mutex
	extGRPC *grpc.Server // serving ext_proc; nil once stopped

	// settingsMu orders settings put in force (applySettings) with the API's creation.
	settingsMu sync.Mutex
	admission  *config.Config    // the settings in force, once LoadSettings made them
	apiSrv     *apiserver.Server // nil until serving
}

// New opens the store and binds the API and xDS listeners.
func New(cfg Config) (*ControlPlane, error) {
	cfg.APIAddress = cmp.Or(cfg.APIAddress, "127.0.0.1:7070")
	cfg.XDSAddress = cmp.Or(cfg.XDSAddress, "127.0.0.1:18000")
	cfg.Domain = cmp.Or(cfg.Domain, "localhost")
	cfg.ExtProcAddress = cmp.Or(cfg.ExtProcAddress, "127.0.0.1:18001")
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StatSource == autoscaler.RevisionMetrics && !slices.ContainsFunc(cfg.WasmFilters, func(f xds.WasmFilter) bool {
		return f.Name == xds.RevisionMetricsFilterName
	}) {
		return nil, fmt.Errorf("control plane: stat source %s needs the %s wasm filter in WasmFilters", cfg.StatSource, xds.RevisionMetricsFilterName)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("control plane: data dir: %w", err)
	}
	cp := &ControlPlane{cfg: cfg, log: cfg.Logger}
	var err error
	if cp.store, err = store.Open(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if err := cp.listen(); err != nil {
		cp.release()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if cp.runtime, _, err = cp.runtimes(cfg, func(ns, name string) { cp.ctrl.RevisionChanged(ns, name) }); err != nil {
		cp.release()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	wasmFilters := slices.Clone(cfg.WasmFilters)
	ceFilter := ""
	if ev := cfg.Eventing; ev != nil && ev.CloudEventsFilter != nil {
		f := eventing.ListenerFilter(*ev.CloudEventsFilter)
		wasmFilters = append(wasmFilters, f)
		ceFilter = f.Name
	}
	if cp.ca, err = certs.NewLocal(filepath.Join(cfg.DataDir, "tls"), certs.LocalOptions{}); err != nil {
		cp.release()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	obs, err := newObservability(cfg.Telemetry, cfg.Logger)
	if err != nil {
		cp.release()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if cp.xds, err = xds.NewServer(cfg.Logger, xds.Options{
		ListenerAddress: cfg.ProxyListenAddress, ListenerPort: cfg.ProxyListenPort,
		HTTPSListenerAddress: cfg.HTTPSListenAddress, HTTPSListenerPort: cfg.HTTPSListenPort,
		LocalListenerAddress: cfg.LocalListenAddress, LocalListenerPort: cfg.LocalListenPort,
		ExtProcAddress: cmp.Or(cfg.ExtProcAdvertise, cp.extLis.Addr().String()),
		WasmFilters:    wasmFilters,
		Tracing:        obs.proxyTracing, Metrics: obs.xds,
		ServingNodes: cfg.ServingNodes, AckTimeout: cfg.XDSAckTimeout,
		ScopedRoutes: cfg.ScopedRoutes,
	}); err != nil {
		cp.release()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	// Skiff's own senders (deliveries, sources) reach Knative addresses through the proxy:
	// cluster-local names through its local listener.
	pc := proxyClientConfig(cfg)
	if ev := cfg.Eventing; ev != nil {
		cp.events, err = eventing.New(context.Background(), eventing.Config{
			Domain: cfg.Domain, NATSURL: ev.NATSURL, StoreDir: filepath.Join(cfg.DataDir, "jetstream"),
			IngressAddress: ev.IngressAddress, IngressAdvertise: ev.IngressAdvertise,
			Proxy: cp.xds, CloudEventsFilter: ceFilter, AckWait: ev.AckWait, RetryRules: ev.RetryRules, Logger: cfg.Logger,
			Client: proxyclient.New(pc), ProxyFailed: pc.ProxyFailed, Telemetry: cfg.Telemetry,
			// Deliveries start once the proxy serves (Run), never into a proxy still starting.
			HoldDispatch: true,
		})
		if err != nil {
			cp.release()
			return nil, fmt.Errorf("control plane: %w", err)
		}
	}
	acfg, err := cp.newAutoscaler(obs)
	if err != nil {
		cp.release()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	cp.ctrl = cp.newController(acfg, obs, pc)
	return cp, nil
}

// listen binds the API, xDS and ext_proc listeners and the ContainerSources' forward proxy's.
func (cp *ControlPlane) listen() error {
	var err error
	if cp.apiLis, err = net.Listen("tcp", cp.cfg.APIAddress); err != nil {
		return fmt.Errorf("listen for the API: %w", err)
	}
	if cp.xdsLis, err = net.Listen("tcp", cp.cfg.XDSAddress); err != nil {
		return fmt.Errorf("listen for xDS: %w", err)
	}
	if cp.extLis, err = net.Listen("tcp", cp.cfg.ExtProcAddress); err != nil {
		return fmt.Errorf("listen for ext_proc: %w", err)
	}
	if cp.srcLis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return fmt.Errorf("listen for the sources' forward proxy: %w", err)
	}
	return nil
}

// newAutoscaler creates the ext_proc activator, the activation hub and the autoscaler, which
// reads demand from the proxies' stats and the held requests as `skiff controller` does
// (autoscaler.ProxyDemand). It returns the autoscaler's configuration, the reconcilers'
// defaults.
func (cp *ControlPlane) newAutoscaler(obs *observability) (autoscaler.Config, error) {
	cfg := cp.cfg
	poke := func(cluster string) { cp.scaler.Poke(cluster) }
	cp.extproc = extproc.New(extproc.Config{Logger: cfg.Logger, OnDemand: poke, Tracer: obs.tracer, Metrics: obs.activator})
	cp.hub = activation.New(cp.extproc, poke, cfg.Logger)
	cp.sink = autoscaler.NewStatSink(cfg.StatSource, 10*time.Second)
	acfg := autoscaler.DefaultConfig()
	if cfg.Autoscaler != nil {
		acfg = *cfg.Autoscaler
	}
	acfg.OnChange = func(key string) {
		if ns, name, ok := strings.Cut(key, "/"); ok {
			cp.ctrl.RevisionChanged(ns, name)
		}
	}
	// hpa-class revisions scale on their processes' CPU, as measured by the process runtime
	// (container instances are not measured yet: an hpa-class image revision keeps its scale).
	acfg.Resources = func(context.Context) (map[string]map[string]runtime.InstanceUsage, error) {
		return cp.process.InstanceUsage(), nil
	}
	demand := autoscaler.ProxyDemand(cfg.StatSource, cp.sink, autoscaler.MetricsFunc(cp.hub.Held), cfg.ProxyStatsURLs)
	cp.scaler = autoscaler.New(acfg, demand, cfg.Logger)
	var err error
	if cp.stopMetrics, err = obs.registerAutoscaler(cp.scaler); err != nil {
		return acfg, err
	}
	return acfg, nil
}

// applySettings puts settings LoadSettings made in force in the API's admission and the
// autoscaler (the reconcilers read their own copy).
func (cp *ControlPlane) applySettings(s reconciler.Settings) {
	cp.scaler.SetConfig(s.Autoscaler)
	cp.settingsMu.Lock()
	defer cp.settingsMu.Unlock()
	cp.admission = s.Admission
	if cp.apiSrv != nil {
		cp.apiSrv.SetSettings(s.Admission)
	}
}

// newController creates the reconcilers over what New has built; pc is how Skiff's own
// senders reach the proxy.
func (cp *ControlPlane) newController(acfg autoscaler.Config, obs *observability, pc proxyclient.Config) *reconciler.Controller {
	cfg := cp.cfg
	rcfg := reconciler.Config{
		Store: cp.store, Runtime: cp.runtime, Proxy: cp.xds, Domain: cfg.Domain, Logger: cfg.Logger,
		Autoscaler: cp.scaler, AutoscalerDefaults: acfg, Activator: cp.hub,
		DigestResolutionTimeout: cfg.Images.ResolveTimeout, QueueMetrics: obs.queue,
		SystemNamespace: cfg.SystemNamespace, NetworkDefaults: LocalNetworkDefaults(),
		TagHeaderBasedRouting: cfg.Admission != nil && cfg.Admission.Features.TagHeaderBasedRouting == config.Enabled,
		LoadSettings:          cfg.LoadSettings, OnSettings: []func(reconciler.Settings){cp.applySettings},
	}
	if cfg.HTTPSListenPort != 0 {
		rcfg.Certificates = cp.ca
	}
	if cp.oci != nil {
		rcfg.Digests = digestResolver{resolver: &image.Resolver{SkipRegistries: cfg.Images.SkipRegistries}, objects: storeObjects{cp.store}}
		rcfg.ResolvesImages = cp.runtime.RunsImages
	}
	cp.sources, rcfg.SourceWorkloads = newSourceWorkloads(cfg, cp.srcLis, pc, func(ns, name string) { cp.ctrl.ContainerSourceChanged(ns, name) })
	cp.sources.apiserver = newApiServerSources(cfg, cp.store, func() string { return "http://" + cp.APIAddr().String() }, pc,
		func(key string) { cp.ctrl.ApiServerSourceChanged(key) })
	rcfg.ApiServerSources = cp.sources.apiserver
	if cp.events != nil {
		rcfg.Eventing = cp.events
	}
	return reconciler.New(rcfg)
}

// release gives back what New took (runtimes, listeners, the xDS server, the store) when it
// fails or the control plane will not Run.
func (cp *ControlPlane) release() {
	if cp.events != nil {
		// Run on a finished context stops the ingress, the dispatcher and the embedded NATS.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_ = cp.events.Run(done)
	}
	if cp.xds != nil {
		cp.xds.Close()
	}
	if cp.process != nil {
		cp.closeRuntimes(context.Background())
	}
	for _, l := range []net.Listener{cp.apiLis, cp.xdsLis, cp.extLis, cp.srcLis} {
		if l != nil {
			l.Close()
		}
	}
	cp.store.Close()
}

// Close releases a control plane that New made and that will not Run (Run releases
// everything itself when it returns).
func (cp *ControlPlane) Close() {
	if cp.stopMetrics != nil {
		cp.stopMetrics()
	}
	cp.release()
}

// LocalNetworkDefaults returns config-network's defaults in `skiff up`: as Knative's, except that
// DomainMappings claim their domain themselves (autocreate-cluster-domain-claims), there being
// one user on one machine.
func LocalNetworkDefaults() domains.NetworkDefaults {
	return domains.NetworkDefaults{AutocreateClusterDomainClaims: true}
}

// CACertPath is the local CA's certificate, which clients trust to reach the TLS listener.
func (cp *ControlPlane) CACertPath() string { return cp.ca.CACertPath() }

// APIAddr is where the resource API listens.
func (cp *ControlPlane) APIAddr() net.Addr { return cp.apiLis.Addr() }

// ExtProcAddr is where the ext_proc activator listens.
func (cp *ControlPlane) ExtProcAddr() net.Addr { return cp.extLis.Addr() }

// StopExtProc stops serving ext_proc while the rest keeps running: a failure drill for
// checking what proxies do without their activator.
func (cp *ControlPlane) StopExtProc() {
	cp.extMu.Lock()
	defer cp.extMu.Unlock()
	if cp.extGRPC != nil {
		cp.extGRPC.Stop()
		cp.extGRPC = nil
	}
}

// RouteAcked reports whether every serving proxy has accepted the Route's current
// configuration and its revisions' endpoints.
func (cp *ControlPlane) RouteAcked(namespace, name string) bool {
	return cp.xds.RouteAcked(namespace, name)
}

// BrokerIngressAddr is where the broker ingress listens; nil without eventing.
func (cp *ControlPlane) BrokerIngressAddr() net.Addr {
	if cp.events == nil {
		return nil
	}
	return cp.events.IngressAddr()
}

// EventingStats are the broker ingress and dispatcher counters (zero without eventing).
func (cp *ControlPlane) EventingStats() broker.Stats {
	if cp.events == nil {
		return broker.Stats{}
	}
	return cp.events.Stats()
}

// XDSAddr is where the ADS server listens.
func (cp *ControlPlane) XDSAddr() net.Addr { return cp.xdsLis.Addr() }

// Run serves until ctx is done, then stops every instance and closes the store.
func (cp *ControlPlane) Run(ctx context.Context) error {
	grpcServer := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	cp.xds.Register(grpcServer)
	cp.sink.Register(grpcServer)
	extServer := grpc.NewServer()
	cp.extproc.Register(extServer)
	cp.extMu.Lock()
	cp.extGRPC = extServer
	cp.extMu.Unlock()
	mux := http.NewServeMux()
	mux.Handle("/internal/activation/", cp.hub.Handler())
	if cp.oci != nil {
		mux.Handle("/v2/", registryHandler(cp.cfg.DataDir, cp.log))
	}
	cp.settingsMu.Lock()
	apiSrv, err := apiserver.New(cp.store, cp.log, cmp.Or(cp.admission, cp.cfg.Admission), apiserver.Options{})
	cp.apiSrv = apiSrv
	cp.settingsMu.Unlock()
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	systemNS := cmp.Or(cp.cfg.SystemNamespace, reconciler.DefaultSystemNamespace)
	network := reconciler.ConfigMapCheck(systemNS, LocalNetworkDefaults(), cp.cfg.Domain)
	settings := reconciler.SettingsConfigMapCheck(systemNS, cp.cfg.LoadSettings)
	apiSrv.CheckConfigMaps(func(cm *api.ConfigMap) *fielderr.Error { return network(cm).Also(settings(cm)) })
	if err := apiSrv.EnsureNamespace(ctx, "default"); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	mux.Handle("/", apiSrv)
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	httpServer.RegisterOnShutdown(apiSrv.Close) // watches end, so Shutdown need not wait for them

	var wg sync.WaitGroup
	errs := make(chan error, 6)
	wg.Go(func() {
		if err := extServer.Serve(cp.extLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errs <- fmt.Errorf("ext_proc server: %w", err)
		}
	})
	wg.Go(func() {
		if err := grpcServer.Serve(cp.xdsLis); err != nil {
			errs <- fmt.Errorf("xds server: %w", err)
		}
	})
	wg.Go(func() {
		if err := httpServer.Serve(cp.apiLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("api server: %w", err)
		}
	})
	ctrlCtx, stopCtrl := context.WithCancel(context.Background())
	eventsCtx, stopEvents := context.WithCancel(context.Background())
	eventsDone := make(chan struct{})
	wg.Go(func() {
		defer close(eventsDone)
		if cp.events == nil {
			return
		}
		if err := cp.events.Run(eventsCtx); err != nil {
			errs <- fmt.Errorf("eventing: %w", err)
		}
	})
	if cp.events != nil {
		wg.Go(func() {
			cp.events.StartDispatchWhenServing(eventsCtx, cp.ctrl.Synced(), cp.xds, eventing.DispatchWaitForProxy)
		})
	}
	wg.Go(func() {
		if err := cp.sources.serve(); err != nil {
			errs <- err
		}
	})
	wg.Go(func() {
		if err := cp.scaler.Run(ctrlCtx); err != nil {
			errs <- fmt.Errorf("autoscaler: %w", err)
		}
	})
	wg.Go(func() {
		if err := cp.ctrl.Run(ctrlCtx, 4); err != nil {
			errs <- fmt.Errorf("reconciler: %w", err)
		}
	})
	wg.Go(func() {
		// Certificates due for renewal: their owners' reconciles ask for new ones.
		cp.ca.Run(ctrlCtx, func(owner string) {
			if k, err := store.ParseKey(owner); err == nil {
				cp.ctrl.Enqueue(k)
			}
		})
	})
	cp.log.Info("control plane running", "api", cp.APIAddr().String(), "xds", cp.XDSAddr().String(), "data", cp.cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stopCtrl()
	// Eventing stops first, before the proxy and the instances it delivers to
	// go away, so deliveries in flight are handed back to JetStream rather
	// than counted as failed attempts.
	stopEvents()
	<-eventsDone
	_ = httpServer.Shutdown(shutdownCtx)
	cp.sources.close(shutdownCtx)
	cp.closeRuntimes(shutdownCtx)
	cp.xds.Close()
	grpcServer.Stop()
	cp.StopExtProc()
	wg.Wait()
	cp.stopMetrics()
	if err := cp.store.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}
