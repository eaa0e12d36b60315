// Command coldstart measures scale-from-zero: it runs `skiff up` in-process with a fast
// autoscaler (6s stable window, 1s grace), deploys examples/echo (ko://) as a Knative
// Service, and repeatedly waits for it to reach zero pods, then times one request from
// arrival to first response byte: the activator holds it, pokes the autoscaler, the local
// runtime starts the process, readiness passes, the proxy ACKs the endpoint, and the held
// request is released.
//
//	go run ./bench/coldstart -n 5
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"time"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/controlplane/apiclient"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
)

const manifest = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: cold
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/window: "6s"
    spec:
      containers:
        - image: ko://github.com/skiff-dev/skiff/examples/echo
`

func main() {
	n := flag.Int("n", 5, "cold starts to measure")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	a := autoscaler.DefaultConfig()
	a.TickInterval, a.StableWindow, a.ScaleToZeroGracePeriod = 200*time.Millisecond, 6*time.Second, time.Second
	up, err := skiffup.Start(skiffup.Options{Autoscaler: &a})
	if err != nil {
		return err
	}
	defer up.Close()
	ctx := context.Background()
	if err := up.Apply(ctx, manifest); err != nil {
		return err
	}
	c, gwAddr := up.API, up.HTTP
	var times []time.Duration
	for i := range n {
		if err := waitZero(ctx, c); err != nil {
			return err
		}
		d, err := firstByte(gwAddr, "cold.default.localhost")
		if err != nil {
			return fmt.Errorf("cold start %d: %w", i+1, err)
		}
		times = append(times, d)
		fmt.Printf("cold start %d: %s\n", i+1, d.Round(time.Millisecond))
	}
	slices.Sort(times)
	fmt.Printf("\ncold starts: %d  min %s  median %s  max %s\n", n,
		times[0].Round(time.Millisecond), times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	d, err := firstByte(gwAddr, "cold.default.localhost")
	if err != nil {
		return err
	}
	fmt.Printf("warm request (baseline, same run): %s\n", d.Round(time.Microsecond))
	return nil
}

func waitZero(ctx context.Context, c *apiclient.Client) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		raw, err := c.Get(ctx, api.LookupKind("rev"), "default", "cold-00001")
		if err != nil {
			return err
		}
		var r servingv1.Revision
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		active := r.Status.GetCondition(servingv1.RevisionConditionActive)
		if r.Status.ActualReplicas != nil && *r.Status.ActualReplicas == 0 &&
			r.Status.DesiredReplicas != nil && *r.Status.DesiredReplicas == 0 && active != nil && active.Reason == "NoTraffic" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cold-00001 did not reach zero pods")
}

// firstByte times a GET from sending to the first response byte.
func firstByte(addr, host string) (time.Duration, error) {
	var start, first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	start = time.Now()
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return first.Sub(start), nil
}
