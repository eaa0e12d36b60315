package duck

import (
	"testing"
	"time"
)

func TestParseISO8601Duration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"PT0.2S": 200 * time.Millisecond, "PT10S": 10 * time.Second, "PT1M30S": 90 * time.Second,
		"PT2H": 2 * time.Hour, "P1D": 24 * time.Hour, "P1DT1S": 24*time.Hour + time.Second, "P2W": 14 * 24 * time.Hour,
	} {
		got, err := ParseISO8601Duration(in)
		if err != nil || got != want {
			t.Errorf("%s: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "P", "PT", "10s", "P1Y", "PT-1S", "PT1.S"} {
		if _, err := ParseISO8601Duration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
