package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/client/apiclient"
)

// startUp starts the skiff binary with args, its output in a file.
func startUp(t *testing.T, bin string, args []string) *process {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "skiff-up-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := &process{cmd: exec.Command(bin, args...), log: f.Name(), exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	return p
}

// stopOnCleanup stops the process with SIGTERM when the test ends and fails the test
// if it exits with an error or does not stop within 30s.
func (p *process) stopOnCleanup(t *testing.T) {
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.exited:
			if err != nil {
				t.Errorf("skiff up exited with %v\n%s", err, p.output())
			}
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			t.Errorf("skiff up did not stop on SIGTERM\n%s", p.output())
		}
	})
}

// acceptedLog is the ids of the events a broker answered 202, in order.
type acceptedLog struct {
	mu   sync.Mutex
	ids  []string
	sent int
}

func (a *acceptedLog) add(id string, accepted bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sent++
	if accepted {
		a.ids = append(a.ids, id)
	}
}

func (a *acceptedLog) snapshot() (sent int, ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent, append([]string(nil), a.ids...)
}

func (a *acceptedLog) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

// Issue 13, item 2: an event answered 202 was lost when `skiff up` was killed during a stream
// of posts: after the restart the dispatcher delivered before the proxy listened (or routed
// the subscriber), "connection refused" from Skiff's own proxy counted as the subscriber's
// failure, and with no retry configured the event was acknowledged and dropped.
//
// The real binary is killed with SIGKILL ten times while a client keeps posting, at several
// points: as soon as its API answers (deliveries not started yet, the previous run's events
// waiting), and after 1 to 60 events accepted by that run (deliveries in flight, subscriber
// instances starting). The subscriber is a Knative Service reached through the proxy, its
// Trigger has no retry: any delivery that failed for the proxy's sake would be lost. Every
// event answered 202 must arrive at least once.
func TestKilledSkiffUpLosesNoAcceptedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the skiff binary")
	}
	bin, root, data := skiffBinary(t), moduleRoot(t), t.TempDir()
	display := exampleBinary(t, "event-display")
	rec := newRecorder(t, nil)
	apiAddr, httpAddr := freeAddr(t), freeAddr(t)
	args := []string{"up", "--data-dir", data, "--work-dir", root, "--wasm-dir", filepath.Join(shared.dir, "wasm-bin"),
		"--api-addr", apiAddr, "--xds-addr", freeAddr(t), "--http-addr", httpAddr, "--admin-addr", freeAddr(t),
		"--extproc-addr", freeAddr(t), "--broker-ingress-addr", freeAddr(t), "--broker-ack-wait", "1s",
		"--drain-timeout", "100ms"}
	client := apiclient.New(apiAddr)
	var mu sync.Mutex
	var running *process
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if running != nil {
			_ = running.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-running.exited:
			case <-time.After(30 * time.Second):
				_ = running.cmd.Process.Kill()
				<-running.exited
			}
		}
	})
	start := func() *process {
		p := startUp(t, bin, args)
		mu.Lock()
		running = p
		mu.Unlock()
		eventually(t, 60*time.Second, "the API of skiff up", func() bool {
			_, err := client.List(context.Background(), api.LookupKind("broker"), "default")
			return err == nil
		})
		return p
	}
	kill := func(p *process) {
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.exited
		mu.Lock()
		running = nil
		mu.Unlock()
	}

	p := start()
	docs, err := apiclient.ReadManifests("-", strings.NewReader(fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: sub
spec:
  template:
    spec:
      containers:
        - image: docker.io/library/event-display  # the local runtime runs the command
          command: [%q]
          env:
            - name: FORWARD_URL
              value: %s
---
`, display, rec.url("/sub"))+fmt.Sprintf(brokerYAML, "default")+`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: all
spec:
  broker: default
  subscriber:
    ref:
      apiVersion: serving.knative.dev/v1
      kind: Service
      name: sub
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := client.Apply(context.Background(), d, "default"); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range []string{"ksvc/sub", "broker/default", "trigger/all"} {
		k, name, _ := strings.Cut(kind, "/")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		if _, err := apiclient.WaitReady(ctx, client, api.LookupKind(k), "default", name); err != nil {
			t.Fatalf("wait for %s: %v\n%s", kind, err, p.output())
		}
		cancel()
	}

	// One client posts without pause for the whole test (failing while skiff is down).
	var accepted acceptedLog
	stop := make(chan struct{})
	var sending sync.WaitGroup
	sending.Go(func() {
		snd := newSender(httpAddr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("ev-%05d", i)
			code, _, err := snd.send("http://broker-ingress.localhost/default/default", newEvent(id, "t", "/kill", ""), i%2 == 0)
			accepted.add(id, err == nil && code == http.StatusAccepted)
			if err != nil || code != http.StatusAccepted {
				time.Sleep(10 * time.Millisecond) // down: do not spin
			}
		}
	})
	defer func() { close(stop); sending.Wait() }()

	// Kill after this many events accepted by the run (0: as soon as its API answers).
	kills := []int{1, 0, 25, 5, 60, 0, 10, 40, 3, 15}
	for run, k := range kills {
		from := accepted.len()
		eventually(t, 60*time.Second, fmt.Sprintf("run %d: %d events accepted", run, k), func() bool { return accepted.len() >= from+k })
		kill(p)
		p = start()
	}
	eventually(t, 60*time.Second, "events accepted after the last restart", func() bool { return accepted.len() >= 50 })
	close(stop)
	sending.Wait()
	stop = make(chan struct{}) // for the deferred close

	sent, ids := accepted.snapshot()
	var missing []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := rec.accepted("/sub")
		missing = missing[:0]
		for _, id := range ids {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d events answered 202 were never delivered: %v", len(missing), len(ids), missing[:min(len(missing), 20)])
		}
	}
	got := rec.accepted("/sub")
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("kill -9 runs: %d; events sent %d, answered 202 %d, delivered %d distinct (all 202'd among them), %d duplicate deliveries",
		len(kills), sent, len(ids), len(got), dups)
}
