package reconciler

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
)

// The labeler's cases, ported from Knative's pkg/reconciler/labeler/labeler_test.go
// (TestV2Reconcile): which routes annotations, routing states and modified times one
// reconcile of a Route leaves on its Configurations and Revisions. The table's clock is
// 2026-01-01T00:00:00Z.

const tableNow = "2026-01-01T00:00:00Z"

func latestTarget(cfg string) servingv1.TrafficTarget {
	latest := true
	return servingv1.TrafficTarget{ConfigurationName: cfg, LatestRevision: &latest, Percent: ptrInt64(100)}
}

func ptrInt64(v int64) *int64 { return &v }

// routed returns o with the routes annotation (and, on a Revision, routing state active
// since modified).
func routed[T store.Object](o T, routes, modified string) T {
	anns := o.GetAnnotations()
	if anns == nil {
		anns = map[string]string{}
	}
	anns[servingv1.RoutesAnnotation] = routes
	if _, ok := any(o).(*servingv1.Revision); ok {
		labels := o.GetLabels()
		labels[servingv1.RoutingStateLabel] = servingv1.RoutingStateActive
		o.SetLabels(labels)
		anns[servingv1.RoutingStateModifiedAnnotation] = modified
	}
	o.SetAnnotations(anns)
	return o
}

// readyRoute is a Route whose stored status is Ready with traffic to rev.
func readyRoute(name string, rev string, spec ...servingv1.TrafficTarget) *servingv1.Route {
	r := tRoute(name, spec...)
	r.Status.Traffic = []servingv1.TrafficTarget{{RevisionName: rev, Percent: ptrInt64(100)}}
	r.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: duck.True}, time.Time{})
	r.Status.ObservedGeneration = 1 // the store's generation of a new object: Ready is current
	return r
}

// ownBy makes the stored Revision rev controlled by the Configuration cfg.
func ownBy(rev, cfg string) func(t *testing.T, s *store.Store) {
	return func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var c servingv1.Configuration
		var r servingv1.Revision
		if err := s.Get(ctx, store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: cfg}, &c); err != nil {
			t.Fatal(err)
		}
		if err := s.Get(ctx, store.Key{Kind: servingv1.KindRevision, Namespace: "default", Name: rev}, &r); err != nil {
			t.Fatal(err)
		}
		r.OwnerReferences = []metav1.OwnerReference{ownerRef(&c.ObjectMeta, servingv1.KindConfiguration)}
		if err := s.Update(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
}

// wantRouting checks one object's routes annotation, and on a Revision its routing state
// and modified time ("" for none).
func wantRouting(t *testing.T, s *store.Store, kind, name, routes, state, modified string) {
	t.Helper()
	var o store.Object = &servingv1.Configuration{}
	if kind == servingv1.KindRevision {
		o = &servingv1.Revision{}
	}
	if err := s.Get(context.Background(), store.Key{Kind: kind, Namespace: "default", Name: name}, o); err != nil {
		t.Fatal(err)
	}
	if got := o.GetAnnotations()[servingv1.RoutesAnnotation]; got != routes {
		t.Errorf("%s %s: routes annotation %q, want %q", kind, name, got, routes)
	}
	if kind != servingv1.KindRevision {
		return
	}
	if got := o.GetLabels()[servingv1.RoutingStateLabel]; got != state {
		t.Errorf("%s %s: routing state %q, want %q", kind, name, got, state)
	}
	if got := o.GetAnnotations()[servingv1.RoutingStateModifiedAnnotation]; got != modified {
		t.Errorf("%s %s: routing state modified %q, want %q", kind, name, got, modified)
	}
}

