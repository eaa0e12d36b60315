package reconciler

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// ackingProxy is recordingProxy whose serving proxies ACK only once told to.
type ackingProxy struct {
	recordingProxy
	acked atomic.Bool
}

func (p *ackingProxy) RouteStatus(string, string) xds.RouteStatus {
	return xds.RouteStatus{Acked: p.acked.Load()}
}

// rolloutHarness reconciles one Route by hand at chosen times, as Knative's route table
// tests do with a fake clock, recording the delayed re-enqueues.
type rolloutHarness struct {
	t     *testing.T
	st    *store.Store
	proxy *ackingProxy
	c     *Controller
	now   time.Time
	after []time.Duration
}

func newRolloutHarness(t *testing.T, st *store.Store, now time.Time) *rolloutHarness {
	h := &rolloutHarness{t: t, st: st, proxy: &ackingProxy{}, now: now}
	h.proxy.acked.Store(true)
	h.c = New(Config{Store: st, Runtime: nopRuntime{}, Proxy: h.proxy, Logger: slog.New(slog.DiscardHandler)})
	h.c.now = func() time.Time { return h.now }
	h.c.enqueueAfter = func(k store.Key, d time.Duration) {
		if k == routeKey("r") {
			h.after = append(h.after, d)
		}
	}
	return h
}

// reconcile reconciles the route at now and returns the default host's weights, the
// route as stored and the delays it asked to be reconciled again after.
func (h *rolloutHarness) reconcile() (map[string]uint32, *servingv1.Route, []time.Duration) {
	h.t.Helper()
	h.after = nil
	if err := h.c.reconcile(context.Background(), routeKey("r")); err != nil {
		h.t.Fatal(err)
	}
	r, ok := h.proxy.route("default/r")
	if !ok {
		h.t.Fatal("route not programmed")
	}
	weights := map[string]uint32{}
	for _, c := range r.VirtualHosts[0].Clusters {
		weights[c.Name] = c.Weight
	}
	var route servingv1.Route
	if err := h.st.Get(context.Background(), routeKey("r"), &route); err != nil {
		h.t.Fatal(err)
	}
	return weights, &route, h.after
}

func split(old, new uint32) map[string]uint32 {
	out := map[string]uint32{}
	if old > 0 {
		out[xds.ClusterName("default", "config-00001")] = old
	}
	if new > 0 {
		out[xds.ClusterName("default", "config-00002")] = new
	}
	return out
}

func wantIngressReady(t *testing.T, route *servingv1.Route, status duck.ConditionStatus, reason string) {
	t.Helper()
	c := route.Status.GetCondition(servingv1.RouteConditionIngressReady)
	if c == nil || c.Status != status || c.Reason != reason {
		t.Fatalf("IngressReady %+v, want %s %q", c, status, reason)
	}
}

