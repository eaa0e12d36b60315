// Package reconciler turns Knative serving resources into running revisions and proxy
// configuration, and keeps their status true: Service → Configuration + Route,
// Configuration → Revisions, Revision → runtime instances and an xDS cluster,
// Route → xDS virtual hosts.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	networkingv1alpha1 "github.com/skiff-dev/skiff/api/networking/v1alpha1"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	servingv1beta1 "github.com/skiff-dev/skiff/api/serving/v1beta1"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/certs"
	"github.com/skiff-dev/skiff/controlplane/domains"
	"github.com/skiff-dev/skiff/controlplane/revisiongc"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/extproc"
)

// Proxy is the part of the xDS server the reconcilers drive.
type Proxy interface {
	SetRoute(r xds.Route) error
	DeleteRoute(namespace, name string)
	SetCluster(c xds.Cluster) error
	DeleteCluster(name string)
	SetEndpoints(cluster string, eps []xds.Endpoint) (string, error)
	// WaitEndpointsAcked blocks until every serving proxy has ACKed that endpoints version.
	WaitEndpointsAcked(ctx context.Context, cluster, version string) error
	// RouteAcked reports whether every serving proxy has accepted the route's current
	// virtual hosts and the endpoints of the clusters it names.
	RouteAcked(namespace, name string) bool
	// RouteStatus is RouteAcked and, when not acked, why a serving proxy rejected
	// (NACKed) what the route needs.
	RouteStatus(namespace, name string) xds.RouteStatus
	// SetCertificate serves a certificate on the TLS listener (an SDS secret), refusing one
	// that does not load with the reason; DeleteCertificate stops serving it.
	SetCertificate(c xds.TLSCertificate) error
	DeleteCertificate(name string)
	// SetServiceCluster routes to a Kubernetes Service directly (an ACME solver).
	SetServiceCluster(name, host string, port uint32) error
}

// Autoscaler decides each revision's scale and whether the proxy buffers its requests.
type Autoscaler interface {
	Upsert(key string, spec autoscaler.Spec)
	Delete(key string)
	SetReady(key string, ready int)
	Decision(key string) (autoscaler.Decision, bool)
}

// Activator is the ext_proc service: it holds requests until a revision has capacity and
// keeps each pod within containerConcurrency.
type Activator interface {
	SetRevision(cluster string, r extproc.Revision)
	DeleteRevision(cluster string)
}

// Watcher is a store that reports changes.
type Watcher interface {
	store.Interface
	Subscribe(fn func(store.Event)) (cancel func())
}

