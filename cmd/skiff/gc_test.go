package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestPlanGC(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    gcPlan
		wantErr string
	}{
		{name: "defaults", want: gcPlan{percent: DefaultGCPercent, limit: 512 << 20}},
		{name: "GOGC in the environment is kept", env: map[string]string{"GOGC": "50"}, want: gcPlan{keep: true}},
		{name: "GOMEMLIMIT in the environment is kept", env: map[string]string{"GOMEMLIMIT": "1GiB"}, want: gcPlan{keep: true}},
		{name: "a flag overrides the environment", args: []string{"--gc-percent", "200"}, env: map[string]string{"GOGC": "50"},
			want: gcPlan{percent: 200, limit: 512 << 20}},
		{name: "limit flag", args: []string{"--gc-memory-limit", "2Gi"}, want: gcPlan{percent: DefaultGCPercent, limit: 2 << 30}},
		{name: "no limit", args: []string{"--gc-memory-limit", "0"}, want: gcPlan{percent: DefaultGCPercent}},
		{name: "negative percent", args: []string{"--gc-percent", "-1"}, wantErr: "--gc-percent: -1 is negative"},
		{name: "bad limit", args: []string{"--gc-memory-limit", "lots"}, wantErr: `--gc-memory-limit: "lots" is not a quantity`},
		{name: "negative limit", args: []string{"--gc-memory-limit", "-1Mi"}, wantErr: `--gc-memory-limit: "-1Mi" is not a quantity of bytes between`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := pflag.NewFlagSet("test", pflag.ContinueOnError)
			addGCFlags(f)
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := planGC(f, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("planGC: err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("planGC = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestApplyGC checks the runtime ends up with the plan's settings, and that a kept plan
// (GOGC or GOMEMLIMIT in the environment) changes nothing.
func TestApplyGC(t *testing.T) {
	prevPercent := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(prevPercent)
		debug.SetMemoryLimit(prevLimit)
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	applyGC(ctx, gcPlan{keep: true}, log)
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Errorf("kept plan: GC percent %d, want the environment's 100", got)
	}
	debug.SetGCPercent(100)

	applyGC(ctx, gcPlan{percent: 400, limit: 512 << 20}, log)
	if got := debug.SetGCPercent(-1); got != 400 {
		t.Errorf("GC percent %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 512<<20 {
		t.Errorf("memory limit %d, want %d", got, 512<<20)
	}
}

func TestGCGuardStep(t *testing.T) {
	p := gcPlan{percent: 400, limit: 400}
	for _, tc := range []struct {
		live                  int64
		defaults              bool
		wantDefaults, changed bool
	}{
		{live: 10, defaults: false, wantDefaults: false, changed: false},
		{live: 201, defaults: false, wantDefaults: true, changed: true}, // past half the limit: Go's defaults
		{live: 150, defaults: true, wantDefaults: true, changed: false}, // hysteresis
		{live: 99, defaults: true, wantDefaults: false, changed: true},  // under a quarter: the plan again
	} {
		got, changed := gcGuardStep(p, tc.live, tc.defaults)
		if got != tc.wantDefaults || changed != tc.changed {
			t.Errorf("gcGuardStep(live %d, defaults %v) = %v, %v; want %v, %v", tc.live, tc.defaults, got, changed, tc.wantDefaults, tc.changed)
		}
	}
}
