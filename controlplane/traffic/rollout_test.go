package traffic

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// The cases below are Knative's, from pkg/reconciler/route/traffic/rollout_test.go (each
// test names the one it ports), written with the short constructors that follow.

func rr(name string, percent int) RevisionRollout {
	return RevisionRollout{RevisionName: name, Percent: percent}
}

func cr(name string, percent int, revs ...RevisionRollout) *ConfigurationRollout {
	return &ConfigurationRollout{ConfigurationName: name, Percent: percent, Revisions: revs}
}

func (c *ConfigurationRollout) with(p RolloutParams) *ConfigurationRollout {
	c.StepParams = p
	return c
}

func (c *ConfigurationRollout) tagged(tag string) *ConfigurationRollout {
	c.Tag = tag
	return c
}

func ro(cs ...*ConfigurationRollout) *Rollout { return &Rollout{Configurations: cs} }

// percents are unnamed revisions with these percents (the cases that only count).
func percents(ps ...int) []RevisionRollout {
	var out []RevisionRollout
	for _, p := range ps {
		out = append(out, RevisionRollout{Percent: p})
	}
	return out
}

// asJSON compares rollouts as the annotation holds them (nil and empty lists alike, as
// Knative's cmpopts.EquateEmpty).
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStep ports Knative's TestStep.
func TestStep(t *testing.T) {
	const now = 2020
	tests := []struct {
		name            string
		prev, cur, want *Rollout
		wantNextStep    int64
	}{{
		name: "no prev",
		cur:  ro(),
		want: ro(),
	}, {
		name: "prev is empty",
		cur:  ro(cr("mick", 100, rr("let-it-bleed", 100))),
		prev: ro(cr("mick", 100)),
		want: ro(cr("mick", 100, rr("let-it-bleed", 100))),
	}, {
		name: "simplest, same",
		cur: ro(cr("mick", 100, rr("let-it-bleed", 100)).
			with(RolloutParams{NextStepTime: 2009, StepDuration: 2020, StartTime: 2004, StepSize: 14})),
		prev: ro(cr("mick", 100, rr("let-it-bleed", 100))),
		want: ro(cr("mick", 100, rr("let-it-bleed", 100))),
	}, {
		name: "simplest, step",
		cur:  ro(cr("mick", 100, rr("let-it-bleed", 100))),
		prev: ro(cr("mick", 100, rr("their-satanic-majesties-request", 95), rr("let-it-bleed", 5)).
			with(RolloutParams{NextStepTime: 2019, StepDuration: 5, StartTime: 2004, StepSize: 3})),
		want: ro(cr("mick", 100, rr("their-satanic-majesties-request", 92), rr("let-it-bleed", 8)).
			with(RolloutParams{NextStepTime: now + 5, StepDuration: 5, StartTime: 2004, StepSize: 3})),
		wantNextStep: now + 5,
	}, {
		name: "multiple configs step",
		cur:  ro(cr("mick", 42, rr("let-it-bleed", 42)), cr("keith", 52, rr("beggars-banquet", 52))),
		prev: ro(
			cr("mick", 42, rr("their-satanic-majesties-request", 37), rr("let-it-bleed", 5)).
				with(RolloutParams{NextStepTime: 2019, StepDuration: 43, StartTime: 1961, StepSize: 3}),
			cr("keith", 52, rr("sticky-fingers", 36), rr("beggars-banquet", 16)).
				with(RolloutParams{NextStepTime: 2018, StepDuration: 55, StartTime: 1971, StepSize: 4})),
		want: ro(
			cr("keith", 52, rr("sticky-fingers", 32), rr("beggars-banquet", 20)).
				with(RolloutParams{NextStepTime: now + 55, StepDuration: 55, StartTime: 1971, StepSize: 4}),
			cr("mick", 42, rr("their-satanic-majesties-request", 34), rr("let-it-bleed", 8)).
				with(RolloutParams{NextStepTime: now + 43, StepDuration: 43, StartTime: 1961, StepSize: 3})),
		wantNextStep: now + 43,
	}, {
		name: "multiple configs step and roll",
		cur:  ro(cr("mick", 42, rr("let-it-bleed", 42)), cr("keith", 52, rr("tattoo-you", 52))),
		prev: ro(
			cr("mick", 42, rr("their-satanic-majesties-request", 37), rr("let-it-bleed", 5)).
				with(RolloutParams{NextStepTime: 2019, StepDuration: 43, StartTime: 1961, StepSize: 3}),
			cr("keith", 52, rr("sticky-fingers", 36), rr("beggars-banquet", 16)).
				with(RolloutParams{NextStepTime: 2018, StepDuration: 55, StartTime: 1971, StepSize: 4})),
		want: ro(
			cr("keith", 52, rr("sticky-fingers", 36), rr("beggars-banquet", 15), rr("tattoo-you", 1)).
				with(RolloutParams{StartTime: now}),
			cr("mick", 42, rr("their-satanic-majesties-request", 34), rr("let-it-bleed", 8)).
				with(RolloutParams{NextStepTime: now + 43, StepDuration: 43, StartTime: 1961, StepSize: 3})),
		wantNextStep: now + 43,
	}, {
		name: "simplest, step, when stepsize=0",
		cur: ro(cr("mick", 100, rr("let-it-bleed", 100)).
			with(RolloutParams{NextStepTime: 2009, StepDuration: 2020, StartTime: 2004, StepSize: 14})),
		prev: ro(cr("mick", 100, rr("their-satanic-majesties-request", 95), rr("let-it-bleed", 5)).
			with(RolloutParams{StartTime: 2004})),
		want: ro(cr("mick", 100, rr("their-satanic-majesties-request", 95), rr("let-it-bleed", 5)).
			with(RolloutParams{StartTime: 2004})),
	}, {
		name: "when new revision becomes 0%",
		cur:  ro(cr("charlie", 0, rr("aftermath", 0))),
		prev: ro(cr("charlie", 100, rr("your-satanic-majesties-request", 100))),
		want: ro(),
	}, {
		name: "when new config is added but it's 0%",
		cur:  ro(cr("charlie", 0, rr("aftermath", 0)), cr("mick", 100, rr("between-the-buttons", 100))),
		prev: ro(cr("mick", 100, rr("between-the-buttons", 100))),
		want: ro(cr("mick", 100, rr("between-the-buttons", 100))),
	}, {
		name: "simplest, roll",
		cur:  ro(cr("mick", 100, rr("let-it-bleed", 100))),
		prev: ro(cr("mick", 100, rr("goat-head-soup", 100)).
			with(RolloutParams{NextStepTime: 1984, StartTime: 1981, StepDuration: 1988, StepSize: 11})),
		want: ro(cr("mick", 100, rr("goat-head-soup", 99), rr("let-it-bleed", 1)).with(RolloutParams{StartTime: now})),
	}, {
		name: "roll with percentage change down",
		cur:  ro(cr("mick", 33, rr("let-it-bleed", 33))),
		prev: ro(cr("mick", 42, rr("goat-head-soup", 11), rr("aftermath", 31))),
		want: ro(cr("mick", 33, rr("goat-head-soup", 2), rr("aftermath", 30), rr("let-it-bleed", 1)).
			with(RolloutParams{StartTime: now})),
	}, {
		name: "roll with percentage change up",
		cur:  ro(cr("mick", 75, rr("let-it-bleed", 75))),
		prev: ro(cr("mick", 25, rr("goat-head-soup", 11), rr("aftermath", 14))),
		want: ro(cr("mick", 75, rr("goat-head-soup", 11), rr("aftermath", 63), rr("let-it-bleed", 1)).
			with(RolloutParams{StartTime: now})),
	}, {
		name: "roll, where sum < 100% (one route targets a revision, e.g.)",
		cur:  ro(cr("brian", 70, rr("let-it-bleed", 70))),
		prev: ro(cr("brian", 70, rr("exile-on-main-st", 70))),
		want: ro(cr("brian", 70, rr("exile-on-main-st", 69), rr("let-it-bleed", 1)).with(RolloutParams{StartTime: now})),
	}, {
		name: "roll with two existing revisions, no deletes",
		cur:  ro(cr("mick", 100, rr("sticky-fingers", 100))),
		prev: ro(cr("mick", 100, rr("goat-head-soup", 95), rr("beggars-banquet", 5)).with(RolloutParams{StartTime: now - 1982})),
		want: ro(cr("mick", 100, rr("goat-head-soup", 95), rr("beggars-banquet", 4), rr("sticky-fingers", 1)).
			with(RolloutParams{StartTime: now})),
	}, {
		name: "roll with delete (two fast successive rolls)",
		cur:  ro(cr("mick", 100, rr("between-the-buttons", 100))),
		prev: ro(cr("mick", 100, rr("goat-head-soup", 99), rr("bridges-to-babylon", 1)).with(RolloutParams{StartTime: now - 1984})),
		want: ro(cr("mick", 100, rr("goat-head-soup", 99), rr("between-the-buttons", 1)).with(RolloutParams{StartTime: now})),
	}, {
		name: "roll with delete (minimal config target)",
		cur:  ro(cr("mick", 1, rr("between-the-buttons", 1))),
		prev: ro(cr("mick", 1, rr("bridges-to-babylon", 1))),
		want: ro(cr("mick", 1, rr("between-the-buttons", 1))),
	}, {
		name: "new tag, no roll",
		cur:  ro(cr("mick", 100, rr("black-on-blue", 100)), cr("mick", 100, rr("black-on-blue", 100)).tagged("jagger")),
		prev: ro(cr("mick", 100, rr("black-on-blue", 100))),
		want: ro(cr("mick", 100, rr("black-on-blue", 100)), cr("mick", 100, rr("black-on-blue", 100)).tagged("jagger")),
	}, {
		name: "deleted config, no roll",
		cur:  ro(cr("mick", 100, rr("it's-only-rock-n-roll", 100))),
		prev: ro(cr("keith", 50, rr("black-on-blue", 50)), cr("mick", 50, rr("it's-only-rock-n-roll", 50))),
		want: ro(cr("mick", 100, rr("it's-only-rock-n-roll", 100))),
	}, {
		name: "a/b config, roll both",
		cur:  ro(cr("keith", 99, rr("black-on-blue", 99)), cr("mick", 1, rr("it's-only-rock-n-roll", 1))),
		prev: ro(cr("keith", 99, rr("can't-get-no-satisfaction", 99)), cr("mick", 1, rr("get-off-my-cloud", 1))),
		want: ro(cr("keith", 99, rr("can't-get-no-satisfaction", 98), rr("black-on-blue", 1)).with(RolloutParams{StartTime: now}),
			cr("mick", 1, rr("it's-only-rock-n-roll", 1))),
	}, {
		name: "new config, no roll, newer smaller",
		cur:  ro(cr("keith", 50, rr("black-on-blue", 50)), cr("mick", 50, rr("it's-only-rock-n-roll", 50))),
		prev: ro(cr("mick", 100, rr("it's-only-rock-n-roll", 100))),
		want: ro(cr("keith", 50, rr("black-on-blue", 50)), cr("mick", 50, rr("it's-only-rock-n-roll", 50))),
	}, {
		name: "new config, no roll, newer larger",
		cur:  ro(cr("keith", 50, rr("black-on-blue", 50)), cr("mick", 50, rr("it's-only-rock-n-roll", 50))),
		prev: ro(cr("keith", 100, rr("black-on-blue", 100))),
		want: ro(cr("keith", 50, rr("black-on-blue", 50)), cr("mick", 50, rr("it's-only-rock-n-roll", 50))),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, gotNext := tc.cur.step(tc.prev, now)
			if g, w := asJSON(t, got), asJSON(t, tc.want); g != w {
				t.Errorf("step:\n got %s\nwant %s", g, w)
			}
			if !got.Valid() {
				t.Errorf("step returned an invalid rollout %s", asJSON(t, got))
			}
			if gotNext != tc.wantNextStep {
				t.Errorf("next step at %d, want %d", gotNext, tc.wantNextStep)
			}
			// The exported form says the same in time.Time.
			_, next := tc.cur.Step(nil, time.Unix(0, now))
			if !next.IsZero() {
				t.Errorf("Step with no previous state: next step %v, want none", next)
			}
		})
	}
}

