package autoscaler

import (
	"context"
	"math"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// ResourceUsage reports the resource use of every ready instance, by revision key
// ("namespace/revision") and an instance ID stable for the instance's life (a process ID, say).
// The hpa class needs it in `skiff up`; in a cluster the Kubernetes HPA reads metrics itself.
type ResourceUsage func(ctx context.Context) (map[string]map[string]runtime.InstanceUsage, error)

// The Kubernetes HorizontalPodAutoscaler's defaults (k8s.io/kubernetes pkg/controller/podautoscaler,
// autoscaling/v2 defaulting), which the hpa class follows in `skiff up`.
const (
	// hpaDefaultCPUTarget is the CPU utilization an HPA with no metric aims for, in percent.
	hpaDefaultCPUTarget = 80
	// hpaTolerance: a usage ratio within 10% of 1 changes nothing.
	hpaTolerance = 0.1
	// hpaDownStabilization is the default scale-down stabilization window.
	hpaDownStabilization = 300 * time.Second
	// hpaPolicyPeriod is the period of the default scale-up policies: at most max(4 pods,
	// 100%) more per 15s.
	hpaPolicyPeriod = 15 * time.Second
	hpaPolicyPods   = 4
	// mebibyte is the unit of a memory target.
	mebibyte = 1 << 20
)

// hpaScaler scales an hpa-class revision on its instances' CPU (or memory) the way the
// Kubernetes HPA controller scales a Deployment (replica_calculator.go and horizontal.go):
// desired = ceil(measured instances × usage / target), nothing within a 10% tolerance, the
// stabilization windows (the window annotation, else 0s up and 300s down), at most
// max(4, 100%) more instances per 15s, and min-scale (at least 1) to max-scale.
type hpaScaler struct {
	replicas int
	last     map[string]cpuSample // instance → its previous CPU sample
	recs     []recommendation     // unstabilized recommendations, newest last
	ups      []scaleEvent         // scale-ups within the policy period
	usage    float64              // the last measured utilization (%), or average MiB
}

type cpuSample struct {
	at      time.Time
	seconds float64
}

type recommendation struct {
	at time.Time
	n  int
}

type scaleEvent struct {
	at    time.Time
	added int
}

func newHPAScaler(spec *Spec) *hpaScaler {
	return &hpaScaler{replicas: spec.InitialScale, last: map[string]cpuSample{}}
}

// decide takes one measurement of the revision's instances and updates the scale.
func (h *hpaScaler) decide(now time.Time, spec *Spec, instances map[string]runtime.InstanceUsage) {
	if h.replicas == 0 {
		return // Kubernetes does not autoscale a Deployment scaled to zero
	}
	measured, ratio, ok := h.measure(now, spec, instances)
	rec := h.replicas
	if ok && math.Abs(ratio-1) > hpaTolerance {
		rec = int(math.Ceil(ratio * float64(measured)))
	}
	up, down := time.Duration(0), hpaDownStabilization
	if spec.Window > 0 {
		up, down = spec.Window, spec.Window
	}
	// Stabilize: no higher than the least recommendation of the up window, no lower than the
	// greatest of the down window.
	upRec, downRec := rec, rec
	keep := h.recs[:0]
	for _, r := range h.recs {
		if r.at.After(now.Add(-up)) {
			upRec = min(upRec, r.n)
		}
		if r.at.After(now.Add(-down)) {
			downRec = max(downRec, r.n)
		}
		if r.at.After(now.Add(-max(up, down))) {
			keep = append(keep, r)
		}
	}
	h.recs = append(keep, recommendation{at: now, n: rec})
	next := min(max(h.replicas, upRec), downRec)

	// Scale-up policy over the last period.
	added := 0
	ups := h.ups[:0]
	for _, e := range h.ups {
		if e.at.After(now.Add(-hpaPolicyPeriod)) {
			ups = append(ups, e)
			added += e.added
		}
	}
	h.ups = ups
	start := h.replicas - added
	next = min(next, max(start+hpaPolicyPods, 2*start))

	lo, hi := max(spec.MinScale, 1), spec.MaxScale
	next = max(next, lo)
	if hi > 0 {
		next = min(next, hi)
	}
	if next > h.replicas {
		h.ups = append(h.ups, scaleEvent{at: now, added: next - h.replicas})
	}
	h.replicas = next
}

// measure returns how many instances were measured and the ratio of their usage to the target.
func (h *hpaScaler) measure(now time.Time, spec *Spec, instances map[string]runtime.InstanceUsage) (int, float64, bool) {
	metric, target := spec.Metric, spec.Target
	if target <= 0 {
		metric, target = CPU, hpaDefaultCPUTarget // Kubernetes' default metric
	}
	seen := make(map[string]cpuSample, len(instances))
	n := 0
	var used, requested float64
	for id, u := range instances {
		seen[id] = cpuSample{at: now, seconds: u.CPUSeconds}
		switch metric {
		case CPU:
			prev, ok := h.last[id]
			if !ok || !now.After(prev.at) || u.CPUSeconds < prev.seconds {
				continue // a rate needs two samples of the same process
			}
			used += (u.CPUSeconds - prev.seconds) / now.Sub(prev.at).Seconds()
			req := u.CPURequest
			if req <= 0 {
				req = spec.CPURequest
			}
			if req <= 0 {
				req = 1 // no request: measure against one core
			}
			requested += req
			n++
		case Memory:
			used += u.MemoryBytes
			requested += target * mebibyte
			n++
		}
	}
	h.last = seen
	if n == 0 || requested == 0 {
		return 0, 0, false
	}
	if metric == CPU {
		h.usage = 100 * used / requested
		return n, h.usage / target, true
	}
	h.usage = used / float64(n) / mebibyte
	return n, used / requested, true
}
