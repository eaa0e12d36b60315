package extproc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/skiff-dev/skiff/extproc"
	"github.com/skiff-dev/skiff/internal/testwait"
)

const waitFor = 10 * time.Second

// harness is a Server on a real gRPC listener and a client that talks to it as Envoy does.
type harness struct {
	srv    *extproc.Server
	client extprocv3.ExternalProcessorClient
}

func newHarness(tb testing.TB, cfg extproc.Config) *harness {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv := extproc.New(cfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() {
		conn.Close()
		g.Stop()
		if err := <-served; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	return &harness{srv: srv, client: extprocv3.NewExternalProcessorClient(conn)}
}

// request is one HTTP request's ext_proc stream, as Envoy's filter would hold it.
type request struct {
	id     int
	stream extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
	// resp receives the answer to the request-headers message (or the error instead).
	resp chan result
}

type result struct {
	resp *extprocv3.ProcessingResponse
	err  error
}

func headers(cluster string) *extprocv3.ProcessingRequest {
	req := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{EndOfStream: true}},
	}
	if cluster != "" {
		req.Attributes = map[string]*structpb.Struct{
			extproc.AttributesNamespace: {Fields: map[string]*structpb.Value{
				extproc.ClusterAttribute: structpb.NewStringValue(cluster),
				"xds.route_metadata":     structpb.NewStringValue(""),
			}},
		}
	}
	return req
}

// open starts a request for cluster and reads the first response in the background.
func (h *harness) open(tb testing.TB, id int, cluster string) *request {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := h.client.Process(ctx)
	if err != nil {
		cancel()
		tb.Fatalf("process: %v", err)
	}
	if err := stream.Send(headers(cluster)); err != nil {
		cancel()
		tb.Fatalf("send headers: %v", err)
	}
	r := &request{id: id, stream: stream, cancel: cancel, resp: make(chan result, 1)}
	go func() {
		resp, err := stream.Recv()
		r.resp <- result{resp, err}
	}()
	tb.Cleanup(cancel)
	return r
}

// await returns the response to the request headers, failing after waitFor.
func (r *request) await(tb testing.TB) *extprocv3.ProcessingResponse {
	tb.Helper()
	select {
	case res := <-r.resp:
		if res.err != nil {
			tb.Fatalf("request %d: recv: %v", r.id, res.err)
		}
		return res.resp
	case <-time.After(waitFor):
		tb.Fatalf("request %d: no response within %s", r.id, waitFor)
	}
	return nil
}

// pending reports whether the request has had no response yet.
func (r *request) pending() bool { return len(r.resp) == 0 }

// end finishes the HTTP request the way the proxy does (half-close) and waits until the
// service has closed its side, i.e. has released the request's slot.
func (r *request) end(tb testing.TB) {
	tb.Helper()
	if err := r.stream.CloseSend(); err != nil {
		tb.Fatalf("request %d: close send: %v", r.id, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.stream.Recv()
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			tb.Fatalf("request %d: expected end of stream, got %v", r.id, err)
		}
	case <-time.After(waitFor):
		tb.Fatalf("request %d: stream not closed within %s", r.id, waitFor)
	}
	r.cancel()
}

func isContinue(resp *extprocv3.ProcessingResponse) bool {
	h := resp.GetRequestHeaders()
	return h != nil && h.GetResponse().GetStatus() == extprocv3.CommonResponse_CONTINUE
}

// pinned returns the endpoint the response pins the request to, "" if none.
func pinned(resp *extprocv3.ProcessingResponse) string {
	lb := resp.GetDynamicMetadata().GetFields()[extproc.LBMetadataNamespace].GetStructValue()
	return lb.GetFields()[extproc.DestinationEndpointKey].GetStringValue()
}

