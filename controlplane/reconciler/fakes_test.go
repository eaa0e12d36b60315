package reconciler

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// nopRuntime runs nothing: the reconcilers' writes to the store are what is under test.
type nopRuntime struct{}

func (nopRuntime) Scale(context.Context, *servingv1.Revision, int) error { return nil }
func (nopRuntime) Remove(context.Context, string, string) error          { return nil }
func (nopRuntime) State(string, string) runtime.State                    { return runtime.State{} }

// nopProxy accepts every route and cluster and acknowledges them at once.
type nopProxy struct{}

func (nopProxy) SetRoute(xds.Route) error                                 { return nil }
func (nopProxy) DeleteRoute(string, string)                               {}
func (nopProxy) SetCluster(xds.Cluster) error                             { return nil }
func (nopProxy) DeleteCluster(string)                                     {}
func (nopProxy) SetEndpoints(string, []xds.Endpoint) (string, error)      { return "1", nil }
func (nopProxy) WaitEndpointsAcked(context.Context, string, string) error { return nil }
func (nopProxy) RouteAcked(string, string) bool                           { return true }
func (nopProxy) RouteStatus(string, string) xds.RouteStatus {
	return xds.RouteStatus{Acked: true}
}
func (nopProxy) SetCertificate(xds.TLSCertificate) error        { return nil }
func (nopProxy) DeleteCertificate(string)                       {}
func (nopProxy) SetServiceCluster(string, string, uint32) error { return nil }

// startController runs the serving reconcilers over a fresh store with the fakes above
// until the test ends.
func startController(t *testing.T, workers int) (*store.Store, *Controller) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctrl := New(Config{Store: st, Runtime: nopRuntime{}, Proxy: nopProxy{}, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx, workers) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return st, ctrl
}

// recordingProxy is nopProxy that keeps the last route each SetRoute programmed.
type recordingProxy struct {
	nopProxy
	mu     sync.Mutex
	routes map[string]xds.Route
}

func (p *recordingProxy) SetRoute(r xds.Route) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.routes == nil {
		p.routes = map[string]xds.Route{}
	}
	p.routes[r.Namespace+"/"+r.Name] = r
	return nil
}

func (p *recordingProxy) route(key string) (xds.Route, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.routes[key]
	return r, ok
}
