package main

// -compare: brokers with one Trigger (or -triggers N) in `skiff up` run as a separate process,
// the real binary, one per -skiff NAME=PATH, so that builds are compared in one run and the
// senders and the sink (this process) are not in the measured process. Each row is one round
// of one binary: CloudEvents accepted per second through the gateway (the cloudevents filter
// in front of the broker ingress), and the CPU time `skiff up` spent per accepted event from
// the first POST until every delivery reached the sink, read from /proc/PID/stat; the bench
// process's own CPU per event (senders and sink) is printed next to it.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/client/apiclient"
)

// skiffProc is one `skiff up` process with eventing.
type skiffProc struct {
	name       string
	cmd        *exec.Cmd
	dir        string
	http, api  string
	admin      string
	ingress    string // the broker ingress's own address (-direct)
	delivered  atomic.Int64
	sink       *httptest.Server
	logFile    string
	brokerPath string
}

func (p *skiffProc) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
	if p.sink != nil {
		p.sink.Close()
	}
	os.RemoveAll(p.dir)
}

// moduleRoot is the nearest directory at or above dir holding a go.mod: a binary's source
// tree, whose examples and wasm filters its `skiff up` builds.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod at or above %s: the binary's source tree is its --work-dir", dir)
		}
	}
}

// startSkiffProc runs bin as `skiff up` with eventing in a data dir of its own, its
// --work-dir the source tree the binary is in, and creates a broker with triggers Triggers,
// all delivering to a sink of this process.
func startSkiffProc(ctx context.Context, name, bin string, triggers int, env []string) (*skiffProc, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	root, err := moduleRoot(filepath.Dir(bin))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "skiff-eventing-")
	if err != nil {
		return nil, err
	}
	p := &skiffProc{name: name, dir: dir, logFile: filepath.Join(dir, "skiff.log")}
	addrs := map[string]string{}
	for _, f := range []string{"api-addr", "xds-addr", "extproc-addr", "http-addr", "admin-addr", "broker-ingress-addr"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addrs[f] = l.Addr().String()
		l.Close()
	}
	args := []string{"up", "--data-dir", filepath.Join(dir, "data"), "--work-dir", root,
		"--https-addr", "", "--local-http-addr", "", "--metrics-addr", "", "--oci-runtime", "none", "--drain-timeout", "100ms"}
	for f, a := range addrs {
		args = append(args, "--"+f, a)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(p.logFile)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p.http, p.api, p.admin, p.ingress = addrs["http-addr"], addrs["api-addr"], addrs["admin-addr"], addrs["broker-ingress-addr"]
	p.sink = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	c := apiclient.New(p.api)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for {
		if _, err = c.List(ctx, api.LookupKind("broker"), "default"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			p.stop()
			return nil, fmt.Errorf("%s: the API did not come up: %w (log: %s)", bin, err, p.logFile)
		case <-time.After(100 * time.Millisecond):
		}
	}
	bname := "b" + strconv.Itoa(triggers)
	if err := applyBroker(ctx, c, bname, triggers, p.sink.URL); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: %w (log: %s)", bin, err, p.logFile)
	}
	p.brokerPath = "/default/" + bname
	// The gateway routes to the ingress once the filter's configuration has arrived.
	client := &http.Client{}
	for {
		code, err := post(client, "http://"+p.http+p.brokerPath, "broker-ingress.localhost")
		if err == nil && code == http.StatusAccepted {
			break
		}
		select {
		case <-ctx.Done():
			p.stop()
			return nil, fmt.Errorf("%s: the broker did not accept events through the gateway: %d %v", bin, code, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return p, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// compare runs the -compare rows: rounds rounds, in each every binary in turn.
// With profileDir set, the first round saves each skiff up's CPU profile over its load there
// (NAME.cpu, from the admin endpoint's /debug/pprof/profile). With direct, each binary also
// gets rows of events posted straight to its broker ingress, without the gateway and its
// cloudevents filter (the ingress evaluates the Triggers itself): what the gateway's hop
// costs is the difference.
func compare(bins []string, triggers, conc int, dur time.Duration, rounds int, gogc int, profileDir string, direct bool) error {
	ctx := context.Background()
	type run struct {
		name, path string
		env        []string
	}
	var runs []run
	for _, b := range bins {
		name, path, ok := strings.Cut(b, "=")
		if !ok {
			name, path = "skiff up", b
		}
		runs = append(runs, run{name, path, nil})
	}
	if gogc > 0 {
		last := runs[len(runs)-1]
		runs = append(runs, run{fmt.Sprintf("%s GOGC=%d", last.name, gogc), last.path, []string{fmt.Sprintf("GOGC=%d", gogc)}})
	}
	var procs []*skiffProc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, r := range runs {
		p, err := startSkiffProc(ctx, r.name, r.path, triggers, r.env)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	rates := map[string][]float64{}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "build\ttriggers\tsenders\tround\taccepted/s\tskiff CPU/event\tbench CPU/event (senders, sink)\tdrained in")
	type target struct {
		p           *skiffProc
		name        string
		addr, host  string
		profileName string
	}
	var targets []target
	for _, p := range procs {
		targets = append(targets, target{p, p.name, p.http, "broker-ingress.localhost", p.name})
		if direct {
			targets = append(targets, target{p, p.name + " (ingress direct)", p.ingress, "", p.name + "-direct"})
		}
	}
	for r := 1; r <= rounds; r++ {
		for _, t := range targets {
			p := t.p
			before := p.delivered.Load()
			cpu0, err := skiffup.ProcessCPU(p.cmd.Process.Pid)
			if err != nil {
				return err
			}
			self0 := selfCPU()
			var prof chan error
			if profileDir != "" && r == 1 && t.profileName != "" {
				prof = make(chan error, 1)
				file := filepath.Join(profileDir, strings.ReplaceAll(t.profileName, " ", "_")+".cpu")
				go func() { prof <- skiffup.FetchProfile(p.admin, dur, file) }()
			}
			start := time.Now()
			ok := throughputN(client, "http://"+t.addr+p.brokerPath, t.host, conc, dur)
			sent := time.Since(start)
			if prof != nil {
				if err := <-prof; err != nil {
					fmt.Fprintf(os.Stderr, "%s: %v\n", p.name, err)
				}
			}
			want := before + ok*int64(triggers)
			deadline := time.Now().Add(5 * time.Minute)
			for p.delivered.Load() < want {
				if time.Now().After(deadline) {
					return fmt.Errorf("%s: %d of %d deliveries after 5 minutes", p.name, p.delivered.Load(), want)
				}
				time.Sleep(time.Millisecond)
			}
			drained := time.Since(start)
			cpu1, err := skiffup.ProcessCPU(p.cmd.Process.Pid)
			if err != nil {
				return err
			}
			self := selfCPU() - self0
			rate := float64(ok) / sent.Seconds()
			rates[t.name] = append(rates[t.name], rate)
			perEvent := func(d time.Duration) string {
				if ok == 0 {
					return "-"
				}
				return fmt.Sprintf("%.0fµs", float64(d.Microseconds())/float64(ok))
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\n", t.name, triggers, conc, r, rate, perEvent(cpu1-cpu0), perEvent(self), drained.Round(10*time.Millisecond))
		}
		tw.Flush()
	}
	fmt.Println()
	fmt.Fprintln(tw, "build\tmedian accepted/s\tratio to the first")
	first := skiffup.Median(rates[targets[0].name])
	for _, t := range targets {
		m := skiffup.Median(rates[t.name])
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\n", t.name, m, m/first)
	}
	return tw.Flush()
}

// throughputN posts from conc senders for dur and returns how many were answered 202.
func throughputN(client *http.Client, url, host string, conc int, dur time.Duration) int64 {
	var ok, failed atomic.Int64
	deadline := time.Now().Add(dur)
	done := make(chan struct{}, conc)
	for range conc {
		go func() {
			defer func() { done <- struct{}{} }()
			for time.Now().Before(deadline) {
				code, err := post(client, url, host)
				if err == nil && code == http.StatusAccepted {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	for range conc {
		<-done
	}
	if f := failed.Load(); f > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d requests failed\n", url, f)
	}
	return ok.Load()
}