func mustImmediate(tb testing.TB, resp *extprocv3.ProcessingResponse, status int, bodyHas string) {
	tb.Helper()
	ir := resp.GetImmediateResponse()
	if ir == nil {
		tb.Fatalf("expected an immediate response, got %v", resp)
	}
	if got := int(ir.GetStatus().GetCode()); got != status {
		tb.Fatalf("status %d, want %d (body %q)", got, status, ir.GetBody())
	}
	if !strings.Contains(string(ir.GetBody()), bodyHas) {
		tb.Fatalf("body %q does not contain %q", ir.GetBody(), bodyHas)
	}
	if ir.GetDetails() == "" {
		tb.Fatalf("immediate response without details")
	}
	// The details are in a header too, for Skiff's own clients (eventing's dispatcher).
	var hdr []string
	for _, h := range ir.GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetKey() == extproc.FailureHeader {
			hdr = append(hdr, string(h.GetHeader().GetRawValue()))
		}
	}
	if len(hdr) != 1 || hdr[0] != ir.GetDetails() {
		tb.Fatalf("%s = %q, want [%s]", extproc.FailureHeader, hdr, ir.GetDetails())
	}
}

// eventually is testwait.For with this package's deadline, waitFor.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	testwait.For(tb, waitFor, what, cond)
}

func (h *harness) stats(cluster string) extproc.RevisionStats { return h.srv.Stats()[cluster] }

func (h *harness) waitHeld(tb testing.TB, cluster string, n int) {
	tb.Helper()
	eventually(tb, fmt.Sprintf("%d held for %s", n, cluster), func() bool { return h.stats(cluster).Held == n })
}

const rev = "default/hello-00001"

func TestHeldUntilEndpointsThenContinue(t *testing.T) {
	h := newHarness(t, extproc.Config{})
	r := h.open(t, 1, rev) // unknown revision: may be being created
	h.waitHeld(t, rev, 1)

	h.srv.SetRevision(rev, extproc.Revision{Timeout: time.Minute}) // known, still no endpoints
	if !r.pending() {
		t.Fatalf("released before any endpoint")
	}
	h.srv.SetRevision(rev, extproc.Revision{Timeout: time.Minute, Endpoints: []string{"10.0.0.1:8080"}})
	resp := r.await(t)
	if !isContinue(resp) {
		t.Fatalf("want CONTINUE, got %v", resp)
	}
	if ep := pinned(resp); ep != "" {
		t.Fatalf("containerConcurrency 0 must not pin, got %q", ep)
	}
	if st := h.stats(rev); st.Held != 0 || st.InFlight != 1 || st.Total != 1 {
		t.Fatalf("stats while in flight: %+v", st)
	}
	r.end(t)
	if st := h.stats(rev); st.InFlight != 0 {
		t.Fatalf("stats after end: %+v", st)
	}

	// With an endpoint, a request goes straight through.
	r2 := h.open(t, 2, rev)
	if !isContinue(r2.await(t)) {
		t.Fatalf("want CONTINUE for a ready revision")
	}
	r2.end(t)
}

func TestActivationTimeout(t *testing.T) {
	h := newHarness(t, extproc.Config{ActivationTimeout: time.Minute})
	h.srv.SetRevision(rev, extproc.Revision{Timeout: 150 * time.Millisecond})
	start := time.Now()
	r := h.open(t, 1, rev)
	mustImmediate(t, r.await(t), 503, "skiff: revision default/hello-00001 did not become ready within 150ms")
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("answered after %s, before the timeout", el)
	}
	eventually(t, "held back to 0", func() bool { return h.stats(rev).Held == 0 })

	// The service's cap wins over a longer revision timeout; unknown revisions get the cap.
	h2 := newHarness(t, extproc.Config{ActivationTimeout: 100 * time.Millisecond})
	mustImmediate(t, h2.open(t, 2, "default/unknown").await(t), 503, "did not become ready within 100ms")
	eventually(t, "unknown revision forgotten", func() bool { _, ok := h2.srv.Stats()["default/unknown"]; return !ok })
}

func TestCapacityTimeoutSaysWhy(t *testing.T) {
	h := newHarness(t, extproc.Config{})
	h.srv.SetRevision(rev, extproc.Revision{ContainerConcurrency: 1, Timeout: 100 * time.Millisecond, Endpoints: []string{"10.0.0.1:8080"}})
	first := h.open(t, 1, rev)
	if !isContinue(first.await(t)) {
		t.Fatal("first request not released")
	}
	mustImmediate(t, h.open(t, 2, rev).await(t), 503, "had no free capacity within 100ms (containerConcurrency 1, 1 of 1 pods busy)")
	first.end(t)
}

