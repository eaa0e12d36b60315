// Package admin serves the subset of Envoy's admin interface the gateway
// supports: /stats, /stats/prometheus, /ready, /config_dump and /clusters,
// with Envoy's formats, so tools written against Envoy's admin API (Skiff's
// autoscaler among them) work unchanged.
package admin

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"regexp"

	"github.com/skiff-dev/skiff/gateway/stats"
	"github.com/skiff-dev/skiff/gateway/upstream"
)

// Options supplies what the admin endpoints show.
type Options struct {
	// Stats is the stat store behind /stats.
	Stats *stats.Store
	// Ready reports whether the gateway has its initial configuration (/ready).
	Ready func() bool
	// ConfigDump returns the JSON of /config_dump.
	ConfigDump func() ([]byte, error)
	// Clusters provides /clusters.
	Clusters *upstream.Manager
}

// Handler returns the admin HTTP handler.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		var filter *regexp.Regexp
		if f := r.URL.Query().Get("filter"); f != "" {
			re, err := regexp.Compile(f)
			if err != nil {
				http.Error(w, fmt.Sprintf("Invalid re2 regex: %v", err), http.StatusBadRequest)
				return
			}
			filter = re
		}
		switch r.URL.Query().Get("format") {
		case "json":
			w.Header().Set("Content-Type", "application/json")
			_ = o.Stats.WriteJSON(w, filter)
		case "prometheus":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_ = o.Stats.WritePrometheus(w)
		default:
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			_ = o.Stats.WriteText(w, filter)
		}
	})
	mux.HandleFunc("GET /stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = o.Stats.WritePrometheus(w)
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		if o.Ready != nil && o.Ready() {
			fmt.Fprintln(w, "LIVE")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "PRE_INITIALIZING")
	})
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, r *http.Request) {
		if o.ConfigDump == nil {
			http.NotFound(w, r)
			return
		}
		b, err := o.ConfigDump()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		if o.Clusters == nil {
			return
		}
		for _, c := range o.Clusters.Clusters() {
			for _, h := range c.Hosts() {
				s := h.Stats()
				p := c.Name + "::" + h.Address + "::"
				fmt.Fprintf(w, "%scx_active::%d\n", p, s.CxActive)
				fmt.Fprintf(w, "%scx_connect_fail::%d\n", p, s.CxConnectFail)
				fmt.Fprintf(w, "%srq_active::%d\n", p, s.RqActive)
				fmt.Fprintf(w, "%srq_error::%d\n", p, s.RqError)
				fmt.Fprintf(w, "%srq_total::%d\n", p, s.RqTotal)
				health := "healthy"
				if !h.Healthy {
					health = "/eds_health_status/unhealthy"
				}
				fmt.Fprintf(w, "%shealth_flags::%s\n", p, health)
				fmt.Fprintf(w, "%spriority::%d\n", p, h.Priority)
			}
		}
	})
	// Go's profiles of the whole process, where Envoy's admin has /cpuprofiler and
	// /heapprofiler: `go tool pprof http://ADMIN/debug/pprof/profile?seconds=10`.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		fmt.Fprintln(w, "admin commands are:\n  /clusters\n  /config_dump\n  /debug/pprof/\n  /ready\n  /stats\n  /stats/prometheus")
	})
	return mux
}
