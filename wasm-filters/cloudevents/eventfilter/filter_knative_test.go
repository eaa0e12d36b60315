package eventfilter

import (
	"testing"

	"github.com/skiff-dev/skiff/internal/recorded"
)

// TestFiltersAgainstKnative runs testdata/filters-knative.jsonl: 1,000 random Trigger filters
// and events (attributes filters, and the subscriptions API dialects nested, CESQL and the
// expressions Knative skips among them) with whether Knative Eventing's own filters passed
// the event.
func TestFiltersAgainstKnative(t *testing.T) {
	type filterCase struct {
		Filter Filter            `json:"filter"`
		Event  map[string]string `json:"event"`
		Pass   bool              `json:"pass"`
	}
	for _, c := range recorded.Cases[filterCase](t, "testdata/filters-knative.jsonl", 1000) {
		compiled, err := Compile(c.Filter)
		if err != nil {
			t.Errorf("filter %+v: %v", c.Filter, err)
			continue
		}
		if got := compiled.Match(Event{Attributes: c.Event}); got != c.Pass {
			t.Errorf("filter %+v\nevent %v: Match = %v, Knative %v", c.Filter, c.Event, got, c.Pass)
		}
	}
}
