// Command faults measures how `skiff up` copes with deletes under load (issue 13, items 1 and
// 7): it runs `skiff up` in-process with its default drain timeout (1s) and
//
//   - deletes a Service running N instances, and one running a single instance (the baseline),
//     timing each from the DELETE until every instance process is gone;
//   - asks one Service for initial-scale 100000 and reports how many processes ran (the
//     runtime's bound) and how long its delete took to stop them;
//   - creates M Services of one instance, deletes them all at once and times a new Service
//     from create to Ready while they drain, against a new Service created with nothing
//     draining (the baseline), and until the last deleted instance is gone.
//
// Every Service runs examples/echo as a `command` that first logs its pid.
//
//	go run ./bench/faults -instances 50 -services 100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/bench/skiffup"
	"github.com/skiff-dev/skiff/client/apiclient"
)

func main() {
	instances := flag.Int("instances", 50, "instances of the Service deleted under load")
	services := flag.Int("services", 100, "Services deleted at once while a new one is created")
	maxInstances := flag.Int("max-instances", 0, "the local runtime's bound on instances (0: its default)")
	huge := flag.Bool("huge", true, "include the initial-scale 100000 Service (never on a build without the runtime's bound)")
	flag.Parse()
	if err := run(*instances, *services, *maxInstances, *huge); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
}

// bench is a running skiff up and where its instances log their pids.
type bench struct {
	up   *skiffup.Up
	echo string
	dir  string
}