// TestObserveReady ports Knative's TestObserveReady.
func TestObserveReady(t *testing.T) {
	const (
		now         = 200620092020 + 1982
		oldenDays   = 198219841988
		ancientDays = 14921812
		duration    = 120.
	)
	got := ro(
		cr("has-step", 100).with(RolloutParams{StepDuration: 11}),
		cr("no-step-no-begin", 100),
		cr("step-begin < 1s", 100).with(RolloutParams{StartTime: 200620092020}),
		cr("step-begin > 1s", 100).with(RolloutParams{StartTime: oldenDays}),
		cr("step-begin > 1s, step size round up", 75).with(RolloutParams{StartTime: oldenDays}),
		cr("Percent not 100%", 50).with(RolloutParams{StartTime: oldenDays}),
		// A first step longer than the whole rollout: the rest in one step.
		cr("días antiguos", 13).with(RolloutParams{StartTime: ancientDays}),
	)
	want := ro(
		cr("has-step", 100).with(RolloutParams{StepDuration: 11}),
		cr("no-step-no-begin", 100),
		cr("step-begin < 1s", 100).with(RolloutParams{StartTime: 200620092020, StepDuration: 1202020202, StepSize: 1, NextStepTime: now + 1202020202}),
		cr("step-begin > 1s", 100).with(RolloutParams{StartTime: oldenDays, StepDuration: int64(3 * time.Second), StepSize: 3, NextStepTime: now + 3*int64(time.Second)}),
		cr("step-begin > 1s, step size round up", 75).with(RolloutParams{StartTime: oldenDays, StepDuration: int64(3 * time.Second), StepSize: 75/40 + 1, NextStepTime: now + 3*int64(time.Second)}),
		cr("Percent not 100%", 50).with(RolloutParams{StartTime: oldenDays, StepDuration: int64(3 * time.Second), StepSize: 50 / 40, NextStepTime: now + 3*int64(time.Second)}),
		cr("días antiguos", 13).with(RolloutParams{StartTime: ancientDays, StepDuration: int64(time.Second), StepSize: 12, NextStepTime: now + int64(time.Second)}),
	)
	got.observeReady(now, duration)
	if g, w := asJSON(t, got), asJSON(t, want); g != w {
		t.Errorf("observeReady:\n got %s\nwant %s", g, w)
	}
	// The exported form, with time.Time and time.Duration, computes the same.
	again := ro(cr("step-begin > 1s", 100).with(RolloutParams{StartTime: oldenDays}))
	again.ObserveReady(time.Unix(0, now), duration*time.Second)
	if g, w := asJSON(t, again.Configurations[0]), asJSON(t, want.Configurations[3]); g != w {
		t.Errorf("ObserveReady:\n got %s\nwant %s", g, w)
	}
}

