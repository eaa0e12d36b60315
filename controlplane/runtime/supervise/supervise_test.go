package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/runtime"
	"github.com/skiff-dev/skiff/controlplane/runtime/probe"
)

// fakeDriver runs "instances" that are loopback listeners in this process, so the Supervisor's
// real probes, bounds, restarts and stops are exercised without processes.
type fakeDriver struct {
	planErr   error
	prepare   func(ctx context.Context, p *Preparation)
	startErr  error // every Start fails with it
	crash     bool  // every run exits at once with code 3, saying "boom"
	stubborn  bool  // runs ignore SIGTERM
	liveness  bool  // the plan has an exec liveness probe, failing once an instance is sick
	revisions []string

	mu       sync.Mutex
	started  map[string]int // runs started, by revision
	procs    []*fakeProc
	released map[string]int
	stops    int
	kills    int
}

func (d *fakeDriver) Plan(k Key, _ *servingv1.Revision) (*Plan, error) {
	if d.planErr != nil {
		return nil, d.planErr
	}
	p := &Plan{
		Readiness: probe.Spec{Kind: probe.TCP, Period: 50 * time.Millisecond, Timeout: time.Second, Successes: 1, Failures: 1},
		Grace:     100 * time.Millisecond,
		Prepare:   d.prepare,
		Start: func(ctx context.Context, in Instance) (Process, error) {
			return d.start(ctx, k, in)
		},
		Release: func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.released[k.Name]++
		},
	}
	if d.liveness {
		p.Liveness = &probe.Spec{Kind: probe.Exec, Command: []string{"check"}, Period: 50 * time.Millisecond, Timeout: time.Second, Successes: 1, Failures: 2}
	}
	return p, nil
}

func (d *fakeDriver) start(ctx context.Context, k Key, in Instance) (Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d.startErr != nil {
		return nil, d.startErr
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(in.Port)))
	if err != nil {
		return nil, err
	}
	p := &fakeProc{d: d, ln: ln, exited: make(chan struct{})}
	go func() { // accept probes until closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	d.mu.Lock()
	d.started[k.Name]++
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	if d.crash {
		p.exit(3, "boom")
	}
	return p, nil
}

func (d *fakeDriver) count(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started[name]
}

// fakeProc is one run: a listener.
type fakeProc struct {
	d      *fakeDriver
	ln     net.Listener
	exited chan struct{}
	once   sync.Once
	code   int
	out    string
	sick   atomic.Bool
}

func (p *fakeProc) exit(code int, out string) {
	p.once.Do(func() {
		_ = p.ln.Close()
		p.code, p.out = code, out
		close(p.exited)
	})
}

func (p *fakeProc) Exited() <-chan struct{} { return p.exited }

func (p *fakeProc) Stop() error {
	p.d.mu.Lock()
	p.d.stops++
	p.d.mu.Unlock()
	if !p.d.stubborn {
		p.exit(143, "")
	}
	return nil
}

func (p *fakeProc) Kill() error {
	p.d.mu.Lock()
	p.d.kills++
	p.d.mu.Unlock()
	p.exit(137, "")
	return nil
}

func (p *fakeProc) Exec(context.Context, []string) error {
	if p.sick.Load() {
		return errors.New("exit status 1")
	}
	return nil
}

func (p *fakeProc) Finish() Exit {
	<-p.exited
	return Exit{Code: p.code, Output: p.out}
}

