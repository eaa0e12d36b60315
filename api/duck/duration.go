package duck

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// iso8601 matches the duration forms Knative accepts in delivery specs: PnDTnHnMn.nS and
// PnW (years and months have no fixed length and are refused).
var iso8601 = regexp.MustCompile(`^P(?:(\d+)W|(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?)$`)

// ParseISO8601Duration parses a duration like PT0.2S, PT10S, PT1M30S or P1D.
func ParseISO8601Duration(s string) (time.Duration, error) {
	m := iso8601.FindStringSubmatch(s)
	if m == nil || s == "P" || s == "PT" {
		return 0, fmt.Errorf("%q is not an ISO-8601 duration (e.g. PT0.2S, PT10S, PT1M)", s)
	}
	var d time.Duration
	add := func(v string, unit time.Duration) {
		if v == "" {
			return
		}
		f, _ := strconv.ParseFloat(v, 64)
		d += time.Duration(f * float64(unit))
	}
	add(m[1], 7*24*time.Hour)
	add(m[2], 24*time.Hour)
	add(m[3], time.Hour)
	add(m[4], time.Minute)
	add(m[5], time.Second)
	return d, nil
}