// TestAdjustPercentage ports Knative's TestAdjustPercentage.
func TestAdjustPercentage(t *testing.T) {
	tests := []struct {
		name string
		goal int
		prev *ConfigurationRollout
		want []RevisionRollout
	}{
		{"noop, 100%", 100, cr("", 100, percents(71, 29)...), percents(71, 29)},
		{"noop, 42%", 42, cr("", 42, percents(21, 21)...), percents(21, 21)},
		{"raise, 42% -> 75%", 75, cr("", 42, percents(21, 21)...), percents(21, 54)},
		{"lower, 75%->42%, lose 1", 42, cr("", 75, percents(21, 54)...), percents(42)},
		{"lower, 75%->42%, lose 1, update 2, keep 3", 42, cr("", 75, percents(21, 22, 32)...), percents(10, 32)},
		{"lower, 75%->42%, lose 2, update 3", 42, cr("", 75, percents(10, 5, 60)...), percents(42)},
		{"go to 0%", 0, cr("", 75, percents(10, 5, 60)...), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			adjustPercentage(tc.goal, tc.prev)
			if g, w := asJSON(t, ro(cr("", 0, tc.prev.Revisions...))), asJSON(t, ro(cr("", 0, tc.want...))); g != w {
				t.Errorf("revisions\n got %s\nwant %s", g, w)
			}
		})
	}
}