func newSupervisor(t *testing.T, d *fakeDriver, edit func(*Config)) *Supervisor {
	t.Helper()
	d.started, d.released = map[string]int{}, map[string]int{}
	cfg := Config{
		Name: "test", DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainTimeout: 0, MaxGracePeriod: time.Second,
		RestartBackoff: 10 * time.Millisecond, MaxRestartBackoff: 20 * time.Millisecond,
		CrashLoopLimit: 3, MaxInstances: 100, StartRate: 1000, StartBurst: 100,
	}
	if edit != nil {
		edit(&cfg)
	}
	s := New(cfg, d)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func rev(name string) *servingv1.Revision {
	return &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitState(t *testing.T, s *Supervisor, name, what string, cond func(runtime.State) bool) runtime.State {
	t.Helper()
	var st runtime.State
	waitFor(t, what+" of "+name, func() bool { st = s.State("ns", name); return cond(st) })
	return st
}

// The Supervisor's behaviour, case by case: each scales revisions through a fake driver and
// checks what State says and what the driver was asked to do.
func TestSupervisor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver *fakeDriver
		config func(*Config)
		run    func(t *testing.T, s *Supervisor, d *fakeDriver)
	}{{
		name:   "scales up, endpoints of ready instances in index order",
		driver: &fakeDriver{},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 3)
			st := waitState(t, s, "a", "3 ready", func(st runtime.State) bool { return st.Ready == 3 })
			if st.Desired != 3 || len(st.Endpoints) != 3 || st.Failed || st.Restarts != 0 {
				t.Errorf("state = %+v", st)
			}
			for _, ep := range st.Endpoints {
				if ep.Address != "127.0.0.1" || ep.Port == 0 {
					t.Errorf("endpoint %+v", ep)
				}
			}
			if got := len(s.ReadyInstances()); got != 3 {
				t.Errorf("ReadyInstances: %d, want 3", got)
			}
		},
	}, {
		name:   "scale down stops instances; Remove stops all, releases once, State is zero",
		driver: &fakeDriver{},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 3)
			waitState(t, s, "a", "3 ready", func(st runtime.State) bool { return st.Ready == 3 })
			mustScale(t, s, "a", 1)
			st := s.State("ns", "a")
			if st.Ready != 1 || len(st.Endpoints) != 1 {
				t.Errorf("after scaling down to 1: %+v (stopped instances leave Endpoints at once)", st)
			}
			removeAndWait(t, s, "a")
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.released["a"] != 1 {
				t.Errorf("released %d times, want once", d.released["a"])
			}
			for _, p := range d.procs {
				select {
				case <-p.exited:
				default:
					t.Error("a run still goes after WaitRemoved")
				}
			}
		},
	}, {
		name:   "a plan failure fails the revision and starts nothing",
		driver: &fakeDriver{planErr: &Failure{Reason: runtime.ReasonImageUnsupported, Message: "no way"}},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 2)
			st := s.State("ns", "a")
			if !st.Failed || st.Reason != runtime.ReasonImageUnsupported || st.Message != "no way" || st.Desired != 2 {
				t.Errorf("state = %+v", st)
			}
			if d.count("a") != 0 {
				t.Errorf("%d runs started", d.count("a"))
			}
		},
	}, {
		name:   "any other plan error is Unsupported",
		driver: &fakeDriver{planErr: errors.New("odd")},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 1)
			if st := s.State("ns", "a"); !st.Failed || st.Reason != runtime.ReasonUnsupported || st.Message != "odd" {
				t.Errorf("state = %+v", st)
			}
		},
	}, {
		name: "a preparation that fails then succeeds: Failed, then ready",
		driver: &fakeDriver{prepare: func() func(context.Context, *Preparation) {
			return func(ctx context.Context, p *Preparation) {
				p.Fail("ImagePullBackOff", "not yet")
				time.Sleep(200 * time.Millisecond)
				p.Ready()
			}
		}()},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 1)
			waitState(t, s, "a", "the preparation's failure", func(st runtime.State) bool { return st.Failed && st.Reason == "ImagePullBackOff" })
			if d.count("a") != 0 {
				t.Errorf("a run started before the preparation was done")
			}
			st := waitState(t, s, "a", "ready", func(st runtime.State) bool { return st.Ready == 1 })
			if st.Failed || st.Reason != "" {
				t.Errorf("state = %+v, want the failure cleared", st)
			}
		},
	}, {
		name:   "crashes are restarted, and fail the revision after CrashLoopLimit before ever being ready",
		driver: &fakeDriver{crash: true},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 1)
			st := waitState(t, s, "a", "crash loop", func(st runtime.State) bool { return st.Failed })
			if st.Reason != "ExitCode3" || st.Message != "Container failed with: boom" || st.Restarts < 3 {
				t.Errorf("state = %+v", st)
			}
			waitFor(t, "more restarts", func() bool { return d.count("a") > 4 })
		},
	}, {
		name:   "a start error with a Failure keeps its reason; others are StartError",
		driver: &fakeDriver{startErr: &Failure{Reason: "CreateContainerConfigError", Message: `secret "x" not found`}},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 1)
			st := waitState(t, s, "a", "a restart", func(st runtime.State) bool { return st.Restarts > 0 })
			if st.Reason != "CreateContainerConfigError" || st.Message != `secret "x" not found` {
				t.Errorf("state = %+v", st)
			}
		},
	}, {
		name:   "MaxInstances bounds instances across revisions; a revision with none is Unschedulable until a slot frees",
		driver: &fakeDriver{},
		config: func(c *Config) { c.MaxInstances = 2 },
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "huge", 100000)
			waitState(t, s, "huge", "the bound's worth ready", func(st runtime.State) bool { return st.Ready == 2 })
			mustScale(t, s, "small", 1)
			st := s.State("ns", "small")
			if !st.Failed || st.Reason != runtime.ReasonUnschedulable || !strings.Contains(st.Message, "at most 2 instances") {
				t.Errorf("small: %+v", st)
			}
			if n := d.count("huge"); n != 2 {
				t.Errorf("huge started %d runs, want the bound, 2", n)
			}
			if st := s.State("ns", "huge"); st.Failed {
				t.Errorf("huge, running some instances, is not Unschedulable: %+v", st)
			}
			mustScale(t, s, "huge", 0)
			waitState(t, s, "small", "ready once slots are free", func(st runtime.State) bool { return st.Ready == 1 && !st.Failed })
		},
	}, {
		name:   "instances not started when removed never start (issue 13)",
		driver: &fakeDriver{},
		config: func(c *Config) { c.StartRate, c.StartBurst = 2, 1 },
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 50)
			waitFor(t, "a first run", func() bool { return d.count("a") > 0 })
			removeAndWait(t, s, "a")
			if n := d.count("a"); n > 2 {
				t.Errorf("%d runs started, want those waiting for their turn cancelled", n)
			}
		},
	}, {
		name:   "a run that ignores SIGTERM is killed after its grace period",
		driver: &fakeDriver{stubborn: true},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 1)
			waitState(t, s, "a", "ready", func(st runtime.State) bool { return st.Ready == 1 })
			removeAndWait(t, s, "a")
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.stops != 1 || d.kills != 1 {
				t.Errorf("SIGTERM %d, SIGKILL %d times; want one each", d.stops, d.kills)
			}
		},
	}, {
		name:   "a failing liveness probe restarts the instance",
		driver: &fakeDriver{liveness: true},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			mustScale(t, s, "a", 1)
			waitState(t, s, "a", "ready", func(st runtime.State) bool { return st.Ready == 1 })
			d.mu.Lock()
			d.procs[0].sick.Store(true)
			d.mu.Unlock()
			st := waitState(t, s, "a", "a restart", func(st runtime.State) bool { return st.Restarts == 1 })
			if !strings.Contains(st.Message, "Liveness probe failed: exit status 1") || st.Reason != "ExitCode143" {
				t.Errorf("state = %+v", st)
			}
			waitState(t, s, "a", "ready again", func(st runtime.State) bool { return st.Ready == 1 })
		},
	}, {
		name:   "bad input is refused",
		driver: &fakeDriver{},
		run: func(t *testing.T, s *Supervisor, d *fakeDriver) {
			for _, c := range []struct {
				rev      *servingv1.Revision
				replicas int
				says     string
			}{
				{nil, 1, "nil revision"},
				{rev(""), 1, "invalid namespace or name"},
				{rev("../x"), 1, "invalid namespace or name"},
				{rev("a"), -1, "negative replicas"},
			} {
				if err := s.Scale(context.Background(), c.rev, c.replicas); err == nil || !strings.Contains(err.Error(), c.says) {
					t.Errorf("Scale(%v, %d) = %v, want an error saying %q", c.rev, c.replicas, err, c.says)
				}
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Scale(context.Background(), rev("a"), 1); !errors.Is(err, ErrClosed) {
				t.Errorf("Scale after Close = %v, want ErrClosed", err)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSupervisor(t, tc.driver, tc.config)
			tc.run(t, s, tc.driver)
		})
	}
}

