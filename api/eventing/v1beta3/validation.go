package v1beta3

import (
	"context"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// requiredAttributes are the CloudEvent attributes every EventType must list, in the order
// Knative reports them missing (eventtype_validation.go, ValidateAttributes).
var requiredAttributes = []string{"type", "source", "specversion", "id"}

// SetDefaults does what Knative's webhook does to an EventType (eventtype_defaults.go):
// spec.reference gets the EventType's namespace when it names none.
func (et *EventType) SetDefaults(ctx context.Context) {
	et.APIVersion, et.Kind = GroupVersion, KindEventType
	ctx = admission.WithinParent(ctx, et.ObjectMeta)
	if et.Spec.Reference != nil && et.Spec.Reference.Namespace == "" {
		et.Spec.Reference.Namespace = admission.ParentMeta(ctx).Namespace
	}
}

// Validate checks an EventType as Knative's webhook does (eventtype_validation.go): the
// attributes type, source, specversion and id must be listed. Knative's webhook does not
// call CheckImmutableFields for EventType, so an update may change the spec here too.
func (et *EventType) Validate(ctx context.Context) *fielderr.Error {
	return et.Spec.Validate(ctx).ViaField("spec")
}

// Validate checks the spec's attributes.
func (s *EventTypeSpec) Validate(context.Context) *fielderr.Error {
	return s.validateAttributes().ViaField("attributes")
}

func (s *EventTypeSpec) validateAttributes() *fielderr.Error {
	listed := make(map[string]bool, len(s.Attributes))
	for _, a := range s.Attributes {
		listed[a.Name] = true
	}
	var missing []string
	for _, name := range requiredAttributes {
		if !listed[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fielderr.Missing(missing...)
	}
	return nil
}