// Config wires a Controller to its store, runtime and proxy.
type Config struct {
	Store   Watcher
	Runtime runtime.Runtime
	Proxy   Proxy
	// Domain is the suffix of every route's host: {name}.{namespace}.{Domain}.
	Domain string
	Logger *slog.Logger
	// Autoscaler decides how many instances a routed revision runs; nil means one instance
	// (or min/initial scale) per routed revision, and no scaling to zero.
	Autoscaler Autoscaler
	// AutoscalerDefaults are the cluster-wide autoscaling settings annotations are read against.
	AutoscalerDefaults autoscaler.Config
	// Activator, when set, puts ext_proc in the path of revisions in proxy mode and of
	// revisions with containerConcurrency > 0; nil means requests always go straight to pods.
	Activator Activator
	// Eventing runs Brokers, Triggers and PingSources (see broker.go); nil reports them
	// not Ready (EventingDisabled).
	Eventing Eventing
	// SourceWorkloads runs ContainerSources (containersource.go); nil reports them not
	// Ready (WorkloadsDisabled).
	SourceWorkloads SourceWorkloads
	// ApiServerSources runs ApiServerSources' watches (apiserversource.go); nil reports
	// them not Ready (ApiServerSourcesDisabled).
	ApiServerSources ApiServerSources
	// Digests resolves image tags to digests before a revision runs, as Knative's revision
	// reconciler does (status.containerStatuses[].imageDigest, which the runtime runs, so a
	// retagged image never changes a revision); nil resolves none.
	Digests DigestResolver
	// ResolvesImages says whether a revision's images are resolved: those the runtime pulls
	// (not ko:// builds or host commands). Nil: every revision's.
	ResolvesImages func(rev *servingv1.Revision) bool
	// DigestResolutionTimeout bounds one resolution; default DefaultDigestResolutionTimeout.
	DigestResolutionTimeout time.Duration
	// SystemNamespace holds Knative's config-network, config-domain, config-certmanager and config-gc
	// ConfigMaps; default DefaultSystemNamespace.
	SystemNamespace string
	// EventingNamespace holds Knative Eventing's config-features, which LoadSettings gets as
	// config.EventingFeaturesKey; default config.EventingNamespace (knative-eventing).
	EventingNamespace string
	// NetworkDefaults are config-network's defaults where this mode differs from Knative's.
	NetworkDefaults domains.NetworkDefaults
	// TagHeaderBasedRouting is config-features' tag-header-based-routing, as read when the
	// control plane starts: a Route's default host also routes a request carrying
	// Knative-Serving-Tag: TAG to that tag's target. LoadSettings replaces it.
	TagHeaderBasedRouting bool
	// LoadSettings, when set, makes the settings in force from config-features,
	// config-defaults, config-autoscaler and config-br-defaults in SystemNamespace, read at
	// Run and again on each change of them (replacing TagHeaderBasedRouting and
	// AutoscalerDefaults), as Knative's controllers watch their ConfigMaps.
	LoadSettings SettingsLoader
	// OnSettings hear of the settings LoadSettings put in force.
	OnSettings []func(Settings)
	// Certificates issues the certificates of external hosts (external-domain-tls); nil
	// reports routes that need one CertificateProvisioned=False.
	Certificates certs.Provider
	// QueueMetrics, when set, reports the work queue's depth and latencies (Knative's
	// kn.workqueue.* metrics, queue name "serving").
	QueueMetrics workqueue.MetricsProvider
	// StatusCoalesce, when positive, lets a Service, Configuration, Route or Revision that
	// is still in progress (Ready Unknown, as stored and as computed) go up to this long
	// without writing the intermediate statuses it passes through (see updateStatus): a
	// status reaching Ready True or False, or a new generation's, is written at once. Zero
	// writes every move, as Knative's reconcilers do.
	StatusCoalesce time.Duration
}

// Controller runs the serving reconcilers off one rate-limited work queue.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	queue workqueue.TypedRateLimitingInterface[store.Key]
	// lanes orders the queue: resync's keys after everything a change enqueues.
	lanes *lanes
	now   func() time.Time
	// enqueueAfter asks for key to be reconciled after d (a rollout's next step); the
	// queue's AddAfter, replaced in tests.
	enqueueAfter func(key store.Key, d time.Duration)

	// ackWait holds the routes and DomainMappings waiting for a proxy ACK so they are
	// re-checked, not lost, with the proxy's rejection their status last reported ("" for
	// none).
	mu      sync.Mutex
	ackWait map[store.Key]string
	// routeRefs indexes the configuration and revision names each route reads.
	routeRefs map[store.Key]map[string]bool
	// publishing cancels the wait for a proxy ACK before endpoints reach the activator.
	publishing map[string]context.CancelFunc
	// servedCerts are the SDS certificates each Route or DomainMapping serves.
	servedCerts map[store.Key][]string
	// putOffSince is when each object's in-progress status was first put off (updateStatus).
	putOffSince map[store.Key]time.Time
	// gc holds config-gc's settings in force (see loadGC); nil until loaded.
	gc atomic.Pointer[revisiongc.Config]
	// net holds the networking settings in force (see loadSettings).
	net atomic.Pointer[netSettings]
	// knative holds the settings LoadSettings made (see loadKnativeSettings); nil until
	// then, when Config's start values are in force.
	knative atomic.Pointer[Settings]
	ctx     context.Context // the Run context, for goroutines the controller owns
	wg      sync.WaitGroup
	// initial holds the objects of Run's first resync not reconciled yet; synced is closed
	// once it is empty and the work queue is idle. busy counts reconciles under way.
	initial  map[store.Key]bool
	synced   chan struct{}
	isSynced bool
	busy     int
	// resolver resolves image digests in the background; nil without Config.Digests.
	resolver *backgroundResolver
	// applied is what each channel was last applied with (channel.go).
	applied appliedChannels
	// routing indexes which objects list each Route in their routes annotation (labeler.go).
	routing routingIndex
}

