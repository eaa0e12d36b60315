package duck

import (
	"testing"
	"time"
)

// The periods Knative Eventing's DeliverySpec validation (pkg/apis/duck/v1/delivery_types.go,
// github.com/rickb777/date/period.Parse) accepts and refuses, with the duration its dispatcher
// (pkg/kncloudevents/retries.go, Period.Duration) waits.
func TestParseISO8601Duration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"PT0.2S": 200 * time.Millisecond, "PT10S": 10 * time.Second, "PT1M30S": 90 * time.Second,
		"PT2H": 2 * time.Hour, "P1D": 24 * time.Hour, "P1DT1S": 24*time.Hour + time.Second, "P2W": 14 * 24 * time.Hour,
		"PT1,5S": 1500 * time.Millisecond, "P1.5D": 36 * time.Hour, "-PT1S": -time.Second, "PT-1S": -time.Second,
		"PT1.S": time.Second, "PT.5S": 500 * time.Millisecond, "P1W2D": 9 * 24 * time.Hour, "+PT1S": time.Second,
		"P1M": 730*time.Hour + 29*time.Minute + 6*time.Second, "PT0S": 0,
	} {
		got, _, err := ParseISO8601Duration(in)
		if err != nil || got != want {
			t.Errorf("%s: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, zero := range []string{"PT0S", "P0D", "P0W"} {
		if _, z, err := ParseISO8601Duration(zero); err != nil || !z {
			t.Errorf("%s: zero = %v, %v; want a zero period", zero, z, err)
		}
	}
	for _, bad := range []string{"", "P", "PT", "10s", "pt1s", "PT1H1H", "1S", "PTXS"} {
		if _, _, err := ParseISO8601Duration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
