package v1

import (
	"context"
	"strings"
	"testing"

	eventingv1 "github.com/skiff-dev/skiff/api/eventing/v1"
)

func TestPingSourceValidation(t *testing.T) {
	ok := PingSource{}
	ok.Name = "ping"
	ok.Spec.Schedule = "*/2 * * * *"
	ok.Spec.Timezone = "Europe/Paris"
	ok.Spec.Data = `{"hello":"world"}`
	ok.Spec.Sink = eventingv1.Destination{Ref: &eventingv1.KReference{Kind: "Broker", Name: "default"}}
	ok.Namespace = "default"
	ok.Spec.Sink = eventingv1.Destination{Ref: &eventingv1.KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default"}}
	ok.SetDefaults(context.Background())
	if errs := ok.Validate(context.Background()); errs != nil {
		t.Fatalf("valid PingSource refused: %v", errs)
	}
	for field, mutate := range map[string]func(*PingSource){
		"spec.schedule":   func(p *PingSource) { p.Spec.Schedule = "every minute" },
		"spec.timezone":   func(p *PingSource) { p.Spec.Timezone = "Mars/Olympus" },
		"spec.dataBase64": func(p *PingSource) { p.Spec.DataBase64 = "aGk=" },
		"spec.sink":       func(p *PingSource) { p.Spec.Sink = eventingv1.Destination{} },
	} {
		p := ok
		p.Spec.Sink.Ref = &eventingv1.KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default"}
		mutate(&p)
		if err := p.Validate(context.Background()); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}
