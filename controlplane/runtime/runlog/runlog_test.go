package runlog

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLineWriter(t *testing.T) {
	path := Path(t.TempDir(), "ns", "rev")
	s := NewSink(path, slog.Default())
	s.Acquire()
	w := NewLineWriter(s, "[0] ")
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\r\n\nthree"))
	w.Flush()
	s.Line("[pull] ", "pulled\n")
	s.Release()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[0] one\n[0] two\n[0] \n[0] three\n[pull] pulled\n"; string(got) != want {
		t.Errorf("log file %q, want %q", got, want)
	}
	if w.LastLines() != "one\ntwo\nthree" {
		t.Errorf("LastLines %q", w.LastLines())
	}
	if filepath.Base(filepath.Dir(path)) != "ns" || !strings.HasSuffix(path, "rev.log") {
		t.Errorf("path %s", path)
	}
	s.Write([]byte("dropped\n")) // not held: dropped, no panic
}
