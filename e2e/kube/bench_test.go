package kube

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkReconcile1000Services measures how long `skiff controller` takes to bring 1,000
// Services, created while it was down, to Ready against a real kube-apiserver + etcd: each
// needs a Configuration, Route, Revision, Deployment and Service written, an EndpointSlice from
// the test kubelet, status written on four objects, and its route ACKed by a connected
// `skiff gateway` (Ready means a proxy serves it). Baseline, same run: creating the 1,000
// Services with 16 concurrent clients (the API server's write cost alone).
//
//	go test -run '^$' -bench Reconcile1000 -benchtime 1x ./e2e/kube/
//
// SKIFF_BENCH_SERVICES=N runs it with N Services instead.
func BenchmarkReconcile1000Services(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SKIFF_BENCH_SERVICES")); err == nil && v > 0 {
		n = v // a smaller run, to try the benchmark out
	}
	for range b.N {
		b.StopTimer()
		c := startCluster(b)
		startKubelet(b, c.kube)
		ctx := context.Background()
		tmpl := decodeObjects(b, []byte(mustRead(b, "testdata/hello.yaml")))[0]
		start := time.Now()
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 16 {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
					u := tmpl.DeepCopy()
					u.SetName(fmt.Sprintf("svc-%04d", i))
					if _, err := c.dyn.Resource(servicesGVR).Namespace("default").Create(ctx, u, metav1.CreateOptions{}); err != nil {
						b.Errorf("create: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		created := time.Since(start)
		b.StartTimer()
		start = time.Now()
		ctrl, _ := runController(b, c, "bench")
		runGateway(b, ctrl.XDSAddr().String()) // Ready means a proxy has ACKed the route
		lastLog := time.Now()
		eventually(b, benchDeadline(), fmt.Sprintf("%d Services Ready", n), func() bool {
			l, err := c.dyn.Resource(servicesGVR).Namespace("default").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false
			}
			readyN := 0
			for i := range l.Items {
				if ready(&l.Items[i]) {
					readyN++
				}
			}
			if time.Since(lastLog) > 30*time.Second {
				lastLog = time.Now()
				b.Logf("%s: %d of %d Services Ready", time.Since(start).Round(time.Second), readyN, n)
			}
			return readyN == n
		})
		took := time.Since(start)
		b.StopTimer()
		b.ReportMetric(created.Seconds(), "create-s")
		b.ReportMetric(took.Seconds(), "ready-s")
		b.ReportMetric(float64(n)/took.Seconds(), "services/s")
	}
}

// benchDeadline is how long the benchmark waits for every Service (SKIFF_BENCH_DEADLINE
// overrides the 20 minutes, for trying a small run).
func benchDeadline() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SKIFF_BENCH_DEADLINE")); err == nil && d > 0 {
		return d
	}
	return 20 * time.Minute
}