func TestLabelerTable(t *testing.T) {
	const earlier = "2025-06-01T00:00:00Z"
	runTable(t, []tableCase{{
		name: "label runLatest configuration",
		objects: []store.Object{
			tConfiguration("the-config", "the-config-00001"),
			tRevision("the-config-00001", "the-config", "", duck.True, ""),
			tRoute("first-reconcile", latestTarget("the-config")),
		},
		key: routeKey("first-reconcile"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindRevision, "the-config-00001", "first-reconcile", servingv1.RoutingStateActive, tableNow)
			wantRouting(t, s, servingv1.KindConfiguration, "the-config", "first-reconcile", "", "")
		},
	}, {
		name: "label pinned revision",
		objects: []store.Object{
			tConfiguration("the-config", "the-config-00001"),
			tRevision("the-config-00001", "the-config", "", duck.True, ""),
			tRevision("the-revision", "the-config", "", duck.True, ""),
			tRoute("pinned-revision", servingv1.TrafficTarget{RevisionName: "the-revision", Percent: ptrInt64(100)}),
		},
		before: ownBy("the-revision", "the-config"),
		key:    routeKey("pinned-revision"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindRevision, "the-revision", "pinned-revision", servingv1.RoutingStateActive, tableNow)
			wantRouting(t, s, servingv1.KindConfiguration, "the-config", "pinned-revision", "", "")
			wantRouting(t, s, servingv1.KindRevision, "the-config-00001", "", "", "")
		},
	}, {
		name: "steady state: nothing written, the modified time kept",
		objects: []store.Object{
			routed(tConfiguration("the-config", "the-config-00001"), "steady-state", ""),
			routed(tRevision("the-config-00001", "the-config", "", duck.True, ""), "steady-state", earlier),
			readyRoute("steady-state", "the-config-00001", latestTarget("the-config")),
		},
		key: routeKey("steady-state"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindRevision, "the-config-00001", "steady-state", servingv1.RoutingStateActive, earlier)
			wantRouting(t, s, servingv1.KindConfiguration, "the-config", "steady-state", "", "")
		},
	}, {
		name: "transitioning route: the old target keeps its marks until the route is ready",
		objects: []store.Object{
			routed(tConfiguration("old", "old-00001"), "transitioning-route", ""),
			routed(tRevision("old-00001", "old", "", duck.True, ""), "transitioning-route", earlier),
			tConfiguration("new", "new-00001"),
			tRevision("new-00001", "new", "", duck.True, ""),
			func() *servingv1.Route {
				r := readyRoute("transitioning-route", "old-00001", latestTarget("new"))
				r.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: duck.Unknown}, time.Time{})
				return r
			}(),
		},
		key: routeKey("transitioning-route"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindRevision, "old-00001", "transitioning-route", servingv1.RoutingStateActive, earlier)
			wantRouting(t, s, servingv1.KindConfiguration, "old", "transitioning-route", "", "")
			wantRouting(t, s, servingv1.KindRevision, "new-00001", "transitioning-route", servingv1.RoutingStateActive, tableNow)
			wantRouting(t, s, servingv1.KindConfiguration, "new", "transitioning-route", "", "")
		},
	}, {
		name: "change configurations: a ready route clears what it no longer names",
		objects: []store.Object{
			routed(tConfiguration("old-config", "old-config-00001"), "config-change", ""),
			routed(tRevision("old-config-00001", "old-config", "", duck.True, ""), "config-change", earlier),
			tConfiguration("new-config", "new-config-00001"),
			tRevision("new-config-00001", "new-config", "", duck.True, ""),
			readyRoute("config-change", "new-config-00001", latestTarget("new-config")),
		},
		key: routeKey("config-change"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindRevision, "old-config-00001", "", servingv1.RoutingStateReserve, tableNow)
			wantRouting(t, s, servingv1.KindConfiguration, "old-config", "", "", "")
			wantRouting(t, s, servingv1.KindRevision, "new-config-00001", "config-change", servingv1.RoutingStateActive, tableNow)
			wantRouting(t, s, servingv1.KindConfiguration, "new-config", "config-change", "", "")
		},
	}, {
		name: "a Ready status of an older generation clears nothing (Knative's IsReady)",
		objects: []store.Object{
			routed(tConfiguration("old-config", "old-config-00001"), "stale-ready", ""),
			routed(tRevision("old-config-00001", "old-config", "", duck.True, ""), "stale-ready", earlier),
			tConfiguration("new-config", "new-config-00001"),
			tRevision("new-config-00001", "new-config", "", duck.True, ""),
			func() *servingv1.Route {
				r := readyRoute("stale-ready", "new-config-00001", latestTarget("new-config"))
				r.Status.ObservedGeneration = 0
				return r
			}(),
		},
		key: routeKey("stale-ready"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindRevision, "old-config-00001", "stale-ready", servingv1.RoutingStateActive, earlier)
			wantRouting(t, s, servingv1.KindRevision, "new-config-00001", "stale-ready", servingv1.RoutingStateActive, tableNow)
		},
	}, {
		name: "update configuration: the latest created revision is marked before it is ready",
		objects: []store.Object{
			func() *servingv1.Configuration {
				c := routed(tConfiguration("the-config", "the-config-00001"), "config-update", "")
				c.Status.LatestCreatedRevisionName = "the-config-ecoge"
				return c
			}(),
			routed(tRevision("the-config-00001", "the-config", "", duck.True, ""), "config-update", earlier),
			tRevision("the-config-ecoge", "the-config", "", duck.Unknown, ""),
			readyRoute("config-update", "the-config-00001", latestTarget("the-config")),
		},
		key: routeKey("config-update"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindRevision, "the-config-ecoge", "config-update", servingv1.RoutingStateActive, tableNow)
			wantRouting(t, s, servingv1.KindRevision, "the-config-00001", "config-update", servingv1.RoutingStateActive, earlier)
		},
	}, {
		name: "delete route, another route listed",
		objects: []store.Object{
			routed(tConfiguration("the-config", "the-config-00001"), "another-route,delete-route", ""),
			routed(tRevision("the-config-00001", "the-config", "", duck.True, ""), "delete-route", earlier),
		},
		key: routeKey("delete-route"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindConfiguration, "the-config", "another-route", "", "")
			wantRouting(t, s, servingv1.KindRevision, "the-config-00001", "", servingv1.RoutingStateReserve, tableNow)
		},
	}, {
		name: "a Route deleted while no controller ran is taken off when its Configuration reconciles",
		objects: []store.Object{
			routed(tConfiguration("the-config", "the-config-00001"), "gone-route,the-config", ""),
			routed(tRevision("the-config-00001", "the-config", "", duck.True, ""), "gone-route", earlier),
		},
		before: func(t *testing.T, s *store.Store) {
			// The Configuration's own Service's Route is left to the Service.
			var c servingv1.Configuration
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "the-config"}, &c); err != nil {
				t.Fatal(err)
			}
			c.Labels = map[string]string{servingv1.ServiceLabel: "the-config"}
			if err := s.Update(context.Background(), &c); err != nil {
				t.Fatal(err)
			}
		},
		key: store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "the-config"},
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindConfiguration, "the-config", "the-config", "", "")
			wantRouting(t, s, servingv1.KindRevision, "the-config-00001", "", servingv1.RoutingStateReserve, tableNow)
		},
	}, {
		name: "delete route",
		objects: []store.Object{
			routed(tConfiguration("the-config", "the-config-00001"), "delete-route", ""),
		},
		key: routeKey("delete-route"),
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			wantRouting(t, s, servingv1.KindConfiguration, "the-config", "", "", "")
		},
	}})
}

