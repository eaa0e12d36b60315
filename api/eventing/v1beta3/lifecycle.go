package v1beta3

import (
	"time"

	"github.com/skiff-dev/skiff/api/duck"
)

// Knative's EventType condition set (eventtype_lifecycle.go): Ready is happy when
// ReferenceExists is True, and otherwise takes ReferenceExists's status, reason and message.

// InitializeConditions sets every condition not yet reported to Unknown.
func (s *EventTypeStatus) InitializeConditions(now time.Time) {
	for _, t := range []duck.ConditionType{duck.ConditionReady, EventTypeConditionReferenceExists} {
		if s.GetCondition(t) == nil {
			s.MarkUnknown(t, "", "", now)
		}
	}
}

// MarkReferenceExists says the object in spec.reference exists.
func (s *EventTypeStatus) MarkReferenceExists(now time.Time) {
	s.setReferenceExists(duck.Condition{Type: EventTypeConditionReferenceExists, Status: duck.True}, now)
}

// MarkReferenceDoesNotExist says the object in spec.reference is not there.
func (s *EventTypeStatus) MarkReferenceDoesNotExist(now time.Time) {
	s.setReferenceExists(duck.Condition{Type: EventTypeConditionReferenceExists, Status: duck.False,
		Reason: ReasonResourceDoesNotExist, Message: MessageResourceDoesNotExist}, now)
}

// MarkReferenceNotSet says there is no spec.reference: True, with a reason, as in Knative.
func (s *EventTypeStatus) MarkReferenceNotSet(now time.Time) {
	s.setReferenceExists(duck.Condition{Type: EventTypeConditionReferenceExists, Status: duck.True,
		Reason: ReasonReferenceNotSet, Message: MessageReferenceNotSet}, now)
}

// MarkReferenceExistsUnknown says the reference could not be looked up.
func (s *EventTypeStatus) MarkReferenceExistsUnknown(reason, message string, now time.Time) {
	s.setReferenceExists(duck.Condition{Type: EventTypeConditionReferenceExists, Status: duck.Unknown,
		Reason: reason, Message: message}, now)
}

// setReferenceExists records c and recomputes Ready from it (knative.dev/pkg's
// recomputeHappiness: True without a reason, or the dependent's status, reason, message).
func (s *EventTypeStatus) setReferenceExists(c duck.Condition, now time.Time) {
	s.SetCondition(c, now)
	if c.Status == duck.True {
		s.MarkTrue(duck.ConditionReady, now)
		return
	}
	s.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: c.Status, Reason: c.Reason, Message: c.Message}, now)
}
