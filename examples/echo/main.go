// Command echo is a tiny Knative-style HTTP app for Skiff's tests and examples. It listens on
// $HOST:$PORT (every interface when HOST is unset, as in a pod; port 8080 by default) and
// answers every request with JSON describing the request and itself:
//
//	{"revision": $K_REVISION, "service": $K_SERVICE, "host", "method", "path", "headers",
//	 "inFlight", "maxInFlight", "listen" (the address it listens on),
//	 "message": "Hello $TARGET!" (when TARGET is set)}
//
// with the header X-Revision: $K_REVISION. Query parameters: sleep=MS waits before answering,
// cpu=MS keeps a CPU busy for that long first (a CPU-bound request), status=CODE answers with
// that status, reset=1 resets maxInFlight. GET /healthz answers 200 and is not counted in
// flight. GET /ws is a WebSocket that echoes every message, prefixed with "$K_REVISION: ";
// GET /events?n=N streams N server-sent events ("data: $K_REVISION N"), one every 50ms
// (gap=MS: every MS milliseconds).
// SIGTERM or SIGINT shut it down gracefully. With the standard OpenTelemetry environment
// (OTEL_EXPORTER_OTLP_ENDPOINT, ...) it traces each request.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/websocket"

	"github.com/skiff-dev/skiff/examples/internal/apptrace"
)

// shutdownTimeout bounds how long in-flight requests may finish after SIGTERM.
const shutdownTimeout = 10 * time.Second

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("echo failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	addr := net.JoinHostPort(os.Getenv("HOST"), cmp.Or(os.Getenv("PORT"), "8080"))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	h := &handler{
		revision: os.Getenv("K_REVISION"),
		service:  os.Getenv("K_SERVICE"),
		target:   os.Getenv("TARGET"),
		listen:   ln.Addr().String(),
	}
	traced, flush := apptrace.Wrap(ctx, h)
	defer flush()
	srv := &http.Server{Handler: traced, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// Written to stdout so that a runtime's log shows the app's own output.
	os.Stdout.WriteString("echo: revision " + strconv.Quote(h.revision) + " listening on " + ln.Addr().String() + "\n")

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "revision", h.revision)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handler answers every request; it counts requests in flight and the most seen at once.
type handler struct {
	revision, service, target, listen string

	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

// reply is the JSON body of every answer.
type reply struct {
	Revision    string            `json:"revision"`
	Service     string            `json:"service"`
	Host        string            `json:"host"`
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	Headers     map[string]string `json:"headers"`
	InFlight    int64             `json:"inFlight"`
	MaxInFlight int64             `json:"maxInFlight"`
	Listen      string            `json:"listen"`
	Message     string            `json:"message,omitempty"`
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Revision", h.revision)
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
		return
	case "/ws":
		websocket.Handler(func(c *websocket.Conn) {
			for {
				var msg string
				if err := websocket.Message.Receive(c, &msg); err != nil {
					return
				}
				if err := websocket.Message.Send(c, h.revision+": "+msg); err != nil {
					return
				}
			}
		}).ServeHTTP(w, r)
		return
	case "/events":
		h.events(w, r)
		return
	}
	q := r.URL.Query()
	if q.Get("reset") == "1" {
		h.maxInFlight.Store(0)
	}
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.maxInFlight.Load()
		if n <= m || h.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}

	if ms, err := strconv.Atoi(q.Get("cpu")); err == nil && ms > 0 {
		if burn(r.Context(), time.Duration(ms)*time.Millisecond) == 0 {
			w.Header().Set("X-Burned", "0") // never: keeps the arithmetic from being optimized away
		}
	}
	if ms, err := strconv.Atoi(q.Get("sleep")); err == nil && ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	status := http.StatusOK
	if s := q.Get("status"); s != "" {
		code, err := strconv.Atoi(s)
		if err != nil || code < 100 || code > 999 {
			http.Error(w, "status must be an HTTP status code", http.StatusBadRequest)
			return
		}
		status = code
	}

	body := reply{
		Revision:    h.revision,
		Service:     h.service,
		Host:        r.Host,
		Method:      r.Method,
		Path:        r.URL.Path,
		Headers:     make(map[string]string, len(r.Header)),
		InFlight:    n,
		MaxInFlight: h.maxInFlight.Load(),
		Listen:      h.listen,
	}
	for name, values := range r.Header {
		body.Headers[name] = strings.Join(values, ", ")
	}
	if h.target != "" {
		body.Message = "Hello " + h.target + "!"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// events streams n server-sent events, flushing each.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	n = min(max(n, 1), 1000)
	gap := 50 * time.Millisecond
	if ms, err := strconv.Atoi(r.URL.Query().Get("gap")); err == nil && ms > 0 {
		gap = time.Duration(ms) * time.Millisecond
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	for i := 1; i <= n; i++ {
		if _, err := fmt.Fprintf(w, "id: %d\ndata: %s %d\n\n", i, h.revision, i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if i < n {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(gap):
			}
		}
	}
}

// burn keeps one CPU busy for d, or until ctx ends, and returns what it computed.
func burn(ctx context.Context, d time.Duration) uint64 {
	end := time.Now().Add(d)
	x := uint64(1)
	for i := 0; time.Now().Before(end); i++ {
		for range 10000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if i%64 == 0 && ctx.Err() != nil {
			break
		}
	}
	return x
}
