// Package logs shows a deployed function's logs, as `func logs` does (func#1309).
//
// On `skiff up` every revision's instances write to <data dir>/logs/<namespace>/<revision>.log
// (controlplane/runtime/local), on the machine the CLI runs on: Local reads the files of the
// function's revisions (listed through the API) and prints each line after its revision's name;
// with Follow it keeps printing what is appended, and the files of revisions created later, until
// its context ends. The data dir is what `skiff up --data-dir` was given (FindDataDir looks for
// it). The local runtime does not time-stamp lines, so there is no --since on skiff up.
//
// In a cluster (Kube), it reads the user-container logs of the Service's pods, as func's
// k8s.GetPodLogsBySelector does, since a time (--since), following them with Follow; each
// line is printed after its pod's name.
package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/functions/deploy"
)

// DataDirEnv names skiff up's data dir for the CLI, as --data-dir does.
const DataDirEnv = "SKIFF_DATA_DIR"

// FindDataDir finds skiff up's data dir: explicit if given, else $SKIFF_DATA_DIR, else the
// first .skiff directory (skiff up's default --data-dir) holding logs/ in any of from or
// their parents.
func FindDataDir(explicit string, from ...string) (string, error) {
	if explicit != "" {
		return filepath.Abs(explicit)
	}
	if d := os.Getenv(DataDirEnv); d != "" {
		return filepath.Abs(d)
	}
	for _, start := range from {
		dir, err := filepath.Abs(start)
		if err != nil {
			continue
		}
		for {
			cand := filepath.Join(dir, ".skiff")
			if info, err := os.Stat(filepath.Join(cand, "logs")); err == nil && info.IsDir() {
				return cand, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("cannot find skiff up's logs: pass --data-dir (the --data-dir skiff up was started with) or set %s", DataDirEnv)
}

// Local prints the logs of a function deployed on skiff up.
type Local struct {
	// API lists the function's revisions.
	API deploy.API
	// DataDir is skiff up's data dir.
	DataDir string
	// Poll is how often Follow looks for new lines and revisions (default 200ms).
	Poll time.Duration
	// Revision, when set, shows that revision of the Service only (it must be one).
	Revision string
}

var kRevision = api.LookupKind("revision")

// revisions are the function's revisions in ns, oldest first.
func (l *Local) revisions(ctx context.Context, name, ns string) ([]string, error) {
	items, err := l.API.List(ctx, kRevision, ns)
	if err != nil {
		return nil, fmt.Errorf("listing revisions: %w", err)
	}
	var out []string
	for _, raw := range items {
		var r struct {
			Metadata struct {
				Name              string            `json:"name"`
				Labels            map[string]string `json:"labels"`
				CreationTimestamp time.Time         `json:"creationTimestamp"`
			} `json:"metadata"`
		}
		if json.Unmarshal(raw, &r) == nil && r.Metadata.Labels[servingv1.ServiceLabel] == name &&
			(l.Revision == "" || r.Metadata.Name == l.Revision) {
			out = append(out, r.Metadata.Name)
		}
	}
	slices.Sort(out) // {name}-{generation:05d}: creation order
	return out, nil
}

// Stream writes the function's log lines to w, each as "<revision> <line>"; with follow it
// goes on until ctx ends.
func (l *Local) Stream(ctx context.Context, w io.Writer, name, ns string, follow bool) error {
	poll := l.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	revs, err := l.revisions(ctx, name, ns)
	if err != nil {
		return err
	}
	if len(revs) == 0 {
		if l.Revision != "" {
			return fmt.Errorf("%s has no revision %s in namespace %s", name, l.Revision, ns)
		}
		return fmt.Errorf("%s has no revisions in namespace %s: deploy it first", name, ns)
	}
	tails := map[string]*tail{}
	defer func() {
		for _, t := range tails {
			t.close()
		}
	}()
	for {
		for _, r := range revs {
			t := tails[r]
			if t == nil {
				t = &tail{path: filepath.Join(l.DataDir, "logs", ns, r+".log"), prefix: r + " "}
				tails[r] = t
			}
			if err := t.copy(w); err != nil {
				return err
			}
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
		if revs, err = l.revisions(ctx, name, ns); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// tail reads one log file from where it last stopped, a whole line at a time.
type tail struct {
	path   string
	prefix string
	f      *os.File
	r      *bufio.Reader
	part   string
}

func (t *tail) copy(w io.Writer) error {
	if t.f == nil {
		f, err := os.Open(t.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the revision has written nothing yet
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", t.path, err)
		}
		t.f, t.r = f, bufio.NewReader(f)
	}
	for {
		s, err := t.r.ReadString('\n')
		t.part += s
		if err == io.EOF {
			return nil // a partial line waits for the rest
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", t.path, err)
		}
		line := strings.TrimRight(t.part, "\n")
		t.part = ""
		if _, err := fmt.Fprintln(w, t.prefix+line); err != nil {
			return err
		}
	}
}

func (t *tail) close() {
	if t.f != nil {
		t.f.Close()
	}
}
