package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/upstream"
)

// roundTrip is the router's upstream request: it picks hosts, enforces the
// circuit breakers, and retries per the route's retry policy.
func (cm *ConnectionManager) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	ri := infoFrom(ctx)
	cl := ri.cluster
	retry := newRetrier(ri.route.Retry, cl)
	if retry.left > 0 && req.Body != nil && req.Body != http.NoBody {
		retry.body = &replayBody{src: req.Body, limit: retryBufferLimit}
	}
	var tried []*upstream.Host
	lbc := upstream.LBContext{Headers: req.Header}
	if st := filter.StateFromContext(ctx); st != nil {
		// Dynamic metadata set by filters (e.g. ext_proc's envoy.lb) steers
		// an override_host load balancing policy.
		lbc.Metadata = st.DynamicMetadata()
	}
	for attempt := 0; ; attempt++ {
		if !cl.AcquireRequest() {
			return nil, &localReply{http.StatusServiceUnavailable, BodyOverflow, "UO"}
		}
		host, err := cl.PickFor(lbc, tried)
		if err != nil {
			cl.ReleaseRequest()
			return nil, &localReply{http.StatusServiceUnavailable, BodyNoHealthyUpstream, "UH"}
		}
		tried = append(tried, host)
		ri.host = host
		resp, actx, err := cm.attempt(req, cl, host, retry.body)
		switch {
		case err == nil:
			cl.CountResponse(host, resp.StatusCode)
			if !retry.take(retriableStatus(retry.policy, resp.StatusCode)) {
				if retry.retried {
					cl.Counter("upstream_rq_retry_success").Inc()
				}
				return resp, nil
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		case ri.badBody.Load():
			// Not the upstream's fault and not retriable: errorHandler answers 400.
			return nil, err
		case ctx.Err() != nil:
			// Route timeout or downstream cancellation; errorHandler tells which.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				cl.CountResponse(host, http.StatusGatewayTimeout)
			}
			return nil, err
		default:
			f := classify(actx, err)
			if errors.Is(context.Cause(actx), errPerTryIdleTimeout) {
				cl.Counter("upstream_rq_per_try_idle_timeout").Inc()
			} else if f.reply.flag == "UT" {
				cl.Counter("upstream_rq_per_try_timeout").Inc()
			}
			if !retry.take(retryCovers(retry.policy, f.retryOn)) {
				if f.reply.flag == "UT" {
					cl.Counter("upstream_rq_timeout").Inc()
				}
				cl.CountResponse(host, f.reply.code)
				cm.opts.Logger.Debug("upstream request failed", "cluster", cl.Name, "host", host.Address, "error", err)
				return nil, f.reply
			}
		}
		if err := retry.wait(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// attempt sends one upstream request to host. On success the response body
// is wrapped so the request's accounting ends when the body is closed. It
// also returns the attempt's context so errors can be classified.
func (cm *ConnectionManager) attempt(req *http.Request, cl *upstream.Cluster, host *upstream.Host, body *replayBody) (*http.Response, context.Context, error) {
	ri := infoFrom(req.Context())
	ctx, cancel := context.WithCancelCause(req.Context())
	// phase is 0 while waiting for headers, 1 once they arrived, 2 once a
	// per-try timeout fired first.
	var phase atomic.Int32
	var perTry, idle *time.Timer
	p := ri.route.Retry
	if p != nil && p.PerTryTimeout > 0 {
		perTry = time.AfterFunc(p.PerTryTimeout, func() {
			if phase.CompareAndSwap(0, 2) {
				cancel(errPerTryTimeout)
			}
		})
	}
	if p != nil && p.PerTryIdleTimeout > 0 {
		// Envoy's per_try_idle_timeout: before the response starts it ends the attempt as
		// the per-try timeout does (504, UT); after, it resets the stream, which here is
		// cancelling the attempt so the body's read fails and the response is cut.
		idle = time.AfterFunc(p.PerTryIdleTimeout, func() {
			phase.CompareAndSwap(0, 2) // before the headers: the attempt timed out
			cancel(errPerTryIdleTimeout)
		})
	}
	// A shallow copy with its own URL: the attempt changes only the URL's host, Host and
	// Body, and no attempt writes the header map ReverseProxy already cloned (a deep
	// Clone here was one more copy of every header per request).
	out := req.WithContext(ctx)
	u := *req.URL
	out.URL = &u
	out.URL.Host = host.Address
	if ri.route.AutoHostRewrite {
		out.Host = host.Address
	}
	if body != nil {
		out.Body = body.attempt()
		out.GetBody = nil
	}
	done := cl.StartRequest(host)
	start := time.Now()
	resp, err := cl.Transport(req.ProtoMajor).RoundTrip(out)
	if perTry != nil {
		perTry.Stop()
	}
	if idle != nil {
		idle.Reset(p.PerTryIdleTimeout) // the headers were activity
	}
	if !phase.CompareAndSwap(0, 1) && err == nil {
		// The per-try timeout won the race with the response headers.
		resp.Body.Close()
		resp, err = nil, errPerTryTimeout
	}
	var ce *upstream.ConnectError
	if err == nil || !errors.As(err, &ce) {
		cl.CountRequest(host)
	}
	if err != nil {
		if idle != nil {
			idle.Stop()
		}
		done()
		cl.ReleaseRequest()
		cancel(err)
		return nil, ctx, err
	}
	ri.serviceTime = time.Since(start)
	finish := func() {
		if idle != nil {
			idle.Stop()
		}
		done()
		cl.ReleaseRequest()
		cancel(nil)
	}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection is no longer a request: the idle timeout stops.
		if idle != nil {
			idle.Stop()
		}
		resp.Body = &trackedRWBody{ReadWriteCloser: rwc, done: finish}
	} else {
		tb := &trackedBody{ReadCloser: resp.Body, done: finish}
		if idle != nil {
			tb.read = func() { idle.Reset(p.PerTryIdleTimeout) }
		}
		resp.Body = tb
	}
	return resp, ctx, nil
}

// trackedBody calls done once, when the body is closed or fully read, and read (if set)
// after every read that returned data.
type trackedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
	read func()
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && b.read != nil {
		b.read()
	}
	if err == io.EOF {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// trackedRWBody is trackedBody for upgraded (101) connections.
type trackedRWBody struct {
	io.ReadWriteCloser
	once sync.Once
	done func()
}

func (b *trackedRWBody) Close() error {
	err := b.ReadWriteCloser.Close()
	b.once.Do(b.done)
	return err
}