// TestRouteGradualRollout follows a route with rollout-duration 4s through a new latest
// revision, as Knative's route table tests "new latest ready revision; rollout enabled",
// "simple route rollout when ingress becomes ready" and "simple route rollout and rollout
// ends" do one reconcile each: 1% to the new revision at once, the step timing from when the
// proxies serve that (here a second later: 3 steps of 33% a second apart), a re-enqueue for
// each step, IngressReady=Unknown RolloutInProgress and status.traffic showing the split
// meanwhile, and all of it carried over a control plane restart through the annotation.
func TestRouteGradualRollout(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	route := tRoute("r", latestTarget("config"))
	route.Annotations = map[string]string{servingv1.RolloutDurationKey: "4s"}
	cfg := tConfiguration("config", "config-00001")
	for _, o := range []store.Object{tRevision("config-00001", "config", "", duck.True, ""), tRevision("config-00002", "config", "", duck.True, ""), cfg, route} {
		status := statusOf(o)
		if err := st.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		if status != nil {
			status(o)
			if err := st.UpdateStatus(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := newRolloutHarness(t, st, t0)

	// Steady state: everything to config-00001, the state kept as the baseline.
	w, got, after := h.reconcile()
	if !reflect.DeepEqual(w, split(100, 0)) || len(after) != 0 {
		t.Fatalf("steady state: weights %v, re-enqueued %v", w, after)
	}
	wantIngressReady(t, got, duck.True, "")
	if _, err := traffic.ParseRollout(got.Annotations[traffic.RolloutAnnotation]); err != nil || got.Annotations[traffic.RolloutAnnotation] == "" {
		t.Fatalf("no baseline rollout state: %q %v", got.Annotations[traffic.RolloutAnnotation], err)
	}

	// config-00002 becomes the latest ready revision: it gets 1%, the proxies not yet
	// serving it, so no step is timed.
	if err := st.Get(ctx, store.KeyOf(cfg), cfg); err != nil { // the labeler wrote to it
		t.Fatal(err)
	}
	cfg.Status.LatestReadyRevisionName, cfg.Status.LatestCreatedRevisionName = "config-00002", "config-00002"
	if err := st.UpdateStatus(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	h.proxy.acked.Store(false)
	w, got, after = h.reconcile()
	if !reflect.DeepEqual(w, split(99, 1)) || len(after) != 0 {
		t.Fatalf("rollout start: weights %v (want 99/1), re-enqueued %v (want none)", w, after)
	}
	wantIngressReady(t, got, duck.Unknown, ReasonRolloutInProgress)
	wantStatus := []servingv1.TrafficTarget{
		{RevisionName: "config-00001", LatestRevision: ptr(true), Percent: ptrInt64(99)},
		{RevisionName: "config-00002", LatestRevision: ptr(true), Percent: ptrInt64(1)},
	}
	if !reflect.DeepEqual(got.Status.Traffic, wantStatus) {
		t.Fatalf("status.traffic %s, want the 99/1 split", asJSONString(got.Status.Traffic))
	}
	if got.Status.GetCondition(duck.ConditionReady).Status != duck.Unknown {
		t.Fatalf("Ready %+v during a rollout, want Unknown", got.Status.GetCondition(duck.ConditionReady))
	}

	// A second later the proxies serve it: 99% left over the 3s left, in 3 steps.
	h.now = t0.Add(time.Second)
	h.proxy.acked.Store(true)
	w, _, after = h.reconcile()
	if !reflect.DeepEqual(w, split(99, 1)) || !reflect.DeepEqual(after, []time.Duration{time.Second}) {
		t.Fatalf("observed ready: weights %v (want 99/1), re-enqueued %v (want after 1s)", w, after)
	}

	// The control plane restarts: a new controller and proxy, the state from the route.
	h = newRolloutHarness(t, st, t0.Add(2*time.Second))
	w, got, after = h.reconcile()
	if !reflect.DeepEqual(w, split(66, 34)) || !reflect.DeepEqual(after, []time.Duration{time.Second}) {
		t.Fatalf("after a restart, first step: weights %v (want 66/34), re-enqueued %v (want after 1s)", w, after)
	}
	wantIngressReady(t, got, duck.Unknown, ReasonRolloutInProgress)

	// Reconciled early (another change): no step before its time.
	h.now = t0.Add(2500 * time.Millisecond)
	if w, _, after = h.reconcile(); !reflect.DeepEqual(w, split(66, 34)) || !reflect.DeepEqual(after, []time.Duration{500 * time.Millisecond}) {
		t.Fatalf("early: weights %v (want 66/34), re-enqueued %v (want after 0.5s)", w, after)
	}

	h.now = t0.Add(3 * time.Second)
	if w, _, _ = h.reconcile(); !reflect.DeepEqual(w, split(33, 67)) {
		t.Fatalf("second step: weights %v, want 33/67", w)
	}

	// The last step: all to config-00002, ready again, nothing more to do.
	h.now = t0.Add(4 * time.Second)
	w, got, after = h.reconcile()
	if !reflect.DeepEqual(w, split(0, 100)) || len(after) != 0 {
		t.Fatalf("rollout end: weights %v (want all to config-00002), re-enqueued %v", w, after)
	}
	wantIngressReady(t, got, duck.True, "")
	if want := []servingv1.TrafficTarget{{RevisionName: "config-00002", LatestRevision: ptr(true), Percent: ptrInt64(100)}}; !reflect.DeepEqual(got.Status.Traffic, want) {
		t.Fatalf("status.traffic %s after the rollout", asJSONString(got.Status.Traffic))
	}
	ro, err := traffic.ParseRollout(got.Annotations[traffic.RolloutAnnotation])
	if err != nil || !ro.Done() {
		t.Fatalf("rollout state after the end: %q %v", got.Annotations[traffic.RolloutAnnotation], err)
	}
}

// TestRouteWithoutRolloutDuration: with no rollout duration (Knative's "new latest ready
// revision, rollout disabled") the new revision gets everything at once and the route keeps
// no rollout state.
func TestRouteWithoutRolloutDuration(t *testing.T) {
	ctx := context.Background()
	runTable(t, []tableCase{{
		name: "new latest ready revision, rollout disabled",
		objects: []store.Object{
			tConfiguration("config", "config-00002"),
			tRevision("config-00001", "config", "", duck.True, ""),
			tRevision("config-00002", "config", "", duck.True, ""),
			readyRoute("r", "config-00001", latestTarget("config")),
		},
		key: routeKey("r"),
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			r, _ := p.route("default/r")
			if got := r.VirtualHosts[0].Clusters; len(got) != 1 || got[0].Name != xds.ClusterName("default", "config-00002") || got[0].Weight != 100 {
				t.Fatalf("clusters %+v, want all to config-00002", got)
			}
			var route servingv1.Route
			if err := s.Get(ctx, routeKey("r"), &route); err != nil {
				t.Fatal(err)
			}
			if v, ok := route.Annotations[traffic.RolloutAnnotation]; ok {
				t.Fatalf("rollout state %q kept without a rollout duration", v)
			}
		},
	}})
}

// TestRolloutDuration: the Route's annotation (either spelling) wins over config-network's
// rollout-duration, as in Knative's reconcileRollout; a value the webhook would refuse is
// ignored (Route.RolloutDuration).
func TestRolloutDuration(t *testing.T) {
	for _, tc := range []struct {
		anns map[string]string
		want time.Duration
	}{
		{nil, 7 * time.Second},
		{map[string]string{servingv1.RolloutDurationKey: "4s"}, 4 * time.Second},
		{map[string]string{servingv1.GroupName + "/rolloutDuration": "2m"}, 2 * time.Minute},
		{map[string]string{servingv1.RolloutDurationKey: "soon"}, 7 * time.Second},
	} {
		r := tRoute("r")
		r.Annotations = tc.anns
		if got := rolloutDuration(r, 7); got != tc.want {
			t.Errorf("rolloutDuration(%v, config-network 7) = %v, want %v", tc.anns, got, tc.want)
		}
	}
}

// TestServiceKeepsRouteRolloutState: a Service's Route carries the Service's
// rollout-duration annotation (Knative's MakeRoute copies every annotation but kubectl's),
// and the Service reconciler leaves the Route's rollout state alone.
func TestServiceKeepsRouteRolloutState(t *testing.T) {
	ctx := context.Background()
	svc := tService("s", latestTarget(""))
	svc.Annotations = map[string]string{servingv1.RolloutDurationKey: "4s"}
	runTable(t, []tableCase{{
		name:    "service route",
		objects: []store.Object{svc},
		key:     store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"},
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			key := store.Key{Kind: servingv1.KindRoute, Namespace: "default", Name: "s"}
			var route servingv1.Route
			if err := s.Get(ctx, key, &route); err != nil {
				t.Fatal(err)
			}
			if got := route.Annotations[servingv1.RolloutDurationKey]; got != "4s" {
				t.Fatalf("route rollout-duration %q, want the Service's 4s", got)
			}
			const state = `{"configurations":[{"configurationName":"s","percent":100,"revisions":[{"revisionName":"s-00001","percent":100}],"stepParams":{}}]}`
			route.Annotations[traffic.RolloutAnnotation] = state
			if err := s.Update(ctx, &route); err != nil {
				t.Fatal(err)
			}
			c := New(Config{Store: s, Runtime: nopRuntime{}, Proxy: nopProxy{}, Logger: slog.New(slog.DiscardHandler)})
			if err := c.reconcile(ctx, store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Get(ctx, key, &route); err != nil {
				t.Fatal(err)
			}
			if got := route.Annotations[traffic.RolloutAnnotation]; got != state {
				t.Fatalf("rollout state after the Service's reconcile %q, want it kept", got)
			}
		},
	}})
}

func asJSONString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// seed stores objects with their status.
func seed(t *testing.T, st *store.Store, objs ...store.Object) {
	t.Helper()
	for _, o := range objs {
		status := statusOf(o)
		if err := st.Create(context.Background(), o); err != nil {
			t.Fatalf("seed %s: %v", store.KeyOf(o), err)
		}
		if status != nil {
			status(o)
			if err := st.UpdateStatus(context.Background(), o); err != nil {
				t.Fatalf("seed status %s: %v", store.KeyOf(o), err)
			}
		}
	}
}

// TestRouteRolloutKnativeTable ports the rollout cases of Knative's route reconciler table
// (pkg/reconciler/route/table_test.go TestReconcile), where config-network's rollout-duration
// is 120s: each is one reconcile of a Route whose previous rollout state is stored (on the
// Ingress there, on the Route here).
func TestRouteRolloutKnativeTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	state := func(start time.Time, p traffic.RolloutParams, revs ...traffic.RevisionRollout) string {
		if p.StartTime == 0 && !start.IsZero() {
			p.StartTime = start.UnixNano()
		}
		return (&traffic.Rollout{Configurations: []*traffic.ConfigurationRollout{{ConfigurationName: "config", Percent: 100, Revisions: revs, StepParams: p}}}).String()
	}
	rev := func(name string, p int) traffic.RevisionRollout {
		return traffic.RevisionRollout{RevisionName: name, Percent: p}
	}
	latest := func(rev string, p int64) servingv1.TrafficTarget {
		return servingv1.TrafficTarget{RevisionName: rev, LatestRevision: ptr(true), Percent: ptrInt64(p)}
	}
	route := func(ingressReady duck.ConditionStatus, rollout string, status ...servingv1.TrafficTarget) *servingv1.Route {
		r := tRoute("r", latestTarget("config"))
		r.Annotations = map[string]string{traffic.RolloutAnnotation: rollout}
		r.Status.Traffic = status
		r.Status.SetCondition(duck.Condition{Type: servingv1.RouteConditionIngressReady, Status: ingressReady}, time.Time{})
		return r
	}
	for _, tc := range []struct {
		name        string
		latestReady string
		route       *servingv1.Route
		wantState   string
		wantAfter   []time.Duration
		wantStatus  []servingv1.TrafficTarget
		wantReady   duck.ConditionStatus
		wantReason  string
	}{{
		name:        "simple route rollout when ingress becomes ready",
		latestReady: "config-00001",
		route:       route(duck.Unknown, state(now.Add(-3*time.Second), traffic.RolloutParams{}, rev("config-00000", 99), rev("config-00001", 1))),
		// 3s for the first 1%: (120-3)/3 = 39 steps of 3s, of round(99/39) = 3%.
		wantState: state(now.Add(-3*time.Second), traffic.RolloutParams{StepDuration: int64(3 * time.Second), StepSize: 3, NextStepTime: now.Add(3 * time.Second).UnixNano()},
			rev("config-00000", 99), rev("config-00001", 1)),
		wantAfter:  []time.Duration{3 * time.Second},
		wantStatus: []servingv1.TrafficTarget{latest("config-00000", 99), latest("config-00001", 1)},
		wantReady:  duck.Unknown, wantReason: ReasonRolloutInProgress,
	}, {
		name:        "simple route rollout and rollout ends",
		latestReady: "config-00001",
		route: route(duck.Unknown, state(time.Time{}, traffic.RolloutParams{
			NextStepTime: now.Add(-time.Second).UnixNano(), StepSize: 4, StartTime: now.Add(-time.Hour).UnixNano(), StepDuration: int64(time.Second),
		}, rev("config-00000", 1), rev("config-00001", 99))),
		wantState:  state(time.Time{}, traffic.RolloutParams{}, rev("config-00001", 100)),
		wantStatus: []servingv1.TrafficTarget{latest("config-00001", 100)},
		wantReady:  duck.True,
	}, {
		name:        "new latest ready revision; rollout enabled",
		latestReady: "config-00002",
		route:       route(duck.True, state(time.Time{}, traffic.RolloutParams{}, rev("config-00001", 100)), latest("config-00001", 100)),
		wantState:   state(now, traffic.RolloutParams{}, rev("config-00001", 99), rev("config-00002", 1)),
		wantStatus:  []servingv1.TrafficTarget{latest("config-00001", 99), latest("config-00002", 1)},
		wantReady:   duck.Unknown, wantReason: ReasonRolloutInProgress,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			seed(t, st,
				&api.ConfigMap{ConfigMap: corev1.ConfigMap{
					TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: api.KindConfigMap},
					ObjectMeta: metav1.ObjectMeta{Name: "config-network", Namespace: DefaultSystemNamespace},
					Data:       map[string]string{"rollout-duration": "120"},
				}},
				tConfiguration("config", tc.latestReady),
				tRevision("config-00000", "config", "", duck.True, ""),
				tRevision("config-00001", "config", "", duck.True, ""),
				tRevision("config-00002", "config", "", duck.True, ""),
				tc.route)
			h := newRolloutHarness(t, st, now)
			if err := h.c.loadSettings(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, got, after := h.reconcile()
			if g := got.Annotations[traffic.RolloutAnnotation]; g != tc.wantState {
				t.Errorf("rollout state\n got %s\nwant %s", g, tc.wantState)
			}
			if !reflect.DeepEqual(after, tc.wantAfter) {
				t.Errorf("re-enqueued after %v, want %v", after, tc.wantAfter)
			}
			if !reflect.DeepEqual(got.Status.Traffic, tc.wantStatus) {
				t.Errorf("status.traffic %s, want %s", asJSONString(got.Status.Traffic), asJSONString(tc.wantStatus))
			}
			wantIngressReady(t, got, tc.wantReady, tc.wantReason)
			// The proxy's default split is the status's.
			r, _ := h.proxy.route("default/r")
			want := map[string]uint32{}
			for _, tt := range tc.wantStatus {
				want[xds.ClusterName("default", tt.RevisionName)] = uint32(*tt.Percent)
			}
			got2 := map[string]uint32{}
			for _, c := range r.VirtualHosts[0].Clusters {
				got2[c.Name] = c.Weight
			}
			if !reflect.DeepEqual(got2, want) {
				t.Errorf("proxy weights %v, want %v", got2, want)
			}
		})
	}
}

// TestRolloutOldRevisions: a revision being rolled away from is routed in its own mode (here
// proxy: scaled to zero, its requests held by the activator), and one deleted meanwhile
// leaves the rollout, its share going to the new revision.
func TestRolloutOldRevisions(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := tRoute("r", latestTarget("config"))
	r.Annotations = map[string]string{
		servingv1.RolloutDurationKey: "120s",
		traffic.RolloutAnnotation: (&traffic.Rollout{Configurations: []*traffic.ConfigurationRollout{{
			ConfigurationName: "config", Percent: 100,
			Revisions:  []traffic.RevisionRollout{{RevisionName: "config-00001", Percent: 60}, {RevisionName: "config-00002", Percent: 40}},
			StepParams: traffic.RolloutParams{StartTime: now.Add(-time.Minute).UnixNano(), NextStepTime: now.Add(time.Second).UnixNano(), StepDuration: int64(3 * time.Second), StepSize: 3},
		}}}).String(),
	}
	r.Status.SetCondition(duck.Condition{Type: servingv1.RouteConditionIngressReady, Status: duck.Unknown, Reason: ReasonRolloutInProgress}, time.Time{})
	old := tRevision("config-00001", "config", "", duck.True, servingv1.ModeProxy)
	seed(t, st, tConfiguration("config", "config-00002"), old, tRevision("config-00002", "config", "", duck.True, servingv1.ModeServe), r)
	h := newRolloutHarness(t, st, now)

	_, _, after := h.reconcile()
	if !reflect.DeepEqual(after, []time.Duration{time.Second}) {
		t.Errorf("re-enqueued after %v, want 1s (the next step)", after)
	}
	p, _ := h.proxy.route("default/r")
	want := []xds.WeightedCluster{
		{Name: xds.ClusterName("default", "config-00001"), Weight: 60, Activate: true},
		{Name: xds.ClusterName("default", "config-00002"), Weight: 40},
	}
	if got := p.VirtualHosts[0].Clusters; !reflect.DeepEqual(got, want) {
		t.Fatalf("clusters %+v, want %+v", got, want)
	}

	if err := st.Delete(ctx, store.KeyOf(old)); err != nil {
		t.Fatal(err)
	}
	w, got, after := h.reconcile()
	if !reflect.DeepEqual(w, split(0, 100)) || len(after) != 0 {
		t.Fatalf("old revision deleted: weights %v, re-enqueued %v; want all to config-00002, no step", w, after)
	}
	wantIngressReady(t, got, duck.True, "")
}
