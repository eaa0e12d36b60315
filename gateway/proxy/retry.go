package proxy

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/upstream"
)

// retryBufferLimit is how much of a request body is kept to replay it on a
// retry (Envoy's default per-connection buffer limit is 1 MiB).
const retryBufferLimit = 1 << 20

// errPerTryTimeout is the cancellation cause of an attempt that exceeded
// the retry policy's per_try_timeout.
var errPerTryTimeout = errors.New("per try timeout")

// errPerTryIdleTimeout is the cancellation cause of an attempt whose upstream sent nothing
// for the retry policy's per_try_idle_timeout.
var errPerTryIdleTimeout = errors.New("per try idle timeout")

// failure classifies an attempt's error the way Envoy's router does.
type failure struct {
	retryOn []string // retry_on conditions that cover it
	reply   *localReply
}

func classify(ctx context.Context, err error) failure {
	var ce *upstream.ConnectError
	switch {
	case errors.Is(context.Cause(ctx), errPerTryTimeout), errors.Is(context.Cause(ctx), errPerTryIdleTimeout):
		return failure{retryOn: []string{"5xx", "gateway-error", "reset"}, reply: &localReply{http.StatusGatewayTimeout, BodyTimeout, "UT"}}
	case errors.As(err, &ce):
		return failure{retryOn: []string{"connect-failure", "reset", "5xx", "gateway-error"}, reply: &localReply{http.StatusServiceUnavailable, BodyConnectFailure, "UF"}}
	case strings.Contains(err.Error(), "REFUSED_STREAM"):
		return failure{retryOn: []string{"refused-stream", "reset", "5xx", "gateway-error"}, reply: &localReply{http.StatusServiceUnavailable, BodyRefusedStream, "UR"}}
	default:
		return failure{retryOn: []string{"reset", "5xx", "gateway-error"}, reply: &localReply{http.StatusServiceUnavailable, BodyReset, "UC"}}
	}
}

// retriableStatus reports whether policy p retries a response with status
// code. A nil policy retries nothing.
func retriableStatus(p *route.RetryPolicy, code int) bool {
	switch {
	case p == nil:
		return false
	case p.On["5xx"] && code >= 500:
		return true
	case p.On["gateway-error"] && (code == 502 || code == 503 || code == 504):
		return true
	case p.On["retriable-status-codes"] && p.RetriableStatusCodes[code]:
		return true
	}
	return false
}

// retryCovers reports whether policy p retries a failure matching any of
// the retry_on conditions conds. A nil policy retries nothing.
func retryCovers(p *route.RetryPolicy, conds []string) bool {
	if p == nil {
		return false
	}
	for _, c := range conds {
		if p.On[c] {
			return true
		}
	}
	return false
}

// retrier is one request's retry budget: the route's policy, the retries
// left, and the cluster whose retry circuit breaker bounds them.
type retrier struct {
	policy  *route.RetryPolicy
	left    int
	retried bool
	body    *replayBody
	cl      *upstream.Cluster
}

func newRetrier(policy *route.RetryPolicy, cl *upstream.Cluster) *retrier {
	r := &retrier{policy: policy, cl: cl}
	if policy != nil {
		r.left = policy.NumRetries
	}
	return r
}

// take reports whether an attempt whose outcome the policy covers is
// retried: retries are left, the body can be replayed, and the cluster's
// retry circuit breaker admits one. A true result holds a retry slot until
// wait returns.
func (r *retrier) take(covered bool) bool {
	if !covered || r.left <= 0 || !r.body.replayable() || !r.cl.AcquireRetry() {
		return false
	}
	r.left--
	r.retried = true
	r.cl.Counter("upstream_rq_retry").Inc()
	return true
}

// wait backs off before the retry that follows attempt n and releases the
// retry slot take acquired.
func (r *retrier) wait(ctx context.Context, n int) error {
	err := backoff(ctx, r.policy, n)
	r.cl.ReleaseRetry()
	return err
}

// backoff waits Envoy's fully jittered exponential backoff before retry n+1.
func backoff(ctx context.Context, p *route.RetryPolicy, n int) error {
	ceiling := p.BaseInterval << min(n, 10)
	if ceiling > p.MaxInterval || ceiling <= 0 {
		ceiling = p.MaxInterval
	}
	if ceiling <= 0 {
		return nil
	}
	t := time.NewTimer(rand.N(ceiling) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// replayBody keeps the first bytes of a request body so that a retry can
// send the body again. Each attempt reads through its own reader; starting
// a new attempt invalidates the previous one.
type replayBody struct {
	mu       sync.Mutex
	src      io.ReadCloser
	buf      []byte
	limit    int
	overflow bool
	srcErr   error
	gen      int
}

var errStaleAttempt = errors.New("request body belongs to a newer attempt")

func (b *replayBody) replayable() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

func (b *replayBody) attempt() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	return &attemptReader{b: b, gen: b.gen}
}

type attemptReader struct {
	b   *replayBody
	gen int
	off int
}

func (a *attemptReader) Read(p []byte) (int, error) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.gen != b.gen {
		return 0, errStaleAttempt
	}
	if a.off < len(b.buf) {
		n := copy(p, b.buf[a.off:])
		a.off += n
		return n, nil
	}
	if b.srcErr != nil {
		return 0, b.srcErr
	}
	n, err := b.src.Read(p)
	if n > 0 && !b.overflow {
		if len(b.buf)+n <= b.limit {
			b.buf = append(b.buf, p[:n]...)
			a.off += n
		} else {
			b.overflow = true
		}
	}
	if err != nil {
		b.srcErr = err
	}
	return n, err
}

func (a *attemptReader) Close() error { return nil }
