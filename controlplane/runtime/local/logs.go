package local

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

const (
	// tailLines is how many of an instance's last output lines a crash message quotes.
	tailLines = 10
	// maxLine is the longest partial line buffered before it is written out anyway.
	maxLine = 64 << 10
)

// logSink is a revision's log file, <DataDir>/logs/<ns>/<rev>.log, shared by its instances and
// its build, open while anyone holds a reference.
type logSink struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex
	f    *os.File
	refs int
}

// acquire opens the file if nobody holds it yet; a file that cannot be opened is logged and
// output is dropped, as running the app matters more than keeping its logs.
func (s *logSink) acquire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs++
	if s.f != nil || s.refs > 1 {
		return
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		s.log.Error("creating the revision's log directory", "path", s.path, "err", err)
		return
	}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.log.Error("opening the revision's log file", "path", s.path, "err", err)
		return
	}
	s.f = f
}

// release closes the file when its last holder is done.
func (s *logSink) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs == 0 && s.f != nil {
		if err := s.f.Close(); err != nil {
			s.log.Error("closing the revision's log file", "path", s.path, "err", err)
		}
		s.f = nil
	}
}

func (s *logSink) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_, _ = s.f.Write(p) // a full disk must not stop the app
	}
}

// lineWriter copies one output stream of one process into the log sink, a whole line at a time
// with a prefix naming the instance, and remembers the last lines for crash messages.
type lineWriter struct {
	sink   *logSink
	prefix string

	mu   sync.Mutex
	buf  []byte
	tail []string
}

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[:copy(w.buf, w.buf[i+1:])]
	}
	if len(w.buf) > maxLine {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// flush writes out a last line that had no newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
}

func (w *lineWriter) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	w.sink.write([]byte(w.prefix + string(line) + "\n"))
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	w.tail = append(w.tail, string(line))
	if len(w.tail) > tailLines {
		w.tail = w.tail[len(w.tail)-tailLines:]
	}
}

// lastLines is the stream's last few non-empty lines, joined by newlines.
func (w *lineWriter) lastLines() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.tail, "\n")
}
