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
