package source

import (
	"context"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// SendWithRetries sends ev with c as Knative's source adapters do: each attempt bounded by
// timeout, network errors, 5xx, 408 and 429 tried again up to retries more times after a
// wait that starts at delay and doubles; any other answer ends it. It returns nil once the
// sink accepts, else the last attempt's result, or ctx's error while waiting.
func SendWithRetries(ctx context.Context, c cloudevents.Client, ev cloudevents.Event, retries int, delay, timeout time.Duration) error {
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			case <-t.C:
			}
			delay *= 2
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		res := c.Send(actx, ev)
		cancel()
		if cloudevents.IsACK(res) {
			return nil
		}
		last = res
		var hr *cehttp.Result
		if errors.As(res, &hr) && !(hr.StatusCode >= 500 || hr.StatusCode == 408 || hr.StatusCode == 429) {
			break // the sink refused it: trying again would not help
		}
	}
	return last
}