// Knative's MakeRevision (configuration/resources/revision_test.go): a new Revision is
// pending until a Route looks at it, or active at once, with the Configuration's routes
// annotation, when the Configuration is already routed; it carries the owners' UIDs and its
// creator is the Configuration's last modifier.
func TestRevisionRoutingStateAtCreation(t *testing.T) {
	cfg := func(name string, routes string) *servingv1.Configuration {
		c := tConfiguration(name, "")
		c.Status = servingv1.ConfigurationStatus{}
		c.Labels = map[string]string{servingv1.ServiceLabel: name, servingv1.ServiceUIDLabel: "svc-uid"}
		c.Annotations = map[string]string{servingv1.UpdaterAnnotation: "someone@example.com"}
		if routes != "" {
			c.Annotations[servingv1.RoutesAnnotation] = routes
		}
		return c
	}
	check := func(name, routes, state string) func(t *testing.T, s *store.Store, _ *recordingProxy) {
		return func(t *testing.T, s *store.Store, _ *recordingProxy) {
			var c servingv1.Configuration
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: name}, &c); err != nil {
				t.Fatal(err)
			}
			var r servingv1.Revision
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindRevision, Namespace: "default", Name: name + "-00001"}, &r); err != nil {
				t.Fatal(err)
			}
			wantRouting(t, s, servingv1.KindRevision, name+"-00001", routes, state, tableNow)
			want := map[string]string{servingv1.ConfigurationUIDLabel: string(c.UID), servingv1.ServiceUIDLabel: "svc-uid", servingv1.ServiceLabel: name}
			for k, v := range want {
				if r.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, r.Labels[k], v)
				}
			}
			if got := r.Annotations[servingv1.CreatorAnnotation]; got != "someone@example.com" {
				t.Errorf("creator %q, want the Configuration's last modifier", got)
			}
		}
	}
	runTable(t, []tableCase{{
		name:    "not routed yet: pending",
		objects: []store.Object{cfg("plain", "")},
		key:     store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "plain"},
		check:   check("plain", "", servingv1.RoutingStatePending),
	}, {
		name:    "routed: active",
		objects: []store.Object{cfg("routed", "routed")},
		key:     store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "routed"},
		check:   check("routed", "routed", servingv1.RoutingStateActive),
	}})
}