// New returns a Controller; call Run to start it.
func New(cfg Config) *Controller {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	if cfg.DigestResolutionTimeout <= 0 {
		cfg.DigestResolutionTimeout = DefaultDigestResolutionTimeout
	}
	if cfg.SystemNamespace == "" {
		cfg.SystemNamespace = DefaultSystemNamespace
	}
	if cfg.EventingNamespace == "" {
		cfg.EventingNamespace = config.EventingNamespace
	}
	lanes := newLanes()
	c := &Controller{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "reconciler"),
		lanes:       lanes,
		queue:       newQueue(lanes, cfg.QueueMetrics),
		now:         time.Now,
		ackWait:     map[store.Key]string{},
		routeRefs:   map[store.Key]map[string]bool{},
		routing:     newRoutingIndex(),
		publishing:  map[string]context.CancelFunc{},
		servedCerts: map[store.Key][]string{},
		putOffSince: map[store.Key]time.Time{},
		ctx:         context.Background(),
		synced:      make(chan struct{}),
	}
	c.enqueueAfter = c.queue.AddAfter
	if cfg.Digests != nil {
		c.resolver = newBackgroundResolver(cfg.Digests, newDigestQueue(), c.queue.Add)
	}
	return c
}

// Synced is closed once every object stored when Run started has been reconciled once
// (successfully or not) and the work those reconciles caused is done too (the queue was idle):
// from then on the runtime and the proxy have been told about all of them as they are now,
// e.g. after a restart every Route's virtual hosts, in the mode its revisions' current state
// asks for rather than the one stored before.
func (c *Controller) Synced() <-chan struct{} { return c.synced }

// startReconcile and endReconcile bracket one reconcile of key, for Synced.
func (c *Controller) startReconcile() {
	c.mu.Lock()
	c.busy++
	c.mu.Unlock()
}

func (c *Controller) endReconcile(key store.Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy--
	delete(c.initial, key)
	if !c.isSynced && c.initial != nil && len(c.initial) == 0 && c.busy == 0 && c.queue.Len() == 0 {
		c.isSynced = true
		close(c.synced)
	}
}

// Enqueue asks for the object at key to be reconciled.
func (c *Controller) Enqueue(key store.Key) { c.queue.Add(key) }

// RevisionChanged is the runtime's OnChange hook: a revision's instances changed.
func (c *Controller) RevisionChanged(namespace, name string) {
	c.queue.Add(store.Key{Kind: servingv1.KindRevision, Namespace: namespace, Name: name})
}

