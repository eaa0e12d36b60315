// Command event-display is Knative's event-display sample for Skiff: a Knative Service that
// receives CloudEvents (binary or structured mode, through the cloudevents sdk-go HTTP
// binding) on $HOST:$PORT (every interface when HOST is unset; port 8080 by default) and logs
// each one. Two optional settings make it useful in examples and tests:
//
//   - FORWARD_URL: every received event is also POSTed there (structured mode) before the
//     delivery is answered; if that fails the delivery gets 502, so the broker retries it.
//   - REPLY_TYPE: the delivery is answered with a reply event of that type (source
//     /event-display, data = the received event's id), which the broker takes back in.
//
// GET /healthz answers 200. SIGTERM or SIGINT stop it gracefully. With the standard
// OpenTelemetry environment (OTEL_EXPORTER_OTLP_ENDPOINT, ...) it traces each request.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"

	"github.com/skiff-dev/skiff/examples/internal/apptrace"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("event-display failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d := &display{log: log, forward: os.Getenv("FORWARD_URL"), replyType: os.Getenv("REPLY_TYPE")}
	if d.forward != "" {
		c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(d.forward))
		if err != nil {
			return fmt.Errorf("forwarding client: %w", err)
		}
		d.client = c
	}
	p, err := cehttp.New()
	if err != nil {
		return fmt.Errorf("http protocol: %w", err)
	}
	receive, err := cloudevents.NewHTTPReceiveHandler(ctx, p, d.receive)
	if err != nil {
		return fmt.Errorf("receive handler: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.Handle("/", receive)
	lis, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("HOST"), cmp.Or(os.Getenv("PORT"), "8080")))
	if err != nil {
		return err
	}
	traced, flush := apptrace.Wrap(ctx, mux)
	defer flush()
	srv := &http.Server{Handler: traced, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Info("event-display listening", "addr", lis.Addr().String(), "revision", os.Getenv("K_REVISION"))
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type display struct {
	log       *slog.Logger
	forward   string
	client    cloudevents.Client
	replyType string
}

// receive logs an event, forwards it and builds the reply.
func (d *display) receive(ctx context.Context, ev event.Event) (*event.Event, cloudevents.Result) {
	d.log.Info("event", "id", ev.ID(), "type", ev.Type(), "source", ev.Source(), "data", string(ev.Data()))
	if d.client != nil {
		if res := d.client.Send(ctx, ev); !cloudevents.IsACK(res) {
			return nil, cehttp.NewResult(http.StatusBadGateway, "forwarding to %s: %v", d.forward, res)
		}
	}
	if d.replyType == "" {
		return nil, nil
	}
	reply := cloudevents.NewEvent()
	reply.SetID(uuid.NewString())
	reply.SetType(d.replyType)
	reply.SetSource("/event-display")
	if err := reply.SetData(cloudevents.TextPlain, ev.ID()); err != nil {
		return nil, cehttp.NewResult(http.StatusInternalServerError, "reply: %v", err)
	}
	return &reply, nil
}
