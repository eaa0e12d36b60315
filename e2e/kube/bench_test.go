package kube

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/controlplane/kube"
)

// BenchmarkReconcile1000Services measures how long `skiff controller` takes to bring 1,000
// Services, created while it was down, to Ready against a real kube-apiserver + etcd: each
// needs a Configuration, Route, Revision, Deployment and Service written, an EndpointSlice from
// the test kubelet, status written on four objects, and its route ACKed by a connected
// `skiff gateway` (Ready means a proxy serves it). Baseline, same run: creating the 1,000
// Services with 16 concurrent clients (the API server's write cost alone).
//
//	SKIFF_KUBE_BIN=$PWD/bin/kube go test -run '^$' -bench Reconcile1000 -benchtime 1x ./e2e/kube/
//
// It reports, from the controller's start: when the first Service was Ready (first-ready-s),
// half of them (p50-ready-s) and all (ready-s); and the API writes the controller made per
// Service (writes/svc, leader election's Lease renewals not counted), with a table of them by
// resource and verb in the log, and the CPU each process used. A second baseline, before the
// controller starts, measures how many status writes a second the API server takes from 16
// bare clients (bare-status-writes/s), and what the controller's writes would take at that
// rate with no controller at all (bare-writes-floor-s). SKIFF_BENCH_SERVICES=N runs it with N Services instead.
func BenchmarkReconcile1000Services(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SKIFF_BENCH_SERVICES")); err == nil && v > 0 {
		n = v // a smaller run, to try the benchmark out
	}
	for range b.N {
		b.StopTimer()
		c := startCluster(b)
		startKubelet(b, c.kube)
		ctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		tmpl := decodeObjects(b, []byte(mustRead(b, "testdata/hello.yaml")))[0]
		start := time.Now()
		// The baselines' client is not rate limited (the cluster's shared one allows 200
		// requests a second, which would measure the limiter, not the server).
		bare := rest.CopyConfig(c.rest)
		bare.QPS = -1
		dyn := dynamic.NewForConfigOrDie(bare)
		objs := make([]*unstructured.Unstructured, n)
		parallel(n, func(i int) error {
			u := tmpl.DeepCopy()
			u.SetName(fmt.Sprintf("svc-%04d", i))
			var err error
			objs[i], err = dyn.Resource(servicesGVR).Namespace("default").Create(ctx, u, metav1.CreateOptions{})
			return err
		}, b)
		created := time.Since(start)

		// The API server's floor: status writes alone, as the controller makes them (the
		// whole object through the status subresource), from 16 clients with nothing else
		// running, three per Service, the last putting back the empty status.
		start = time.Now()
		parallel(n, func(i int) error {
			u := objs[i]
			for j, st := range []map[string]any{{"observedGeneration": int64(-1)}, {"observedGeneration": int64(-2)}, {}} {
				u = u.DeepCopy()
				u.Object["status"] = st
				var err error
				if u, err = dyn.Resource(servicesGVR).Namespace("default").UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
					return fmt.Errorf("status write %d: %w", j, err)
				}
			}
			return nil
		}, b)
		statusRate := float64(3*n) / time.Since(start).Seconds()

		// Each Service's Ready time comes from a watch, so the bench adds no polling load.
		readyAt := newReadyTimes()
		f := dynamicinformer.NewDynamicSharedInformerFactory(c.dyn, 0)
		inf := f.ForResource(servicesGVR).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { readyAt.see(o.(*unstructured.Unstructured)) },
			UpdateFunc: func(_, o any) { readyAt.see(o.(*unstructured.Unstructured)) },
		})
		f.Start(ctx.Done())
		cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
		b.Cleanup(func() { cancel(); f.Shutdown() })

		writes := &writeCounter{byKind: map[string]int{}}
		cpu0 := processCPU(c)
		b.StartTimer()
		start = time.Now()
		readyAt.start(start)
		ctrl, _ := runControllerWith(b, c, "bench", func(cfg *kube.Config) {
			rc := rest.CopyConfig(cfg.Rest)
			rc.Wrap(writes.wrap)
			cfg.Rest = rc
		})
		runGateway(b, ctrl.XDSAddr().String()) // Ready means a proxy has ACKed the route
		if file := os.Getenv("SKIFF_BENCH_APISERVER_PROFILE"); file != "" {
			go profileAPIServer(ctx, b, c, file)
		}
		lastLog := time.Now()
		eventually(b, benchDeadline(), fmt.Sprintf("%d Services Ready", n), func() bool {
			readyN := readyAt.count()
			if time.Since(lastLog) > 10*time.Second {
				lastLog = time.Now()
				b.Logf("%s: %d of %d Services Ready", time.Since(start).Round(time.Second), readyN, n)
			}
			return readyN == n
		})
		b.StopTimer()
		cpu := processCPU(c)
		b.Logf("Watches open on kube-apiserver at the end, by resource (every process's):\n%s", openWatches(ctx, c))
		times := readyAt.sorted()
		b.ReportMetric(created.Seconds(), "create-s")
		b.ReportMetric(times[0].Seconds(), "first-ready-s")
		b.ReportMetric(times[len(times)/2].Seconds(), "p50-ready-s")
		b.ReportMetric(times[len(times)-1].Seconds(), "ready-s")
		b.ReportMetric(float64(n)/times[len(times)-1].Seconds(), "services/s")
		total, table := writes.report()
		b.ReportMetric(float64(total)/float64(n), "writes/svc")
		b.ReportMetric(statusRate, "bare-status-writes/s")
		b.ReportMetric(float64(total)/statusRate, "bare-writes-floor-s")
		b.Logf("API writes by the controller until all %d Services were Ready (per Service):\n%s", n, table)
		var sb strings.Builder
		for _, name := range slices.Sorted(maps.Keys(cpu)) {
			used := cpu[name] - cpu0[name]
			fmt.Fprintf(&sb, "  %-40s %6.1f s\n", name, used.Seconds())
			b.ReportMetric(used.Seconds(), name+"-cpu-s")
		}
		b.Logf("CPU used from the controller's start until all were Ready, by process:\n%s", sb.String())
	}
}