// TestValidateFailures ports Knative's TestValidateFailures, and ParseRollout refusing such
// state, as Knative's deserializeRollout does.
func TestValidateFailures(t *testing.T) {
	tests := []struct {
		name string
		r    *Rollout
	}{
		{"config > 100%", ro(cr("keith", 101, rr("black-on-blue", 101)))},
		{"step larger than total", ro(cr("keith", 71, rr("black-on-blue", 71)).with(RolloutParams{StepSize: 75}))},
		{"step negative", ro(cr("keith", 71, rr("black-on-blue", 71)).with(RolloutParams{StepSize: -1}))},
		{"rev more than config", ro(cr("keith", 42, rr("black-on-blue", 43)))},
		{"revs more than config", ro(cr("keith", 42, rr("black-on-blue", 41), rr("smith", 3)))},
		{"2nd config > 100%", ro(cr("rob", 10, rr("roy", 10)), cr("keith", 101, rr("black-on-blue", 101)).tagged("richards"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.r.Valid() {
				t.Errorf("Valid() for %s", tc.r)
			}
			if got, err := ParseRollout(tc.r.String()); err == nil {
				t.Errorf("ParseRollout(%s) = %s, want an error", tc.r, got)
			}
		})
	}
	if _, err := ParseRollout("{not json"); err == nil {
		t.Error("ParseRollout of bad JSON: no error")
	}
	if got, err := ParseRollout(""); got != nil || err != nil {
		t.Errorf(`ParseRollout("") = %v, %v; want no state`, got, err)
	}
}

// TestConfigDone ports Knative's TestConfigDone.
func TestConfigDone(t *testing.T) {
	r := ro(cr("nil", 100), cr("one", 100, rr("roy", 100)), cr("no", 0, []RevisionRollout{}...),
		cr("many", 100, rr("black-on-blue", 83), rr("flowers", 17)))
	for i, want := range []bool{true, true, true, false} {
		if got := r.Configurations[i].done(); got != want {
			t.Errorf("%s: done() = %v, want %v", r.Configurations[i].ConfigurationName, got, want)
		}
	}
	if r.Done() {
		t.Error("a rollout with a configuration under way is Done")
	}
	r.Configurations = r.Configurations[:3]
	if !r.Done() {
		t.Error("a rollout with no configuration under way is not Done")
	}
	if !(*Rollout)(nil).Done() {
		t.Error("no rollout is not Done")
	}
}

// TestJSONRoundtrip ports Knative's TestJSONRoundtrip, and checks the annotation keeps
// Knative's field names.
func TestJSONRoundtrip(t *testing.T) {
	orig := ro(
		cr("one", 100, rr("roy", 100)).with(RolloutParams{StartTime: 1955, NextStepTime: 1988, StepDuration: 1984}),
		cr("no", 0),
		cr("many", 100, rr("black-on-blue", 83), rr("flowers", 17)),
	)
	got, err := ParseRollout(orig.String())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, orig) {
		t.Errorf("round trip:\n got %s\nwant %s", got, orig)
	}
	const knative = `{"configurations":[{"configurationName":"c","tag":"t","percent":100,"revisions":[{"revisionName":"r","percent":100}],"stepParams":{"starttime":1,"nextStepTime":2,"stepDuration":3,"stepSize":4}}]}`
	k, err := ParseRollout(knative)
	if err != nil {
		t.Fatal(err)
	}
	if k.String() != knative {
		t.Errorf("Knative's annotation read and written back:\n got %s\nwant %s", k, knative)
	}
}