// Knative's MakeConfigurationFromExisting (service/resources/configuration_test.go): the
// Configuration carries the Service's annotations but kubectl's last-applied one and the
// rollout duration, the routes annotation naming the Service's Route (kept with any other
// Route listed), and the Service's UID.
func TestServiceConfigurationMetadata(t *testing.T) {
	svc := tService("hello")
	svc.UID = types.UID("will-be-replaced")
	svc.Annotations = map[string]string{
		"team":                                "a",
		lastAppliedConfigAnnotation:           "{}",
		servingv1.RolloutDurationKey:          "60s",
		servingv1.GroupName + "/lastModifier": "someone@example.com",
	}
	runTable(t, []tableCase{{
		name:    "new Configuration",
		objects: []store.Object{svc},
		key:     store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "hello"},
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			var sv servingv1.Service
			var c servingv1.Configuration
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "hello"}, &sv); err != nil {
				t.Fatal(err)
			}
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "hello"}, &c); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"team": "a", servingv1.UpdaterAnnotation: "someone@example.com", servingv1.RoutesAnnotation: "hello"}
			if len(c.Annotations) != len(want) {
				t.Errorf("annotations %v, want %v", c.Annotations, want)
			}
			for k, v := range want {
				if c.Annotations[k] != v {
					t.Errorf("annotation %s = %q, want %q", k, c.Annotations[k], v)
				}
			}
			if c.Labels[servingv1.ServiceUIDLabel] != string(sv.UID) || sv.UID == "" {
				t.Errorf("serviceUID label %q, want the Service's %q", c.Labels[servingv1.ServiceUIDLabel], sv.UID)
			}
		},
	}})
}

// A Service without annotations whose Configuration another Route also lists keeps both
// Routes in the Configuration's routes annotation, reconcile after reconcile.
func TestServiceKeepsOtherRoutesOnItsConfiguration(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Create(ctx, tService("hello")); err != nil {
		t.Fatal(err)
	}
	c := New(Config{Store: st, Runtime: nopRuntime{}, Proxy: &recordingProxy{}, Logger: slog.New(slog.DiscardHandler)})
	svcKey := store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "hello"}
	if err := c.reconcile(ctx, svcKey); err != nil {
		t.Fatal(err)
	}
	var cfg servingv1.Configuration
	cfgKey := store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "hello"}
	if err := st.Get(ctx, cfgKey, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Annotations[servingv1.RoutesAnnotation] = "another,hello"
	if err := st.Update(ctx, &cfg); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.reconcile(ctx, svcKey); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Get(ctx, cfgKey, &cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Annotations[servingv1.RoutesAnnotation]; got != "another,hello" {
		t.Errorf("routes annotation %q, want another,hello", got)
	}
}

// Knative's revision garbage collector, run on a Configuration's reconcile with config-gc
// from the system namespace: beyond max-non-active-revisions, the reserve revision that
// left service longest ago is deleted; the latest ready and active ones stay.
func TestConfigurationCollectsRevisions(t *testing.T) {
	gc := &api.ConfigMap{ConfigMap: corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: api.KindConfigMap},
		ObjectMeta: metav1.ObjectMeta{Name: "config-gc", Namespace: DefaultSystemNamespace},
		Data: map[string]string{"retain-since-create-time": "disabled", "retain-since-last-active-time": "disabled",
			"min-non-active-revisions": "0", "max-non-active-revisions": "1"},
	}}
	reserveSince := func(r *servingv1.Revision, since string) *servingv1.Revision {
		r.Labels[servingv1.RoutingStateLabel] = servingv1.RoutingStateReserve
		r.Annotations = map[string]string{servingv1.RoutingStateModifiedAnnotation: since}
		return r
	}
	runTable(t, []tableCase{{
		name: "over max-non-active-revisions",
		objects: []store.Object{
			gc,
			tConfiguration("cfg", "cfg-00001"),
			routed(tRevision("cfg-00001", "cfg", "", duck.True, ""), "cfg", tableNow),
			reserveSince(tRevision("old-a", "cfg", "", duck.True, ""), "2025-01-01T00:00:00Z"),
			reserveSince(tRevision("old-b", "cfg", "", duck.True, ""), "2025-06-01T00:00:00Z"),
		},
		key: store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "cfg"},
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			for name, want := range map[string]bool{"cfg-00001": true, "old-a": false, "old-b": true} {
				var r servingv1.Revision
				err := s.Get(context.Background(), store.Key{Kind: servingv1.KindRevision, Namespace: "default", Name: name}, &r)
				if got := err == nil; got != want {
					t.Errorf("revision %s kept = %v, want %v (%v)", name, got, want, err)
				}
			}
		},
	}})
}
