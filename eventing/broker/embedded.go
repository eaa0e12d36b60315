package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is a NATS server with JetStream running in this process, for
// `skiff up` and tests. Production connects Server to an external NATS
// cluster instead (Options.URL or Options.Conn): the rest of the code is the
// same.
type Embedded struct {
	srv       *server.Server
	stopWatch func() bool
	closeOnce sync.Once
}

// EmbeddedMaxPayload is the largest message the embedded server takes; it
// leaves room for a DefaultMaxEventBytes event encoded in base64.
const EmbeddedMaxPayload = 8 << 20

// StartEmbedded starts a NATS server with JetStream file storage under dir,
// listening on a random port of 127.0.0.1 (see ClientURL). It shuts down when
// ctx ends or Close is called. Two servers cannot share a dir.
func StartEmbedded(ctx context.Context, dir string, logger *slog.Logger) (*Embedded, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating JetStream directory %s: %w", dir, err)
	}
	opts := &server.Options{
		ServerName:             "skiff-embedded",
		Host:                   "127.0.0.1",
		Port:                   server.RANDOM_PORT,
		JetStream:              true,
		StoreDir:               dir,
		MaxPayload:             EmbeddedMaxPayload,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(&natsLogger{log: logger.With("component", "nats")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("starting embedded NATS server: not ready for connections after 30s")
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("starting embedded NATS server: JetStream did not start with store %s", dir)
	}
	e := &Embedded{srv: srv}
	e.stopWatch = context.AfterFunc(ctx, e.shutdown)
	logger.Info("embedded NATS server started", "url", srv.ClientURL(), "store", dir)
	return e, nil
}

// ClientURL is the nats:// URL clients connect to.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Close shuts the server down and waits until it has stopped; stored events
// stay on disk for the next server on the same dir.
func (e *Embedded) Close() error {
	e.stopWatch()
	e.shutdown()
	return nil
}

func (e *Embedded) shutdown() {
	e.closeOnce.Do(func() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	})
}

// natsLogger sends the NATS server's logs to slog.
type natsLogger struct{ log *slog.Logger }

// Noticef is the NATS server's chatter (banner, start-up and shutdown steps): debug level.
func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
