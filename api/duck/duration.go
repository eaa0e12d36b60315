package duck

import (
	"fmt"
	"time"

	"github.com/rickb777/date/period"
)

// ParseISO8601Duration parses a delivery duration (backoffDelay, timeout) as Knative Eventing
// does, with the same library (github.com/rickb777/date/period): ISO-8601 periods such as
// PT0.2S, PT10S, P1DT1S, P2W, and also what that parser takes beyond them: years and months
// (approximated: P1M is about 30.4 days), fractions in any field (P1.5D), a comma as the
// decimal mark, and a sign (-PT1S is negative). zero reports a period of zero (PT0S, P0D),
// which Knative refuses as a timeout.
func ParseISO8601Duration(s string) (d time.Duration, zero bool, err error) {
	p, err := period.Parse(s)
	if err != nil {
		return 0, false, fmt.Errorf("%q is not an ISO-8601 duration (e.g. PT0.2S, PT10S, PT1M): %w", s, err)
	}
	d, _ = p.Duration()
	return d, p.IsZero(), nil
}
