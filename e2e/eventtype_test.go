package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
)

// eventTypeYAML is an EventType as Knative's docs write one (eventing.knative.dev/v1beta3,
// the event registry), registering com.example.order.created on the Broker named broker.
const eventTypeYAML = `apiVersion: eventing.knative.dev/v1beta3
kind: EventType
metadata:
  name: %s
spec:
  reference:
    apiVersion: eventing.knative.dev/v1
    kind: Broker
    name: %s
  description: an order was placed
  attributes:
    - name: type
      value: com.example.order.created
      required: true
    - name: source
      value: /shop/orders
      required: true
    - name: specversion
      value: "1.0"
      required: true
    - name: id
      required: true
`

// Knative's EventType YAML is accepted as it is; its reconciler reports whether
// spec.reference exists (knative.dev/eventing pkg/reconciler/eventtype): an EventType on a
// Broker that exists is Ready, one on a missing Broker is not Ready with Knative's reason
// ResourceDoesNotExist, and becomes Ready once that Broker is created. A spec without
// Knative's required attributes is refused with its message and field paths.
func TestEventTypeReferenceExists(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	s := startSkiff(t, t.TempDir())
	s.apply(fmt.Sprintf(brokerYAML, "default") + "---\n" + fmt.Sprintf(eventTypeYAML, "order-created", "default"))
	s.waitReady("eventtype", "order-created", nil)
	if c := s.condition("eventtype", "order-created", "ReferenceExists"); c == nil || c.Status != duck.True {
		t.Errorf("ReferenceExists = %+v, want True", c)
	}

	s.apply(fmt.Sprintf(eventTypeYAML, "order-shipped", "shipping"))
	var ready *duck.Condition
	eventually(t, 30*time.Second, "EventType on a missing Broker reported not Ready", func() bool {
		ready = s.condition("eventtype", "order-shipped", duck.ConditionReady)
		return ready != nil && ready.Status == duck.False
	})
	if ready.Reason != "ResourceDoesNotExist" || ready.Message != "Resource in spec.reference does not exist" {
		t.Errorf("Ready = %+v, want False with Knative's ResourceDoesNotExist", ready)
	}
	if c := s.condition("eventtype", "order-shipped", "ReferenceExists"); c == nil || c.Status != duck.False || c.Reason != "ResourceDoesNotExist" {
		t.Errorf("ReferenceExists = %+v", c)
	}

	// Creating the Broker makes the waiting EventType Ready; deleting it makes it not Ready.
	s.apply(fmt.Sprintf(brokerYAML, "shipping"))
	eventually(t, 30*time.Second, "EventType Ready once its Broker is created", func() bool {
		ready = s.condition("eventtype", "order-shipped", duck.ConditionReady)
		return ready != nil && ready.Status == duck.True
	})
	if err := s.api.Delete(context.Background(), api.LookupKind("broker"), "default", "shipping"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "EventType not Ready after its Broker is deleted", func() bool {
		ready = s.condition("eventtype", "order-shipped", duck.ConditionReady)
		return ready != nil && ready.Status == duck.False && ready.Reason == "ResourceDoesNotExist"
	})

	// No reference: ReferenceExists True with reason ReferenceNotSet, and Ready.
	s.apply(`apiVersion: eventing.knative.dev/v1beta3
kind: EventType
metadata:
  name: unbound
spec:
  attributes: [{name: type}, {name: source}, {name: specversion}, {name: id}]
`)
	s.waitReady("eventtype", "unbound", nil)
	if c := s.condition("eventtype", "unbound", "ReferenceExists"); c == nil || c.Reason != "ReferenceNotSet" {
		t.Errorf("ReferenceExists = %+v, want True with ReferenceNotSet", c)
	}

	// A kind Skiff does not serve cannot be looked up: Unknown, ReferenceGetFailed.
	s.apply(`apiVersion: eventing.knative.dev/v1beta3
kind: EventType
metadata:
  name: elsewhere
spec:
  reference: {apiVersion: example.com/v1, kind: Thing, name: t}
  attributes: [{name: type}, {name: source}, {name: specversion}, {name: id}]
`)
	eventually(t, 30*time.Second, "EventType on an unserved kind reported Unknown", func() bool {
		ready = s.condition("eventtype", "elsewhere", duck.ConditionReady)
		return ready != nil && ready.Status == duck.Unknown && ready.Reason == "ReferenceGetFailed"
	})
	if !strings.HasPrefix(ready.Message, "Failed to get reference: ") {
		t.Errorf("Ready message %q", ready.Message)
	}

	err := s.tryApply(`apiVersion: eventing.knative.dev/v1beta3
kind: EventType
metadata:
  name: bad
spec:
  attributes: [{name: type, value: x}]
`)
	want := "missing field(s): spec.attributes.id, spec.attributes.source, spec.attributes.specversion"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("apply without required attributes: %v, want %q", err, want)
	}
}
