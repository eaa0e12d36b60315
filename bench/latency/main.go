// Command latency measures what the proxy adds to a request: it runs `skiff up` in-process
// (control plane, local runtime, activator, gateway over real xDS), deploys examples/echo as
// two Knative Services — one kept in serve mode (target-burst-capacity 0: straight to the
// pod), one kept in proxy mode (target-burst-capacity -1: through the ext_proc activator) —
// and sends the same load straight to the app and through the gateway in each mode,
// printing p50, p99 and requests/s at each concurrency. With -tls (external-domain-tls on,
// certificates from the local CA) it adds the serve-mode Service through the TLS listener on
// kept-alive connections, and a new connection per request over TLS (handshake + request)
// next to a new plain connection per request.
//
// With -observability it runs three such `skiff up`s side by side and loads them in turn at
// each concurrency: one recording nothing, one recording Knative's metrics (Prometheus
// exporter, with the OpenCensus-era names), and one also tracing every request (sampling
// rate 1, OTLP/gRPC to an in-process collector): the cost of metrics and tracing on the
// gateway, measured in the same run.
//
//	go run ./bench/latency -c 1,16,64 -d 3s -tls
//	go run ./bench/latency -c 1,16,64 -d 3s -observability
//
// With -compare it measures the real `skiff up` binary (bin/skiff, or each -skiff NAME=PATH)
// against net/http/httputil.ReverseProxy, each in its own process, in front of the same app:
//
//	go build -o bin/skiff ./cmd/skiff && go run ./bench/latency -compare -c 1,16,64 -d 3s
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/telemetry"
	"github.com/skiff-dev/skiff/telemetry/otlptest"
)

// manifest is the serve-mode Service (compareManifest, the one -compare measures) and the
// Services of the other rows.
const manifest = compareManifest + `---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: proxy
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target-burst-capacity: "-1"
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "1"
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/echo
`

