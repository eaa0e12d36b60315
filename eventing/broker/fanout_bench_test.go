package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkFanOutStorage compares, on the embedded JetStream with file storage, the two ways
// to store an event that matches many Triggers (eventing/README.md, "Fan-out"):
//
//   - copies: what the broker does, one message per matching Trigger in the broker's
//     work-queue stream, each on its Trigger's subject, each read by that Trigger's consumer;
//   - one: a single message on the broker's fan-out subject in an interest-retention stream,
//     read by every Trigger's consumer (filtering on its own subject and the fan-out
//     subject), removed once every consumer acknowledged it.
//
// Each op is one event; "stored-B/event" is the stream's size per event once every event is
// stored (before any consumer reads); "events/s" is the publish rate until JetStream
// acknowledged every message; "deliveries/s" is every consumer's acknowledgements until the
// stream is empty again.
//
//	go test -run '^$' -bench FanOutStorage -benchtime 300x ./eventing/broker/
func BenchmarkFanOutStorage(b *testing.B) {
	for _, triggers := range []int{10, 100} {
		for _, mode := range []string{"copies", "one"} {
			b.Run(fmt.Sprintf("triggers=%d/%s", triggers, mode), func(b *testing.B) { benchFanOut(b, triggers, mode == "one") })
		}
	}
}

func benchFanOut(b *testing.B, triggers int, one bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emb, err := StartEmbedded(ctx, b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer emb.Close()
	nc, err := nats.Connect(emb.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	retention := jetstream.WorkQueuePolicy
	if one {
		retention = jetstream.InterestPolicy
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "bench", Subjects: []string{"bench.*"}, Retention: retention, Storage: jetstream.FileStorage,
	})
	if err != nil {
		b.Fatal(err)
	}
	consumers := make([]jetstream.Consumer, triggers)
	for i := range consumers {
		cfg := jetstream.ConsumerConfig{Durable: fmt.Sprintf("t%d", i), AckPolicy: jetstream.AckExplicitPolicy,
			MaxAckPending: DefaultMaxAckPending, FilterSubject: fmt.Sprintf("bench.t%d", i)}
		if one {
			cfg.FilterSubject = ""
			cfg.FilterSubjects = []string{fmt.Sprintf("bench.t%d", i), "bench._fanout"}
		}
		if consumers[i], err = stream.CreateOrUpdateConsumer(ctx, cfg); err != nil {
			b.Fatal(err)
		}
	}
	// An event as the ingress stores it: the structured JSON and the broker's headers.
	data := []byte(`{"specversion":"1.0","id":"0000000042","source":"/bench","type":"bench","datacontenttype":"application/json","knativebrokerttl":"255","knativearrivaltime":"2026-12-07T12:00:00.000000000Z","data":{"order":12345,"items":["a","b","c"]}}`)
	names := make([]string, triggers)
	for i := range names {
		names[i] = fmt.Sprintf("t%d", i)
	}
	header := func(trigger string) nats.Header {
		h := nats.Header{"Content-Type": {structuredContentType}, HeaderBroker: {"bench/default"}, HeaderAcceptedAt: {"1"}}
		if trigger != "" {
			h[HeaderTrigger] = []string{trigger}
		} else {
			h["Skiff-Triggers"] = []string{strings.Join(names, ",")}
		}
		return h
	}

	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 { // senders, as the ingress's concurrent requests
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				var futures []jetstream.PubAckFuture
				publish := func(m *nats.Msg) {
					f, err := js.PublishMsgAsync(m)
					if err != nil {
						b.Error(err)
						return
					}
					futures = append(futures, f)
				}
				if one {
					publish(&nats.Msg{Subject: "bench._fanout", Data: data, Header: header("")})
				} else {
					for _, t := range names {
						publish(&nats.Msg{Subject: "bench." + t, Data: data, Header: header(t)})
					}
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						b.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	stored := time.Since(start)
	b.StopTimer()
	info, err := stream.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(info.State.Bytes)/float64(b.N), "stored-B/event")
	b.ReportMetric(float64(b.N)/stored.Seconds(), "events/s")

	// Every consumer reads and acknowledges what it was given.
	var acked atomic.Int64
	drainStart := time.Now()
	var ccs []jetstream.ConsumeContext
	for _, c := range consumers {
		cc, err := c.Consume(func(m jetstream.Msg) {
			if err := m.Ack(); err == nil {
				acked.Add(1)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		ccs = append(ccs, cc)
	}
	want := int64(b.N) * int64(triggers)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if acked.Load() >= want && info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 5m: %d of %d acknowledged, %d messages left", acked.Load(), want, info.State.Msgs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(want)/time.Since(drainStart).Seconds(), "deliveries/s")
	for _, cc := range ccs {
		cc.Stop()
	}
}
