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

	"github.com/skiff-dev/skiff/controlplane/proxyclient"
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
func newSourceWorkloads(cfg Config, lis net.Listener, proxyAddr func() string, changed func(namespace, name string)) (*sourceWorkloads, reconciler.SourceWorkloads) {
	s := &sourceWorkloads{
		lis: lis,
		srv: &http.Server{Handler: proxyclient.Forward(proxyclient.Config{Domain: cfg.Domain, ProxyAddress: proxyAddr}), ReadHeaderTimeout: 10 * time.Second},
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
func newApiServerSources(cfg Config, st storewatch.Store, apiURL, proxyAddr func() string, changed func(key string)) *apiserver.Manager {
	return apiserver.NewManager(storewatch.New(st, apiURL), apiserver.Options{
		Client:   proxyclient.New(proxyclient.Config{Domain: cfg.Domain, ProxyAddress: proxyAddr}),
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

// proxyListenAddress is the proxy's HTTP listener as a local client dials it: the
// listener address proxies are told, an unspecified IP read as loopback.
func proxyListenAddress(cfg Config) func() string {
	host := cmp.Or(cfg.ProxyListenAddress, xds.DefaultListenerAddress)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(cmp.Or(cfg.ProxyListenPort, xds.DefaultListenerPort))))
	return func() string { return addr }
}
