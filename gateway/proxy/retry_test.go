package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
)

func policy(on ...string) *route.RetryPolicy {
	p := &route.RetryPolicy{On: map[string]bool{}, NumRetries: 1, RetriableStatusCodes: map[int]bool{409: true}}
	for _, c := range on {
		p.On[c] = true
	}
	return p
}

// TestRetriableStatus covers which upstream response codes each retry_on
// condition retries (Envoy's router: 5xx, gateway-error,
// retriable-status-codes).
func TestRetriableStatus(t *testing.T) {
	tests := []struct {
		name string
		p    *route.RetryPolicy
		code int
		want bool
	}{
		{"no policy", nil, 503, false},
		{"5xx retries 500", policy("5xx"), 500, true},
		{"5xx retries 503", policy("5xx"), 503, true},
		{"5xx does not retry 404", policy("5xx"), 404, false},
		{"gateway-error retries 502", policy("gateway-error"), 502, true},
		{"gateway-error retries 504", policy("gateway-error"), 504, true},
		{"gateway-error does not retry 500", policy("gateway-error"), 500, false},
		{"retriable-status-codes retries a listed code", policy("retriable-status-codes"), 409, true},
		{"retriable-status-codes ignores other codes", policy("retriable-status-codes"), 503, false},
		{"listed code without the condition", policy("reset"), 409, false},
		{"connect-failure does not retry responses", policy("connect-failure"), 503, false},
	}
	for _, tt := range tests {
		if got := retriableStatus(tt.p, tt.code); got != tt.want {
			t.Errorf("%s: retriableStatus(%d) = %v, want %v", tt.name, tt.code, got, tt.want)
		}
	}
}

// TestClassifyAndCover covers how an attempt's failure is classified (local
// reply, response flag) and which retry_on conditions retry it.
func TestClassifyAndCover(t *testing.T) {
	perTry, cancel := context.WithCancelCause(context.Background())
	cancel(errPerTryTimeout)
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		code     int
		flag     string
		covers   []string // retry_on conditions that retry it
		notCover []string
	}{
		{"per try timeout", perTry, context.Canceled, http.StatusGatewayTimeout, "UT",
			[]string{"5xx", "gateway-error", "reset"}, []string{"connect-failure", "refused-stream"}},
		{"connect failure", context.Background(), &upstream.ConnectError{Host: "h", Err: errors.New("refused")}, http.StatusServiceUnavailable, "UF",
			[]string{"connect-failure", "reset", "5xx", "gateway-error"}, []string{"refused-stream", "retriable-status-codes"}},
		{"refused stream", context.Background(), errors.New("http2: stream error: REFUSED_STREAM"), http.StatusServiceUnavailable, "UR",
			[]string{"refused-stream", "reset", "5xx", "gateway-error"}, []string{"connect-failure"}},
		{"reset", context.Background(), io.ErrUnexpectedEOF, http.StatusServiceUnavailable, "UC",
			[]string{"reset", "5xx", "gateway-error"}, []string{"connect-failure", "refused-stream", "retriable-status-codes"}},
	}
	for _, tt := range tests {
		f := classify(tt.ctx, tt.err)
		if f.reply.code != tt.code || f.reply.flag != tt.flag {
			t.Errorf("%s: reply %d %s, want %d %s", tt.name, f.reply.code, f.reply.flag, tt.code, tt.flag)
		}
		for _, c := range tt.covers {
			if !retryCovers(policy(c), f.retryOn) {
				t.Errorf("%s: retry_on %s does not retry it", tt.name, c)
			}
		}
		for _, c := range tt.notCover {
			if retryCovers(policy(c), f.retryOn) {
				t.Errorf("%s: retry_on %s retries it", tt.name, c)
			}
		}
		if retryCovers(nil, f.retryOn) {
			t.Errorf("%s: retried without a retry policy", tt.name)
		}
	}
}

func testCluster(t *testing.T, maxRetries uint32) (*upstream.Cluster, *stats.Store) {
	t.Helper()
	s := stats.NewStore()
	m := upstream.NewManager(s, upstream.StaticSecrets{})
	t.Cleanup(m.Close)
	raw := &clusterv3.Cluster{
		Name:            "c",
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRetries: wrapperspb.UInt32(maxRetries)}}},
	}
	if err := m.ApplyClusters(map[string]*clusterv3.Cluster{"c": raw}); err != nil {
		t.Fatal(err)
	}
	return m.Get("c"), s
}

// TestRetrierTake covers the decision to retry a covered failure: it needs
// retries left in the route's budget, a replayable request body and a slot
// under the cluster's max_retries breaker; each retry is counted.
func TestRetrierTake(t *testing.T) {
	overflowed := &replayBody{src: io.NopCloser(strings.NewReader("xx")), limit: 1}
	if _, err := io.ReadAll(overflowed.attempt()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		policy     *route.RetryPolicy
		numRetries int
		covered    bool
		body       *replayBody
		maxRetries uint32
		want       []bool // successive take results
	}{
		{"no policy", nil, 0, true, nil, 3, []bool{false}},
		{"not covered", policy("5xx"), 2, false, nil, 3, []bool{false}},
		{"budget of two", policy("5xx"), 2, true, nil, 3, []bool{true, true, false}},
		{"breaker open", policy("5xx"), 2, true, nil, 0, []bool{false}},
		{"body past the replay buffer", policy("5xx"), 2, true, overflowed, 3, []bool{false}},
		{"buffered body", policy("5xx"), 1, true, &replayBody{src: io.NopCloser(strings.NewReader("x")), limit: 10}, 3, []bool{true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, s := testCluster(t, tt.maxRetries)
			if tt.policy != nil {
				tt.policy.NumRetries = tt.numRetries
			}
			r := newRetrier(tt.policy, cl)
			r.body = tt.body
			retries := 0
			for i, want := range tt.want {
				got := r.take(tt.covered)
				if got != want {
					t.Fatalf("take %d = %v, want %v", i+1, got, want)
				}
				if got {
					retries++
					if err := r.wait(context.Background(), i); err != nil {
						t.Fatalf("wait: %v", err)
					}
				}
			}
			if v, _ := s.Value("cluster.c.upstream_rq_retry"); v != int64(retries) {
				t.Errorf("upstream_rq_retry = %d, want %d", v, retries)
			}
			if r.retried != (retries > 0) {
				t.Errorf("retried = %v after %d retries", r.retried, retries)
			}
		})
	}
}

// TestBackoff: the wait before a retry ends when the request's context
// does, and a policy without intervals does not wait.
func TestBackoff(t *testing.T) {
	if err := backoff(context.Background(), &route.RetryPolicy{}, 3); err != nil {
		t.Fatalf("backoff without intervals: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	long := &route.RetryPolicy{BaseInterval: time.Hour, MaxInterval: time.Hour}
	if err := backoff(ctx, long, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("backoff with a cancelled request = %v, want context.Canceled", err)
	}
}
