package gateway

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/skiff-dev/skiff/telemetry"
)

// maxRequestLogFiles bounds the request log files kept open at once.
const maxRequestLogFiles = 64

// RequestLogPrefix starts every request log line in a revision's log, as the local
// runtime prefixes its own lines ("[pull] ", "[build] ") and each instance's ("[0] ").
const RequestLogPrefix = "[proxy] "

// requestLog appends request log lines to <dir>/<namespace>/<revision>.log, the revision's
// log of `skiff up` (controlplane/runtime/runlog), keeping at most maxRequestLogFiles open.
type requestLog struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	files map[string]*os.File
	order []string // open paths, oldest first
}

func newRequestLog(dir string, log *slog.Logger) *requestLog {
	return &requestLog{dir: dir, log: log, files: map[string]*os.File{}}
}

// LogRequest implements proxy.RequestLogger.
func (l *requestLog) LogRequest(rev telemetry.Revision, line []byte) {
	path := filepath.Join(l.dir, rev.Namespace, rev.Name+".log")
	buf := make([]byte, 0, len(RequestLogPrefix)+len(line))
	buf = append(append(buf, RequestLogPrefix...), line...)
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.files[path]
	if f == nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			l.log.Warn("request log: creating the directory", "path", path, "err", err)
			return
		}
		var err error
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			l.log.Warn("request log: opening the file", "path", path, "err", err)
			return
		}
		if len(l.order) >= maxRequestLogFiles {
			oldest := l.order[0]
			l.order = l.order[1:]
			l.files[oldest].Close()
			delete(l.files, oldest)
		}
		l.files[path] = f
		l.order = append(l.order, path)
	}
	// One write per line: O_APPEND keeps it whole beside the instances' own lines.
	if _, err := f.Write(buf); err != nil {
		l.log.Warn("request log: writing", "path", path, "err", err)
	}
}

func (l *requestLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		f.Close()
	}
	l.files, l.order = map[string]*os.File{}, nil
}
