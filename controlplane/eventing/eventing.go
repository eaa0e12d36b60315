// Package eventing runs Knative Eventing's data plane inside the control plane and
// connects it to the proxy: the broker ingress and dispatcher (eventing/broker) on
// NATS JetStream, the PingSource adapter (eventing/source), the proxy route that
// makes every broker URL reach the ingress, and the cloudevents filter's
// configuration. It is what the reconcilers drive as reconciler.Eventing.
package eventing

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/eventing/source"
	"github.com/skiff-dev/skiff/telemetry"
	"github.com/skiff-dev/skiff/wasm-filters/cloudevents/eventfilter"
)

// Names of the proxy resources that front the broker ingress. They live in the
// skiff-system namespace, which Knative objects of users do not reach: a Route's
// hosts are {name}.{namespace}.{domain}, never broker-ingress.{domain}.
const (
	SystemNamespace = "skiff-system"
	// IngressRouteName is the xds.Route (and its virtual host) of every broker URL.
	IngressRouteName = "broker-ingress"
	// IngressClusterName is the proxy cluster whose endpoint is the broker ingress.
	IngressClusterName = SystemNamespace + "/" + IngressRouteName
	// CloudEventsFilterName is the conventional name of the cloudevents Wasm filter
	// (wasm-filters/cloudevents) in the proxy's HTTP chain.
	CloudEventsFilterName = "skiff.cloudevents"
	// DefaultIngressAddress is where the broker ingress listens when Config leaves it empty.
	DefaultIngressAddress = "127.0.0.1:18002"
)

// ListenerFilter is the cloudevents filter module f as a proxy's listener carries it: named
// CloudEventsFilterName unless f names it, disabled except on the broker virtual host (which
// Eventing enables), and configured with no brokers until SetBroker pushes them.
func ListenerFilter(f xds.WasmFilter) xds.WasmFilter {
	f.Name = cmp.Or(f.Name, CloudEventsFilterName)
	f.Disabled = true
	f.Configuration = `{"brokers":[]}`
	return f
}

// Proxy is the part of the xDS server eventing programs.
type Proxy interface {
	SetRoute(r xds.Route) error
	DeleteRoute(namespace, name string)
	RouteAcked(namespace, name string) bool
	SetCluster(c xds.Cluster) error
	SetEndpoints(cluster string, eps []xds.Endpoint) (string, error)
	SetWasmFilterConfiguration(name, configuration string) error
}

// Config says where eventing keeps its events and how it reaches the proxy.
type Config struct {
	// Domain is the serving domain; broker URLs are http://broker-ingress.{Domain}/{ns}/{name}.
	Domain string
	// NATSURL is an external NATS cluster with JetStream (production). Empty
	// starts an embedded NATS server with file storage in StoreDir.
	NATSURL string
	// NATSAuth authenticates to NATSURL (a token, or a user and password).
	NATSAuth broker.NATSAuth
	// NATSTLS verifies NATSURL's servers when they require TLS; nil uses the system roots.
	NATSTLS *tls.Config
	// StreamReplicas is how many servers of the NATS cluster keep each stream (JetStream
	// replicas: the cluster's size, e.g. 3); default 1.
	StreamReplicas int
	// StoreDir holds the embedded JetStream's files (e.g. {data-dir}/jetstream).
	StoreDir string
	// IngressAddress is where the broker ingress HTTP server listens; default
	// DefaultIngressAddress.
	IngressAddress string
	// IngressAdvertise is the ip:port proxies are told to reach the ingress at
	// (EDS endpoints are IPs); default the bound address, with an unspecified
	// IP (0.0.0.0, ::) replaced by loopback.
	IngressAdvertise string
	// Proxy is the xDS server the ingress route, cluster and filter configuration go to.
	Proxy Proxy
	// CloudEventsFilter is the name of the cloudevents Wasm filter in the
	// proxy's listener (disabled there and enabled on the broker virtual host),
	// "" when the proxies run none. With the filter, bad events are refused by
	// the proxy and the ingress takes the filter's trigger list; without it the
	// ingress validates and matches every event itself.
	CloudEventsFilter string
	// Client sends deliveries, replies' subscribers and PingSource events; it
	// should send Skiff's hosts through the proxy (client/proxyclient).
	Client *http.Client
	// AckWait is how long JetStream waits for a dispatcher that took an event
	// and went silent (e.g. a killed process) before handing it out again;
	// default broker.DefaultAckWait.
	AckWait time.Duration
	// RetryRules is how failed deliveries are retried (broker.Options.RetryRules):
	// Skiff's rules by default, Knative's dispatcher's when chosen.
	RetryRules broker.RetryRules
	// ProxyFailed tells an attempt that failed in the proxy from the
	// subscriber's failure (proxyclient.Config.ProxyFailed for Client); such
	// an attempt is not counted, the event waits (broker.Options.ProxyFailed).
	ProxyFailed func(req *http.Request, resp *http.Response, err error) bool
	// HoldDispatch delivers nothing until StartDispatch (or
	// StartDispatchWhenServing) says the proxy serves.
	HoldDispatch bool
	// Telemetry, when set, traces events and records the broker's metrics
	// (broker.Options.Tracer and Metrics).
	Telemetry *telemetry.Telemetry
	Logger    *slog.Logger
}