func TestQueueBound(t *testing.T) {
	var pokes atomic.Int32
	h := newHarness(t, extproc.Config{QueueDepth: 2, OnDemand: func(string) { pokes.Add(1) }})
	a, b := h.open(t, 1, rev), h.open(t, 2, rev)
	h.waitHeld(t, rev, 2)
	mustImmediate(t, h.open(t, 3, rev).await(t), 503, "skiff: too many requests queued for default/hello-00001 (limit 2)")
	if st := h.stats(rev); st.Held != 2 || st.Total != 3 {
		t.Fatalf("stats: %+v", st)
	}
	h.srv.SetRevision(rev, extproc.Revision{Endpoints: []string{"10.0.0.1:8080"}})
	for _, r := range []*request{a, b} {
		if !isContinue(r.await(t)) {
			t.Fatalf("request %d not released", r.id)
		}
		r.end(t)
	}
}

func TestMissingClusterAttribute(t *testing.T) {
	h := newHarness(t, extproc.Config{})
	h.srv.SetRevision(rev, extproc.Revision{Endpoints: []string{"10.0.0.1:8080"}})
	mustImmediate(t, h.open(t, 1, "").await(t), 500, "xds.cluster_name")
	if len(h.srv.Stats()) != 1 {
		t.Fatalf("a request without attribute must not create state: %v", h.srv.Stats())
	}
}

func TestOnDemandCalledAndDebounced(t *testing.T) {
	calls := make(chan string, 100)
	h := newHarness(t, extproc.Config{OnDemand: func(c string) { calls <- c }})
	var reqs []*request
	for i := range 5 {
		reqs = append(reqs, h.open(t, i, rev))
	}
	h.waitHeld(t, rev, 5)
	select {
	case c := <-calls:
		if c != rev {
			t.Fatalf("OnDemand(%q), want %q", c, rev)
		}
	case <-time.After(waitFor):
		t.Fatal("OnDemand not called")
	}
	if n := len(calls); n != 0 {
		t.Fatalf("OnDemand called %d more times within the debounce interval", n)
	}
	h.srv.SetRevision(rev, extproc.Revision{Endpoints: []string{"10.0.0.1:8080"}})
	for _, r := range reqs {
		r.await(t)
		r.end(t)
	}
	// A request that does not wait does not poke.
	r := h.open(t, 9, rev)
	r.await(t)
	r.end(t)
	if n := len(calls); n != 0 {
		t.Fatalf("OnDemand called for a request that did not wait")
	}
}

// TestConcurrencyOneFIFO: containerConcurrency 1, one pod, 20 concurrent requests: one at a
// time, in arrival order, each as the previous one ends.
func TestConcurrencyOneFIFO(t *testing.T) {
	const n = 20
	const ep = "10.0.0.1:8080"
	h := newHarness(t, extproc.Config{})
	h.srv.SetRevision(rev, extproc.Revision{ContainerConcurrency: 1, Endpoints: []string{ep}})

	var released, maxReleased atomic.Int32
	var order []int
	var mu sync.Mutex
	reqs := make([]*request, n)
	for i := range n {
		reqs[i] = h.open(t, i, rev)
		// Arrival order is the order the service saw the headers: wait for each one.
		eventually(t, fmt.Sprintf("request %d seen", i), func() bool { return h.stats(rev).Total == uint64(i+1) })
	}
	h.waitHeld(t, rev, n-1)
	for i, r := range reqs {
		resp := r.await(t)
		if !isContinue(resp) || pinned(resp) != ep {
			t.Fatalf("request %d: want CONTINUE pinned to %s, got %v", i, ep, resp)
		}
		cur := released.Add(1)
		for {
			m := maxReleased.Load()
			if cur <= m || maxReleased.CompareAndSwap(m, cur) {
				break
			}
		}
		mu.Lock()
		order = append(order, r.id)
		mu.Unlock()
		if st := h.stats(rev); st.InFlight != 1 || st.Held != n-1-i {
			t.Fatalf("after releasing %d: stats %+v", i, st)
		}
		for _, later := range reqs[i+1:] {
			if !later.pending() {
				t.Fatalf("request %d released while %d is in flight", later.id, i)
			}
		}
		released.Add(-1)
		r.end(t)
	}
	if m := maxReleased.Load(); m != 1 {
		t.Fatalf("max released at once = %d, want 1", m)
	}
	for i, id := range order {
		if id != i {
			t.Fatalf("release order %v is not FIFO", order)
		}
	}
	if st := h.stats(rev); st.Held != 0 || st.InFlight != 0 || st.Total != n {
		t.Fatalf("final stats %+v", st)
	}
}

