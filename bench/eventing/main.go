// Command eventing measures Skiff's brokers end to end: it runs `skiff up` in-process (control
// plane, embedded JetStream, broker ingress, dispatcher, and the gateway with the cloudevents
// wasm filter, over real xDS and HTTP), and for brokers with 1, 10 and 100 Triggers (every one
// selecting the benchmark's events, so an event is stored and delivered once per Trigger)
// prints:
//
//   - ingress throughput: CloudEvents accepted (202, stored in JetStream once per Trigger) per
//     second with -c concurrent senders, through the gateway and straight to the ingress;
//   - deliveries per second while that load drains;
//   - end-to-end delivery latency p50/p99 (POST sent → subscriber reached) with one event in
//     flight at a time.
//
// The same rows follow for an InMemoryChannel (durable in JetStream too) with 1, 10 and 100
// Subscriptions: channel fan-out, every event stored and delivered once per Subscription.
//
// The baseline, measured in the same run, is the same POST through the gateway to a Knative
// Service that answers at once (examples/echo): the HTTP round trip without the broker.
//
//	go run ./bench/eventing -triggers 1,10,100 -subscriptions 1,10,100 -c 16 -d 3s -n 200
//
// With -compare, each -skiff binary runs as a `skiff up` process of its own instead, and the
// rows are events accepted through the gateway per second and the CPU that process spent per
// accepted event (compare.go):
//
//	go run ./bench/eventing -compare -triggers 1 -c 16 -d 3s -rounds 4 -skiff main=/tmp/base/skiff -skiff new=bin/skiff
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/eventing/broker"
)

const echoManifest = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: echo
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

