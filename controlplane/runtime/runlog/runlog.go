// Package runlog writes a revision's output to its log file, <data dir>/logs/<ns>/<rev>.log,
// shared by its instances (each line prefixed "[<instance index>] ") and by what the runtime
// did for it ("[pull] ...", "[build] ..."), and keeps each stream's last lines for crash
// messages. Both local runtimes (processes and runc containers) write through it, so the files
// look the same whichever ran the revision.
package runlog

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

const (
	// TailLines is how many of a stream's last output lines LastLines keeps.
	TailLines = 10
	// maxLine is the longest partial line buffered before it is written out anyway.
	maxLine = 64 << 10
)

// Path is the log file of a revision under dataDir.
func Path(dataDir, namespace, name string) string {
	return filepath.Join(dataDir, "logs", namespace, name+".log")
}

// Sink is one revision's log file, open while anyone holds a reference.
type Sink struct {
	path string
	log  *slog.Logger

	mu   sync.Mutex
	f    *os.File
	refs int
}

// NewSink makes the sink of the file at path; log receives problems with the file.
func NewSink(path string, log *slog.Logger) *Sink {
	return &Sink{path: path, log: log}
}

// Acquire opens the file if nobody holds it yet; a file that cannot be opened is logged and
// output is dropped, as running the app matters more than keeping its logs.
func (s *Sink) Acquire() {
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

// Release closes the file when its last holder is done.
func (s *Sink) Release() {
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

// Write appends p while the sink is held; it never fails (a full disk must not stop the app).
func (s *Sink) Write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_, _ = s.f.Write(p)
	}
}

// Line writes one line with a prefix, holding the sink for the time it takes.
func (s *Sink) Line(prefix, line string) {
	s.Acquire()
	defer s.Release()
	s.Write([]byte(prefix + strings.TrimRight(line, "\n") + "\n"))
}

// LineWriter copies one output stream into a Sink a whole line at a time with a prefix naming
// the instance, and remembers the last lines.
type LineWriter struct {
	sink   *Sink
	prefix string

	mu   sync.Mutex
	buf  []byte
	tail []string
}

// NewLineWriter writes into sink with prefix before each line.
func NewLineWriter(sink *Sink, prefix string) *LineWriter {
	return &LineWriter{sink: sink, prefix: prefix}
}

// Write implements io.Writer.
func (w *LineWriter) Write(p []byte) (int, error) {
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

// Flush writes out a last line that had no newline.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
}

func (w *LineWriter) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	w.sink.Write([]byte(w.prefix + string(line) + "\n"))
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	w.tail = append(w.tail, string(line))
	if len(w.tail) > TailLines {
		w.tail = w.tail[len(w.tail)-TailLines:]
	}
}

// LastLines is the stream's last few non-empty lines, joined by newlines.
func (w *LineWriter) LastLines() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.tail, "\n")
}