// Eventing is the running eventing data plane. Its methods are safe for concurrent use.
type Eventing struct {
	cfg    Config
	log    *slog.Logger
	emb    *broker.Embedded
	broker *broker.Server
	ping   *source.Ping
	lis    net.Listener
	token  string // shared by the cloudevents filter and the ingress; "" without the filter

	mu      sync.Mutex
	filters map[string]eventfilter.BrokerConfig // "ns/name" → the broker's filter entry
	pushed  string                              // the filter configuration last pushed
}

// New starts JetStream (embedded, or connects to Config.NATSURL), binds the
// ingress and programs the proxy's broker-ingress route. Run serves it.
func New(ctx context.Context, cfg Config) (*Eventing, error) {
	cfg.IngressAddress = cmp.Or(cfg.IngressAddress, DefaultIngressAddress)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Proxy == nil {
		return nil, errors.New("eventing: no proxy to program")
	}
	e := &Eventing{cfg: cfg, log: cfg.Logger.With("component", "eventing"), filters: map[string]eventfilter.BrokerConfig{}}
	url := cfg.NATSURL
	if url == "" {
		if cfg.StoreDir == "" {
			return nil, errors.New("eventing: neither a NATS URL nor a JetStream store directory is configured")
		}
		emb, err := broker.StartEmbedded(context.Background(), cfg.StoreDir, e.log)
		if err != nil {
			return nil, fmt.Errorf("eventing: %w", err)
		}
		e.emb, url = emb, emb.ClientURL()
	}
	if cfg.CloudEventsFilter != "" {
		// A secret per start, shared with the filter over xDS: the ingress
		// follows only the filter's trigger lists, never a client's.
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			e.closeNATS()
			return nil, fmt.Errorf("eventing: the cloudevents filter's token: %w", err)
		}
		e.token = hex.EncodeToString(b[:])
	}
	bopts := broker.Options{
		URL: url, Auth: cfg.NATSAuth, TLS: cfg.NATSTLS, Replicas: cfg.StreamReplicas, Client: cfg.Client, Logger: e.log, AckWait: cfg.AckWait,
		TriggerToken: e.token, ProxyFailed: cfg.ProxyFailed, HoldDispatch: cfg.HoldDispatch, RetryRules: cfg.RetryRules,
	}
	if cfg.Telemetry != nil {
		if cfg.Telemetry.Traces() {
			bopts.Tracer = cfg.Telemetry.TracerProvider()
		}
		var err error
		if bopts.Metrics, err = telemetry.NewEventingMetrics(cfg.Telemetry); err != nil {
			e.closeNATS()
			return nil, fmt.Errorf("eventing: %w", err)
		}
	}
	srv, err := broker.NewServer(ctx, bopts)
	if err != nil {
		e.closeNATS()
		return nil, fmt.Errorf("eventing: %w", err)
	}
	e.broker = srv
	if e.lis, err = net.Listen("tcp", cfg.IngressAddress); err != nil {
		e.closeAll()
		return nil, fmt.Errorf("eventing: listen for the broker ingress: %w", err)
	}
	if err := e.programProxy(); err != nil {
		e.closeAll()
		return nil, fmt.Errorf("eventing: %w", err)
	}
	e.ping = source.NewPing(source.PingOptions{Client: cfg.Client, Logger: e.log})
	return e, nil
}

