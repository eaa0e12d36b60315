// Command heartbeats is Knative's heartbeats sample for a ContainerSource: it sends a
// dev.knative.eventing.samples.heartbeat CloudEvent to $K_SINK every -period (default 5s),
// with the extensions of $K_CE_OVERRIDES, and data {"id": n, "label": ..., "msg": ...}.
// The source is -eventSource, default https://knative.dev/eventing/cmd/heartbeats/#{POD_NAMESPACE}/{POD_NAME}.
// A failed send is logged and the next beat goes on. SIGTERM or SIGINT stop it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// heartbeat is the event's data, as in Knative's sample.
type heartbeat struct {
	Sequence int    `json:"id"`
	Label    string `json:"label"`
	Msg      string `json:"msg,omitempty"`
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	eventSource := flag.String("eventSource", "", "the event source (CloudEvents)")
	eventType := flag.String("eventType", "dev.knative.eventing.samples.heartbeat", "the event type (CloudEvents)")
	sink := flag.String("sink", "", "where to send the events (default $K_SINK)")
	label := flag.String("label", "", "a label in the data")
	period := flag.String("period", "5s", "the time between beats: a Go duration or a number of seconds")
	msg := flag.String("msg", "", "data.msg")
	flag.Parse()
	if err := run(log, *eventSource, *eventType, *sink, *label, *period, *msg); err != nil {
		log.Error("heartbeats failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, source, typ, sink, label, periodStr, msg string) error {
	if s := os.Getenv("K_SINK"); s != "" {
		sink = s
	}
	if sink == "" {
		return fmt.Errorf("no sink: set K_SINK or -sink")
	}
	period, err := time.ParseDuration(periodStr)
	if err != nil {
		secs, err2 := strconv.Atoi(periodStr)
		if err2 != nil {
			return fmt.Errorf("-period %q: %w", periodStr, err)
		}
		period = time.Duration(secs) * time.Second
	}
	var overrides struct {
		Extensions map[string]string `json:"extensions"`
	}
	if s := os.Getenv("K_CE_OVERRIDES"); s != "" {
		if err := json.Unmarshal([]byte(s), &overrides); err != nil {
			return fmt.Errorf("K_CE_OVERRIDES %q: %w", s, err)
		}
	}
	if source == "" {
		source = fmt.Sprintf("https://knative.dev/eventing/cmd/heartbeats/#%s/%s", os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME"))
	}
	client, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(sink))
	if err != nil {
		return fmt.Errorf("cloudevents client: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("sending heartbeats", "sink", sink, "period", period)
	t := time.NewTicker(period)
	defer t.Stop()
	for seq := 1; ; seq++ {
		ev := cloudevents.NewEvent()
		ev.SetID(strconv.Itoa(seq))
		ev.SetType(typ)
		ev.SetSource(source)
		for k, v := range overrides.Extensions {
			ev.SetExtension(k, v)
		}
		if err := ev.SetData(cloudevents.ApplicationJSON, heartbeat{Sequence: seq, Label: label, Msg: msg}); err != nil {
			return err
		}
		sendCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if res := client.Send(sendCtx, ev); !cloudevents.IsACK(res) {
			log.Warn("heartbeat not delivered", "id", seq, "result", res)
		}
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
