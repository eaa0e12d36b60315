package main

// -compare: the gateway against net/http/httputil.ReverseProxy, each in a process of its own.
// The app (examples/echo) is started by `skiff up`'s local runtime (its own process); the
// reverse proxy is this program started again with -reverse-proxy; each `skiff up` is the real
// binary. Rows of one level are measured in rounds, interleaved, so that a noisy machine
// weighs on every path alike.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/client/apiclient"
)

const compareManifest = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: serve
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target-burst-capacity: "0"
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "1"
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/echo
`

// serveReverseProxy is the -reverse-proxy mode: a plain httputil.ReverseProxy to target on a
// free loopback port, whose address it prints on stdout; it runs until stdin closes.
func serveReverseProxy(target string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	u := &url.URL{Scheme: "http", Host: target}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	fmt.Println(ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	return (&http.Server{Handler: rp, ReadHeaderTimeout: time.Minute}).Serve(ln)
}

// proc is a child process of the comparison.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string
}

func (p *proc) stop() {
	if p == nil {
		return
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

func startReverseProxy(target string) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, "-reverse-proxy", target)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{cmd: cmd, stdin: stdin}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, "", fmt.Errorf("reverse proxy: reading its address: %w", err)
	}
	return p, strings.TrimSpace(addr), nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// skiffUp is one `skiff up` process (or, split, a `skiff controlplane` and a `skiff gateway`
// process) with the serve Service Ready.
type skiffUp struct {
	*proc
	gateway          *proc // the gateway's own process when split
	http, admin, app string
}

func (u *skiffUp) stop() {
	u.gateway.stop()
	u.proc.stop()
}

// startSkiffUp runs bin at the module root root, applies the serve Service and waits for it.
// Its output goes to logFile, or to a file in its data dir when logFile is empty.
// With split, the control plane and the gateway run as two processes (`skiff controlplane`
// and `skiff gateway`), which tells what sharing one process costs the gateway.
// env is added to its environment.
func startSkiffUp(ctx context.Context, bin, root, logFile string, split bool, env []string) (*skiffUp, error) {
	dir, err := os.MkdirTemp("", "skiff-latency-")
	if err != nil {
		return nil, err
	}
	addrs := map[string]string{}
	for _, f := range []string{"api-addr", "xds-addr", "extproc-addr", "http-addr", "admin-addr", "broker-ingress-addr"} {
		if addrs[f], err = freePort(); err != nil {
			return nil, err
		}
	}
	cmdName := "up"
	if split {
		cmdName = "controlplane"
	}
	args := []string{cmdName, "--data-dir", filepath.Join(dir, "data"), "--work-dir", root,
		"--https-addr", "", "--local-http-addr", "", "--eventing=false", "--oci-runtime", "none", "--drain-timeout", "100ms"}
	for f, a := range addrs {
		if f == "admin-addr" && split {
			args = append(args, "--proxy-stats", "http://"+a)
			continue
		}
		args = append(args, "--"+f, a)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if logFile == "" {
		logFile = filepath.Join(dir, "skiff.log")
	}
	logf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	u := &skiffUp{proc: &proc{cmd: cmd, dir: dir}, http: addrs["http-addr"], admin: addrs["admin-addr"]}
	if split {
		gw := exec.Command(bin, "gateway", "--xds-addr", addrs["xds-addr"], "--admin-addr", addrs["admin-addr"],
			"--node-id", "skiff-up", "--node-cluster", "skiff-gateway")
		gw.Stdout, gw.Stderr = logf, logf
		gw.Env = cmd.Env
		if err := gw.Start(); err != nil {
			u.stop()
			return nil, fmt.Errorf("starting %s gateway: %w", bin, err)
		}
		u.gateway = &proc{cmd: gw}
	}
	c := apiclient.New(addrs["api-addr"])
	docs, err := apiclient.ReadManifests("-", strings.NewReader(compareManifest))
	if err != nil {
		u.stop()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		if _, err = c.Apply(ctx, docs[0], "default"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			u.stop()
			return nil, fmt.Errorf("%s: applying the Service: %w (log: %s)", bin, err, logf.Name())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := apiclient.WaitReady(ctx, c, api.LookupKind("ksvc"), "default", "serve"); err != nil {
		u.stop()
		return nil, fmt.Errorf("%s: waiting for the Service: %w", bin, err)
	}
	if u.app, err = endpointOf(u.admin, "default/serve-00001"); err != nil {
		u.stop()
		return nil, err
	}
	return u, nil
}

// compare runs the comparison; bins are the `skiff` binaries to measure (name=path), the
// first one's app also serving the direct and reverse-proxy rows.
// With profileDir set, the first round of each level also saves each skiff up's CPU profile
// over its load there (NAME-cN.cpu, from the admin endpoint's /debug/pprof/profile), and
// its output (NAME.log: run with GODEBUG=gctrace=1 to see its garbage collections).
// With gogc > 0 the last binary is also measured with GOGC=gogc in its environment.
func compare(levels string, dur time.Duration, rounds int, bins []string, profileDir string, split bool, gogc int) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	type target struct {
		name string
		up   *skiffUp
	}
	var targets []target
	defer func() {
		for _, t := range targets {
			t.up.stop()
		}
	}()
	type binary struct {
		name, path string
		split      bool
		env        []string
	}
	var runs []binary
	for _, b := range bins {
		name, path, ok := strings.Cut(b, "=")
		if !ok {
			name, path = "skiff up", b
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(root, path)
		}
		runs = append(runs, binary{name, path, false, nil})
	}
	last := runs[len(runs)-1]
	if split {
		runs = append(runs, binary{last.name + " split (controlplane + gateway)", last.path, true, nil})
	}
	if gogc > 0 {
		runs = append(runs, binary{fmt.Sprintf("%s GOGC=%d", last.name, gogc), last.path, false, []string{fmt.Sprintf("GOGC=%d", gogc)}})
	}
	for _, b := range runs {
		name, path := b.name, b.path
		logFile := ""
		if profileDir != "" {
			logFile = filepath.Join(profileDir, strings.ReplaceAll(name, " ", "_")+".log")
		}
		up, err := startSkiffUp(context.Background(), path, root, logFile, b.split, b.env)
		if err != nil {
			return err
		}
		targets = append(targets, target{name, up})
	}
	rp, rpAddr, err := startReverseProxy(targets[0].up.app)
	if err != nil {
		return err
	}
	defer rp.stop()

	// Ratios to the reverse proxy of the same round, by level and path, for the medians.
	type key struct {
		level int
		path  string
	}
	rpsRatios, p99Ratios, cpuRatios := map[key][]float64{}, map[key][]float64{}, map[key][]float64{}
	var order []key
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tconcurrency\tround\trequests\tp50\tp99\treq/s\treq/s vs ReverseProxy\tp99 vs ReverseProxy\tproxy CPU/request")
	for _, s := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("-c: %w", err)
		}
		for r := 1; r <= rounds; r++ {
			direct := load(targets[0].up.app, "", n, dur, loadOpts{})
			rpCPU := cpuOf(rp)
			base := load(rpAddr, "", n, dur, loadOpts{})
			baseCPU := perRequest(cpuOf(rp)-rpCPU, base.n)
			fmt.Fprintf(tw, "direct (app)\t%d\t%d\t%d\t%s\t%s\t%.0f\t\t\t\n", n, r, direct.n, direct.p50, direct.p99, direct.rps)
			fmt.Fprintf(tw, "httputil.ReverseProxy\t%d\t%d\t%d\t%s\t%s\t%.0f\t1.00\t1.00\t%s\n", n, r, base.n, base.p50, base.p99, base.rps, fmt.Sprintf("%.0fµs", baseCPU))
			for _, t := range targets {
				var prof chan error
				if profileDir != "" && r == 1 {
					prof = make(chan error, 1)
					file := filepath.Join(profileDir, fmt.Sprintf("%s-c%d.cpu", strings.ReplaceAll(t.name, " ", "_"), n))
					go func() { prof <- skiffup.FetchProfile(t.up.admin, dur, file) }()
				}
				cpu0 := cpuOf(t.up.proc, t.up.gateway)
				st := load(t.up.http, "serve.default.localhost", n, dur, loadOpts{})
				cpu := perRequest(cpuOf(t.up.proc, t.up.gateway)-cpu0, st.n)
				if prof != nil {
					if err := <-prof; err != nil {
						fmt.Fprintf(os.Stderr, "%s: %v\n", t.name, err) // a build without /debug/pprof
					}
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%.0f\t%.2f\t%.2f\t%s\n", t.name, n, r, st.n, st.p50, st.p99, st.rps,
					st.rps/base.rps, float64(st.p99)/float64(base.p99), fmt.Sprintf("%.0fµs", cpu))
				k := key{n, t.name}
				if r == 1 {
					order = append(order, k)
				}
				rpsRatios[k] = append(rpsRatios[k], st.rps/base.rps)
				p99Ratios[k] = append(p99Ratios[k], float64(st.p99)/float64(base.p99))
				if baseCPU > 0 {
					cpuRatios[k] = append(cpuRatios[k], cpu/baseCPU)
				}
			}
			tw.Flush()
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Println()
	fmt.Fprintln(tw, "path\tconcurrency\trounds\tmedian req/s vs ReverseProxy\tmedian p99 vs ReverseProxy\tmedian CPU/request vs ReverseProxy")
	for _, k := range order {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t%.2f\n", k.path, k.level, len(rpsRatios[k]), skiffup.Median(rpsRatios[k]), skiffup.Median(p99Ratios[k]), skiffup.Median(cpuRatios[k]))
	}
	return tw.Flush()
}

// cpuOf is the CPU time the processes have used so far (0 for those not running).
func cpuOf(ps ...*proc) time.Duration {
	var total time.Duration
	for _, p := range ps {
		if p == nil || p.cmd.Process == nil {
			continue
		}
		if d, err := skiffup.ProcessCPU(p.cmd.Process.Pid); err == nil {
			total += d
		}
	}
	return total
}

// perRequest is d spread over n requests, in µs.
func perRequest(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}
