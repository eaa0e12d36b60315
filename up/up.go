// Package up assembles `skiff up`: the control plane (resource API, reconcilers, local
// runtime, ext_proc activator, eventing, xDS server) and the gateway, which connects to that
// xDS server as an Envoy would, in one process. `skiff up`, the end-to-end tests and the
// bench commands all start Skiff through Start, so they run the same assembly.
//
// It lives outside controlplane/ because it imports gateway/, which controlplane/ must not.
package up

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/gateway"
)

// DefaultAdminAddress is where the gateway's admin endpoint listens unless told otherwise.
const DefaultAdminAddress = "127.0.0.1:9901"

// Config is what Start runs.
type Config struct {
	// ControlPlane is the control plane's configuration. Start adds the gateway's admin
	// /stats to ProxyStatsURLs (the autoscaler reads the gateway's stats there) and, with
	// ListenerAddressOverride, points eventing's deliveries at the listeners the gateway
	// really bound (unless EventingConfig.ProxyAddress or LocalProxyAddress is set).
	ControlPlane controlplane.Config
	// AdminAddress is where the gateway's admin endpoint (/stats, /ready, /config_dump)
	// listens; default DefaultAdminAddress. Port 0 picks a free port now, because the
	// control plane must know it before the gateway binds it.
	AdminAddress string
	// NodeID is the gateway's xDS node id; default "skiff-up". Its node cluster is always
	// "skiff-gateway", one of the default serving node clusters.
	NodeID string
	// WasmCacheDir keeps the gateway's compiled proxy-wasm modules across restarts;
	// default {DataDir}/wasm-cache.
	WasmCacheDir string
	// RequestLog writes a line in Envoy's access log format for every request to a revision
	// into that revision's log under {DataDir}/logs.
	RequestLog bool
	// ListenerAddressOverride, when set, is the address the gateway binds every listener it
	// is told about over LDS (gateway.Config.ListenerAddressOverride), e.g. "127.0.0.1:0"
	// in tests and benches so that several can run at once; ListenerAddr says where each
	// one went.
	ListenerAddressOverride string
	// StateOfTheWorld makes the gateway ask for state-of-the-world xDS. The default is delta
	// (incremental) xDS: a change costs what changed, not every cluster and EDS name
	// (bench/RESULTS.md, issue 17 goal 1: 2 ms against 25 ms at 10,000 Services).
	StateOfTheWorld bool
}

// NodeCluster is the gateway's xDS node cluster: one of xds.DefaultServingNodeClusters, so
// Routes are Ready only once the gateway has ACKed them.
const NodeCluster = "skiff-gateway"

// Stack is a running `skiff up`. Its goroutines run until the context given to Start ends,
// Close is called, or one part fails; Wait and Close return then.
type Stack struct {
	cp    *controlplane.ControlPlane
	gw    *gateway.Gateway
	admin string

	cancel context.CancelFunc
	done   chan struct{} // closed once both parts returned
	err    error         // set before done is closed
}

