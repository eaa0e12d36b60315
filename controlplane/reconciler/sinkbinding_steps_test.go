package reconciler

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	sourcesv1 "github.com/skiff-dev/skiff/api/sources/v1"
)

// TestSubjectSelector tests the resolve step of the SinkBinding reconcile: which Services a
// subject selects. A subject names one object or selects by labels, within its namespace,
// as Knative's tracker.Reference does (an empty one matches any: the reconcile offers only
// the binding's namespace's Services); only Knative Services can be bound here.
func TestSubjectSelector(t *testing.T) {
	svc := func(ns, name string, lbls map[string]string) *servingv1.Service {
		s := &servingv1.Service{}
		s.Namespace, s.Name, s.Labels = ns, name, lbls
		return s
	}
	ksvc := func(r sourcesv1.Reference) sourcesv1.Reference {
		r.APIVersion, r.Kind = servingv1.GroupVersion, servingv1.KindService
		return r
	}
	a := svc("default", "a", map[string]string{"app": "x"})
	b := svc("default", "b", map[string]string{"app": "y"})
	other := svc("other", "a", map[string]string{"app": "x"})
	for _, tc := range []struct {
		name       string
		subj       sourcesv1.Reference
		want       []bool // a, b, other
		wantReason string
		wantMsg    string
	}{
		{name: "by name", subj: ksvc(sourcesv1.Reference{Namespace: "default", Name: "a"}), want: []bool{true, false, false}},
		{name: "by name, no namespace", subj: ksvc(sourcesv1.Reference{Name: "a"}), want: []bool{true, false, true}},
		{name: "by selector", subj: ksvc(sourcesv1.Reference{Namespace: "default", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}}),
			want: []bool{true, false, false}},
		{name: "empty selector selects all", subj: ksvc(sourcesv1.Reference{Namespace: "default", Selector: &metav1.LabelSelector{}}),
			want: []bool{true, true, false}},
		{name: "a Deployment", subj: sourcesv1.Reference{APIVersion: "apps/v1", Kind: "Deployment", Name: "a"},
			wantReason: "SubjectUnsupported", wantMsg: "spec.subject: apps/v1 Deployment cannot be bound here: use a Knative Service (serving.knative.dev/v1)"},
		{name: "a Service of another group", subj: sourcesv1.Reference{APIVersion: "v1", Kind: "Service", Name: "a"},
			wantReason: "SubjectUnsupported", wantMsg: "spec.subject: v1 Service cannot be bound here"},
		{name: "bad selector", subj: ksvc(sourcesv1.Reference{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}}),
			wantReason: "InvalidSelector", wantMsg: `spec.subject.selector: "Near" is not a valid label selector operator`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			selects, reason, err := subjectSelector(tc.subj)
			if tc.wantReason != "" {
				if err == nil || reason != tc.wantReason || !strings.HasPrefix(err.Error(), tc.wantMsg) {
					t.Fatalf("got %q %v, want %q %q", reason, err, tc.wantReason, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range []*servingv1.Service{a, b, other} {
				if got := selects(s); got != tc.want[i] {
					t.Errorf("selects(%s/%s) = %v, want %v", s.Namespace, s.Name, got, tc.want[i])
				}
			}
		})
	}
}

// TestMarkSinkBindingAvailable tests the status step of the SinkBinding reconcile.
func TestMarkSinkBindingAvailable(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name                    string
		bound                   int
		errs                    []error
		sinkErr                 error
		wantStatus              duck.ConditionStatus
		wantReason, wantMessage string
	}{
		{name: "bound", bound: 2, wantStatus: duck.True},
		{name: "nothing selected", wantStatus: duck.False, wantReason: "SubjectMissing", wantMessage: "spec.subject selects no Service"},
		{name: "a Service bound elsewhere", bound: 1, errs: []error{errors.New(`service b is already bound by sinkbinding "x"`)},
			wantStatus: duck.False, wantReason: "BindingFailed", wantMessage: `service b is already bound by sinkbinding "x"`},
		{name: "sink not resolved", sinkErr: errors.New("not found"), wantStatus: duck.Unknown, wantReason: "SinkNotResolved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st sourcesv1.SourceStatus
			st.MarkTrue(sourceConditionSinkProvided, now)
			markSinkBindingAvailable(&st, tc.bound, tc.errs, tc.sinkErr, now)
			got := st.GetCondition(sinkBindingConditionAvailable)
			if got == nil || got.Status != tc.wantStatus || got.Reason != tc.wantReason || got.Message != tc.wantMessage {
				t.Fatalf("BindingAvailable = %+v, want %s %q %q", got, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
			if ready := st.GetCondition(duck.ConditionReady); ready == nil || ready.Status != tc.wantStatus {
				t.Fatalf("Ready = %+v, want %s", ready, tc.wantStatus)
			}
		})
	}
}
