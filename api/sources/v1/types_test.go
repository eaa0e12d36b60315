package v1

import (
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
	ok.SetDefaults()
	if errs := ok.Validate(); len(errs) != 0 {
		t.Fatalf("valid PingSource refused: %v", errs.ToAggregate())
	}
	for field, mutate := range map[string]func(*PingSource){
		"spec.schedule":   func(p *PingSource) { p.Spec.Schedule = "every minute" },
		"spec.timezone":   func(p *PingSource) { p.Spec.Timezone = "Mars/Olympus" },
		"spec.dataBase64": func(p *PingSource) { p.Spec.DataBase64 = "aGk=" },
		"spec.sink":       func(p *PingSource) { p.Spec.Sink = eventingv1.Destination{} },
	} {
		p := ok
		p.Spec.Sink.Ref = &eventingv1.KReference{Kind: "Broker", Name: "default"}
		mutate(&p)
		if agg := p.Validate().ToAggregate(); agg == nil || !strings.Contains(agg.Error(), field) {
			t.Errorf("%s: got %v", field, agg)
		}
	}
}
