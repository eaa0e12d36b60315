// Package skiffup starts `skiff up` in-process for the bench commands: control plane, local
// runtime, activator and gateway on loopback ports, talking real xDS, ext_proc and HTTP.
package skiffup

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/controlplane"
	"github.com/skiff-dev/skiff/controlplane/apiclient"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/gateway"
)

// Up is a running in-process `skiff up`.
type Up struct {
	API *apiclient.Client
	// HTTP is the gateway's listener (send requests here with a route's Host);
	// Admin is its admin endpoint (/stats, /clusters).
	HTTP, Admin string

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	dataDir string
}

// Start runs skiff up in a temporary data dir; a nil a means Knative's autoscaler defaults.
func Start(a *autoscaler.Config) (*Up, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	dataDir, err := os.MkdirTemp("", "skiff-bench-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the gateway's admin endpoint
	if err != nil {
		return nil, err
	}
	admin := l.Addr().String()
	l.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cp, err := controlplane.New(controlplane.Config{DataDir: dataDir, WorkDir: root,
		APIAddress: "127.0.0.1:0", XDSAddress: "127.0.0.1:0", ExtProcAddress: "127.0.0.1:0",
		ProxyListenAddress: "127.0.0.1", ProxyStatsURLs: []string{"http://" + admin},
		DrainTimeout: 100 * time.Millisecond, Autoscaler: a, Logger: log})
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Config{ADSAddress: cp.XDSAddr().String(), NodeID: "bench", NodeCluster: "bench",
		AdminAddress: admin, Logger: log, ListenerAddressOverride: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &Up{API: apiclient.New(cp.APIAddr().String()), Admin: admin, cancel: cancel, dataDir: dataDir}
	u.wg.Go(func() { _ = cp.Run(ctx) })
	u.wg.Go(func() { _ = gw.Run(ctx) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if addr, ok := gw.ListenerAddr(xds.ListenerName); ok {
			u.HTTP = addr.String()
			return u, nil
		}
		if time.Now().After(deadline) {
			u.Close()
			return nil, fmt.Errorf("the gateway did not get its listener from xDS")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Apply applies a (multi-document) manifest and waits until every Service in it is Ready.
func (u *Up) Apply(ctx context.Context, manifest string) error {
	docs, err := apiclient.ReadManifests("-", strings.NewReader(manifest))
	if err != nil {
		return err
	}
	var services []string
	for _, d := range docs {
		res, err := u.API.Apply(ctx, d, "default")
		if err != nil {
			return err
		}
		if res.Kind.Kind == "Service" {
			services = append(services, res.Name)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, name := range services {
		if _, err := apiclient.WaitReady(ctx, u.API, api.LookupKind("ksvc"), "default", name); err != nil {
			return err
		}
	}
	return nil
}

// Close stops everything and removes the data dir.
func (u *Up) Close() {
	u.cancel()
	u.wg.Wait()
	os.RemoveAll(u.dataDir)
}
