package broker

import (
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ackGather is how long the acker lets the acknowledgements of concurrent deliveries
// gather before it sends them. The NATS client writes what it has buffered whenever its
// flusher runs, which at a few thousand events per second is once per acknowledgement: a
// write system call on the client and a read on the server per event. Gathered, they
// leave in one write. An acknowledgement is late by this much at most; a dispatcher that
// dies meanwhile has the event delivered again, as it would have a moment earlier.
const ackGather = time.Millisecond

// ackQueue is how many acknowledgements may wait for the acker; past that, deliveries
// acknowledge on their own goroutine.
const ackQueue = 4096

// acker sends the dispatcher's acknowledgements of delivered events in batches. Its
// goroutine is started by newAcker and ended by stop, which sends what waits first.
type acker struct {
	log  *slog.Logger
	in   chan jetstream.Msg
	quit chan struct{}
	done chan struct{}

	mu      sync.RWMutex // held for reading while queueing, for writing by stop
	stopped bool
}

func newAcker(log *slog.Logger) *acker {
	a := &acker{log: log, in: make(chan jetstream.Msg, ackQueue), quit: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// ack acknowledges msg, soon.
func (a *acker) ack(msg jetstream.Msg) {
	a.mu.RLock()
	if !a.stopped {
		select {
		case a.in <- msg:
			a.mu.RUnlock()
			return
		default: // full: no wait for the acker
		}
	}
	a.mu.RUnlock()
	a.send(msg)
}

func (a *acker) run() {
	defer close(a.done)
	for {
		select {
		case msg := <-a.in:
			t := time.NewTimer(ackGather)
			select {
			case <-t.C:
			case <-a.quit:
				t.Stop()
			}
			a.send(msg)
			a.drain()
		case <-a.quit:
			a.drain()
			return
		}
	}
}

// drain sends every acknowledgement waiting.
func (a *acker) drain() {
	for {
		select {
		case msg := <-a.in:
			a.send(msg)
		default:
			return
		}
	}
}

func (a *acker) send(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		a.log.Warn("ack failed; the event may be delivered again", "subject", msg.Subject(), "error", err)
	}
}

// stop sends the acknowledgements waiting and ends the acker; later ones are sent at once.
func (a *acker) stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	a.mu.Unlock()
	close(a.quit)
	<-a.done
}
