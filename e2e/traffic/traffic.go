// Package traffic is what the end-to-end tests (e2e, e2e/kube) drive a proxy with: load
// through it with a route's Host, and its stats read back from the admin endpoint.
package traffic

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Load keeps conc GET requests in flight against host (path included) through the proxy's
// HTTP listener at addr until stop is closed; wait returns how many answered 200 and how
// many did not (errors included).
func Load(addr, host, path string, conc int, stop <-chan struct{}) (wait func() (ok, failed int64)) {
	var okN, failN atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: 30 * time.Second}
	for range conc {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
				req.Host = host
				resp, err := client.Do(req)
				if err != nil {
					failN.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					okN.Add(1)
				} else {
					failN.Add(1)
				}
			}
		})
	}
	return func() (int64, int64) { wg.Wait(); return okN.Load(), failN.Load() }
}

// Stat reads one stat from a proxy's admin /stats (Envoy's text format, which the gateway
// serves too); -1 when the proxy has no such stat.
func Stat(adminURL, name string) (int64, error) {
	resp, err := http.Get(strings.TrimSuffix(adminURL, "/") + "/stats")
	if err != nil {
		return -1, fmt.Errorf("read proxy stats: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, fmt.Errorf("read proxy stats: %w", err)
	}
	for line := range strings.Lines(string(body)) {
		if n, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok && n == name {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1, fmt.Errorf("stat %s: %q: %w", name, v, err)
			}
			return x, nil
		}
	}
	return -1, nil
}