// Run reconciles until ctx is done, with the given number of workers.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	cancel := c.cfg.Store.Subscribe(c.onEvent)
	defer cancel()
	defer c.wg.Wait()
	if err := c.loadSettings(ctx); err != nil {
		return err
	}
	if err := c.loadGC(ctx); err != nil {
		return err
	}
	if err := c.loadKnativeSettings(ctx); err != nil {
		return err
	}
	if err := c.resync(ctx); err != nil {
		return err
	}
	if c.resolver != nil {
		resolverCtx, stopResolver := context.WithCancel(ctx)
		done := c.resolver.Start(resolverCtx, digestResolutionWorkers)
		defer func() { stopResolver(); <-done }()
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	wg.Go(func() { c.pollAcks(ctx) })
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// resync enqueues everything stored, so a restart brings the runtime and proxy back.
func (c *Controller) resync(ctx context.Context) error {
	var keys []store.Key
	for _, kind := range append([]string{servingv1.KindService, servingv1.KindConfiguration, servingv1.KindRevision, servingv1.KindRoute, servingv1beta1.KindDomainMapping}, eventingKinds...) {
		objs, err := store.ListAs[metaOnly](ctx, c.cfg.Store, kind, "")
		if err != nil {
			return fmt.Errorf("resync: %w", err)
		}
		for _, o := range objs {
			keys = append(keys, store.Key{Kind: kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name})
		}
	}
	c.mu.Lock()
	if len(keys) == 0 {
		c.isSynced = true
		close(c.synced)
	} else {
		c.initial = make(map[store.Key]bool, len(keys))
		for _, k := range keys {
			c.initial[k] = true
		}
	}
	c.mu.Unlock()
	for _, k := range keys {
		c.lanes.markSlow(k)
		c.queue.Add(k)
	}
	return nil
}

// newQueue is the controller's rate-limited work queue, ordered by l.
func newQueue(l *lanes, metrics workqueue.MetricsProvider) workqueue.TypedRateLimitingInterface[store.Key] {
	base := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[store.Key]{Name: "serving", MetricsProvider: metrics, Queue: l})
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[store.Key](50*time.Millisecond, 10*time.Second),
		workqueue.TypedRateLimitingQueueConfig[store.Key]{
			Name: "serving", MetricsProvider: metrics,
			DelayingQueue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[store.Key]{
				Name: "serving", MetricsProvider: metrics, Queue: base}),
		})
}

// mirrorDelay is how long a Service waits to mirror a change of its Configuration or
// Route. Both move several times within a fraction of a second while a revision rolls out
// (created, revision ready, waiting for the proxies, ready), and each move would otherwise
// be one more status write on the Service; waiting folds the moves of the moment into one
// write. The Service's conditions end the same as Knative's, with fewer intermediate ones.
const mirrorDelay = 100 * time.Millisecond

// onEvent maps a store change to the objects whose reconcile reads it.
func (c *Controller) onEvent(e store.Event) {
	c.queue.Add(e.Key)
	if e.Type == store.Deleted {
		c.forgetPutOff(e.Key)
	}
	ns := e.Key.Namespace
	switch e.Key.Kind {
	case servingv1.KindConfiguration:
		// Knative names a Service's Configuration and Route after the Service.
		c.queue.AddAfter(store.Key{Kind: servingv1.KindService, Namespace: ns, Name: e.Key.Name}, mirrorDelay)
		c.enqueueRoutesReferencing(ns, e.Key.Name)
	case servingv1.KindRoute:
		c.queue.AddAfter(store.Key{Kind: servingv1.KindService, Namespace: ns, Name: e.Key.Name}, mirrorDelay)
		c.enqueueAll(servingv1beta1.KindDomainMapping, ns)
	case api.KindSecret:
		c.enqueueMappingsUsingSecret(ns, e.Key.Name)
	case networkingv1alpha1.KindClusterDomainClaim:
		c.enqueueMappingsNamed(e.Key.Name)
	case api.KindConfigMap:
		// reconcile reads it if it is one of the networking settings.
	case servingv1.KindRevision:
		var rev servingv1.Revision
		if err := c.cfg.Store.Get(context.Background(), e.Key, &rev); err == nil {
			c.routing.observe(e.Key, rev.Annotations)
			if cfg := rev.Labels[servingv1.ConfigurationLabel]; cfg != "" {
				c.queue.Add(store.Key{Kind: servingv1.KindConfiguration, Namespace: ns, Name: cfg})
				c.enqueueRoutesReferencing(ns, cfg)
			}
		} else if errors.Is(err, store.ErrNotFound) {
			c.routing.observe(e.Key, nil)
		}
		c.enqueueRoutesReferencing(ns, e.Key.Name)
	}
	if e.Key.Kind == servingv1.KindConfiguration {
		// The labeler's index follows routes annotations written by others too.
		var cfg servingv1.Configuration
		if err := c.cfg.Store.Get(context.Background(), e.Key, &cfg); err == nil {
			c.routing.observe(e.Key, cfg.Annotations)
		} else if errors.Is(err, store.ErrNotFound) {
			c.routing.observe(e.Key, nil)
		}
	}
	c.onEventingEvent(e)
}

