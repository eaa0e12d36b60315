package xdsclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// streamIO runs the receive side of a stream in its own goroutine and stops
// it when the stream's context is cancelled.
type streamIO[T any] struct {
	recv chan T
	errc chan error
	wg   sync.WaitGroup
}

func startRecv[T any](ctx context.Context, recv func() (T, error)) *streamIO[T] {
	s := &streamIO[T]{recv: make(chan T), errc: make(chan error, 1)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			m, err := recv()
			if err != nil {
				s.errc <- err
				return
			}
			select {
			case s.recv <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

// nackState paces repeated NACKs of the same rejected configuration: a
// control plane that resends a rejected response at once would otherwise
// make the client spin.
type nackState struct {
	count   int
	due     time.Time
	pending any // the paced NACK: *discoveryv3.DiscoveryRequest or *discoveryv3.DeltaDiscoveryRequest
}

func nackDelay(count int) time.Duration {
	if count <= 1 {
		return 0
	}
	return min(250*time.Millisecond<<min(count-2, 6), 8*time.Second)
}

// nextDue returns a timer channel firing at the earliest pending NACK, or nil.
func nextDue(nacks map[string]*nackState) (<-chan time.Time, *time.Timer) {
	var earliest time.Time
	for _, n := range nacks {
		if n.pending != nil && (earliest.IsZero() || n.due.Before(earliest)) {
			earliest = n.due
		}
	}
	if earliest.IsZero() {
		return nil, nil
	}
	t := time.NewTimer(time.Until(earliest))
	return t.C, t
}

// protocol is one xDS transport variant (state of the world or delta) as
// the shared stream loop drives it: it knows how to subscribe and how to
// answer a response, and keeps its per-stream state.
type protocol[Req, Resp any] interface {
	// kind prefixes the stream's name in errors ("" or "delta ").
	kind() string
	// setNode puts the client's Node in the stream's first request.
	setNode(req *Req)
	// typeURL is req's type URL.
	typeURL(req *Req) string
	// subscribe sends the subscriptions that changed since the last call.
	subscribe(send func(*Req) error) error
	// respond applies resp and returns its type URL and the request that
	// answers it: an ACK, or a NACK with the Handler's error.
	respond(ctx context.Context, resp *Resp) (typeURL string, req *Req, err error)
}

// runStream runs one ADS stream opened by open until it fails or ctx is
// done: it subscribes, hands each response to p and sends p's ACK or NACK,
// pacing repeated NACKs of a type. progressed reports whether any response
// arrived (so the caller resets its reconnect backoff).
func runStream[Req, Resp any](ctx context.Context, c *Client, open func(context.Context, ...grpc.CallOption) (grpc.BidiStreamingClient[Req, Resp], error), p protocol[Req, Resp]) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := open(ctx)
	if err != nil {
		return false, fmt.Errorf("opening %sADS stream: %w", p.kind(), err)
	}
	connected := c.cfg.Stats.Gauge("control_plane.connected_state")
	connected.Set(1)
	defer connected.Set(0)
	io := startRecv(ctx, stream.Recv)
	defer func() { cancel(); io.wg.Wait() }()

	nodeSent := false
	send := func(req *Req) error {
		if !nodeSent {
			p.setNode(req)
			nodeSent = true
		}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("sending %s%s request: %w", p.kind(), p.typeURL(req), err)
		}
		return nil
	}
	nacks := map[string]*nackState{}
	if err := p.subscribe(send); err != nil {
		return false, err
	}

	for {
		timerC, timer := nextDue(nacks)
		select {
		case <-ctx.Done():
			stopTimer(timer)
			return progressed, ctx.Err()
		case err := <-io.errc:
			stopTimer(timer)
			return progressed, fmt.Errorf("receiving from %sADS stream: %w", p.kind(), err)
		case <-c.notify:
			stopTimer(timer)
			if err := p.subscribe(send); err != nil {
				return progressed, err
			}
		case <-timerC:
			for _, n := range nacks {
				if req, ok := n.pending.(*Req); ok && !time.Now().Before(n.due) {
					n.pending = nil
					if err := send(req); err != nil {
						return progressed, err
					}
				}
			}
		case resp := <-io.recv:
			stopTimer(timer)
			progressed = true
			t, req, err := p.respond(ctx, resp)
			n := nacks[t]
			if n == nil {
				n = &nackState{}
				nacks[t] = n
			}
			n.pending = nil
			if err == nil {
				n.count = 0
			} else {
				n.count++
				if d := nackDelay(n.count); d > 0 {
					n.due, n.pending = time.Now().Add(d), req
					continue
				}
			}
			if err := send(req); err != nil {
				return progressed, err
			}
		}
	}
}

// nackDetail is the error_detail of a NACK.
func nackDetail(err error) *statuspb.Status {
	return &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}
