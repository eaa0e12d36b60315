package xds

import (
	"context"
	"fmt"
	"log/slog"

	gcplog "github.com/envoyproxy/go-control-plane/pkg/log"
)

// slogAdapter lets go-control-plane log through slog. Its Info level is
// chatty (one line per watch), so it is logged at Debug.
type slogAdapter struct{ l *slog.Logger }

var _ gcplog.Logger = slogAdapter{}

// Debugf logs at slog Debug. The message is only formatted when Debug is enabled: the
// linear cache logs whole subscriptions (10,000 names) per watch.
func (a slogAdapter) Debugf(format string, args ...any) {
	if a.l.Enabled(context.Background(), slog.LevelDebug) {
		a.l.Debug(fmt.Sprintf(format, args...))
	}
}

// Infof logs at slog Debug: go-control-plane's Info is per-watch chatter.
func (a slogAdapter) Infof(format string, args ...any) { a.Debugf(format, args...) }

// Warnf logs at slog Warn.
func (a slogAdapter) Warnf(format string, args ...any) { a.l.Warn(fmt.Sprintf(format, args...)) }

// Errorf logs at slog Error.
func (a slogAdapter) Errorf(format string, args ...any) { a.l.Error(fmt.Sprintf(format, args...)) }
