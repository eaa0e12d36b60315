package broker

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

type countedAck struct {
	jetstream.Msg
	n *atomic.Int64
}

func (m countedAck) Ack() error { m.n.Add(1); return nil }

// TestAckerSendsEveryAck: acknowledgements queued are all sent, soon without stop, and
// those still waiting when the acker stops are sent by stop; after it, at once.
func TestAckerSendsEveryAck(t *testing.T) {
	var n atomic.Int64
	a := newAcker(slog.New(slog.DiscardHandler))
	for range 10 {
		a.ack(countedAck{n: &n})
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := n.Load(); got != 10 {
		t.Fatalf("%d of 10 acknowledgements sent", got)
	}
	for range 100 {
		a.ack(countedAck{n: &n})
	}
	a.stop()
	if got := n.Load(); got != 110 {
		t.Fatalf("after stop, %d of 110 acknowledgements sent", got)
	}
	a.ack(countedAck{n: &n})
	if got := n.Load(); got != 111 {
		t.Fatalf("an acknowledgement after stop was not sent at once (%d of 111)", got)
	}
	a.stop() // a second stop does nothing
}

// TestWorkersBoundAndHandleEvery: a trigger's workers handle every event given, never more
// than max at once, and close waits for those in hand.
func TestWorkersBoundAndHandleEvery(t *testing.T) {
	var running, peak, handled atomic.Int64
	release := make(chan struct{})
	w := &workers{max: 3, work: make(chan jetstream.Msg), exited: make(chan struct{}, 1),
		handle: func(jetstream.Msg) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-release
			running.Add(-1)
			handled.Add(1)
		}}
	given := make(chan struct{})
	go func() {
		defer close(given)
		for range 10 {
			w.give(countedAck{})
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := running.Load(); n != 3 {
		t.Fatalf("%d events in hand, want 3 (the bound) while all are held", n)
	}
	close(release)
	<-given
	w.close()
	if h, p := handled.Load(), peak.Load(); h != 10 || p != 3 {
		t.Errorf("handled %d, at most %d at once; want 10, at most 3", h, p)
	}
	if n := w.n.Load(); n != 0 {
		t.Errorf("%d workers left after close", n)
	}
}
