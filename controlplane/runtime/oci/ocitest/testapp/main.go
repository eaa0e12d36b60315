// Command testapp is the program the OCI runtime's tests run in a container: it serves on
// $HOST:$PORT and reports what it sees of its container, so tests can assert it.
//
//	GET /          {"args","env","cwd","uid","gid","groups","hostname"}
//	GET /file?path=P   the file's content (404 if missing)
//	GET /write?path=P  writes "ok" to P: 200, or 500 with the error
//	GET /healthz   200, or 500 once /sick was called
//	GET /sick      makes /healthz fail
//
// Flags: -ignore-term ignores SIGTERM (printing "got SIGTERM"); -exit N exits with code N at
// once, after printing "exiting N" to stderr.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

func main() {
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	exit := flag.Int("exit", -1, "exit at once with this code")
	flag.Parse()
	if *exit >= 0 {
		fmt.Fprintf(os.Stderr, "exiting %d\n", *exit)
		os.Exit(*exit)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		for range sigs {
			fmt.Println("got SIGTERM")
			if !*ignoreTerm {
				os.Exit(0)
			}
		}
	}()
	var sick atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		host, _ := os.Hostname()
		groups, _ := os.Getgroups()
		_ = json.NewEncoder(w).Encode(map[string]any{
			"args": os.Args, "env": os.Environ(), "cwd": cwd, "uid": os.Getuid(), "gid": os.Getgid(),
			"groups": groups, "hostname": host,
		})
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(r.URL.Query().Get("path"), []byte("ok"), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if sick.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) { sick.Store(true) })
	addr := net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT"))
	fmt.Println("testapp listening on", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