func TestConcurrencyTwoLeastLoaded(t *testing.T) {
	const a, b = "10.0.0.1:8080", "10.0.0.2:8080"
	h := newHarness(t, extproc.Config{})
	h.srv.SetRevision(rev, extproc.Revision{ContainerConcurrency: 2, Endpoints: []string{a, b}})

	load := map[string]int{}
	take := func(r *request) string {
		t.Helper()
		resp := r.await(t)
		ep := pinned(resp)
		if !isContinue(resp) || (ep != a && ep != b) {
			t.Fatalf("request %d: want CONTINUE pinned to a pod, got %v", r.id, resp)
		}
		load[ep]++
		if load[ep] > 2 {
			t.Fatalf("pod %s has %d requests in flight, limit 2", ep, load[ep])
		}
		return ep
	}
	done := func(r *request, ep string) { r.end(t); load[ep]-- }

	// Four requests spread 2+2: least loaded, ties rotate.
	reqs := make([]*request, 4)
	eps := make([]string, 4)
	for i := range reqs {
		reqs[i] = h.open(t, i, rev)
		eps[i] = take(reqs[i])
	}
	if want := []string{a, b, a, b}; fmt.Sprint(eps) != fmt.Sprint(want) {
		t.Fatalf("picks %v, want %v", eps, want)
	}
	// Both pods full: the fifth waits.
	fifth := h.open(t, 5, rev)
	h.waitHeld(t, rev, 1)
	// A slot frees on a: the fifth goes there, b being full.
	done(reqs[0], a)
	if ep := take(fifth); ep != a {
		t.Fatalf("fifth went to %s, the only free slot was on %s", ep, a)
	}
	// b drops to 0 while a stays at 2: the next request goes to the least loaded, b.
	done(reqs[1], b)
	done(reqs[3], b)
	sixth := h.open(t, 6, rev)
	if ep := take(sixth); ep != b {
		t.Fatalf("sixth went to %s, want least-loaded %s (loads %v)", ep, b, load)
	}
	// With a at 2 and b at 1, the next goes to b too.
	seventh := h.open(t, 7, rev)
	if ep := take(seventh); ep != b {
		t.Fatalf("seventh went to %s, want %s (loads %v)", ep, b, load)
	}

	// a leaves Endpoints: it gets no new request, even once its requests finish.
	h.srv.SetRevision(rev, extproc.Revision{ContainerConcurrency: 2, Endpoints: []string{b}})
	done(reqs[2], a)
	done(fifth, a)
	eighth := h.open(t, 8, rev)
	h.waitHeld(t, rev, 1) // b is full, a is gone
	done(sixth, b)
	if ep := take(eighth); ep != b {
		t.Fatalf("eighth went to %s", ep)
	}
	done(seventh, b)
	done(eighth, b)
	if st := h.stats(rev); st.InFlight != 0 || st.Held != 0 || st.Total != 8 {
		t.Fatalf("final stats %+v", st)
	}
}

