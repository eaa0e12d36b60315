// Command hopfloor measures the CPU one HTTP/1.1 hop costs on this machine: a net/http
// server answering 202 to a small POST, and a client (net/http's Transport, or Skiff's
// client/h1) sending it from -c goroutines over kept-alive loopback connections, both in
// this process. It prints requests per second and the process's CPU per request (client
// and server together): the floor under each of the broker path's three hops.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skiff-dev/skiff/client/h1"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	conc := flag.Int("c", 16, "concurrent senders")
	dur := flag.Duration("d", 3*time.Second, "duration per row")
	rounds := flag.Int("rounds", 3, "rounds")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/default/b1"
	d := &net.Dialer{}
	clients := []struct {
		name string
		rt   http.RoundTripper
	}{
		{"net/http Transport", &http.Transport{MaxIdleConnsPerHost: *conc}},
		{"client/h1", h1.New(&http.Transport{MaxIdleConnsPerHost: *conc}, d.DialContext)},
	}
	body := `{"order":12345,"items":["a","b","c"]}`
	fmt.Println("client\tround\trequests/s\tCPU per request (client + server)")
	for r := 1; r <= *rounds; r++ {
		for _, c := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), *dur)
			var n atomic.Int64
			var wg sync.WaitGroup
			c0, t0 := cpu(), time.Now()
			for range *conc {
				wg.Go(func() {
					for ctx.Err() == nil {
						req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
						req.Header.Set("Ce-Specversion", "1.0")
						req.Header.Set("Ce-Id", "1")
						req.Header.Set("Ce-Source", "/bench")
						req.Header.Set("Ce-Type", "bench")
						req.Header.Set("Content-Type", "application/json")
						resp, err := c.rt.RoundTrip(req)
						if err != nil {
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusAccepted {
							n.Add(1)
						}
					}
				})
			}
			wg.Wait()
			cancel()
			el, used := time.Since(t0), cpu()-c0
			fmt.Printf("%s\t%d\t%.0f\t%v\n", c.name, r, float64(n.Load())/el.Seconds(), (used / time.Duration(max(1, n.Load()))).Round(100*time.Nanosecond))
		}
	}
}
