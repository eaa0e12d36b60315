package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/skiff-dev/skiff/client/proxyclient"
	"github.com/skiff-dev/skiff/controlplane/reconciler"
	"github.com/skiff-dev/skiff/controlplane/runtime/local"
	"github.com/skiff-dev/skiff/controlplane/sourceruntime"
	"github.com/skiff-dev/skiff/controlplane/storewatch"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/source/apiserver"
)

// sourceWorkloads runs ContainerSources: a local runtime of their own (logs under
// {DataDir}/sources/logs) and the forward proxy their processes get as HTTP_PROXY, so
// that K_SINK (a Knative address) reaches the gateway.
type sourceWorkloads struct {
	rt        *local.Runtime
	lis       net.Listener
	srv       *http.Server
	apiserver *apiserver.Manager
}

// newSourceWorkloads serves the forward proxy on lis (bound on loopback by New); changed
// reports a source's process changes to the reconcilers.
func newSourceWorkloads(cfg Config, lis net.Listener, pc proxyclient.Config, changed func(namespace, name string)) (*sourceWorkloads, reconciler.SourceWorkloads) {
	s := &sourceWorkloads{
		lis: lis,
		srv: &http.Server{Handler: proxyclient.Forward(pc), ReadHeaderTimeout: 10 * time.Second},
		rt: local.New(local.Config{
			DataDir: filepath.Join(cfg.DataDir, "sources"), WorkDir: cfg.WorkDir, Logger: cfg.Logger.With("component", "containersources"),
			DrainTimeout: -1, OnChange: changed,
		}),
	}
	return s, sourceruntime.NewLocal(s.rt, "http://"+lis.Addr().String())
}

// serve runs the forward proxy until close.
func (s *sourceWorkloads) serve() error {
	if err := s.srv.Serve(s.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sources' forward proxy: %w", err)
	}
	return nil
}

// newApiServerSources runs ApiServerSources over the store (storewatch), sending through
// the proxy; apiURL is the events' source.
func newApiServerSources(cfg Config, st storewatch.Store, apiURL func() string, pc proxyclient.Config, changed func(key string)) *apiserver.Manager {
	return apiserver.NewManager(storewatch.New(st, apiURL), apiserver.Options{
		Client:   proxyclient.New(pc),
		Logger:   cfg.Logger,
		OnChange: changed,
	})
}

// close stops every source's process and watches, then the forward proxy.
func (s *sourceWorkloads) close(ctx context.Context) {
	s.apiserver.Close()
	_ = s.rt.Close(ctx)
	_ = s.srv.Shutdown(ctx)
}

// proxyClientConfig says how Skiff's own senders in this process reach Knative addresses:
// the proxy's HTTP listener (Eventing.ProxyAddress, else the listener address proxies are
// told) and, for cluster-local names, its local listener (Eventing.LocalProxyAddress, else
// the local listener proxies are told; none without one). An unspecified IP is read as
// loopback.
func proxyClientConfig(cfg Config) proxyclient.Config {
	dialable := func(host string, port uint32) func() string {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
		return func() string { return addr }
	}
	pc := proxyclient.Config{Domain: cfg.Domain}
	if ev := cfg.Eventing; ev != nil {
		pc.ProxyAddress, pc.LocalProxyAddress = ev.ProxyAddress, ev.LocalProxyAddress
	}
	if pc.ProxyAddress == nil {
		pc.ProxyAddress = dialable(cmp.Or(cfg.ProxyListenAddress, xds.DefaultListenerAddress), cmp.Or(cfg.ProxyListenPort, xds.DefaultListenerPort))
	}
	if pc.LocalProxyAddress == nil && cfg.LocalListenPort != 0 {
		pc.LocalProxyAddress = dialable(cmp.Or(cfg.LocalListenAddress, xds.DefaultListenerAddress), cfg.LocalListenPort)
	}
	return pc
}