func main() {
	levels := flag.String("c", "1,16,64", "comma-separated concurrency levels")
	dur := flag.Duration("d", 3*time.Second, "load duration per row")
	withTLS := flag.Bool("tls", false, "also measure the TLS listener: kept-alive requests, and a handshake per request")
	obs := flag.Bool("observability", false, "also measure the gateway with metrics, and with metrics and tracing")
	cmp := flag.Bool("compare", false, "compare `skiff up` (a separate process, the real binary) with httputil.ReverseProxy (a separate process) in front of the same app")
	var bins multiFlag
	flag.Var(&bins, "skiff", "with -compare: a skiff binary to measure, as NAME=PATH (repeatable; default: bin/skiff built from this checkout)")
	rounds := flag.Int("rounds", 2, "with -compare: rounds per concurrency level, the paths interleaved in each")
	profileDir := flag.String("pprof", "", "with -compare: save each skiff up's CPU profile during the first round of each level in this directory")
	split := flag.Bool("split", false, "with -compare: also measure the last -skiff binary as two processes, `skiff controlplane` and `skiff gateway`")
	gogc := flag.Int("gogc", 0, "with -compare: also measure the last -skiff binary with this GOGC")
	rpTarget := flag.String("reverse-proxy", "", "internal: serve httputil.ReverseProxy to this address")
	flag.Parse()
	if *rpTarget != "" {
		if err := serveReverseProxy(*rpTarget); err != nil {
			fmt.Fprintln(os.Stderr, "reverse proxy:", err)
			os.Exit(1)
		}
		return
	}
	if *cmp {
		if len(bins) == 0 {
			bins = multiFlag{"skiff up=bin/skiff"}
		}
		if err := compare(*levels, *dur, *rounds, bins, *profileDir, *split, *gogc); err != nil {
			fmt.Fprintln(os.Stderr, "latency:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*levels, *dur, *withTLS, *obs); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

// variant is one `skiff up` under load and what it records.
type variant struct {
	name string
	up   *skiffup.Up
}

func run(levels string, dur time.Duration, withTLS, obs bool) error {
	up, err := skiffup.Start(skiffup.Options{TLS: withTLS})
	if err != nil {
		return err
	}
	defer up.Close()
	m := manifest
	if withTLS {
		// Certificates for every external host; plain HTTP stays served (http-protocol Enabled).
		m = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-network, namespace: knative-serving}\ndata: {external-domain-tls: Enabled}\n---\n" + m
	}
	if err := up.Apply(context.Background(), m); err != nil {
		return err
	}
	var tlsCfg *tls.Config
	var httpsAddr string
	if withTLS {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if httpsAddr, err = up.HTTPS(ctx); err != nil {
			return err
		}
		ca, err := os.ReadFile(up.CACertPath())
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		tlsCfg = &tls.Config{RootCAs: pool, ServerName: "serve.default.localhost", NextProtos: []string{"http/1.1"}}
	}
	direct, err := endpointOf(up.Admin, "default/serve-00001")
	if err != nil {
		return err
	}
	variants := []variant{{"", up}}
	var rcv *otlptest.Receiver
	if obs {
		if rcv, err = otlptest.New(); err != nil {
			return err
		}
		defer rcv.Close()
		for _, v := range []struct {
			name string
			opts telemetry.Options
		}{
			{"metrics", telemetry.Options{Prometheus: true, LegacyNames: true}},
			{"metrics+traces", telemetry.Options{Prometheus: true, LegacyNames: true, OTLPEndpoint: rcv.GRPCAddr(), SamplingRate: 1}},
		} {
			t, err := telemetry.Setup(context.Background(), v.opts)
			if err != nil {
				return err
			}
			defer t.Shutdown(context.Background())
			u, err := skiffup.Start(skiffup.Options{Telemetry: t})
			if err != nil {
				return err
			}
			defer u.Close()
			if err := u.Apply(context.Background(), manifest); err != nil {
				return err
			}
			variants = append(variants, variant{v.name, u})
		}
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tconcurrency\trequests\tp50\tp99\treq/s\tp50 added\tp99 added")
	for _, s := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("-c: %w", err)
		}
		base := load(direct, "", n, dur, loadOpts{})
		rows := []row{{"direct", base}}
		for _, mode := range []string{"serve", "proxy"} {
			for _, v := range variants {
				name := "gateway " + mode + " mode"
				if v.name != "" {
					name += ", " + v.name
				}
				rows = append(rows, row{name, load(v.up.HTTP, mode+".default.localhost", n, dur, loadOpts{})})
				if rcv != nil {
					rcv.Discard()
				}
			}
		}
		if withTLS {
			rows = append(rows,
				row{"gateway serve mode, TLS (kept-alive HTTP/1.1)", load(httpsAddr, "serve.default.localhost", n, dur, loadOpts{tls: tlsCfg})},
				row{"gateway serve mode, new plain connection per request", load(up.HTTP, "serve.default.localhost", n, dur, loadOpts{newConn: true})},
				row{"gateway serve mode, TLS handshake + request per connection", load(httpsAddr, "serve.default.localhost", n, dur, loadOpts{tls: tlsCfg, newConn: true})})
		}
		for _, r := range rows {
			added50, added99 := "", ""
			if r.name != "direct" {
				added50 = (r.st.p50 - base.p50).String()
				added99 = (r.st.p99 - base.p99).String()
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%.0f\t%s\t%s\n", r.name, n, r.st.n, r.st.p50, r.st.p99, r.st.rps, added50, added99)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Proof that proxy mode went through the activator and serve mode did not.
	resp, err := http.Get("http://" + up.Admin + "/stats?filter=ext_proc.streams_started")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// row is one line of the table.
type row struct {
	name string
	st   stats
}

type stats struct {
	n        int
	p50, p99 time.Duration
	rps      float64
}

// loadOpts select how load connects: over TLS (tls, with SNI host), and a new connection per
// request (newConn) rather than kept-alive ones.
type loadOpts struct {
	tls     *tls.Config
	newConn bool
}

// load sends GETs from conc workers for dur and reports latency percentiles and throughput.
func load(addr, host string, conc int, dur time.Duration, o loadOpts) stats {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableKeepAlives: o.newConn, TLSClientConfig: o.tls}
	scheme := "http"
	if o.tls != nil {
		scheme = "https"
		dialAddr := addr
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, dialAddr)
		}
		addr = host
	}
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, scheme+"://"+addr+"/", nil)
				if host != "" {
					req.Host = host
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	if len(lat) == 0 {
		return stats{}
	}
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)].Round(time.Microsecond) }
	return stats{n: len(lat), p50: pct(0.50), p99: pct(0.99), rps: float64(len(lat)) / elapsed.Seconds()}
}

// endpointOf reads a cluster's first endpoint from the admin /clusters page (Envoy's format).
func endpointOf(admin, cluster string) (string, error) {
	resp, err := http.Get("http://" + admin + "/clusters")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "::")
		if len(parts) >= 3 && parts[0] == cluster && strings.Contains(parts[1], ":") {
			return parts[1], nil
		}
	}
	return "", fmt.Errorf("no endpoint for %s on %s/clusters", cluster, admin)
}