// TestStepRevisions ports Knative's TestStepRevisions.
func TestStepRevisions(t *testing.T) {
	tests := []struct {
		name      string
		now       int64
		cfg, want *ConfigurationRollout
	}{{
		name: "noop (1): too soon",
		now:  1982,
		cfg:  cr("", 0, percents(10, 5, 60)...).with(RolloutParams{NextStepTime: 1984, StepSize: 10}),
		want: cr("", 0, percents(10, 5, 60)...).with(RolloutParams{NextStepTime: 1984, StepSize: 10}),
	}, {
		name: "noop (2): done",
		now:  1982,
		cfg:  cr("", 0, percents(10)...).with(RolloutParams{NextStepTime: 1984, StepDuration: 10, StepSize: 10}),
		want: cr("", 0, percents(10)...).with(RolloutParams{NextStepTime: 1984, StepDuration: 10, StepSize: 10}),
	}, {
		name: "step last, exact time",
		now:  1984,
		cfg:  cr("", 90, percents(30, 60)...).with(RolloutParams{NextStepTime: 1984, StepSize: 10, StepDuration: 55}),
		want: cr("", 90, percents(20, 70)...).with(RolloutParams{NextStepTime: 1984 + 55, StepSize: 10, StepDuration: 55}),
	}, {
		name: "step last, delete some",
		now:  1988,
		cfg:  cr("", 90, percents(22, 5, 3, 60)...).with(RolloutParams{NextStepTime: 1984, StepSize: 10, StepDuration: 55}),
		want: cr("", 90, percents(20, 70)...).with(RolloutParams{NextStepTime: 1988 + 55, StepSize: 10, StepDuration: 55}),
	}, {
		name: "over target now",
		now:  1988,
		cfg:  cr("", 15, percents(5, 1, 1, 8)...).with(RolloutParams{NextStepTime: 1984, StepSize: 10, StepDuration: 77}),
		want: cr("", 15, percents(15)...),
	}, {
		name: "the very last step",
		now:  2006,
		cfg:  cr("", 15, percents(5, 1, 1, 8)...).with(RolloutParams{NextStepTime: 1984, StartTime: 1977, StepDuration: 77, StepSize: 8}),
		want: cr("", 15, percents(15)...),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stepRevisions(tc.cfg, tc.now)
			if g, w := asJSON(t, tc.cfg), asJSON(t, tc.want); g != w {
				t.Errorf("stepRevisions:\n got %s\nwant %s", g, w)
			}
		})
	}
}

