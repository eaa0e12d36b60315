package traffic

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// mapLister serves fixed objects; err fails every revision read.
type mapLister struct {
	cfgs map[string]*servingv1.Configuration
	revs map[string]*servingv1.Revision
	err  error
}

func (m mapLister) Configuration(name string) (*servingv1.Configuration, error) {
	return m.cfgs[name], nil
}

func (m mapLister) Revision(name string) (*servingv1.Revision, error) {
	if m.err != nil {
		return nil, m.err
	}
	return m.revs[name], nil
}

func pct(p int64) *int64 { return &p }
func yes() *bool         { b := true; return &b }
func no() *bool          { b := false; return &b }

func rev(name, cfg, svc string, ready duck.ConditionStatus) *servingv1.Revision {
	r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{servingv1.ConfigurationLabel: cfg}}}
	if svc != "" {
		r.Labels[servingv1.ServiceLabel] = svc
	}
	if ready != "" {
		r.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: ready, Message: "boom"}, time.Time{})
	}
	return r
}

func config(name, latestReady string, ready duck.ConditionStatus) *servingv1.Configuration {
	c := &servingv1.Configuration{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
	c.Status.LatestReadyRevisionName = latestReady
	if ready != "" {
		c.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: ready}, time.Time{})
	}
	return c
}

// fixtures mirror Knative's traffic_test.go init(): good and nice configurations with an old
// and a new ready revision each, an empty one (no revision yet), a failed one, one whose
// latest ready revision failed since, and an unready revision.
var fixtures = mapLister{
	cfgs: map[string]*servingv1.Configuration{
		"good":         config("good", "good-00002", duck.True),
		"nice":         config("nice", "nice-00002", duck.True),
		"empty":        config("empty", "", ""),
		"failed":       config("failed", "", duck.False),
		"failed-ready": config("failed-ready", "failed-ready-00001", duck.False),
	},
	revs: map[string]*servingv1.Revision{
		"good-00001":         rev("good-00001", "good", "", duck.True),
		"good-00002":         rev("good-00002", "good", "", duck.True),
		"nice-00001":         rev("nice-00001", "nice", "", duck.True),
		"nice-00002":         rev("nice-00002", "nice", "", duck.True),
		"unready-00001":      rev("unready-00001", "good", "", duck.Unknown),
		"failed-ready-00001": rev("failed-ready-00001", "failed-ready", "", duck.False),
		"mine-00001":         rev("mine-00001", "mine", "mine", duck.True),
		"other-00001":        rev("other-00001", "other", "other", duck.True),
	},
}

func init() {
	fixtures.cfgs["mine"] = config("mine", "mine-00001", duck.True)
	fixtures.cfgs["other"] = config("other", "other-00001", duck.True)
}

func route(labels map[string]string, traffic ...servingv1.TrafficTarget) *servingv1.Route {
	return &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", Labels: labels}, Spec: servingv1.RouteSpec{Traffic: traffic}}
}

