// Command xdspush measures the control plane's xDS translation and push: how long it takes
// to translate N Services (cluster, endpoints, virtual hosts) into the ADS server's caches,
// until a connected gateway has ACKed them all, and how long one Service change then takes
// (the median of -changes changes), with each route layout: "single" (one RouteConfiguration
// per listener, the baseline) and "scoped" (scoped routes over hash buckets), over SotW and
// delta xDS, with the process's heap and RSS (control plane and gateway share it).
//
//	go run ./bench/xdspush -n 1000,10000,50000 -layout single,scoped -mode sotw,delta
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/controlplane/xds"
	"github.com/skiff-dev/skiff/gateway"
)

func main() {
	sizes := flag.String("n", "1000,10000", "comma-separated numbers of Services")
	modes := flag.String("mode", "sotw,delta", "comma-separated xDS variants the gateway uses: sotw, delta")
	layouts := flag.String("layout", "single,scoped", "comma-separated route layouts: single (one RouteConfiguration per listener), scoped (scoped routes over hash buckets)")
	changes := flag.Int("changes", 5, "Service changes measured after loading (the median is printed)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured changes (not the loading) to this file")
	loadProfile := flag.String("loadprofile", "", "write a CPU profile of the loading (until the gateway has ACKed every Service) to this file")
	flag.Parse()
	profile, loadProf = *cpuProfile, *loadProfile
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "services\tmode\tlayout\ttranslate+cache\tuntil ACKed\tone change → ACKed (median)\tmax\tCPU per change\theap in use\tRSS")
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad -n:", err)
			os.Exit(2)
		}
		for _, mode := range strings.Split(*modes, ",") {
			for _, layout := range strings.Split(*layouts, ",") {
				if (mode != "sotw" && mode != "delta") || (layout != "single" && layout != "scoped") {
					fmt.Fprintln(os.Stderr, "bad -mode or -layout:", mode, layout)
					os.Exit(2)
				}
				r, err := run(n, mode == "delta", layout == "scoped", *changes)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d MiB\t%d MiB\n", n, mode, layout, r.translate.Round(time.Millisecond), r.acked.Round(time.Millisecond),
					r.change.Round(100*time.Microsecond), r.maxChange.Round(100*time.Microsecond), r.cpu.Round(100*time.Microsecond), r.heap>>20, r.rss>>20)
				tw.Flush()
				runtime.GC()
				debug.FreeOSMemory()
			}
		}
	}
	tw.Flush()
}

// profile and loadProf are where run writes the CPU profiles of the changes and of the
// loading, if anywhere.
var profile, loadProf string

type result struct {
	translate, acked, change, maxChange time.Duration
	// cpu is the process's CPU time (user + system) per change: on a shared machine it
	// says what a change costs better than the wall time does.
	cpu       time.Duration
	heap, rss uint64
}

func service(i int) (xds.Cluster, []xds.Endpoint, xds.Route) {
	name := fmt.Sprintf("svc-%05d", i)
	rev := name + "-00001"
	c := xds.Cluster{Namespace: "default", Revision: rev}
	eps := []xds.Endpoint{{Address: "127.0.0.1", Port: uint32(10000 + i%50000)}}
	r := xds.Route{Namespace: "default", Name: name, VirtualHosts: []xds.VirtualHost{{
		Name:     "default/" + name,
		Domains:  []string{name + ".default.localhost"},
		Clusters: []xds.WeightedCluster{{Name: xds.ClusterName("default", rev), Weight: 100}},
	}}}
	return c, eps, r
}

func run(n int, delta, scoped bool, changes int) (result, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := xds.NewServer(log, xds.Options{ListenerAddress: "127.0.0.1", ListenerPort: 0, ScopedRoutes: scoped})
	if err != nil {
		return result{}, err
	}
	g := grpc.NewServer()
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	go g.Serve(lis)
	defer g.Stop()
	defer srv.Close()
	gw, err := gateway.New(gateway.Config{ADSAddress: lis.Addr().String(), NodeID: "bench", NodeCluster: "skiff-gateway",
		AdminAddress: "127.0.0.1:0", Delta: delta, Logger: log, ListenerAddressOverride: "127.0.0.1:0"})
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go gw.Run(ctx)

	if loadProf != "" {
		f, err := os.Create(loadProf)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return result{}, err
		}
	}
	start := time.Now()
	for i := range n {
		c, eps, r := service(i)
		if err := srv.SetCluster(c); err != nil {
			return result{}, err
		}
		if _, err := srv.SetEndpoints(xds.ClusterName(c.Namespace, c.Revision), eps); err != nil {
			return result{}, err
		}
		if err := srv.SetRoute(r); err != nil {
			return result{}, err
		}
	}
	res := result{translate: time.Since(start)}
	if err := waitAcked(srv, fmt.Sprintf("svc-%05d", n-1), 10*time.Minute); err != nil {
		return res, err
	}
	res.acked = time.Since(start)
	if loadProf != "" {
		pprof.StopCPUProfile()
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.heap, res.rss = ms.HeapInuse, skiffup.SelfRSS()

	// One Service at a time changes: a new revision takes its traffic.
	var took []time.Duration
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := skiffup.SelfCPU()
	for i := range max(changes, 1) {
		start = time.Now()
		c, eps, r := service((n/2 + i*7919) % n)
		c.Revision = r.Name + "-00002"
		name := xds.ClusterName("default", c.Revision)
		r.VirtualHosts[0].Clusters = []xds.WeightedCluster{{Name: name, Weight: 100}}
		if err := srv.SetCluster(c); err != nil {
			return res, err
		}
		if _, err := srv.SetEndpoints(name, eps); err != nil {
			return res, err
		}
		if err := srv.SetRoute(r); err != nil {
			return res, err
		}
		if err := waitAcked(srv, r.Name, time.Minute); err != nil {
			return res, err
		}
		took = append(took, time.Since(start))
	}
	res.cpu = (skiffup.SelfCPU() - cpu0) / time.Duration(len(took))
	slices.Sort(took)
	res.change, res.maxChange = took[len(took)/2], took[len(took)-1]
	return res, nil
}

func waitAcked(srv *xds.Server, route string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for !srv.RouteAcked("default", route) {
		if time.Now().After(deadline) {
			return fmt.Errorf("route %s not ACKed within %s", route, within)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