// removeAndWait removes the revision, checks that its State is the zero State at once, and
// waits for its instances to stop.
func removeAndWait(t *testing.T, s *Supervisor, name string) {
	t.Helper()
	if err := s.Remove(context.Background(), "ns", name); err != nil {
		t.Fatal(err)
	}
	if st := s.State("ns", name); st.Desired != 0 || st.Ready != 0 || len(st.Endpoints) != 0 {
		t.Errorf("after Remove: %+v, want the zero State", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitRemoved(ctx, "ns", name); err != nil {
		t.Fatal(err)
	}
}

func mustScale(t *testing.T, s *Supervisor, name string, n int) {
	t.Helper()
	if err := s.Scale(context.Background(), rev(name), n); err != nil {
		t.Fatal(err)
	}
}

// exitReason's table: what a run that ended reports.
func TestExitReason(t *testing.T) {
	for _, tc := range []struct {
		ex            Exit
		liveness      string
		reason, shows string
	}{
		{Exit{Code: 3, Output: "panic: boom"}, "", "ExitCode3", "Container failed with: panic: boom"},
		{Exit{Code: 0}, "", "ExitCode0", "Container failed with: container exited with no error"},
		{Exit{Code: 2}, "", "ExitCode2", "Container failed with: exit code 2"},
		{Exit{Code: 1, Reason: runtime.ReasonStartError, Message: "no /app"}, "", runtime.ReasonStartError, "no /app"},
		{Exit{Code: 143, Output: "bye"}, "Liveness probe failed: 503", "ExitCode143", "Container failed with: Liveness probe failed: 503"},
	} {
		reason, msg := exitReason(tc.ex, tc.liveness)
		if reason != tc.reason || msg != tc.shows {
			t.Errorf("exitReason(%+v, %q) = %q, %q; want %q, %q", tc.ex, tc.liveness, reason, msg, tc.reason, tc.shows)
		}
	}
}

// Every revision's State change reaches OnChange, outside the lock (State may be called).
func TestOnChange(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	var s *Supervisor
	d := &fakeDriver{}
	s = newSupervisor(t, d, func(c *Config) {
		c.OnChange = func(ns, name string) {
			_ = s.State(ns, name) // would deadlock if called under the lock
			mu.Lock()
			seen = append(seen, ns+"/"+name)
			mu.Unlock()
		}
	})
	for i := range 3 {
		mustScale(t, s, fmt.Sprint("r", i), 1)
	}
	waitFor(t, "OnChange for every revision", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(seen, "ns/r0") && slices.Contains(seen, "ns/r1") && slices.Contains(seen, "ns/r2")
	})
}
