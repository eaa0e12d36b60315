// Command manyservices measures `skiff up` (in-process: control plane, local runtime,
// gateway over real xDS) with many Services: how long N Services applied at once take until
// all are Ready, and the process's RSS and heap once they are served. Each Service has
// initial-scale 0 (the cluster allows it, as Knative's allow-zero-initial-scale does), so
// what is measured is the control plane, the xDS push and the gateway, not N processes.
//
//	go run ./bench/manyservices -n 500,5000 -layout single,scoped
//
// Columns: the time until every Service was created, until all were Ready, and the CPU time
// (user and system) the process used in between, which other load on the machine changes
// less than the times.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
)

const manifest = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: svc-%05d
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
        skiff.dev/runtime: process
    spec:
      containers:
        - image: dev.local/idle  # a registry whose tags are not resolved (no network)
          command: ["/bin/sleep", "3600"]
---
`

func main() {
	sizes := flag.String("n", "500", "comma-separated numbers of Services applied at once")
	layouts := flag.String("layout", "single,scoped", "comma-separated route layouts (see --xds-route-layout)")
	timeout := flag.Duration("timeout", 10*time.Minute, "how long to wait for the Services to be Ready")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the apply of the first run to this file")
	flag.Parse()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "services\tlayout\tapplied\tapply until all Ready\tCPU\theap in use\tRSS")
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad -n:", err)
			os.Exit(2)
		}
		for _, layout := range strings.Split(*layouts, ",") {
			r, err := run(n, layout == "scoped", *cpuProfile, *timeout)
			*cpuProfile = ""
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			ms := 10 * time.Millisecond
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d MiB\t%d MiB\n", n, layout, r.applied.Round(ms), r.took.Round(ms), r.cpu.Round(ms), r.heap>>20, r.rss>>20)
			tw.Flush()
			runtime.GC()
			debug.FreeOSMemory()
		}
	}
}

// result is one run's measurements: the time until every Service was created (applied)
// and until all were Ready (took), the process's CPU time (user and system) in between, and
// its heap and RSS once they are served.
type result struct {
	applied, took, cpu time.Duration
	heap, rss          uint64
}

func run(n int, scoped bool, profile string, timeout time.Duration) (result, error) {
	a := autoscaler.DefaultConfig()
	a.AllowZeroInitialScale = true
	adm := config.Default()
	adm.Autoscaler.AllowZeroInitialScale = true
	up, err := skiffup.Start(skiffup.Options{Autoscaler: &a, Admission: adm, ScopedRoutes: scoped, ReadyTimeout: timeout})
	if err != nil {
		return result{}, err
	}
	defer up.Close()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, manifest, i)
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return result{}, err
		}
	}
	cpu0 := skiffup.SelfCPU()
	start := time.Now()
	services, err := up.Create(context.Background(), b.String())
	applied := time.Since(start)
	if err == nil {
		err = up.WaitReady(context.Background(), services)
	}
	took := time.Since(start)
	cpu := skiffup.SelfCPU() - cpu0
	if profile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		// Say where the first Service stands, to tell why.
		for _, k := range []string{"ksvc", "revision"} {
			name := "svc-00000"
			if k == "revision" {
				name += "-00001"
			}
			if raw, gerr := up.API.Get(context.Background(), api.LookupKind(k), "default", name); gerr == nil {
				fmt.Fprintf(os.Stderr, "%s %s: %s\n", k, name, raw)
			}
		}
		return result{}, err
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return result{applied: applied, took: took, cpu: cpu, heap: ms.HeapInuse, rss: skiffup.SelfRSS()}, nil
}