func run(instances, services, maxInstances int, huge bool) error {
	dir, err := os.MkdirTemp("", "skiff-faults-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	echo := filepath.Join(dir, "echo")
	build := exec.Command("go", "build", "-o", echo, "./examples/echo")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./examples/echo: %v\n%s", err, out)
	}
	up, err := skiffup.Start(skiffup.Options{DrainTimeout: time.Second, MaxInstances: maxInstances})
	if err != nil {
		return err
	}
	defer up.Close()
	b := &bench{up: up, echo: echo, dir: dir}

	fmt.Println("| measurement | instances | time |")
	fmt.Println("|---|---|---|")
	for _, n := range []int{1, instances} {
		name := fmt.Sprintf("load-%d", n)
		start := time.Now()
		if err := b.apply(name, n); err != nil {
			return err
		}
		if err := b.waitProcesses(name, n); err != nil {
			return err
		}
		fmt.Printf("| create, until every instance runs | %d | %v |\n", n, time.Since(start).Round(time.Millisecond))
		took, err := b.deleteAndWait(name)
		if err != nil {
			return err
		}
		fmt.Printf("| delete, until every instance is gone | %d | %v |\n", n, took.Round(time.Millisecond))
	}

	if huge {
		if err := b.huge(); err != nil {
			return err
		}
	}

	// A new Service while many deleted ones drain, and its baseline.
	start := time.Now()
	if err := b.apply("fresh-baseline", 1); err != nil {
		return err
	}
	fmt.Printf("| new Service, create until Ready, nothing draining (baseline) | 1 | %v |\n", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	for i := range services {
		if err := b.applyNoWait(fmt.Sprintf("many-%d", i), 1); err != nil {
			return err
		}
	}
	for i := range services {
		if err := b.waitReady(fmt.Sprintf("many-%d", i)); err != nil {
			return err
		}
	}
	fmt.Printf("| %d Services, create until all Ready | %d | %v |\n", services, services, time.Since(start).Round(time.Millisecond))
	var pids []int
	for i := range services {
		pids = append(pids, b.pids(fmt.Sprintf("many-%d", i))...)
	}
	start = time.Now()
	for i := range services {
		if err := up.API.Delete(context.Background(), api.LookupKind("ksvc"), "default", fmt.Sprintf("many-%d", i)); err != nil {
			return err
		}
	}
	deleted := time.Since(start)
	if err := b.apply("fresh", 1); err != nil {
		return err
	}
	ready := time.Since(start)
	draining := 0
	for _, pid := range pids {
		if alive(pid) {
			draining++
		}
	}
	fmt.Printf("| %d Services deleted (the DELETE calls) | %d | %v |\n", services, services, deleted.Round(time.Millisecond))
	fmt.Printf("| new Service, create until Ready, while they drain (%d still running then) | 1 | %v |\n", draining, (ready - deleted).Round(time.Millisecond))
	if err := waitGone(pids, 2*time.Minute); err != nil {
		return err
	}
	fmt.Printf("| %d deleted Services, until every instance is gone | %d | %v |\n", services, len(pids), time.Since(start).Round(time.Millisecond))
	return nil
}

// huge asks for initial-scale 100000: the runtime's bound decides how many run.
func (b *bench) huge() error {
	start := time.Now()
	if err := b.apply("huge", 100000); err != nil {
		return err
	}
	ran, err := b.waitSteady("huge")
	if err != nil {
		return err
	}
	fmt.Printf("| initial-scale 100000: processes started, until steady | %d | %v |\n", ran, time.Since(start).Round(time.Millisecond))
	took, err := b.deleteAndWait("huge")
	if err != nil {
		return err
	}
	n := len(b.pids("huge"))
	fmt.Printf("| initial-scale 100000: delete, until every instance is gone (processes started in all) | %d | %v |\n", n, took.Round(time.Millisecond))
	return nil
}

// manifest is a Service running examples/echo at initial scale n; each instance logs its pid.
func (b *bench) manifest(name string, n int) string {
	return fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: %s
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "%d"
    spec:
      containers:
        - image: docker.io/library/echo  # the local runtime runs the command
          command: ["sh", "-c", "echo $$$$ >> \"$PIDS\"; exec \"$ECHO\""]
          env:
            - name: PIDS
              value: %q
            - name: ECHO
              value: %q
`, name, n, filepath.Join(b.dir, name+".pids"), b.echo)
}

func (b *bench) apply(name string, n int) error {
	return b.up.Apply(context.Background(), b.manifest(name, n))
}

func (b *bench) applyNoWait(name string, n int) error {
	docs, err := apiclient.ReadManifests("-", strings.NewReader(b.manifest(name, n)))
	if err != nil {
		return err
	}
	_, err = b.up.API.Apply(context.Background(), docs[0], "default")
	return err
}

func (b *bench) waitReady(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := apiclient.WaitReady(ctx, b.up.API, api.LookupKind("ksvc"), "default", name)
	return err
}

// pids are the processes a Service's instances logged.
func (b *bench) pids(name string) []int {
	data, _ := os.ReadFile(filepath.Join(b.dir, name+".pids"))
	var pids []int
	for f := range strings.FieldsSeq(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitProcesses waits until n of the Service's processes run.
func (b *bench) waitProcesses(name string, n int) error {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		live := 0
		for _, pid := range b.pids(name) {
			if alive(pid) {
				live++
			}
		}
		if live >= n {
			return nil
		}
	}
	return fmt.Errorf("%s: %d processes did not start", name, n)
}

// waitSteady waits until no new process of the Service has started for 2 s, and returns how
// many did.
func (b *bench) waitSteady(name string) (int, error) {
	last, since := -1, time.Now()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n := len(b.pids(name))
		if n != last {
			last, since = n, time.Now()
		}
		if n > 0 && time.Since(since) >= 2*time.Second {
			return n, nil
		}
	}
	return 0, errors.New(name + ": processes kept starting for 2 minutes")
}

// deleteAndWait deletes a Service and waits until every process it started is gone.
func (b *bench) deleteAndWait(name string) (time.Duration, error) {
	start := time.Now()
	if err := b.up.API.Delete(context.Background(), api.LookupKind("ksvc"), "default", name); err != nil {
		return 0, err
	}
	err := waitGone(b.pids(name), 2*time.Minute)
	return time.Since(start), err
}

func waitGone(pids []int, within time.Duration) error {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		live := 0
		for _, pid := range pids {
			if alive(pid) {
				live++
			}
		}
		if live == 0 {
			return nil
		}
	}
	return fmt.Errorf("processes still running after %v", within)
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