// Start binds the control plane's listeners, then runs the control plane and the gateway
// until ctx ends or Close is called. It returns before the gateway has its listeners from
// xDS: ListenerAddr waits for one.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	admin, err := adminAddress(cfg.AdminAddress)
	if err != nil {
		return nil, err
	}
	cpCfg := cfg.ControlPlane
	cpCfg.ProxyStatsURLs = append(slices.Clone(cpCfg.ProxyStatsURLs), "http://"+admin)
	// The gateway exists only after the control plane (it needs the xDS address); deliveries
	// start once the proxy serves, after both exist.
	var gwp atomic.Pointer[gateway.Gateway]
	if ev := cpCfg.Eventing; ev != nil && cfg.ListenerAddressOverride != "" {
		evCopy := *ev
		cpCfg.Eventing = &evCopy
		if evCopy.LocalProxyAddress == nil && cpCfg.LocalListenPort != 0 {
			evCopy.LocalProxyAddress = boundListener(&gwp, xds.LocalListenerName)
		}
		if evCopy.ProxyAddress == nil {
			evCopy.ProxyAddress = boundListener(&gwp, xds.ListenerName)
		}
	}
	cp, err := controlplane.New(cpCfg)
	if err != nil {
		return nil, err
	}
	gcfg := gateway.Config{
		ADSAddress: cp.XDSAddr().String(), NodeID: cfg.NodeID, NodeCluster: NodeCluster,
		AdminAddress: admin, Logger: cpCfg.Logger, Delta: !cfg.StateOfTheWorld,
		ListenerAddressOverride: cfg.ListenerAddressOverride,
		WasmCacheDir:            cfg.WasmCacheDir,
		Telemetry:               cpCfg.Telemetry,
	}
	if gcfg.NodeID == "" {
		gcfg.NodeID = "skiff-up"
	}
	if gcfg.WasmCacheDir == "" {
		gcfg.WasmCacheDir = filepath.Join(cpCfg.DataDir, "wasm-cache")
	}
	if cfg.RequestLog {
		gcfg.RequestLogDir = filepath.Join(cpCfg.DataDir, "logs")
	}
	gw, err := gateway.New(gcfg)
	if err != nil {
		cp.Close()
		return nil, err
	}
	gwp.Store(gw)
	ctx, cancel := context.WithCancel(ctx)
	s := &Stack{cp: cp, gw: gw, admin: admin, cancel: cancel, done: make(chan struct{})}
	go s.run(ctx)
	return s, nil
}

// run runs both parts; the first to return stops the other.
func (s *Stack) run(ctx context.Context) {
	var wg sync.WaitGroup
	var cpErr, gwErr error
	wg.Go(func() {
		defer s.cancel()
		cpErr = s.cp.Run(ctx)
	})
	wg.Go(func() {
		defer s.cancel()
		gwErr = s.gw.Run(ctx)
	})
	wg.Wait()
	if errors.Is(cpErr, context.Canceled) {
		cpErr = nil
	}
	if errors.Is(gwErr, context.Canceled) {
		gwErr = nil
	}
	s.err = errors.Join(cpErr, gwErr)
	close(s.done)
}

// adminAddress resolves port 0 to a free loopback port.
func adminAddress(addr string) (string, error) {
	if addr == "" {
		return DefaultAdminAddress, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("gateway admin address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port for the gateway's admin endpoint: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// boundListener is where the gateway bound the named listener, or a closed port until then
// (deliveries wait for the proxy to serve, so they rarely see it).
func boundListener(gw *atomic.Pointer[gateway.Gateway], name string) func() string {
	return func() string {
		if g := gw.Load(); g != nil {
			if addr, ok := g.ListenerAddr(name); ok {
				return addr.String()
			}
		}
		return "127.0.0.1:1"
	}
}

// ControlPlane is the running control plane.
func (s *Stack) ControlPlane() *controlplane.ControlPlane { return s.cp }

// Gateway is the running gateway.
func (s *Stack) Gateway() *gateway.Gateway { return s.gw }

// AdminAddr is the gateway's admin endpoint, host:port.
func (s *Stack) AdminAddr() string { return s.admin }

// ListenerAddr waits until the gateway has bound the named LDS listener (xds.ListenerName,
// xds.LocalListenerName, xds.HTTPSListenerName, ...) and returns where, or fails when ctx
// ends or the stack stops first.
func (s *Stack) ListenerAddr(ctx context.Context, name string) (net.Addr, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr, ok := s.gw.ListenerAddr(name); ok {
			return addr, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the gateway's %s listener from xDS: %w", name, context.Cause(ctx))
		case <-s.done:
			return nil, fmt.Errorf("the gateway's %s listener from xDS: skiff stopped first (%v)", name, s.err)
		case <-tick.C:
		}
	}
}

// Done is closed once the stack has stopped.
func (s *Stack) Done() <-chan struct{} { return s.done }

// Wait waits until the stack stops and returns what made its parts fail, if anything (a
// cancelled context is no failure).
func (s *Stack) Wait() error {
	<-s.done
	return s.err
}

// Close stops the stack and waits for it: eventing hands deliveries in flight back,
// every instance stops, the store closes, the gateway drains its listeners.
func (s *Stack) Close() error {
	s.cancel()
	return s.Wait()
}
