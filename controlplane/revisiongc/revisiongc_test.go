package revisiongc

import (
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// rev is a Revision's metadata: its routing state ("" for none), when that last changed
// (zero for never) and when it was created (zero: long ago).
func rev(name, state string, modified, created time.Time) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Labels: map[string]string{}, Annotations: map[string]string{}, CreationTimestamp: metav1.NewTime(created)}
	if state != "" {
		m.Labels[servingv1.RoutingStateLabel] = state
	}
	if !modified.IsZero() {
		m.Annotations[servingv1.RoutingStateModifiedAnnotation] = modified.UTC().Format(time.RFC3339)
	}
	return m
}

const (
	reserve   = servingv1.RoutingStateReserve
	activeNow = servingv1.RoutingStateActive
	pending   = servingv1.RoutingStatePending
)

// Ported from Knative's pkg/reconciler/gc/gc_test.go: TestCollectMin, TestCollectMax,
// TestCollectSettings and TestGCInOrder (the fake clock's now is now here).
func TestCollect(t *testing.T) {
	old, older, oldest := now.Add(-11*time.Minute), now.Add(-12*time.Minute), now.Add(-13*time.Minute)
	minCfg := Config{RetainSinceCreateTime: 5 * time.Minute, RetainSinceLastActiveTime: 5 * time.Minute, MinNonActiveRevisions: 1, MaxNonActiveRevisions: Disabled}
	maxCfg := Config{RetainSinceCreateTime: time.Hour, RetainSinceLastActiveTime: time.Hour, MinNonActiveRevisions: 1, MaxNonActiveRevisions: 2}
	settingsRevs := []metav1.ObjectMeta{rev("5554", reserve, oldest, time.Time{}), rev("5555", reserve, older, time.Time{}), rev("5556", activeNow, old, time.Time{})}
	orderRevs := []metav1.ObjectMeta{
		rev("5553", reserve, now.Add(-15*time.Minute), time.Time{}), rev("5554", reserve, now.Add(-14*time.Minute), time.Time{}),
		rev("5555", reserve, now.Add(-13*time.Minute), time.Time{}), rev("5556", reserve, now.Add(-12*time.Minute), time.Time{}),
		rev("5557", activeNow, now.Add(-11*time.Minute), time.Time{}),
	}
	preserved := rev("5554", reserve, oldest, time.Time{})
	preserved.Annotations[servingv1.RevisionPreservedAnnotation] = "true"
	disabled := time.Duration(Disabled)
	for _, tc := range []struct {
		name        string
		cfg         Config
		latestReady string
		revs        []metav1.ObjectMeta
		want        []string
	}{
		{"too few revisions", minCfg, "5556", []metav1.ObjectMeta{rev("5556", activeNow, time.Time{}, old)}, nil},
		{"delete oldest, keep one recent, one active", minCfg, "5556", []metav1.ObjectMeta{
			rev("5554", reserve, oldest, time.Time{}), rev("5555", reserve, older, time.Time{}), rev("5556", activeNow, old, time.Time{})}, []string{"5554"}},
		{"no latest ready, one active", minCfg, "", []metav1.ObjectMeta{
			rev("5554", reserve, oldest, time.Time{}), rev("5555", reserve, older, time.Time{}), rev("5556", activeNow, old, time.Time{})}, []string{"5554"}},
		{"keep oldest when none reserved", minCfg, "5556", []metav1.ObjectMeta{
			rev("5554", pending, time.Time{}, oldest), rev("5555", "", time.Time{}, older), rev("5556", activeNow, time.Time{}, old)}, nil},
		{"none stale", minCfg, "", []metav1.ObjectMeta{
			rev("5554", reserve, now, time.Time{}), rev("5555", reserve, now, time.Time{}), rev("5556", reserve, now, time.Time{})}, nil},
		{"keep oldest because of the preserve annotation", minCfg, "", []metav1.ObjectMeta{
			preserved, rev("5555", reserve, older, time.Time{}), rev("5556", reserve, old, time.Time{})}, []string{"5555"}},
		{"at max", maxCfg, "5556", []metav1.ObjectMeta{
			rev("5554", reserve, older, time.Time{}), rev("5555", reserve, older, time.Time{}), rev("5556", activeNow, old, time.Time{})}, nil},
		{"delete oldest, keep three max", maxCfg, "5556", []metav1.ObjectMeta{
			rev("5553", reserve, oldest, time.Time{}), rev("5554", reserve, older, time.Time{}), rev("5555", reserve, older, time.Time{}),
			rev("5556", activeNow, old, time.Time{})}, []string{"5553"}},
		{"over max, all active", maxCfg, "5556", []metav1.ObjectMeta{
			rev("5553", activeNow, time.Time{}, time.Time{}), rev("5554", activeNow, time.Time{}, time.Time{}), rev("5555", activeNow, time.Time{}, time.Time{}),
			rev("5556", activeNow, time.Time{}, time.Time{})}, nil},
		{"settings: all disabled", Config{RetainSinceCreateTime: disabled, RetainSinceLastActiveTime: disabled, MinNonActiveRevisions: 1, MaxNonActiveRevisions: Disabled}, "5556", settingsRevs, nil},
		{"settings: staleness disabled", Config{RetainSinceCreateTime: disabled, RetainSinceLastActiveTime: disabled, MinNonActiveRevisions: 0, MaxNonActiveRevisions: 1}, "5556", settingsRevs, []string{"5554"}},
		{"settings: max disabled", Config{RetainSinceCreateTime: disabled, RetainSinceLastActiveTime: time.Minute, MinNonActiveRevisions: 1, MaxNonActiveRevisions: Disabled}, "5556", settingsRevs, []string{"5554"}},
		{"in order: retain one item", Config{RetainSinceCreateTime: disabled, RetainSinceLastActiveTime: disabled, MinNonActiveRevisions: 1, MaxNonActiveRevisions: 1}, "5557", orderRevs, []string{"5553", "5554", "5555"}},
		{"in order: retain two items", Config{RetainSinceCreateTime: disabled, RetainSinceLastActiveTime: disabled, MinNonActiveRevisions: 2, MaxNonActiveRevisions: 2}, "5557", orderRevs, []string{"5553", "5554"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Collect(tc.cfg, now, tc.latestReady, slices.Clone(tc.revs)); !slices.Equal(got, tc.want) {
				t.Errorf("deleted %v, want %v", got, tc.want)
			}
		})
	}
}

