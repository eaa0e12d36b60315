package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/e2e/traffic"
)

func annotated(name string, annotations map[string]string, spec string) string {
	anns := ""
	for k, v := range annotations {
		anns += fmt.Sprintf("        %s: %q\n", k, v)
	}
	return fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %s
spec:
  template:
    metadata:
      annotations:
%s    spec:
%s      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/echo
`, name, anns, spec)
}

// load keeps conc requests in flight against host until stop is closed, counting non-200s.
func (s *skiff) load(host, path string, conc int, stop <-chan struct{}) (wait func() (ok, failed int64)) {
	return traffic.Load(s.http, host, path, conc, stop)
}

// A revision with no traffic goes to zero pods after the grace period; the next request
// is held by the proxy's activator through a cold start and answered 200.
func TestScaleToZeroAndColdStart(t *testing.T) {
	s := startSkiff(t, t.TempDir(), fastAutoscaler)
	s.apply(annotated("sleepy", map[string]string{"autoscaling.knative.dev/window": "6s"}, ""))
	s.waitReady("ksvc", "sleepy", nil)
	if code, r, body := s.get("sleepy.default.localhost", "/"); code != 200 || r.Revision != "sleepy-00001" {
		t.Fatalf("warm request: %d %s", code, body)
	}
	eventually(t, 40*time.Second, "sleepy-00001 scaled to zero", func() bool {
		r := s.revision("sleepy-00001")
		return replicas(r.Status.ActualReplicas) == 0 && replicas(r.Status.DesiredReplicas) == 0
	})
	rev := s.revision("sleepy-00001")
	if c := rev.Status.GetCondition(servingv1.RevisionConditionActive); c == nil || c.Reason != "NoTraffic" {
		t.Errorf("Active condition at zero: %+v", c)
	}
	if !rev.Status.IsReady() || rev.Status.Autoscaling == nil || rev.Status.Autoscaling.Mode != servingv1.ModeProxy {
		t.Errorf("at zero the revision stays Ready in proxy mode: %+v", rev.Status)
	}
	start := time.Now()
	code, r, body := s.get("sleepy.default.localhost", "/")
	if code != 200 || r.Revision != "sleepy-00001" {
		t.Fatalf("cold request: %d %s, want 200 from sleepy-00001", code, body)
	}
	t.Logf("cold start took %s", time.Since(start))
	if n := replicas(s.revision("sleepy-00001").Status.DesiredReplicas); n < 1 {
		t.Errorf("desired replicas after cold start = %d", n)
	}
}

// containerConcurrency 1 with one pod: 20 concurrent slow requests all succeed, and the app
// never has more than one in flight — the activator queues the rest, as queue-proxy would.
func TestContainerConcurrencyIsEnforced(t *testing.T) {
	s := startSkiff(t, t.TempDir(), fastAutoscaler)
	s.apply(annotated("single", map[string]string{
		"autoscaling.knative.dev/max-scale": "1", "autoscaling.knative.dev/min-scale": "1",
	}, "      containerConcurrency: 1\n"))
	s.waitReady("ksvc", "single", nil)
	s.get("single.default.localhost", "/?reset=1")
	var wg sync.WaitGroup
	var maxSeen, okN atomic.Int64
	for range 20 {
		wg.Go(func() {
			code, r, _ := s.get("single.default.localhost", "/?sleep=100")
			if code == 200 {
				okN.Add(1)
			}
			for {
				m := maxSeen.Load()
				if int64(r.MaxInFlight) <= m || maxSeen.CompareAndSwap(m, int64(r.MaxInFlight)) {
					break
				}
			}
		})
	}
	wg.Wait()
	if okN.Load() != 20 {
		t.Errorf("%d of 20 requests succeeded", okN.Load())
	}
	if maxSeen.Load() != 1 {
		t.Errorf("the app saw up to %d requests in flight, want 1", maxSeen.Load())
	}
}

// A sustained load of 30 concurrent requests on target 10 runs about 3 pods; a 10× burst
// panics the autoscaler (visible in status); when the load stops it scales back down.
func TestAutoscalingFollowsLoad(t *testing.T) {
	s := startSkiff(t, t.TempDir(), fastAutoscaler)
	s.apply(annotated("busy", map[string]string{
		"autoscaling.knative.dev/window":                        "6s",
		"autoscaling.knative.dev/target":                        "10",
		"autoscaling.knative.dev/target-utilization-percentage": "100",
		"autoscaling.knative.dev/min-scale":                     "1",
	}, ""))
	s.waitReady("ksvc", "busy", nil)

	stop := make(chan struct{})
	wait := s.load("busy.default.localhost", "/?sleep=200", 30, stop)
	// Let the stable window fill, then the scale must settle at 30/10 = 3 (±1).
	var inRange int
	eventually(t, 60*time.Second, "about 3 pods under 30 concurrent requests", func() bool {
		r := s.revision("busy-00001")
		d, a := replicas(r.Status.DesiredReplicas), replicas(r.Status.ActualReplicas)
		if d >= 2 && d <= 4 && a >= 2 && a <= 4 {
			inRange++
		} else {
			inRange = 0
		}
		return inRange >= 25 // about half a second in range
	})
	close(stop)
	if _, failed := wait(); failed > 0 {
		t.Errorf("%d requests failed under steady load", failed)
	}

	stop = make(chan struct{})
	wait = s.load("busy.default.localhost", "/?sleep=200", 300, stop)
	eventually(t, 30*time.Second, "panic mode on a 10× burst", func() bool {
		r := s.revision("busy-00001")
		return r.Status.Autoscaling != nil && r.Status.Autoscaling.Panic && replicas(r.Status.DesiredReplicas) >= 10
	})
	close(stop)
	if _, failed := wait(); failed > 0 {
		t.Errorf("%d requests failed in the burst", failed)
	}
	eventually(t, 60*time.Second, "back down to 1 pod after the load stops", func() bool {
		r := s.revision("busy-00001")
		return replicas(r.Status.DesiredReplicas) == 1 && replicas(r.Status.ActualReplicas) == 1
	})
}

// With the activator down, a warm serve-mode revision keeps serving (ext_proc is not in its
// path); a proxy-mode one gets Envoy's 500 (failure_mode_allow is false).
func TestActivatorOutage(t *testing.T) {
	s := startSkiff(t, t.TempDir(), fastAutoscaler)
	s.apply(annotated("warm", map[string]string{
		"autoscaling.knative.dev/target-burst-capacity": "0", "autoscaling.knative.dev/min-scale": "1",
	}, ""))
	s.apply(annotated("limited", map[string]string{"autoscaling.knative.dev/min-scale": "1"}, "      containerConcurrency: 1\n"))
	s.waitReady("ksvc", "warm", nil)
	s.waitReady("ksvc", "limited", nil)
	eventually(t, 20*time.Second, "warm in serve mode, limited in proxy mode", func() bool {
		w, l := s.revision("warm-00001").Status.Autoscaling, s.revision("limited-00001").Status.Autoscaling
		return w != nil && w.Mode == servingv1.ModeServe && l != nil && l.Mode == servingv1.ModeProxy &&
			s.cp.RouteAcked("default", "warm")
	})
	s.cp.StopExtProc()
	for range 10 {
		if code, r, body := s.get("warm.default.localhost", "/"); code != 200 || r.Revision != "warm-00001" {
			t.Fatalf("serve mode without the activator: %d %s", code, body)
		}
	}
	if code, _, body := s.get("limited.default.localhost", "/"); code != http.StatusInternalServerError {
		t.Errorf("proxy mode without the activator: %d %s, want 500", code, body)
	}
}

// containerConcurrency 10 with 50 slow requests always in flight through the gateway settles
// at Knative's ceil(50 / (10 × 70%)) = 8 instances. The requests extproc holds while the
// instances are saturated count as demand beside the proxy's own; its pokes decide nothing
// once instances are wanted (they used to halve the demand, holding 4 instances).
// Each request sleeps 3s so that a client's gap between two requests (milliseconds, more on a
// loaded machine) keeps the measured concurrency above 49, where ceil(49/7) would be 7.
func TestContainerConcurrencyTenSettlesAtEight(t *testing.T) {
	s := startSkiff(t, t.TempDir(), fastAutoscaler)
	s.apply(annotated("cc10", map[string]string{"autoscaling.knative.dev/window": "6s"}, "      containerConcurrency: 10\n"))
	s.waitReady("ksvc", "cc10", nil)

	stop := make(chan struct{})
	wait := s.load("cc10.default.localhost", "/?sleep=3000", 50, stop)
	defer func() {
		close(stop)
		if _, failed := wait(); failed > 0 {
			t.Errorf("%d requests failed", failed)
		}
	}()
	// Settled: out of panic mode, with the stable window full of the load.
	var last servingv1.Revision
	eventually(t, 60*time.Second, "8 instances on a stable concurrency of 50, out of panic", func() bool {
		last = s.revision("cc10-00001")
		a := last.Status.Autoscaling
		return a != nil && !a.Panic && a.StableConcurrency >= 49 && a.StableConcurrency <= 51 &&
			replicas(last.Status.DesiredReplicas) == 8 && replicas(last.Status.ActualReplicas) == 8
	})
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if r := s.revision("cc10-00001"); replicas(r.Status.DesiredReplicas) != 8 {
			t.Fatalf("settled at 8, then desired %d: %+v", replicas(r.Status.DesiredReplicas), r.Status.Autoscaling)
		}
	}
}

// A Service of Knative's hpa class scales on its instances' CPU, measured from their processes
// the way the Kubernetes HPA would measure pods: CPU-bound requests on a 50% target take it
// above one instance (max-scale 2 bounds it).
func TestHPAClassScalesOnCPULocally(t *testing.T) {
	s := startSkiff(t, t.TempDir(), fastAutoscaler)
	s.apply(annotated("cpu", map[string]string{
		"autoscaling.knative.dev/class":     "hpa.autoscaling.knative.dev",
		"autoscaling.knative.dev/metric":    "cpu",
		"autoscaling.knative.dev/target":    "50",
		"autoscaling.knative.dev/max-scale": "2",
	}, ""))
	s.waitReady("ksvc", "cpu", nil)
	if r := s.revision("cpu-00001"); replicas(r.Status.DesiredReplicas) != 1 {
		t.Fatalf("idle: desired %d, want the initial 1", replicas(r.Status.DesiredReplicas))
	}
	stop := make(chan struct{})
	wait := s.load("cpu.default.localhost", "/?cpu=200", 2, stop)
	eventually(t, 30*time.Second, "the hpa class to scale above one instance on CPU", func() bool {
		r := s.revision("cpu-00001")
		return replicas(r.Status.DesiredReplicas) >= 2 && replicas(r.Status.ActualReplicas) >= 2
	})
	close(stop)
	if _, failed := wait(); failed > 0 {
		t.Errorf("%d requests failed", failed)
	}
	if r := s.revision("cpu-00001"); replicas(r.Status.DesiredReplicas) > 2 {
		t.Errorf("desired %d, want at most max-scale 2", replicas(r.Status.DesiredReplicas))
	}
}