// TestGetByTag ports Knative's TestGetByTag (RolloutsByTag).
func TestGetByTag(t *testing.T) {
	r := ro(
		cr("one", 50, rr("rob", 10), rr("roy", 40)),
		cr("two", 40, rr("wish", 40)),
		cr("two", 100, rr("wish", 100)).tagged("gilberto"),
		cr("three", 10, rr("forty-two", 5), rr("flowers", 5)),
		cr("three", 100, rr("forty-two", 60), rr("flowers", 40)).tagged("jobim"),
	)
	sortRollout(r)
	for tag, want := range map[string][]*ConfigurationRollout{
		"":         r.Configurations[:3],
		"gilberto": r.Configurations[3:4],
		"jobim":    r.Configurations[4:5],
		"nyaful":   nil,
	} {
		if got := r.ByTag(tag); !reflect.DeepEqual(got, want) {
			t.Errorf("ByTag(%q) = %s, want %s", tag, asJSON(t, got), asJSON(t, want))
		}
	}
}

func target(tag, cfg, rev string, latest bool, percent int64) servingv1.TrafficTarget {
	return servingv1.TrafficTarget{Tag: tag, ConfigurationName: cfg, RevisionName: rev, LatestRevision: &latest, Percent: &percent}
}

// TestBuildRollout: the rollout resolved traffic asks for (Knative's BuildRollout, as its
// route table tests expect it): a configuration followed with a share of a host's traffic,
// per host; pinned revisions and 0% targets have none; a tag's host has all of its traffic.
func TestBuildRollout(t *testing.T) {
	got := BuildRollout([]servingv1.TrafficTarget{
		target("", "config", "config-00002", true, 90),
		target("", "other", "other-00001", true, 0),
		target("old", "config", "config-00001", false, 10),
		target("current", "config", "config-00002", true, 0),
	})
	want := ro(cr("config", 90, rr("config-00002", 90)), cr("config", 100, rr("config-00002", 100)).tagged("current"))
	if g, w := asJSON(t, got), asJSON(t, want); g != w {
		t.Errorf("BuildRollout:\n got %s\nwant %s", g, w)
	}
}