// Ported from TestIsRevisionStale (gc_test.go), with Knative's default settings.
func TestStale(t *testing.T) {
	c := Config{RetainSinceCreateTime: 5 * time.Minute, RetainSinceLastActiveTime: 5 * time.Minute, MinNonActiveRevisions: 0, MaxNonActiveRevisions: Disabled}
	staleTime := now.Add(-10 * time.Minute)
	for _, tc := range []struct {
		name string
		rev  metav1.ObjectMeta
		want bool
	}{
		{"stale create time", rev("myrev", "", time.Time{}, staleTime), true},
		{"fresh create time", rev("myrev", "", time.Time{}, now), false},
		{"stale revisionStateModified", rev("myrev", "", staleTime, staleTime), true},
		{"fresh revisionStateModified", rev("myrev", "", now, staleTime), false},
	} {
		if got := stale(c, now, tc.rev); got != tc.want {
			t.Errorf("%s: stale = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Ported from Knative's pkg/gc/config_test.go TestOurConfig.
func TestParse(t *testing.T) {
	with := func(f func(*Config)) Config { c := Default(); f(&c); return c }
	for _, tc := range []struct {
		name    string
		data    map[string]string
		want    Config
		wantErr bool
	}{
		{name: "defaults", data: nil, want: Default()},
		{name: "with value overrides", data: map[string]string{"retain-since-create-time": "17h", "retain-since-last-active-time": "16h", "min-non-active-revisions": "5", "max-non-active-revisions": "500"},
			want: Config{RetainSinceCreateTime: 17 * time.Hour, RetainSinceLastActiveTime: 16 * time.Hour, MinNonActiveRevisions: 5, MaxNonActiveRevisions: 500}},
		{name: "invalid negative min stale", data: map[string]string{"min-non-active-revisions": "-1"}, wantErr: true},
		{name: "invalid negative maximum generation", data: map[string]string{"max-non-active-revisions": "-2"}, wantErr: true},
		{name: "invalid integer value > maxint64", data: map[string]string{"max-non-active-revisions": strconv.FormatUint(math.MaxUint64, 10)}, wantErr: true},
		{name: "invalid max less than min", data: map[string]string{"min-non-active-revisions": "20", "max-non-active-revisions": "10"}, wantErr: true},
		{name: "unparsable create duration", data: map[string]string{"retain-since-create-time": "invalid"}, wantErr: true},
		{name: "negative create duration", data: map[string]string{"retain-since-create-time": "-1h"}, wantErr: true},
		{name: "negative last-active duration", data: map[string]string{"retain-since-last-active-time": "-1h"}, wantErr: true},
		{name: "create delay disabled", data: map[string]string{"retain-since-create-time": "disabled"}, want: with(func(c *Config) { c.RetainSinceCreateTime = Disabled })},
		{name: "last-active disabled", data: map[string]string{"retain-since-last-active-time": "disabled"}, want: with(func(c *Config) { c.RetainSinceLastActiveTime = Disabled })},
		{name: "max-non-active unparsable", data: map[string]string{"max-non-active-revisions": "invalid"}, wantErr: true},
		{name: "max-non-active disabled", data: map[string]string{"max-non-active-revisions": "disabled"}, want: with(func(c *Config) { c.MaxNonActiveRevisions = Disabled })},
	} {
		got, err := Parse(tc.data)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// NextStale is when the next reserve revision turns stale, so the collector looks again then.
func TestNextStale(t *testing.T) {
	c := Default()
	created := now.Add(-47 * time.Hour)
	revs := []metav1.ObjectMeta{rev("a", reserve, now.Add(-16*time.Hour), created), rev("b", activeNow, time.Time{}, created)}
	if got, want := NextStale(c, now, "", revs), created.Add(48*time.Hour); !got.Equal(want) {
		t.Errorf("next stale %v, want %v (48h after creation)", got, want)
	}
	if got := NextStale(c, now, "a", revs); !got.IsZero() {
		t.Errorf("next stale %v with the reserve one latest ready, want none", got)
	}
}
