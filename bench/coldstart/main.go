// Command coldstart measures scale-from-zero: it runs `skiff up` in-process with a fast
// autoscaler (6s stable window, 1s grace), deploys examples/echo as a Knative Service, and
// repeatedly waits for it to reach zero pods, then times one request from arrival to first
// response byte: the activator holds it, pokes the autoscaler, the runtime starts the instance,
// readiness passes, the proxy ACKs the endpoint, and the held request is released.
//
// It measures both runtimes in one run: the process runtime (image ko://..., built once) and
// the OCI runtime (examples/echo built statically into an image on a distroless-like base,
// pushed to an in-process registry and named by tag; already pulled, so each cold start is
// overlay mount + runc run). Without runc (oci.Check), the OCI row says why it is missing.
//
//	go run ./bench/coldstart -n 5
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/skiff-dev/skiff/api"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/client/apiclient"
	"github.com/skiff-dev/skiff/controlplane/autoscaler"
	"github.com/skiff-dev/skiff/controlplane/runtime/oci"
	"github.com/skiff-dev/skiff/controlplane/runtime/oci/ocitest"
)

const manifest = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %s
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/window: "6s"
    spec:
      containers:
        - image: %s
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
	services := []struct{ name, image, runtime string }{{"cold", "ko://github.com/skiff-dev/skiff/examples/echo", "process (ko://, built once)"}}
	ociImage, why := pushEchoImage()
	if why == "" {
		services = append(services, struct{ name, image, runtime string }{"coldoci", ociImage, "OCI (runc, image pulled once)"})
	}
	for _, svc := range services {
		if err := up.Apply(ctx, fmt.Sprintf(manifest, svc.name, svc.image)); err != nil {
			return err
		}
	}
	fmt.Println("| runtime | cold starts | min | median | max | warm request, same run |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, svc := range services {
		row, err := measure(ctx, up, svc.name, n)
		if err != nil {
			return fmt.Errorf("%s: %w", svc.runtime, err)
		}
		fmt.Printf("| %s | %s |\n", svc.runtime, row)
	}
	if why != "" {
		fmt.Printf("| OCI (runc) | not measured: %s | | | | |\n", why)
	}
	return nil
}

// pushEchoImage builds examples/echo into an image, pushes it to an in-process registry and
// returns it by tag; or why the OCI runtime cannot run here.
func pushEchoImage() (ref, why string) {
	if _, err := oci.Check(context.Background(), "runc", os.TempDir()); err != nil {
		return "", err.Error()
	}
	img, err := ocitest.BuildGoImage("github.com/skiff-dev/skiff/examples/echo")
	if err != nil {
		return "", err.Error()
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	ref = strings.TrimPrefix(srv.URL, "http://") + "/echo:latest"
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err.Error()
	}
	if err := remote.Write(r, img); err != nil {
		return "", err.Error()
	}
	return ref, "" // the server lives as long as the process
}

// measure times n cold starts of the service's first revision and one warm request.
func measure(ctx context.Context, up *skiffup.Up, svc string, n int) (string, error) {
	host := svc + ".default.localhost"
	var times []time.Duration
	for i := range n {
		if err := waitZero(ctx, up.API, svc+"-00001"); err != nil {
			return "", err
		}
		d, err := firstByte(up.HTTP, host)
		if err != nil {
			return "", fmt.Errorf("cold start %d: %w", i+1, err)
		}
		times = append(times, d)
		fmt.Fprintf(os.Stderr, "%s cold start %d: %s\n", svc, i+1, d.Round(time.Millisecond))
	}
	slices.Sort(times)
	warm, err := firstByte(up.HTTP, host)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d | %s | %s | %s | %s", n, times[0].Round(time.Millisecond), times[len(times)/2].Round(time.Millisecond),
		times[len(times)-1].Round(time.Millisecond), warm.Round(100*time.Microsecond)), nil
}

func waitZero(ctx context.Context, c *apiclient.Client, rev string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		raw, err := c.Get(ctx, api.LookupKind("rev"), "default", rev)
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
	return fmt.Errorf("%s did not reach zero pods", rev)
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