func main() {
	triggers := flag.String("triggers", "1,10,100", "comma-separated trigger counts")
	subscriptions := flag.String("subscriptions", "1,10,100", "comma-separated channel subscription counts (\"\" for none)")
	conc := flag.Int("c", 16, "concurrent senders for the throughput rows")
	dur := flag.Duration("d", 3*time.Second, "duration of each throughput row")
	n := flag.Int("n", 200, "events sent one at a time for the latency rows")
	profile := flag.String("cpuprofile", "", "write the CPU profile of the first throughput row through the gateway here (everything runs in this process); with -compare, a directory for each skiff up's CPU profile of the first round")
	cmp := flag.Bool("compare", false, "run each -skiff binary as a `skiff up` process of its own (senders and sink stay in this process) and print, per round, events accepted through the gateway per second and the CPU skiff spent per event; -triggers takes one count")
	var bins multiFlag
	flag.Var(&bins, "skiff", "with -compare: a skiff binary as NAME=PATH (repeatable; its --work-dir is the source tree it is in; default: bin/skiff)")
	rounds := flag.Int("rounds", 3, "with -compare: rounds, every binary measured in each")
	direct := flag.Bool("direct", false, "with -compare: also post straight to each binary's broker ingress (no gateway, no cloudevents filter)")
	gogc := flag.Int("gogc", 0, "with -compare: also measure the last -skiff binary with this GOGC in its environment")
	flag.Parse()
	if *cmp {
		count, err := strconv.Atoi(*triggers)
		if err != nil || count < 1 {
			fmt.Fprintln(os.Stderr, "eventing: -triggers: with -compare, one positive count")
			os.Exit(2)
		}
		if len(bins) == 0 {
			bins = multiFlag{"bin/skiff"}
		}
		if err := compare(bins, count, *conc, *dur, *rounds, *gogc, *profile, *direct); err != nil {
			fmt.Fprintln(os.Stderr, "eventing:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*triggers, *subscriptions, *conc, *dur, *n, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "eventing:", err)
		os.Exit(1)
	}
}

func run(triggerList, subscriptionList string, conc int, dur time.Duration, n int, profile string) error {
	up, err := skiffup.Start(skiffup.Options{Eventing: true})
	if err != nil {
		return err
	}
	defer up.Close()
	ctx := context.Background()
	if err := up.Apply(ctx, echoManifest); err != nil {
		return err
	}
	sink := newSink()
	defer sink.srv.Close()

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\ttriggers\tsenders\taccepted/s\tdeliveries/s\tp50\tp99")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	gw := "http://" + up.HTTP
	base := throughput(client, gw+"/", "echo.default.localhost", conc, dur, 0)
	lat := latency(client, gw+"/", "echo.default.localhost", n, nil)
	fmt.Fprintf(tw, "gateway → echo (baseline)\t-\t%d\t%.0f\t-\t%s\t%s\n", conc, base, lat.p50, lat.p99)

	for _, s := range strings.Split(triggerList, ",") {
		count, err := strconv.Atoi(s)
		if err != nil || count < 1 {
			return fmt.Errorf("-triggers %q: want positive integers", s)
		}
		name := fmt.Sprintf("b%d", count)
		if err := applyBroker(ctx, up.API, name, count, sink.srv.URL); err != nil {
			return err
		}
		host := "broker-ingress.localhost"
		path := "/default/" + name
		for _, t := range []struct {
			label, url, host string
		}{{"gateway + filter → ingress", gw + path, host}, {"ingress direct", "http://" + up.BrokerIngress + path, ""}} {
			before := sink.delivered.Load()
			start := time.Now()
			var prof *os.File
			if profile != "" && t.host != "" {
				if prof, err = os.Create(profile); err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(prof); err != nil {
					return err
				}
				profile = ""
			}
			rate := throughput(client, t.url, t.host, conc, dur, 1)
			if prof != nil {
				pprof.StopCPUProfile()
				prof.Close()
			}
			sent := up.EventingStats().Stored // stored copies so far, all to be delivered
			if err := sink.waitDelivered(int64(sent), 5*time.Minute); err != nil {
				return fmt.Errorf("%s, %d triggers: %w", t.label, count, err)
			}
			drained := float64(sink.delivered.Load()-before) / time.Since(start).Seconds()
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t\t\n", t.label, count, conc, rate, drained)
		}
		sink.reset()
		lat := latency(client, gw+path, host, n, func(i int) error {
			return sink.waitDelivered(int64(up.EventingStats().Stored), 30*time.Second)
		})
		if lat.err != nil {
			return lat.err
		}
		p50, p99 := sink.percentiles()
		fmt.Fprintf(tw, "delivery, one event at a time\t%d\t1\t\t\t%s\t%s\n", count, p50, p99)
		if err := up.API.Delete(ctx, api.LookupKind("broker"), "default", name); err != nil {
			return fmt.Errorf("delete broker %s: %w", name, err)
		}
	}
	if subscriptionList != "" {
		if err := runChannels(ctx, tw, up, client, sink, subscriptionList, conc, dur, n); err != nil {
			return err
		}
	}
	return tw.Flush()
}

// runChannels prints the rows of channels with each subscription count: throughput through
// the gateway and straight to the ingress (the channel's Host either way), deliveries while
// it drains, and the delivery latency of one event at a time.
func runChannels(ctx context.Context, tw *tabwriter.Writer, up *skiffup.Up, client *http.Client, sink *sink,
	list string, conc int, dur time.Duration, n int) error {
	gw := "http://" + up.HTTP
	for _, s := range strings.Split(list, ",") {
		count, err := strconv.Atoi(s)
		if err != nil || count < 1 {
			return fmt.Errorf("-subscriptions %q: want positive integers", s)
		}
		name := fmt.Sprintf("ch%d", count)
		if err := applyChannel(ctx, up.API, name, count, sink.srv.URL); err != nil {
			return err
		}
		host := broker.ChannelHost("default", name)
		for _, t := range []struct{ label, url string }{
			{"channel: gateway → ingress", gw + "/"}, {"channel: ingress direct", "http://" + up.BrokerIngress + "/"},
		} {
			before := sink.delivered.Load()
			start := time.Now()
			rate := throughput(client, t.url, host, conc, dur, 1)
			if err := sink.waitDelivered(int64(up.EventingStats().Stored), 5*time.Minute); err != nil {
				return fmt.Errorf("%s, %d subscriptions: %w", t.label, count, err)
			}
			drained := float64(sink.delivered.Load()-before) / time.Since(start).Seconds()
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t\t\n", t.label, count, conc, rate, drained)
		}
		sink.reset()
		lat := latency(client, gw+"/", host, n, func(int) error {
			return sink.waitDelivered(int64(up.EventingStats().Stored), 30*time.Second)
		})
		if lat.err != nil {
			return lat.err
		}
		p50, p99 := sink.percentiles()
		fmt.Fprintf(tw, "channel: delivery, one event at a time\t%d\t1\t\t\t%s\t%s\n", count, p50, p99)
		if err := up.API.Delete(ctx, api.LookupKind("imc"), "default", name); err != nil {
			return fmt.Errorf("delete channel %s: %w", name, err)
		}
	}
	return nil
}

// applyManifests applies every document of a YAML stream in namespace default.
func applyManifests(ctx context.Context, c *apiclient.Client, manifests string) error {
	docs, err := apiclient.ReadManifests("-", strings.NewReader(manifests))
	if err != nil {
		return err
	}
	for _, d := range docs {
		if _, err := c.Apply(ctx, d, "default"); err != nil {
			return err
		}
	}
	return nil
}

// applyChannel creates an InMemoryChannel with count Subscriptions whose subscribers are
// paths of the sink, and waits until all are Ready.
func applyChannel(ctx context.Context, c *apiclient.Client, name string, count int, sinkURL string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata:\n  name: %s\n", name)
	for i := range count {
		fmt.Fprintf(&b, "---\napiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata:\n  name: %s-s%d\nspec:\n  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: %s}\n  subscriber:\n    uri: %s/s%d\n", name, i, name, sinkURL, i)
	}
	if err := applyManifests(ctx, c, b.String()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for i := range count {
		if _, err := apiclient.WaitReady(ctx, c, api.LookupKind("subscription"), "default", fmt.Sprintf("%s-s%d", name, i)); err != nil {
			return err
		}
	}
	_, err := apiclient.WaitReady(ctx, c, api.LookupKind("imc"), "default", name)
	return err
}

// applyBroker creates a broker with count triggers whose subscribers are paths of the sink,
// and waits until all are Ready.
func applyBroker(ctx context.Context, c *apiclient.Client, name string, count int, sinkURL string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: %s\n", name)
	for i := range count {
		fmt.Fprintf(&b, "---\napiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: %s-t%d\nspec:\n  broker: %s\n  filter:\n    attributes:\n      type: bench\n  subscriber:\n    uri: %s/t%d\n", name, i, name, sinkURL, i)
	}
	if err := applyManifests(ctx, c, b.String()); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := apiclient.WaitReady(ctx, c, api.LookupKind("broker"), "default", name); err != nil {
		return err
	}
	for i := range count {
		if _, err := apiclient.WaitReady(ctx, c, api.LookupKind("trigger"), "default", fmt.Sprintf("%s-t%d", name, i)); err != nil {
			return err
		}
	}
	return nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

var seq atomic.Int64

// post sends one binary-mode CloudEvent of type bench, stamped with its send time.
func post(client *http.Client, url, host string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"order":12345,"items":["a","b","c"]}`))
	if err != nil {
		return 0, err
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", strconv.FormatInt(seq.Add(1), 10))
	req.Header.Set("Ce-Source", "/bench")
	req.Header.Set("Ce-Type", "bench")
	req.Header.Set("Ce-Sentat", strconv.FormatInt(time.Now().UnixNano(), 10))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// throughput posts from conc senders for dur and returns the 2xx answers per second;
// wantStatus 0 takes any 2xx, 1 only 202.
func throughput(client *http.Client, url, host string, conc int, dur time.Duration, wantStatus int) float64 {
	var ok, failed atomic.Int64
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				code, err := post(client, url, host)
				if err == nil && code/100 == 2 && (wantStatus == 0 || code == http.StatusAccepted) {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d requests failed\n", url, f)
	}
	return float64(ok.Load()) / time.Since(start).Seconds()
}

type latencies struct {
	p50, p99 time.Duration
	err      error
}

// latency posts n events one at a time, calling after (if set) before the next, and returns
// the request latency percentiles.
func latency(client *http.Client, url, host string, n int, after func(i int) error) latencies {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		code, err := post(client, url, host)
		if err != nil || code/100 != 2 {
			return latencies{err: fmt.Errorf("POST %s: %d %v", url, code, err)}
		}
		lat = append(lat, time.Since(start))
		if after != nil {
			if err := after(i); err != nil {
				return latencies{err: err}
			}
		}
	}
	slices.Sort(lat)
	return latencies{p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
}

// sink stands for every subscriber: it counts deliveries and records each one's latency
// from the ce-sentat extension.
type sink struct {
	srv       *httptest.Server
	delivered atomic.Int64
	mu        sync.Mutex
	lat       []time.Duration
}

func newSink() *sink {
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ns, err := strconv.ParseInt(r.Header.Get("Ce-Sentat"), 10, 64); err == nil {
			d := time.Since(time.Unix(0, ns))
			s.mu.Lock()
			s.lat = append(s.lat, d)
			s.mu.Unlock()
		}
		s.delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	return s
}

func (s *sink) reset() {
	s.mu.Lock()
	s.lat = s.lat[:0]
	s.mu.Unlock()
}

func (s *sink) percentiles() (time.Duration, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lat) == 0 {
		return 0, 0
	}
	l := slices.Clone(s.lat)
	slices.Sort(l)
	return l[len(l)/2], l[len(l)*99/100]
}

// waitDelivered waits until the sink has seen total deliveries.
func (s *sink) waitDelivered(total int64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for s.delivered.Load() < total {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d deliveries after %s", s.delivered.Load(), total, within)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return nil
}
