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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/client/apiclient"
)

// process is one run of the skiff binary.
type process struct {
	cmd    *exec.Cmd
	log    string // stdout and stderr: a file, not a pipe, so Wait never waits on a process that inherited it
	exited chan error
}

func (p *process) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// The real `skiff up` binary is killed (SIGKILL: no shutdown code runs) while a client is
// sending events and while no event could be delivered yet (the subscriber answers 503).
// Started again on the same --data-dir, it delivers every event it answered 202: an
// accepted event is never lost.
func TestBrokerKeepsAcceptedEventsAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the skiff binary")
	}
	bin, root, data := skiffBinary(t), moduleRoot(t), t.TempDir()
	var subscriberUp atomic.Bool
	rec := newRecorder(t, func(string, *event.Event, int) (int, string) {
		if !subscriberUp.Load() {
			return http.StatusServiceUnavailable, "down for maintenance"
		}
		return http.StatusOK, ""
	})
	apiAddr, httpAddr := freeAddr(t), freeAddr(t)
	args := []string{"up", "--data-dir", data, "--work-dir", root, "--wasm-dir", filepath.Join(shared.dir, "wasm-bin"),
		"--api-addr", apiAddr, "--xds-addr", freeAddr(t), "--http-addr", httpAddr, "--admin-addr", freeAddr(t),
		"--extproc-addr", freeAddr(t), "--broker-ingress-addr", freeAddr(t), "--broker-ack-wait", "2s",
		"--https-addr", freeAddr(t), "--local-http-addr", freeAddr(t)}
	start := func() *process {
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
	client := apiclient.New(apiAddr)
	waitReady := func(p *process, kind, name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		for {
			_, err := apiclient.WaitReady(ctx, client, api.LookupKind(kind), "default", name)
			if err == nil {
				return
			}
			if ctx.Err() != nil || !strings.Contains(err.Error(), "connect") {
				t.Fatalf("wait for %s %s: %v\n%s", kind, name, err, p.output())
			}
			time.Sleep(50 * time.Millisecond) // the API is not listening yet
		}
	}

	first := start()
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = first.cmd.Process.Kill()
		}
	})
	eventually(t, 60*time.Second, "the API of the first skiff up", func() bool {
		_, err := client.List(context.Background(), api.LookupKind("broker"), "default")
		return err == nil
	})
	docs, err := apiclient.ReadManifests("-", strings.NewReader(fmt.Sprintf(brokerYAML, "default")+fmt.Sprintf(`---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: keep
spec:
  broker: default
  subscriber:
    uri: %s
  delivery:
    retry: 100
    backoffPolicy: linear
    backoffDelay: PT0.1S
`, rec.url("/keep"))))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := client.Apply(context.Background(), d, "default"); err != nil {
			t.Fatal(err)
		}
	}
	waitReady(first, "broker", "default")
	waitReady(first, "trigger", "keep")
	url := "http://broker-ingress.localhost/default/default"

	// A client sends without pause; the process is killed once 100 events are accepted.
	snd := newSender(httpAddr)
	var mu sync.Mutex
	var accepted []string
	stop := make(chan struct{})
	var sending sync.WaitGroup
	sending.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("ev-%05d", i)
			if code, _, err := snd.send(url, newEvent(id, "t", "/restart", ""), i%2 == 0); err == nil && code == http.StatusAccepted {
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
			}
		}
	})
	eventually(t, 60*time.Second, "100 events accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 100
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	<-first.exited
	close(stop)
	sending.Wait()
	if n := len(rec.accepted("/keep")); n != 0 {
		t.Fatalf("%d events were delivered before the kill; the subscriber was meant to refuse them all", n)
	}
	if len(rec.events("/keep")) == 0 {
		t.Fatal("no delivery was attempted before the kill")
	}

	subscriberUp.Store(true)
	second := start()
	t.Cleanup(func() {
		_ = second.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-second.exited:
		case <-time.After(30 * time.Second):
			_ = second.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, to see what it waits for
			select {
			case <-second.exited:
			case <-time.After(5 * time.Second):
				_ = second.cmd.Process.Kill()
			}
			t.Errorf("the second skiff up did not stop on SIGTERM\n%s", second.output())
		}
	})
	t.Logf("killed after %d accepted events; restarted", len(accepted))
	eventually(t, 90*time.Second, fmt.Sprintf("all %d accepted events delivered after the restart", len(accepted)), func() bool {
		got := rec.accepted("/keep")
		for _, id := range accepted {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
}
