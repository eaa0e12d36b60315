// Command funcwatch measures `skiff func run --watch` (func#1863): the time from saving an
// edit to the function serving the edited code on the same port, per language, and, as the
// baseline of the same run, what a user does without it: stop the running function (waiting
// for it to exit), build, start it again.
//
//	go run ./bench/funcwatch -n 5
//
// Each language's function comes from Skiff's template with a handler answering "vN"; an edit
// bumps N. Node runs on faas-js-runtime (its dependencies installed once into -cache).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/functions/build"
	"github.com/skiff-dev/skiff/functions/funcyaml"
	"github.com/skiff-dev/skiff/functions/run"
	"github.com/skiff-dev/skiff/functions/template"
)

// sources are each language's handler answering %d, and the file it lives in.
var sources = map[string][2]string{
	"go": {"handle.go", `package function

import (
	"fmt"
	"net/http"
)

func Handle(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "v%d") }
`},
	"node": {"index.js", `module.exports = { handle: async () => 'v%d' };
`},
	"python": {"function/func.py", `def new():
    return Function()


class Function:
    async def handle(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [[b"content-type", b"text/plain"]]})
        await send({"type": "http.response.body", "body": b"v%d"})
`},
}

var tools = map[string]string{"go": "go", "node": "npm", "python": "python3"}

// npmEachBuild is run --watch with npm install run in every build, as builds did before the
// dependency cache: a postinstall script makes the builder install in place.
const npmEachBuild = "run --watch, npm install in every build (before the cache)"

func main() {
	n := flag.Int("n", 5, "edits per language")
	cache := flag.String("cache", filepath.Join(os.TempDir(), "skiff-bench-func-cache"), "npm's cache and installed dependencies")
	langs := flag.String("lang", "go,node,python", "languages")
	flag.Parse()
	fmt.Println("| language | mode | edits | p50 save→served | max save→served |")
	fmt.Println("|---|---|---|---|---|")
	for _, lang := range strings.Split(*langs, ",") {
		if _, err := exec.LookPath(tools[lang]); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s not installed, skipped\n", lang, tools[lang])
			continue
		}
		modes := []string{"run --watch", "stop, build, start (baseline)"}
		if lang == "node" {
			modes = append(modes, npmEachBuild)
		}
		for _, mode := range modes {
			times, err := measure(lang, mode, *n, *cache)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s %s: %v\n", lang, mode, err)
				os.Exit(1)
			}
			slices.Sort(times)
			fmt.Printf("| %s | %s | %d | %s | %s |\n", lang, mode, len(times),
				times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
		}
	}
}

func measure(lang, mode string, n int, cache string) ([]time.Duration, error) {
	dir, err := os.MkdirTemp("", "funcwatch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fn := filepath.Join(dir, "bench-"+lang)
	f, err := template.Create(template.Options{Dir: fn, Runtime: lang})
	if err != nil {
		return nil, err
	}
	write := func(v int) error {
		src := sources[lang]
		if lang == "go" {
			_ = os.Remove(filepath.Join(fn, "handle_test.go"))
		}
		return os.WriteFile(filepath.Join(fn, src[0]), []byte(fmt.Sprintf(src[1], v)), 0o644)
	}
	if err := write(0); err != nil {
		return nil, err
	}
	if mode == npmEachBuild {
		pj := filepath.Join(fn, "package.json")
		data, err := os.ReadFile(pj)
		if err != nil {
			return nil, err
		}
		data = []byte(strings.Replace(string(data), `"scripts": {`, `"scripts": {
    "postinstall": "true",`, 1))
		if err := os.WriteFile(pj, data, 0o644); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 100)
	bopts := build.Options{Dir: fn, CacheDir: cache}
	var in *run.Instance
	done := make(chan error, 1)
	if mode != "stop, build, start (baseline)" {
		go func() {
			done <- run.Watch(ctx, run.WatchOptions{Run: run.Options{Dir: fn, Func: f}, Build: bopts, Ready: func(u string) { urls <- u }})
		}()
	} else {
		if in, err = restart(ctx, nil, fn, f, bopts, 0); err != nil {
			return nil, err
		}
		urls <- in.URL
	}
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		return nil, err
	case <-time.After(3 * time.Minute):
		return nil, fmt.Errorf("did not start")
	}
	var times []time.Duration
	for v := 1; v <= n; v++ {
		if err := write(v); err != nil {
			return nil, err
		}
		saved := time.Now()
		if in != nil {
			port := portOf(url)
			if in, err = restart(ctx, in, fn, f, bopts, port); err != nil {
				return nil, err
			}
		}
		want := fmt.Sprintf("v%d", v)
		for get(url) != want {
			if time.Since(saved) > time.Minute {
				return nil, fmt.Errorf("edit %d not served within a minute", v)
			}
			time.Sleep(5 * time.Millisecond)
		}
		times = append(times, time.Since(saved))
		time.Sleep(200 * time.Millisecond) // let the watcher settle before the next edit
	}
	if in != nil {
		_ = in.Stop(10 * time.Second)
	}
	cancel()
	if in == nil {
		if err := <-done; err != nil {
			return nil, err
		}
	}
	return times, nil
}

// restart is the baseline: stop (waiting for the exit), build, start on the same port.
func restart(ctx context.Context, in *run.Instance, dir string, f *funcyaml.Function, bopts build.Options, port int) (*run.Instance, error) {
	if in != nil {
		_ = in.Stop(10 * time.Second)
	}
	bopts.Func = f
	h, err := build.BuildHost(ctx, bopts)
	if err != nil {
		return nil, err
	}
	return run.Start(ctx, run.Options{Dir: dir, Func: f, Host: h, Port: port})
}

func portOf(url string) int {
	var p int
	fmt.Sscanf(url[strings.LastIndex(url, ":")+1:], "%d", &p)
	return p
}

func get(url string) string {
	resp, err := (&http.Client{Timeout: time.Second}).Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}