// profileAPIServer saves a 30-second CPU profile of kube-apiserver into file (its
// /debug/pprof, on by default), to see what the controller's writes cost it.
func profileAPIServer(ctx context.Context, b *testing.B, c *cluster, file string) {
	raw, err := c.kube.Discovery().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", "30").Timeout(time.Minute).DoRaw(ctx)
	if err == nil {
		err = os.WriteFile(file, raw, 0o644)
	}
	if err != nil {
		b.Logf("kube-apiserver profile: %v", err)
	}
}

// openWatches lists the watches kube-apiserver is serving, by resource, from its
// apiserver_longrunning_requests metric: every write is sent to each watch of its resource.
func openWatches(ctx context.Context, c *cluster) string {
	raw, err := c.kube.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("  (metrics: %v)", err)
	}
	var sb strings.Builder
	for line := range strings.Lines(string(raw)) {
		if !strings.HasPrefix(line, "apiserver_longrunning_requests{") || !strings.Contains(line, `verb="WATCH"`) {
			continue
		}
		labels, value, _ := strings.Cut(strings.TrimPrefix(line, "apiserver_longrunning_requests"), " ")
		if v := strings.TrimSpace(value); v != "0" {
			fmt.Fprintf(&sb, "  %-6s %s\n", v, labels)
		}
	}
	return sb.String()
}

// parallel runs do(i) for i in [0, n) from 16 goroutines, failing b on the first error.
func parallel(n int, do func(i int) error, b *testing.B) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := do(int(i)); err != nil {
					b.Errorf("%v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// processCPU is the CPU time each process of the run has used so far: the cluster's, and this
// test process (the controller, the gateway and the stand-in kubelet) as "test".
func processCPU(c *cluster) map[string]time.Duration {
	out := map[string]time.Duration{"test": skiffup.SelfCPU()}
	for name, pid := range c.pids {
		if d, err := skiffup.ProcessCPU(pid); err == nil {
			out[name] = d
		}
	}
	return out
}

// readyTimes records when each Service was first seen Ready.
type readyTimes struct {
	mu    sync.Mutex
	t0    time.Time
	ready map[string]time.Duration
}

func newReadyTimes() *readyTimes { return &readyTimes{ready: map[string]time.Duration{}} }

func (r *readyTimes) start(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t0 = t
}

func (r *readyTimes) see(u *unstructured.Unstructured) {
	if !ready(u) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ready[u.GetName()]; !ok && !r.t0.IsZero() {
		r.ready[u.GetName()] = time.Since(r.t0)
	}
}

func (r *readyTimes) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ready)
}

func (r *readyTimes) sorted() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for _, d := range r.ready {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// writeCounter counts the API requests that write (create, update, patch, delete), by
// resource and verb, through the controller's client.
type writeCounter struct {
	mu     sync.Mutex
	byKind map[string]int
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[req.Method]
		if verb == "" && req.Method == http.MethodGet {
			// Reads, listed apart: informers' lists and watches, and any direct GET.
			verb = "(read) get"
			switch q := req.URL.Query(); {
			case q.Get("watch") == "true":
				verb = "(read) watch"
			case !strings.Contains(strings.TrimPrefix(resourceOf(req.URL.Path), "/"), "/") && len(strings.Split(strings.Trim(req.URL.Path, "/"), "/"))%2 == 1:
				verb = "(read) list"
			}
		}
		if verb != "" {
			w.mu.Lock()
			w.byKind[resourceOf(req.URL.Path)+" "+verb]++
			w.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// report returns the writes made for the Services (Lease renewals apart) and a table of all.
func (w *writeCounter) report() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range w.byKind {
			if !yield(k) {
				return
			}
		}
	})
	total := 0
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "  %-40s %6d\n", k, w.byKind[k])
		if !strings.HasPrefix(k, "leases") && !strings.Contains(k, "(read)") {
			total += w.byKind[k]
		}
	}
	fmt.Fprintf(&sb, "  %-40s %6d\n", "total (without leases)", total)
	return total, sb.String()
}

// resourceOf is the resource (and subresource) an API path names:
// /apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/{sub} → "resource/sub".
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) > 0 && parts[0] == "api":
		parts = parts[min(2, len(parts)):]
	case len(parts) > 0 && parts[0] == "apis":
		parts = parts[min(3, len(parts)):]
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		return path
	case 1, 2:
		return parts[0]
	}
	return parts[0] + "/" + parts[2]
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// benchDeadline is how long the benchmark waits for every Service (SKIFF_BENCH_DEADLINE
// overrides the 20 minutes, for trying a small run).
func benchDeadline() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SKIFF_BENCH_DEADLINE")); err == nil && d > 0 {
		return d
	}
	return 20 * time.Minute
}