// programProxy sends the proxy the broker-ingress route, cluster and endpoint,
// and an empty filter configuration.
func (e *Eventing) programProxy() error {
	ep, err := e.advertised()
	if err != nil {
		return err
	}
	if err := e.cfg.Proxy.SetCluster(xds.Cluster{Name: IngressClusterName, Namespace: SystemNamespace, Revision: IngressRouteName}); err != nil {
		return fmt.Errorf("broker ingress cluster: %w", err)
	}
	if _, err := e.cfg.Proxy.SetEndpoints(IngressClusterName, []xds.Endpoint{ep}); err != nil {
		return fmt.Errorf("broker ingress endpoint: %w", err)
	}
	vh := xds.VirtualHost{
		Name: IngressClusterName,
		Domains: []string{
			broker.IngressHost(e.cfg.Domain),
			// Knative's in-cluster name, with Skiff's system namespace.
			broker.IngressHostPrefix + "." + SystemNamespace + ".svc.cluster.local",
		},
		Clusters: []xds.WeightedCluster{{Name: IngressClusterName, Weight: 100}},
		Metadata: map[string]string{"component": "broker-ingress"},
	}
	if e.cfg.CloudEventsFilter != "" {
		vh.EnableFilters = []string{e.cfg.CloudEventsFilter}
	}
	if err := e.cfg.Proxy.SetRoute(xds.Route{Namespace: SystemNamespace, Name: IngressRouteName, VirtualHosts: []xds.VirtualHost{vh}}); err != nil {
		return fmt.Errorf("broker ingress route: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pushFiltersLocked()
}

// advertised is the ingress endpoint proxies are sent.
func (e *Eventing) advertised() (xds.Endpoint, error) {
	addr := e.cfg.IngressAdvertise
	if addr == "" {
		addr = e.lis.Addr().String()
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return xds.Endpoint{}, fmt.Errorf("broker ingress address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return xds.Endpoint{}, fmt.Errorf("broker ingress address %q: the host must be an IP address (EDS endpoints are IPs)", addr)
	}
	if ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return xds.Endpoint{}, fmt.Errorf("broker ingress address %q: bad port", addr)
	}
	return xds.Endpoint{Address: host, Port: uint32(port)}, nil
}

// IngressAddr is where the broker ingress listens.
func (e *Eventing) IngressAddr() net.Addr { return e.lis.Addr() }

// Stats are the broker ingress and dispatcher counters.
func (e *Eventing) Stats() broker.Stats { return e.broker.Stats() }

// Run serves the broker ingress until ctx ends, then stops dispatching (events
// in flight go back to JetStream), the PingSources and the embedded NATS server.
func (e *Eventing) Run(ctx context.Context) error {
	srv := &http.Server{Handler: e.ingressHandler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(e.lis) }()
	e.log.Info("broker ingress listening", "addr", e.lis.Addr().String(), "host", broker.IngressHost(e.cfg.Domain))
	var err error
	select {
	case <-ctx.Done():
	case err = <-served: // Serve never returns nil
		err = fmt.Errorf("broker ingress: %w", err)
		served = nil
	}
	// Stop dispatching first: a delivery cut short by the proxy going away
	// would count as a failed attempt, one cut short by Close is handed back.
	e.ping.Close()
	closeErr := e.broker.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if served != nil {
		<-served
	}
	e.closeNATS()
	if err == nil && closeErr != nil {
		err = fmt.Errorf("broker: %w", closeErr)
	}
	return err
}

func (e *Eventing) closeAll() {
	if e.lis != nil {
		e.lis.Close()
	}
	if e.broker != nil {
		_ = e.broker.Close()
	}
	e.closeNATS()
}

func (e *Eventing) closeNATS() {
	if e.emb != nil {
		_ = e.emb.Close()
	}
}

// SetBroker applies a broker with its triggers: the ingress and dispatcher
// first, then the proxy's filter configuration, so a proxy running the newer
// trigger list never reaches an ingress that does not know it (the ingress
// re-evaluates lists from an older generation).
func (e *Eventing) SetBroker(ctx context.Context, cfg broker.BrokerConfig) error {
	if err := e.broker.SetBroker(ctx, cfg); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.filters[cfg.Namespace+"/"+cfg.Name] = cfg.FilterConfig()
	return e.pushFiltersLocked()
}

// DeleteBroker removes a broker, its stream and its undelivered events.
func (e *Eventing) DeleteBroker(ctx context.Context, namespace, name string) error {
	e.mu.Lock()
	delete(e.filters, namespace+"/"+name)
	err := e.pushFiltersLocked()
	e.mu.Unlock()
	return errors.Join(err, e.broker.DeleteBroker(ctx, namespace, name))
}

// pushFiltersLocked sends the cloudevents filter every broker's triggers.
func (e *Eventing) pushFiltersLocked() error {
	if e.cfg.CloudEventsFilter == "" {
		return nil
	}
	keys := make([]string, 0, len(e.filters))
	for k := range e.filters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fc := eventfilter.FilterConfig{Brokers: make([]eventfilter.BrokerConfig, 0, len(keys)), Token: e.token}
	for _, k := range keys {
		fc.Brokers = append(fc.Brokers, e.filters[k])
	}
	b, err := json.Marshal(fc)
	if err != nil {
		return fmt.Errorf("encode the cloudevents filter configuration: %w", err)
	}
	if string(b) == e.pushed {
		return nil
	}
	if err := e.cfg.Proxy.SetWasmFilterConfiguration(e.cfg.CloudEventsFilter, string(b)); err != nil {
		return fmt.Errorf("push the cloudevents filter configuration: %w", err)
	}
	e.pushed = string(b)
	return nil
}

// SetPingSource schedules a PingSource.
func (e *Eventing) SetPingSource(namespace, name string, spec source.PingSpec) error {
	return e.ping.Set(namespace, name, spec)
}

// DeletePingSource stops a PingSource.
func (e *Eventing) DeletePingSource(namespace, name string) { e.ping.Delete(namespace, name) }
