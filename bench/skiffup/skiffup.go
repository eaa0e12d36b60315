// Package skiffup starts `skiff up` in-process for the bench commands (the assembly in
// package up): control plane, local runtime, activator and gateway on loopback ports, talking
// real xDS, ext_proc and HTTP, in a temporary data dir with the bench's defaults.
package skiffup

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/eventing"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/eventing/broker"
	"github.com/skiff-dev/skiff/telemetry"
	"github.com/skiff-dev/skiff/up"
	"github.com/skiff-dev/skiff/wasm-filters/wasmbuild"
)

// Up is a running in-process `skiff up`.
type Up struct {
	API *apiclient.Client
	// HTTP is the gateway's listener (send requests here with a route's Host);
	// Admin is its admin endpoint (/stats, /clusters).
	HTTP, Admin string
	// BrokerIngress is the broker ingress's own listener (bypassing the proxy), when
	// Options.Eventing is set.
	BrokerIngress string

	stack        *up.Stack
	dataDir      string
	readyTimeout time.Duration
}

// Options select what the in-process skiff up runs.
type Options struct {
	// Autoscaler is the cluster-wide autoscaling; nil means Knative's defaults.
	Autoscaler *autoscaler.Config
	// Eventing runs brokers, with the cloudevents filter built from this checkout in the
	// gateway, as `skiff up` does.
	Eventing bool
	// TLS gives the gateway its TLS listener, with certificates from the local CA (see
	// Up.HTTPS and Up.CACertPath).
	TLS bool
	// DrainTimeout is how long a stopping instance keeps serving after leaving the proxy's
	// endpoints; 0 means 100ms (`skiff up`'s default is 1s).
	DrainTimeout time.Duration
	// MaxInstances bounds the local runtime's instances; 0 means its default.
	MaxInstances int
	// Telemetry, when set, is the control plane's and the gateway's (metrics, and spans
	// when it traces).
	Telemetry *telemetry.Telemetry
	// Admission are the settings the API defaults and validates with; nil means Knative's.
	Admission *config.Config
	// ScopedRoutes selects the scoped route layout (--xds-route-layout scoped).
	ScopedRoutes bool
	// ReadyTimeout bounds Apply's wait for the Services to be Ready; 0 means 2 minutes.
	ReadyTimeout time.Duration
}

// Start runs skiff up in a temporary data dir.
func Start(o Options) (*Up, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	dataDir, err := os.MkdirTemp("", "skiff-bench-")
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := controlplane.Config{DataDir: dataDir, WorkDir: root,
		APIAddress: "127.0.0.1:0", XDSAddress: "127.0.0.1:0", ExtProcAddress: "127.0.0.1:0",
		ProxyListenAddress: "127.0.0.1",
		DrainTimeout:       cmp.Or(o.DrainTimeout, 100*time.Millisecond), MaxInstances: o.MaxInstances,
		Autoscaler: o.Autoscaler, Logger: log, Telemetry: o.Telemetry, ScopedRoutes: o.ScopedRoutes, Admission: o.Admission}
	if o.TLS {
		cfg.HTTPSListenAddress, cfg.HTTPSListenPort = "127.0.0.1", 8443
	}
	if o.Eventing {
		mods, err := wasmbuild.Locate(context.Background(), wasmbuild.Options{
			Root: root, OutDir: filepath.Join(dataDir, "wasm"), Filters: []string{"cloudevents"},
		})
		if err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		m := mods["cloudevents"]
		cfg.Eventing = &controlplane.EventingConfig{
			IngressAddress:    "127.0.0.1:0",
			CloudEventsFilter: &xds.WasmFilter{Name: eventing.CloudEventsFilterName, Path: m.Path, SHA256: m.SHA256},
		}
	}
	stack, err := up.Start(context.Background(), up.Config{
		ControlPlane: cfg, AdminAddress: "127.0.0.1:0", NodeID: "bench",
		WasmCacheDir:            filepath.Join(os.TempDir(), "skiff-bench-wasm-cache"),
		ListenerAddressOverride: "127.0.0.1:0",
	})
	if err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	cp := stack.ControlPlane()
	u := &Up{API: apiclient.New(cp.APIAddr().String()), Admin: stack.AdminAddr(), stack: stack, dataDir: dataDir, readyTimeout: o.ReadyTimeout}
	if ing := cp.BrokerIngressAddr(); ing != nil {
		u.BrokerIngress = ing.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := stack.ListenerAddr(ctx, xds.ListenerName)
	if err != nil {
		u.Close()
		return nil, err
	}
	u.HTTP = addr.String()
	return u, nil
}

// Apply applies a (multi-document) manifest and waits until every Service in it is Ready.
func (u *Up) Apply(ctx context.Context, manifest string) error {
	services, err := u.Create(ctx, manifest)
	if err != nil {
		return err
	}
	return u.WaitReady(ctx, services)
}

// Create applies manifest (in namespace default) and returns the names of its Services,
// without waiting for them.
func (u *Up) Create(ctx context.Context, manifest string) ([]string, error) {
	docs, err := apiclient.ReadManifests("-", strings.NewReader(manifest))
	if err != nil {
		return nil, err
	}
	var services []string
	for _, d := range docs {
		res, err := u.API.Apply(ctx, d, "default")
		if err != nil {
			return nil, err
		}
		if res.Kind.Kind == "Service" {
			services = append(services, res.Name)
		}
	}
	return services, nil
}

// WaitReady waits for the Services named (in namespace default) to be Ready.
func (u *Up) WaitReady(ctx context.Context, services []string) error {
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(u.readyTimeout, 2*time.Minute))
	defer cancel()
	for _, name := range services {
		if _, err := apiclient.WaitReady(ctx, u.API, api.LookupKind("ksvc"), "default", name); err != nil {
			return err
		}
	}
	return nil
}

// HTTPS waits for the gateway's TLS listener (it comes with the first certificate) and
// returns its address.
func (u *Up) HTTPS(ctx context.Context) (string, error) {
	addr, err := u.stack.ListenerAddr(ctx, xds.HTTPSListenerName)
	if err != nil {
		return "", err
	}
	return addr.String(), nil
}

// CACertPath is the local CA that signs the TLS listener's certificates.
func (u *Up) CACertPath() string { return u.stack.ControlPlane().CACertPath() }

// DataDir is where this skiff up keeps its data (removed by Close).
func (u *Up) DataDir() string { return u.dataDir }

// EventingStats are the broker ingress and dispatcher counters.
func (u *Up) EventingStats() broker.Stats { return u.stack.ControlPlane().EventingStats() }

// Close stops everything and removes the data dir.
func (u *Up) Close() {
	_ = u.stack.Close()
	os.RemoveAll(u.dataDir)
}