// TestWeightsFollowRollout: each host's split is the rollout's for a configuration under
// way (Knative's makeBaseIngressPath), the resolved traffic's otherwise, and status.traffic
// reports the default host's split (Knative's table test "simple route rollout when ingress
// becomes ready" wants 99/1 in status.traffic).
func TestWeightsFollowRollout(t *testing.T) {
	targets := []servingv1.TrafficTarget{
		target("", "config", "config-00002", true, 80),
		target("pinned", "", "pinned-00001", false, 20),
		target("current", "config", "config-00002", true, 0),
	}
	if got, want := (*Rollout)(nil).Weights(targets, ""), Split(targets); !reflect.DeepEqual(got, want) {
		t.Errorf("no rollout: default weights %v, want Split's %v", got, want)
	}
	if got, want := BuildRollout(targets).Weights(targets, "current"), []Weight{{"config-00002", 100}}; !reflect.DeepEqual(got, want) {
		t.Errorf("nothing under way: tag weights %v, want %v", got, want)
	}
	r := ro(
		cr("config", 80, rr("config-00001", 60), rr("config-00002", 20)).with(RolloutParams{StepSize: 20}),
		cr("config", 100, rr("config-00001", 75), rr("config-00002", 25)).tagged("current"),
	)
	if got, want := r.Weights(targets, ""), []Weight{{"config-00001", 60}, {"config-00002", 20}, {"pinned-00001", 20}}; !reflect.DeepEqual(got, want) {
		t.Errorf("default weights %v, want %v", got, want)
	}
	if got, want := r.Weights(targets, "current"), []Weight{{"config-00001", 75}, {"config-00002", 25}}; !reflect.DeepEqual(got, want) {
		t.Errorf("tag weights %v, want %v", got, want)
	}
	if got, want := r.Weights(targets, "pinned"), []Weight{{"pinned-00001", 100}}; !reflect.DeepEqual(got, want) {
		t.Errorf("pinned tag weights %v, want %v", got, want)
	}
	st := r.StatusTargets(targets)
	want := []servingv1.TrafficTarget{
		target("", "config", "config-00001", true, 60),
		target("", "config", "config-00002", true, 20),
		target("pinned", "", "pinned-00001", false, 20),
		target("current", "config", "config-00002", true, 0),
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status traffic\n got %s\nwant %s", asJSON(t, st), asJSON(t, want))
	}
	if got := Split(st); !reflect.DeepEqual(got, r.Weights(targets, "")) {
		t.Errorf("Split(status traffic) = %v, want the default host's weights", got)
	}
}

// TestDrop: a revision deleted while being rolled away from leaves the rollout, its share
// going to the newest revision; one left alone ends the rollout.
func TestDrop(t *testing.T) {
	r := ro(
		cr("a", 100, rr("a-1", 50), rr("a-2", 30), rr("a-3", 20)).with(RolloutParams{StepSize: 10, StepDuration: 5}),
		cr("b", 100, rr("b-1", 60), rr("b-2", 40)).with(RolloutParams{StepSize: 10, StepDuration: 5}).tagged("t"),
	)
	gone := map[string]bool{"a-2": true, "b-1": true, "a-3": true}
	r.Drop(func(rev string) bool { return gone[rev] })
	want := ro(
		cr("a", 100, rr("a-1", 50), rr("a-3", 50)).with(RolloutParams{StepSize: 10, StepDuration: 5}),
		cr("b", 100, rr("b-2", 100)).tagged("t"),
	)
	if g, w := asJSON(t, r), asJSON(t, want); g != w {
		t.Errorf("Drop:\n got %s\nwant %s", g, w)
	}
}
