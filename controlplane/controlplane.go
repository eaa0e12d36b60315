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
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/skiff-dev/skiff/controlplane/apiserver"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
	"github.com/skiff-dev/skiff/controlplane/runtime/local"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
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
	// DrainTimeout is how long a stopping instance keeps serving after leaving EDS.
	DrainTimeout time.Duration
	Logger       *slog.Logger
}

// ControlPlane is a running control plane; its listeners are bound by New.
type ControlPlane struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	xds     *xds.Server
	runtime *local.Runtime
	ctrl    *reconciler.Controller
	apiLis  net.Listener
	xdsLis  net.Listener
}

// New opens the store and binds the API and xDS listeners.
func New(cfg Config) (*ControlPlane, error) {
	cfg.APIAddress = cmp.Or(cfg.APIAddress, "127.0.0.1:7070")
	cfg.XDSAddress = cmp.Or(cfg.XDSAddress, "127.0.0.1:18000")
	cfg.Domain = cmp.Or(cfg.Domain, "localhost")
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("control plane: data dir: %w", err)
	}
	cp := &ControlPlane{cfg: cfg, log: cfg.Logger}
	var err error
	if cp.store, err = store.Open(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if cp.xds, err = xds.NewServer(cfg.Logger, xds.Options{ListenerAddress: cfg.ProxyListenAddress, ListenerPort: cfg.ProxyListenPort}); err != nil {
		cp.store.Close()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if cp.apiLis, err = net.Listen("tcp", cfg.APIAddress); err != nil {
		cp.store.Close()
		return nil, fmt.Errorf("control plane: listen for the API: %w", err)
	}
	if cp.xdsLis, err = net.Listen("tcp", cfg.XDSAddress); err != nil {
		cp.apiLis.Close()
		cp.store.Close()
		return nil, fmt.Errorf("control plane: listen for xDS: %w", err)
	}
	var ctrl *reconciler.Controller
	cp.runtime = local.New(local.Config{
		DataDir: cfg.DataDir, WorkDir: cfg.WorkDir, Logger: cfg.Logger, DrainTimeout: cfg.DrainTimeout,
		OnChange: func(ns, name string) { ctrl.RevisionChanged(ns, name) },
	})
	ctrl = reconciler.New(reconciler.Config{
		Store: cp.store, Runtime: cp.runtime, Proxy: cp.xds, Domain: cfg.Domain, Logger: cfg.Logger,
	})
	cp.ctrl = ctrl
	return cp, nil
}

// APIAddr is where the resource API listens.
func (cp *ControlPlane) APIAddr() net.Addr { return cp.apiLis.Addr() }

// XDSAddr is where the ADS server listens.
func (cp *ControlPlane) XDSAddr() net.Addr { return cp.xdsLis.Addr() }

// Run serves until ctx is done, then stops every instance and closes the store.
func (cp *ControlPlane) Run(ctx context.Context) error {
	grpcServer := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	cp.xds.Register(grpcServer)
	httpServer := &http.Server{Handler: apiserver.New(cp.store, cp.log), ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
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
	wg.Go(func() {
		if err := cp.ctrl.Run(ctrlCtx, 4); err != nil {
			errs <- fmt.Errorf("reconciler: %w", err)
		}
	})
	cp.log.Info("control plane running", "api", cp.APIAddr().String(), "xds", cp.XDSAddr().String(), "data", cp.cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = httpServer.Shutdown(shutdownCtx)
	stopCtrl()
	cp.runtime.Close(shutdownCtx)
	cp.xds.Close()
	grpcServer.Stop()
	wg.Wait()
	if err := cp.store.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}