// TestBuild ports the cases of Knative's pkg/reconciler/route/traffic/traffic_test.go (test
// names in each case) and errors_test.go (the condition each error marks), plus the spec
// errors Knative's webhook refuses (api/serving/v1 route_validation_test.go's cases), which
// Skiff reports on status for a route stored without the webhook.
func TestBuild(t *testing.T) {
	cases := []struct {
		name    string
		route   *servingv1.Route
		want    []servingv1.TrafficTarget
		wantErr *TargetError
		missing []string
	}{{
		name:  "TestBuildTrafficConfigurationVanilla: latest revision of one configuration",
		route: route(nil, servingv1.TrafficTarget{ConfigurationName: "good", Percent: pct(100)}),
		want:  []servingv1.TrafficTarget{{ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: yes(), Percent: pct(100)}},
	}, {
		name: "TestBuildTrafficConfigurationTwoConfigs",
		route: route(nil,
			servingv1.TrafficTarget{ConfigurationName: "nice", Percent: pct(90)},
			servingv1.TrafficTarget{ConfigurationName: "good", Percent: pct(10)}),
		want: []servingv1.TrafficTarget{
			{ConfigurationName: "nice", RevisionName: "nice-00002", LatestRevision: yes(), Percent: pct(90)},
			{ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: yes(), Percent: pct(10)},
		},
	}, {
		name: "TestBuildTrafficConfigurationTwoEntriesSameConfig: merged in status",
		route: route(nil,
			servingv1.TrafficTarget{ConfigurationName: "good", Percent: pct(60)},
			servingv1.TrafficTarget{ConfigurationName: "good", Percent: pct(40)}),
		want: []servingv1.TrafficTarget{{ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: yes(), Percent: pct(100)}},
	}, {
		name: "TestBuildTrafficConfigurationTwoEntriesSameConfigDifferentTags: kept apart",
		route: route(nil,
			servingv1.TrafficTarget{Tag: "beta", ConfigurationName: "good", Percent: pct(90)},
			servingv1.TrafficTarget{Tag: "alpha", ConfigurationName: "good", Percent: pct(10)}),
		want: []servingv1.TrafficTarget{
			{Tag: "beta", ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: yes(), Percent: pct(90)},
			{Tag: "alpha", ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: yes(), Percent: pct(10)},
		},
	}, {
		name: "TestBuildTrafficConfigurationCanary: a pinned revision and the latest",
		route: route(nil,
			servingv1.TrafficTarget{RevisionName: "good-00001", Percent: pct(90)},
			servingv1.TrafficTarget{ConfigurationName: "good", Percent: pct(10)}),
		want: []servingv1.TrafficTarget{
			{ConfigurationName: "good", RevisionName: "good-00001", LatestRevision: no(), Percent: pct(90)},
			{ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: yes(), Percent: pct(10)},
		},
	}, {
		name: "TestBuildTrafficConfigurationConsolidated: same revision, different tags",
		route: route(nil,
			servingv1.TrafficTarget{Tag: "one", RevisionName: "good-00001", Percent: pct(49)},
			servingv1.TrafficTarget{Tag: "two", RevisionName: "good-00002", Percent: pct(50)},
			servingv1.TrafficTarget{Tag: "also-two", RevisionName: "good-00002", Percent: pct(1)}),
		want: []servingv1.TrafficTarget{
			{Tag: "one", ConfigurationName: "good", RevisionName: "good-00001", LatestRevision: no(), Percent: pct(49)},
			{Tag: "two", ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: no(), Percent: pct(50)},
			{Tag: "also-two", ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: no(), Percent: pct(1)},
		},
	}, {
		name: "TestBuildTrafficConfigurationTwoFixedRevisionsFromTwoConfigurations",
		route: route(nil,
			servingv1.TrafficTarget{RevisionName: "good-00001", Percent: pct(40)},
			servingv1.TrafficTarget{RevisionName: "nice-00002", Percent: pct(60)}),
		want: []servingv1.TrafficTarget{
			{ConfigurationName: "good", RevisionName: "good-00001", LatestRevision: no(), Percent: pct(40)},
			{ConfigurationName: "nice", RevisionName: "nice-00002", LatestRevision: no(), Percent: pct(60)},
		},
	}, {
		name: "TestBuildTrafficConfigurationTag0Percent: a tag with no share of the default",
		route: route(nil,
			servingv1.TrafficTarget{ConfigurationName: "nice", Percent: pct(100)},
			servingv1.TrafficTarget{Tag: "robert", ConfigurationName: "good", Percent: pct(0)}),
		want: []servingv1.TrafficTarget{
			{ConfigurationName: "nice", RevisionName: "nice-00002", LatestRevision: yes(), Percent: pct(100)},
			{Tag: "robert", ConfigurationName: "good", RevisionName: "good-00002", LatestRevision: yes(), Percent: pct(0)},
		},
	}, {
		name: "TestBuildTrafficConfigurationMissingConfig + TestMarkBadTrafficTarget_Missing",
		route: route(nil,
			servingv1.TrafficTarget{RevisionName: "good-00001", Percent: pct(100)},
			servingv1.TrafficTarget{Tag: "beta", RevisionName: "good-00002"},
			servingv1.TrafficTarget{Tag: "alpha", ConfigurationName: "missing"}),
		wantErr: &TargetError{duck.False, "ConfigurationMissing", `Configuration "missing" referenced in traffic not found.`},
		missing: []string{"Configuration/missing"},
	}, {
		name:    "TestBuildTrafficConfigurationNotRoutableRevision + TestMarkBadTrafficTarget_RevisionNotYetReady",
		route:   route(nil, servingv1.TrafficTarget{RevisionName: "unready-00001", Percent: pct(100)}),
		wantErr: &TargetError{duck.Unknown, "RevisionMissing", `Revision "unready-00001" is not yet ready.`},
	}, {
		name:    "TestBuildTraffic_LatestReadyRevisionFailed + TestMarkBadTrafficTarget_RevisionFailedToBeReady",
		route:   route(nil, servingv1.TrafficTarget{ConfigurationName: "failed-ready", Percent: pct(100)}),
		wantErr: &TargetError{duck.False, "RevisionMissing", `Revision "failed-ready-00001" failed to become ready.`},
	}, {
		name:    "TestBuildTrafficConfigurationEmptyConfiguration + TestMarkBadTrafficTarget_NotYetReady",
		route:   route(nil, servingv1.TrafficTarget{ConfigurationName: "empty", Percent: pct(100)}),
		wantErr: &TargetError{duck.Unknown, "RevisionMissing", `Configuration "empty" is waiting for a Revision to become ready.`},
	}, {
		name: "TestBuildTrafficConfigurationEmptyAndFailedConfigurations: the failure wins",
		route: route(nil,
			servingv1.TrafficTarget{ConfigurationName: "empty", Percent: pct(50)},
			servingv1.TrafficTarget{ConfigurationName: "failed", Percent: pct(50)}),
		wantErr: &TargetError{duck.False, "RevisionMissing", `Configuration "failed" does not have any ready Revision.`},
	}, {
		name: "TestBuildTrafficConfigurationFailedAndEmptyConfigurations: a later wait does not hide it",
		route: route(nil,
			servingv1.TrafficTarget{ConfigurationName: "failed", Percent: pct(50)},
			servingv1.TrafficTarget{ConfigurationName: "empty", Percent: pct(50)}),
		wantErr: &TargetError{duck.False, "RevisionMissing", `Configuration "failed" does not have any ready Revision.`},
	}, {
		name: "TestBuildTrafficConfigurationMissingRevision",
		route: route(nil,
			servingv1.TrafficTarget{RevisionName: "missing-00001", Percent: pct(50)},
			servingv1.TrafficTarget{RevisionName: "good-00002", Percent: pct(50)}),
		wantErr: &TargetError{duck.False, "RevisionMissing", `Revision "missing-00001" referenced in traffic not found.`},
		missing: []string{"Revision/missing-00001"},
	}, {
		name:    "TestBuildTrafficConfiguration_RevisionOwnership: another Service's revision",
		route:   route(map[string]string{servingv1.ServiceLabel: "mine"}, servingv1.TrafficTarget{RevisionName: "other-00001", Percent: pct(100)}),
		wantErr: &TargetError{duck.False, "RevisionNotOwned", `Revision "other-00001" belongs to Service "other", not Service "mine".`},
	}, {
		name:    "TestBuildTrafficConfiguration_RevisionOwnership: a revision of no Service (TestMarkBadTrafficTarget_RevisionNotOwnedByAnyService)",
		route:   route(map[string]string{servingv1.ServiceLabel: "mine"}, servingv1.TrafficTarget{RevisionName: "good-00001", Percent: pct(100)}),
		wantErr: &TargetError{duck.False, "RevisionNotOwned", `Revision "good-00001" does not belong to Service "mine".`},
	}, {
		name:  "TestBuildTrafficConfiguration_RevisionOwnership: its own revision",
		route: route(map[string]string{servingv1.ServiceLabel: "mine"}, servingv1.TrafficTarget{RevisionName: "mine-00001", Percent: pct(100)}),
		want:  []servingv1.TrafficTarget{{ConfigurationName: "mine", RevisionName: "mine-00001", LatestRevision: no(), Percent: pct(100)}},
	}, {
		name:  "TestBuildTrafficConfiguration_RevisionOwnership: a Route of its own reaches any",
		route: route(nil, servingv1.TrafficTarget{RevisionName: "other-00001", Percent: pct(100)}),
		want:  []servingv1.TrafficTarget{{ConfigurationName: "other", RevisionName: "other-00001", LatestRevision: no(), Percent: pct(100)}},
	}, {
		name: "spec: percents summing to 90",
		route: route(nil,
			servingv1.TrafficTarget{RevisionName: "good-00001", Percent: pct(50)},
			servingv1.TrafficTarget{ConfigurationName: "good", Percent: pct(40)}),
		wantErr: &TargetError{duck.False, ReasonInvalidSpec, "Traffic targets sum to 90, want 100: spec.traffic"},
	}, {
		name: "spec: percents summing to 150",
		route: route(nil,
			servingv1.TrafficTarget{RevisionName: "good-00001", Percent: pct(100)},
			servingv1.TrafficTarget{ConfigurationName: "good", Percent: pct(50)}),
		wantErr: &TargetError{duck.False, ReasonInvalidSpec, "Traffic targets sum to 150, want 100: spec.traffic"},
	}, {
		name: "spec: a tag used twice",
		route: route(nil,
			servingv1.TrafficTarget{Tag: "a", RevisionName: "good-00001", Percent: pct(50)},
			servingv1.TrafficTarget{Tag: "a", RevisionName: "good-00002", Percent: pct(50)}),
		wantErr: &TargetError{duck.False, ReasonInvalidSpec, `Multiple definitions for "a": spec.traffic[0].tag, spec.traffic[1].tag`},
	}, {
		name: "spec: a percent above 100, and the sum",
		route: route(nil,
			servingv1.TrafficTarget{RevisionName: "good-00001", Percent: pct(101)}),
		wantErr: &TargetError{duck.False, ReasonInvalidSpec, "Traffic targets sum to 101, want 100: spec.traffic\nexpected 0 <= 101 <= 100: spec.traffic[0].percent"},
	}, {
		name:    "spec: neither revision nor configuration",
		route:   route(nil, servingv1.TrafficTarget{Percent: pct(100)}),
		wantErr: &TargetError{duck.False, ReasonInvalidSpec, "expected exactly one, got neither: spec.traffic[0].configurationName, spec.traffic[0].revisionName"},
	}, {
		name:    "spec: an error wins over a missing target",
		route:   route(nil, servingv1.TrafficTarget{RevisionName: "missing-00001", Percent: pct(90)}),
		wantErr: &TargetError{duck.False, ReasonInvalidSpec, "Traffic targets sum to 90, want 100: spec.traffic"},
		missing: []string{"Revision/missing-00001"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Build(context.Background(), tc.route, fixtures)
			if tc.wantErr != nil {
				var te *TargetError
				if !errors.As(err, &te) || *te != *tc.wantErr {
					t.Fatalf("error %#v, want %#v", err, tc.wantErr)
				}
				if got.Targets != nil {
					t.Errorf("targets %+v with an error, want none", got.Targets)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Targets, tc.want) {
				t.Errorf("targets\n got %s\nwant %s", show(got.Targets), show(tc.want))
			}
			if !reflect.DeepEqual(got.Missing, tc.missing) {
				t.Errorf("missing %v, want %v", got.Missing, tc.missing)
			}
		})
	}
}

// TestBuildTrafficConfigurationFailedGetRevision: a lister failure is returned as it is, not
// as a target error (Knative's test of the same name).
func TestBuildTrafficConfigurationFailedGetRevision(t *testing.T) {
	api := errors.New("failed to connect API")
	l := fixtures
	l.err = api
	_, err := Build(context.Background(), route(nil, servingv1.TrafficTarget{RevisionName: "good-00002", Percent: pct(100)}), l)
	var te *TargetError
	if !errors.Is(err, api) || errors.As(err, &te) {
		t.Fatalf("error %v, want the lister's", err)
	}
}

// TestBuildRecordsReferences: what the traffic names is known even when it cannot be
// assigned, so a reconciler re-checks the route when one of them changes.
func TestBuildRecordsReferences(t *testing.T) {
	got, err := Build(context.Background(), route(nil,
		servingv1.TrafficTarget{ConfigurationName: "empty", Percent: pct(50)},
		servingv1.TrafficTarget{RevisionName: "nice-00001", Percent: pct(50)}), fixtures)
	if err == nil {
		t.Fatal("no error for an empty configuration")
	}
	if _, ok := got.Configurations["empty"]; !ok {
		t.Error("configuration empty not recorded")
	}
	if _, ok := got.Configurations["nice"]; !ok {
		t.Error("configuration nice (the pinned revision's) not recorded")
	}
	if _, ok := got.Revisions["nice-00001"]; !ok {
		t.Error("revision nice-00001 not recorded")
	}
}

func TestValidateService(t *testing.T) {
	// A Service's traffic implies its configuration: naming one is refused.
	err := Validate(context.Background(), []servingv1.TrafficTarget{{ConfigurationName: "x", Percent: pct(100)}}, true)
	if err == nil || !strings.Contains(err.Message, "spec.traffic[0].configurationName") {
		t.Fatalf("error %v, want one naming spec.traffic[0].configurationName", err)
	}
	// Empty traffic defaults to 100% latest.
	if err := Validate(context.Background(), nil, true); err != nil {
		t.Fatalf("empty traffic of a Service: %v", err)
	}
}

func TestSplitAndTags(t *testing.T) {
	traffic := []servingv1.TrafficTarget{
		{RevisionName: "a", Percent: pct(40)},
		{Tag: "x", RevisionName: "b", Percent: pct(0)},
		{Tag: "y", RevisionName: "a", Percent: pct(10)},
		{RevisionName: "c", Percent: pct(50)},
		{Tag: "x", RevisionName: "c"},
	}
	if got, want := Split(traffic), []Weight{{"a", 50}, {"c", 50}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Split = %v, want %v", got, want)
	}
	if got, want := Tags(traffic), []Tag{{"x", "b"}, {"y", "a"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tags = %v, want %v", got, want)
	}
	revs := map[string]*servingv1.Revision{"a": {}}
	revs["a"].Status.Autoscaling = &servingv1.AutoscalingStatus{Mode: servingv1.ModeProxy}
	sec := int64(7)
	revs["c"] = &servingv1.Revision{Spec: servingv1.RevisionSpec{TimeoutSeconds: &sec}}
	clusters, timeouts := Clusters("ns", Split(traffic), func(n string) *servingv1.Revision { return revs[n] })
	want := []xds.WeightedCluster{{Name: xds.ClusterName("ns", "a"), Weight: 50, Activate: true}, {Name: xds.ClusterName("ns", "c"), Weight: 50}}
	if !reflect.DeepEqual(clusters, want) {
		t.Errorf("Clusters = %+v, want %+v", clusters, want)
	}
	if want := time.Duration(servingv1.DefaultTimeoutSeconds) * time.Second; timeouts.Request != want {
		t.Errorf("timeout %v, want the longest, %v", timeouts.Request, want)
	}
}

// A route split over revisions enforces the most lenient of their timeouts: the longest,
// and none when one of them has none (zero).
func TestClustersTimeouts(t *testing.T) {
	sec := func(n int64) *int64 { return &n }
	rev := func(timeout, start, idle *int64) *servingv1.Revision {
		return &servingv1.Revision{Spec: servingv1.RevisionSpec{TimeoutSeconds: timeout, ResponseStartTimeoutSeconds: start, IdleTimeoutSeconds: idle}}
	}
	for _, tc := range []struct {
		name string
		revs []*servingv1.Revision
		want Timeouts
	}{
		{"one revision, all set", []*servingv1.Revision{rev(sec(60), sec(10), sec(5))}, Timeouts{60 * time.Second, 10 * time.Second, 5 * time.Second}},
		{"one revision, defaults", []*servingv1.Revision{rev(nil, nil, nil)}, Timeouts{Request: 300 * time.Second}},
		{"split, the longest", []*servingv1.Revision{rev(sec(60), sec(10), sec(5)), rev(sec(30), sec(20), sec(2))}, Timeouts{60 * time.Second, 20 * time.Second, 5 * time.Second}},
		{"split, one without", []*servingv1.Revision{rev(sec(60), sec(10), nil), rev(sec(30), nil, sec(2))}, Timeouts{Request: 60 * time.Second}},
		{"unknown revision", []*servingv1.Revision{nil, rev(sec(30), sec(20), sec(2))}, Timeouts{Request: 300 * time.Second}},
	} {
		var weights []Weight
		byName := map[string]*servingv1.Revision{}
		for i, r := range tc.revs {
			name := fmt.Sprintf("r%d", i)
			weights = append(weights, Weight{name, int64(100 / len(tc.revs))})
			byName[name] = r
		}
		_, got := Clusters("ns", weights, func(n string) *servingv1.Revision { return byName[n] })
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestMode(t *testing.T) {
	for _, tc := range []struct {
		activator   bool
		cc          int64
		burst       bool
		ready       int
		want        string
		description string
	}{
		{false, 1, true, 0, servingv1.ModeServe, "no activator: always straight to pods"},
		{true, 0, false, 2, servingv1.ModeServe, "warm, enough burst capacity"},
		{true, 0, false, 0, servingv1.ModeProxy, "no ready pod: held until one is"},
		{true, 0, true, 3, servingv1.ModeProxy, "too little burst capacity (Knative's TBC rule)"},
		{true, 5, false, 3, servingv1.ModeProxy, "containerConcurrency kept by the activator"},
	} {
		if got := Mode(tc.activator, tc.cc, tc.burst, tc.ready); got != tc.want {
			t.Errorf("%s: Mode = %s, want %s", tc.description, got, tc.want)
		}
	}
}

func show(ts []servingv1.TrafficTarget) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "{tag=%s rev=%s cfg=%s latest=%v pct=%v} ", t.Tag, t.RevisionName, t.ConfigurationName, deref(t.LatestRevision), deref(t.Percent))
	}
	return b.String()
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
