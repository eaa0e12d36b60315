package eventfilter

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
)

// TestFiltersAgainstKnative runs testdata/filters-knative.jsonl: 1,000 random Trigger filters
// and events (attributes filters, and the subscriptions API dialects nested, CESQL among
// them) with whether Knative Eventing's own filters passed the event.
func TestFiltersAgainstKnative(t *testing.T) {
	f, err := os.Open("testdata/filters-knative.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		var c struct {
			Comment string            `json:"comment"`
			Filter  Filter            `json:"filter"`
			Event   map[string]string `json:"event"`
			Pass    bool              `json:"pass"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.Comment != "" {
			continue
		}
		n++
		compiled, err := Compile(c.Filter)
		if err != nil {
			t.Errorf("%s: %v", sc.Bytes(), err)
			continue
		}
		if got := compiled.Match(Event{Attributes: c.Event}); got != c.Pass {
			t.Errorf("filter %s\nevent %v: Match = %v, Knative %v", sc.Bytes(), c.Event, got, c.Pass)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 1000 {
		t.Fatalf("only %d cases", n)
	}
}
