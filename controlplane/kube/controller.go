// Package kube runs Skiff's control plane on Kubernetes (`skiff controller`): the same
// reconcilers as `skiff up`, over a store backed by the API server (kubestore) and a runtime of
// Deployments and EndpointSlices (deployruntime), with the xDS server Envoy connects to. One
// replica leads at a time (a coordination.k8s.io Lease); only the leader reconciles and serves
// xDS, and /readyz says so, so the Service in front of the controller sends Envoy to the leader.
//
// Decisions: deletion cascades through owner references and Kubernetes' garbage collector
// (kube-controller-manager), as for any Kubernetes object. Revisions run at one replica (or
// min/initial scale) while routed: the autoscaler and activator are not wired in this mode yet.
// Objects applied with kubectl are defaulted when read (there is no admission webhook).
package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/skiff-dev/skiff/controlplane/kube/deployruntime"
	"github.com/skiff-dev/skiff/controlplane/kube/kubestore"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// Config says how to reach the API server and where to serve.
type Config struct {
	// Rest is the API server connection (in-cluster or from a kubeconfig).
	Rest *rest.Config
	// XDSAddress serves ADS to Envoy; default ":18000".
	XDSAddress string
	// HealthAddress serves /healthz and /readyz; default ":8081"; "-" disables it.
	HealthAddress string
	// Domain is the suffix of route hosts; default "example.com".
	Domain string
	// ProxyListenPort is the port the xDS listener tells Envoy to bind; default xds's default.
	ProxyListenPort uint32
	// LeaseNamespace and LeaseName name the Lease for leader election; Identity is this replica's.
	LeaseNamespace, LeaseName, Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election; defaults 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Workers is how many reconciles run at once; default 4.
	Workers int
	Logger  *slog.Logger
}

// Controller is a running `skiff controller`.
type Controller struct {
	cfg    Config
	log    *slog.Logger
	xdsLis net.Listener
	leader atomic.Bool
}

// New binds the xDS listener.
func New(cfg Config) (*Controller, error) {
	cfg.XDSAddress = cmp.Or(cfg.XDSAddress, ":18000")
	cfg.HealthAddress = cmp.Or(cfg.HealthAddress, ":8081")
	cfg.Domain = cmp.Or(cfg.Domain, "example.com")
	cfg.LeaseNamespace = cmp.Or(cfg.LeaseNamespace, "skiff-system")
	cfg.LeaseName = cmp.Or(cfg.LeaseName, "skiff-controller")
	cfg.LeaseDuration = cmp.Or(cfg.LeaseDuration, 15*time.Second)
	cfg.RenewDeadline = cmp.Or(cfg.RenewDeadline, 10*time.Second)
	cfg.RetryPeriod = cmp.Or(cfg.RetryPeriod, 2*time.Second)
	cfg.Workers = cmp.Or(cfg.Workers, 4)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rest == nil {
		return nil, errors.New("kube controller: no API server configuration")
	}
	if cfg.Identity == "" {
		return nil, errors.New("kube controller: leader election identity is empty")
	}
	lis, err := net.Listen("tcp", cfg.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("kube controller: listen for xDS: %w", err)
	}
	return &Controller{cfg: cfg, log: cfg.Logger.With("component", "kube-controller"), xdsLis: lis}, nil
}

// XDSAddr is where the ADS server listens.
func (c *Controller) XDSAddr() net.Addr { return c.xdsLis.Addr() }

// Leading reports whether this replica holds the Lease.
func (c *Controller) Leading() bool { return c.leader.Load() }

// Run campaigns for the Lease and reconciles while leading, until ctx is done or leadership
// is lost (then it returns, so the process restarts clean, as Kubernetes controllers do).
func (c *Controller) Run(ctx context.Context) error {
	defer c.xdsLis.Close()
	rc := rest.CopyConfig(c.cfg.Rest)
	// Reconciling a thousand Services from scratch needs more than client-go's 5 QPS default.
	rc.QPS, rc.Burst = 200, 400
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
	if c.cfg.HealthAddress != "-" {
		srv, err := c.serveHealth()
		if err != nil {
			return err
		}
		defer srv.Close()
	}
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

// lead runs the reconcilers and the xDS server until ctx (the leadership) ends.
func (c *Controller) lead(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface) error {
	st := kubestore.New(dc, c.cfg.Logger)
	var ctrl *reconciler.Controller
	rt := deployruntime.New(deployruntime.Config{Client: kc, Logger: c.cfg.Logger, OnChange: func(ns, name string) {
		if ctrl != nil {
			ctrl.RevisionChanged(ns, name)
		}
	}})
	defer st.Shutdown()
	defer rt.Shutdown()
	if err := st.Start(ctx); err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}
	proxy, err := xds.NewServer(c.cfg.Logger, xds.Options{ListenerAddress: "0.0.0.0", ListenerPort: c.cfg.ProxyListenPort})
	if err != nil {
		return fmt.Errorf("kube controller: %w", err)
	}
	defer proxy.Close()
	ctrl = reconciler.New(reconciler.Config{Store: st, Runtime: rt, Proxy: proxy, Domain: c.cfg.Domain, Logger: c.cfg.Logger})
	g := grpc.NewServer()
	proxy.Register(g)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = g.Serve(c.xdsLis) })
	defer g.Stop()
	c.leader.Store(true)
	c.log.Info("reconciling", "xds", c.xdsLis.Addr().String())
	return ctrl.Run(ctx, c.cfg.Workers)
}

func (c *Controller) serveHealth() (*http.Server, error) {
	lis, err := net.Listen("tcp", c.cfg.HealthAddress)
	if err != nil {
		return nil, fmt.Errorf("kube controller: listen for health checks: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.leader.Load() {
			http.Error(w, "not the leader", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }() // stopped by the caller's Close
	return srv, nil
}