func TestCancelWhileQueuedFreesPlace(t *testing.T) {
	const ep = "10.0.0.1:8080"
	h := newHarness(t, extproc.Config{QueueDepth: 2})
	h.srv.SetRevision(rev, extproc.Revision{ContainerConcurrency: 1, Endpoints: []string{ep}})
	first := h.open(t, 1, rev)
	first.await(t)
	gone := h.open(t, 2, rev)
	h.waitHeld(t, rev, 1)
	next := h.open(t, 3, rev)
	h.waitHeld(t, rev, 2)

	gone.cancel() // the client went away while queued
	h.waitHeld(t, rev, 1)
	// Its place is free: the queue (limit 2) takes another request.
	last := h.open(t, 4, rev)
	h.waitHeld(t, rev, 2)

	first.end(t)
	if !isContinue(next.await(t)) {
		t.Fatal("request 3 not released after the cancelled one left")
	}
	if res := <-gone.resp; res.err == nil {
		t.Fatalf("cancelled request got a response: %v", res.resp)
	}
	if st := h.stats(rev); st.InFlight != 1 || st.Held != 1 {
		t.Fatalf("stats %+v", st)
	}
	next.end(t)
	last.await(t)
	last.end(t)
	if st := h.stats(rev); st.InFlight != 0 || st.Held != 0 {
		t.Fatalf("final stats %+v", st)
	}

	// Cancelling a released request releases its slot too.
	a := h.open(t, 5, rev)
	a.await(t)
	b := h.open(t, 6, rev)
	h.waitHeld(t, rev, 1)
	a.cancel()
	if !isContinue(b.await(t)) {
		t.Fatal("slot of a cancelled in-flight request not released")
	}
	b.end(t)
}

func TestDeleteRevisionFailsHeld(t *testing.T) {
	h := newHarness(t, extproc.Config{})
	h.srv.SetRevision(rev, extproc.Revision{})
	r := h.open(t, 1, rev)
	h.waitHeld(t, rev, 1)
	h.srv.DeleteRevision(rev)
	mustImmediate(t, r.await(t), 503, "revision default/hello-00001 was deleted")
	if _, ok := h.srv.Stats()[rev]; ok {
		t.Fatal("deleted revision still in stats")
	}
}

// TestStress runs many requests with random cancellations against containerConcurrency 3
// on 3 pods, checking the per-pod limit and that every count returns to zero.
func TestStress(t *testing.T) {
	const (
		n    = 300
		cc   = 3
		pods = 3
	)
	h := newHarness(t, extproc.Config{})
	var eps []string
	for i := range pods {
		eps = append(eps, fmt.Sprintf("10.0.0.%d:8080", i+1))
	}
	h.srv.SetRevision(rev, extproc.Revision{ContainerConcurrency: cc, Endpoints: eps})
	var load sync.Map // endpoint -> *atomic.Int32
	for _, ep := range eps {
		load.Store(ep, new(atomic.Int32))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var released atomic.Int32
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stream, err := h.client.Process(ctx)
			if err != nil {
				errs <- err
				return
			}
			if err := stream.Send(headers(rev)); err != nil {
				errs <- err
				return
			}
			if i%5 == 0 { // give up while (probably) queued
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				cancel()
				return
			}
			resp, err := stream.Recv()
			if err != nil {
				errs <- fmt.Errorf("request %d: %w", i, err)
				return
			}
			ep := pinned(resp)
			v, ok := load.Load(ep)
			if !ok {
				errs <- fmt.Errorf("request %d pinned to %q", i, ep)
				return
			}
			c := v.(*atomic.Int32)
			if got := c.Add(1); got > cc {
				errs <- fmt.Errorf("pod %s has %d in flight", ep, got)
			}
			released.Add(1)
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
			c.Add(-1) // before the service can see the end
			if i%7 == 0 {
				cancel()
				return
			}
			if err := stream.CloseSend(); err != nil {
				errs <- err
				return
			}
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				errs <- fmt.Errorf("request %d end: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eventually(t, "all counts back to zero", func() bool {
		st := h.stats(rev)
		return st.Held == 0 && st.InFlight == 0
	})
	// Requests cancelled before the service read their headers are never counted.
	if st := h.stats(rev); st.Total > n || st.Total < n-n/5 {
		t.Fatalf("total %d, want about %d", st.Total, n)
	}
	if released.Load() < n/2 {
		t.Fatalf("only %d released", released.Load())
	}
}
