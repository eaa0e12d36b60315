package autoscaler

import (
	"sort"
	"strings"

	"github.com/skiff-dev/skiff/telemetry"
)

// Scales reports the state of every revision the KPA decides for, as Knative's autoscaler
// and KPA reconciler report theirs (telemetry.RegisterAutoscaler): the decider's desired
// scale, the scale asked of the runtime, the ready instances, excess burst capacity, panic
// mode and the scaling metric's averages and target. hpa-class and other revisions are
// left out, as Knative's KPA metrics leave them out.
func (a *Autoscaler) Scales() []telemetry.RevisionScale {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]telemetry.RevisionScale, 0, len(a.revs))
	for key, r := range a.revs {
		if r.spec.Class != KPA {
			continue
		}
		ns, name, _ := strings.Cut(key, "/")
		s := telemetry.RevisionScale{
			Revision:            telemetry.Revision{Namespace: ns, Name: name, Service: r.spec.Service, Configuration: r.spec.Configuration},
			RPS:                 r.spec.Metric == RPS,
			DesiredPods:         int64(max(r.desired, 0)),
			RequestedPods:       int64(r.out.DesiredScale),
			ActualPods:          int64(r.out.ActualScale),
			ExcessBurstCapacity: r.out.ExcessBurstCapacity,
			Panic:               r.out.Panic,
			Stable:              r.out.StableConcurrency,
			PanicValue:          r.out.PanicConcurrency,
			Target:              r.spec.TargetValue,
		}
		if s.RPS {
			s.Stable, s.PanicValue = r.out.StableRPS, r.out.PanicRPS
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}
