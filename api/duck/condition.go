// Package duck holds the status vocabulary shared by every Skiff resource:
// Knative's conditions, observed generation and addressable status.
package duck

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionType names a condition, e.g. "Ready".
type ConditionType string

// ConditionReady is the top-level condition every resource reports.
const ConditionReady ConditionType = "Ready"

// ConditionStatus is "True", "False" or "Unknown", as in Kubernetes.
type ConditionStatus string

// The three values a condition's status may take.
const (
	True    ConditionStatus = "True"
	False   ConditionStatus = "False"
	Unknown ConditionStatus = "Unknown"
)

// Condition is one observation about a resource, shaped like knative.dev/pkg/apis.Condition.
type Condition struct {
	Type               ConditionType   `json:"type"`
	Status             ConditionStatus `json:"status"`
	Severity           string          `json:"severity,omitempty"`
	LastTransitionTime metav1.Time     `json:"lastTransitionTime,omitempty"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
}

// Status is the part of status every Knative resource has.
type Status struct {
	ObservedGeneration int64             `json:"observedGeneration,omitempty"`
	Conditions         []Condition       `json:"conditions,omitempty"`
	Annotations        map[string]string `json:"annotations,omitempty"`
}

// GetCondition returns the condition of type t, or nil.
func (s *Status) GetCondition(t ConditionType) *Condition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

// IsReady reports whether the Ready condition is True.
func (s *Status) IsReady() bool {
	c := s.GetCondition(ConditionReady)
	return c != nil && c.Status == True
}

// SetCondition records c, keeping the old transition time when the status did not change,
// so that re-reconciling an unchanged resource does not rewrite its status.
func (s *Status) SetCondition(c Condition, now time.Time) {
	if old := s.GetCondition(c.Type); old != nil {
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
		}
		*old = c
		return
	}
	c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	s.Conditions = append(s.Conditions, c)
	slices.SortFunc(s.Conditions, func(a, b Condition) int {
		switch {
		case a.Type == b.Type:
			return 0
		case a.Type < b.Type:
			return -1
		}
		return 1
	})
}

// MarkTrue sets condition t to True.
func (s *Status) MarkTrue(t ConditionType, now time.Time) {
	s.SetCondition(Condition{Type: t, Status: True}, now)
}

// MarkFalse sets condition t to False with a reason and message.
func (s *Status) MarkFalse(t ConditionType, reason, message string, now time.Time) {
	s.SetCondition(Condition{Type: t, Status: False, Severity: "", Reason: reason, Message: message}, now)
}

// MarkUnknown sets condition t to Unknown with a reason and message.
func (s *Status) MarkUnknown(t ConditionType, reason, message string, now time.Time) {
	s.SetCondition(Condition{Type: t, Status: Unknown, Reason: reason, Message: message}, now)
}

// Addressable is Knative's status.address.
type Addressable struct {
	URL string `json:"url,omitempty"`
}
