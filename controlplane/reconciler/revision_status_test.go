package reconciler

import (
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/runtime"
)

// TestMarkRevisionScaled tests the status step of the Revision reconcile on its own: the
// conditions Knative's revision reconciler reports for what the deployment does
// (knative/serving pkg/reconciler/revision/table_test.go: "deploy ... ready", "pod
// failing", "scaled to zero" / NoTraffic, "activating").
func TestMarkRevisionScaled(t *testing.T) {
	now := time.Unix(1000, 0)
	type cond struct {
		status duck.ConditionStatus
		reason string
	}
	for _, tc := range []struct {
		name    string
		state   runtime.State
		desired int
		// zeroInitial: initial-scale and min-scale 0.
		zeroInitial bool
		want        map[duck.ConditionType]cond
	}{
		{name: "ready", state: runtime.State{Desired: 1, Ready: 1}, desired: 1, want: map[duck.ConditionType]cond{
			duck.ConditionReady:                           {duck.True, ""},
			servingv1.RevisionConditionActive:             {duck.True, ""},
			servingv1.RevisionConditionResourcesAvailable: {duck.True, ""},
			servingv1.RevisionConditionContainerHealthy:   {duck.True, ""},
		}},
		{name: "cannot run", state: runtime.State{Failed: true, Reason: "ImageNotFound", Message: "no such image"}, desired: 1, want: map[duck.ConditionType]cond{
			duck.ConditionReady:                           {duck.False, "ImageNotFound"},
			servingv1.RevisionConditionResourcesAvailable: {duck.False, "ImageNotFound"},
		}},
		{name: "crashing, not ready", state: runtime.State{Desired: 1, Reason: "ExitCode1", Message: "panic: boom"}, desired: 1, want: map[duck.ConditionType]cond{
			duck.ConditionReady:                         {duck.False, "ExitCode1"},
			servingv1.RevisionConditionContainerHealthy: {duck.False, "ExitCode1"},
		}},
		{name: "scaled to zero", desired: 0, want: map[duck.ConditionType]cond{
			duck.ConditionReady:                           {duck.Unknown, "Initializing"},
			servingv1.RevisionConditionActive:             {duck.False, "NoTraffic"},
			servingv1.RevisionConditionResourcesAvailable: {duck.Unknown, "Deploying"},
		}},
		{name: "initial-scale 0: available with no pod", desired: 0, zeroInitial: true, want: map[duck.ConditionType]cond{
			duck.ConditionReady:                           {duck.True, ""},
			servingv1.RevisionConditionActive:             {duck.False, "NoTraffic"},
			servingv1.RevisionConditionResourcesAvailable: {duck.True, ""},
		}},
		{name: "activating", state: runtime.State{Desired: 1}, desired: 1, want: map[duck.ConditionType]cond{
			duck.ConditionReady:                           {duck.Unknown, "Deploying"},
			servingv1.RevisionConditionActive:             {duck.Unknown, "Activating"},
			servingv1.RevisionConditionResourcesAvailable: {duck.Unknown, "Deploying"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// As an earlier reconcile left it: deploying.
			var st servingv1.RevisionStatus
			st.MarkUnknown(servingv1.RevisionConditionResourcesAvailable, "Deploying", "", now)
			markRevisionScaled(&st, tc.state, tc.desired, tc.zeroInitial, servingv1.ModeServe, autoscaler.Decision{StableConcurrency: 1.234}, now)
			if *st.ActualReplicas != int32(tc.state.Ready) || *st.DesiredReplicas != int32(tc.desired) {
				t.Errorf("replicas %d/%d, want %d/%d", *st.ActualReplicas, *st.DesiredReplicas, tc.state.Ready, tc.desired)
			}
			if st.Autoscaling.Mode != servingv1.ModeServe || st.Autoscaling.StableConcurrency != 1.23 {
				t.Errorf("autoscaling %+v, want mode Serve, stable concurrency 1.23", st.Autoscaling)
			}
			for typ, w := range tc.want {
				got := st.GetCondition(typ)
				if got == nil || got.Status != w.status || got.Reason != w.reason {
					t.Errorf("condition %s = %+v, want status %s reason %q", typ, got, w.status, w.reason)
				}
			}
		})
	}
}
