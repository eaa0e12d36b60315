package kube

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkReconcile1000Services measures how long `skiff controller` takes to bring 1,000
// Services, created while it was down, to Ready against a real kube-apiserver + etcd: each
// needs a Configuration, Route, Revision, Deployment and Service written, an EndpointSlice from
// the test kubelet, and status written on four objects. Baseline, same run: creating the 1,000
// Services with 16 concurrent clients (the API server's write cost alone).
//
//	go test -run '^$' -bench Reconcile1000 -benchtime 1x ./e2e/kube/
func BenchmarkReconcile1000Services(b *testing.B) {
	const n = 1000
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
				for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
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
		runController(b, c, "bench")
		eventually(b, 20*time.Minute, "1000 Services Ready", func() bool {
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
			return readyN == n
		})
		took := time.Since(start)
		b.StopTimer()
		b.ReportMetric(created.Seconds(), "create-1000-s")
		b.ReportMetric(took.Seconds(), "ready-1000-s")
		b.ReportMetric(float64(n)/took.Seconds(), "services/s")
	}
}
