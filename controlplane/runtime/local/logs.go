package local

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/controlplane/runtime/runlog"
)

// output carries one process's stdout and stderr into the revision's log file
// (controlplane/runtime/runlog), a whole line at a time after the instance's prefix, and keeps
// their last lines for crash messages. Pipes rather than the writers themselves go to the
// process, so that output of children that outlive it cannot hold up its exit.
type output struct {
	stdout, stderr *runlog.LineWriter
	outR, outW     *os.File
	errR, errW     *os.File
	copiers        sync.WaitGroup
}

// newOutput makes the pipes of a process about to start.
func newOutput(sink *runlog.Sink, prefix string) (*output, error) {
	o := &output{stdout: runlog.NewLineWriter(sink, prefix), stderr: runlog.NewLineWriter(sink, prefix)}
	var err error
	if o.outR, o.outW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("creating the stdout pipe: %w", err)
	}
	if o.errR, o.errW, err = os.Pipe(); err != nil {
		_ = o.outR.Close()
		_ = o.outW.Close()
		return nil, fmt.Errorf("creating the stderr pipe: %w", err)
	}
	return o, nil
}

// abandon closes the pipes of a process that was never started.
func (o *output) abandon() {
	for _, f := range []*os.File{o.outR, o.outW, o.errR, o.errW} {
		_ = f.Close()
	}
}

// copy starts copying, once the process holds its own copies of the pipes' write ends (or failed
// to start).
func (o *output) copy() {
	_ = o.outW.Close()
	_ = o.errW.Close()
	o.copiers.Add(2)
	go func() { defer o.copiers.Done(); _, _ = o.outR.WriteTo(o.stdout) }()
	go func() { defer o.copiers.Done(); _, _ = o.errR.WriteTo(o.stderr) }()
}

// finish waits for the output of the process (and its group) to end, but not forever: a child
// that left the group may hold the pipes.
func (o *output) finish() {
	copied := make(chan struct{})
	go func() { o.copiers.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	_ = o.outR.Close()
	_ = o.errR.Close()
	<-copied
	o.stdout.Flush()
	o.stderr.Flush()
}

// lastLines is the last lines of stderr, else of stdout.
func (o *output) lastLines() string {
	if out := o.stderr.LastLines(); out != "" {
		return out
	}
	return o.stdout.LastLines()
}