// enqueueRoutesReferencing enqueues the routes whose last reconcile read the named
// configuration or revision.
func (c *Controller) enqueueRoutesReferencing(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, refs := range c.routeRefs {
		if k.Namespace == namespace && refs[name] {
			c.queue.Add(k)
		}
	}
}

// setRouteRefs records which configurations and revisions a route reads.
func (c *Controller) setRouteRefs(k store.Key, refs map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if refs == nil {
		delete(c.routeRefs, k)
		return
	}
	c.routeRefs[k] = refs
}

// pollAcks re-checks routes waiting for the proxy to ACK their configuration.
func (c *Controller) pollAcks(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		for k, rejected := range c.ackWait {
			name := k.Name
			if k.Kind == servingv1beta1.KindDomainMapping {
				name = domainMappingProxyName(k.Name)
			}
			if st := c.cfg.Proxy.RouteStatus(k.Namespace, name); st.Acked || st.Rejected != rejected {
				delete(c.ackWait, k)
				c.queue.Add(k)
			}
		}
		c.mu.Unlock()
	}
}

// waitForAck makes pollAcks re-check a route (waiting) until it is acked or a proxy's
// rejection of it is no longer the one its status reports (rejected), or stops that.
func (c *Controller) waitForAck(k store.Key, waiting bool, rejected string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if waiting {
		c.ackWait[k] = rejected
	} else {
		delete(c.ackWait, k)
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	c.startReconcile()
	// Deferred first, so it runs after Done has put back a key re-added meanwhile.
	defer c.endReconcile(key)
	defer c.queue.Done(key)
	err := c.reconcile(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key)
	case errors.Is(err, store.ErrConflict):
		c.queue.Add(key) // someone wrote first: read again now
	case errors.Is(err, store.ErrOwnerGone):
		// The object being reconciled was deleted meanwhile; its children went with it.
		c.queue.Forget(key)
	default:
		c.log.Warn("reconcile failed", "key", key.String(), "err", err)
		c.queue.AddRateLimited(key)
	}
	return true
}

func (c *Controller) reconcile(ctx context.Context, key store.Key) error {
	switch key.Kind {
	case servingv1.KindService:
		return c.reconcileService(ctx, key)
	case servingv1.KindConfiguration:
		return c.reconcileConfiguration(ctx, key)
	case servingv1.KindRevision:
		return c.reconcileRevision(ctx, key)
	case servingv1.KindRoute:
		return c.reconcileRoute(ctx, key)
	case servingv1beta1.KindDomainMapping:
		return c.reconcileDomainMapping(ctx, key)
	case kindNamespace:
		return c.reconcileNamespace(ctx, key)
	case api.KindConfigMap:
		if key.Namespace == c.cfg.SystemNamespace && slices.Contains(networkConfigMaps, key.Name) {
			return c.loadSettings(ctx)
		}
		if c.isKnativeSettings(key) {
			return c.loadKnativeSettings(ctx)
		}
		if key.Namespace == c.cfg.SystemNamespace && key.Name == revisiongc.ConfigName {
			// New collection settings apply to every Configuration now, as Knative's GC
			// controller resyncs on a config-gc change.
			if err := c.loadGC(ctx); err != nil {
				return err
			}
			c.enqueueAll(servingv1.KindConfiguration, "")
			return nil
		}
		return nil
	case api.KindSecret, networkingv1alpha1.KindClusterDomainClaim:
		return nil
	}
	return c.reconcileEventing(ctx, key)
}

// metaOnly decodes just an object's metadata.
type metaOnly struct {
	Metadata struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"metadata"`
}
