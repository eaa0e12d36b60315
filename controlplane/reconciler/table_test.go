package reconciler

import (
	"context"
	"log/slog"
	"reflect"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/store"
	"github.com/skiff-dev/skiff/controlplane/traffic"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// The table tests below run one reconcile of one key over a store holding the case's
// objects, with the fakes of fakes_test.go for the runtime and the proxy, and compare what
// the reconcile wrote (children created, status) and programmed (the proxy's route) with
// what the case expects, as Knative's pkg/reconciler/route/table_test.go and
// service/service_test.go do with their listers and fake clients.

type tableCase struct {
	name string
	// objects are stored first; a *servingv1.Revision or Configuration's status is kept.
	objects []store.Object
	key     store.Key
	// before, when set, changes the store after the objects are seeded (e.g. a child that
	// needs its owner's UID).
	before func(t *testing.T, s *store.Store)
	// check inspects the store and the proxy after the reconcile.
	check func(t *testing.T, s *store.Store, p *recordingProxy)
}

func runTable(t *testing.T, cases []tableCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			seed(t, st, tc.objects...)
			if tc.before != nil {
				tc.before(t, st)
			}
			p := &recordingProxy{}
			c := New(Config{Store: st, Runtime: nopRuntime{}, Proxy: p, Logger: slog.New(slog.DiscardHandler)})
			c.now = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
			if err := c.reconcile(ctx, tc.key); err != nil {
				t.Fatalf("reconcile %s: %v", tc.key, err)
			}
			tc.check(t, st, p)
		})
	}
}

// statusOf returns a function restoring o's status after Create (which keeps none).
func statusOf(o store.Object) func(store.Object) {
	switch v := o.(type) {
	case *servingv1.Revision:
		s := v.Status
		return func(o store.Object) { o.(*servingv1.Revision).Status = s }
	case *servingv1.Configuration:
		s := v.Status
		return func(o store.Object) { o.(*servingv1.Configuration).Status = s }
	case *servingv1.Route:
		s := v.Status
		return func(o store.Object) { o.(*servingv1.Route).Status = s }
	}
	return nil
}

func tRevision(name, cfg, svc string, ready duck.ConditionStatus, mode string) *servingv1.Revision {
	r := &servingv1.Revision{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRevision},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{servingv1.ConfigurationLabel: cfg}},
		Spec:       servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "ko://example.com/app"}}}},
	}
	if svc != "" {
		r.Labels[servingv1.ServiceLabel] = svc
	}
	r.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: ready}, time.Time{})
	if mode != "" {
		r.Status.Autoscaling = &servingv1.AutoscalingStatus{Mode: mode}
	}
	return r
}

func tConfiguration(name, latestReady string) *servingv1.Configuration {
	c := &servingv1.Configuration{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindConfiguration},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "ko://example.com/app"}}}}}},
	}
	c.Status.LatestReadyRevisionName = latestReady
	c.Status.LatestCreatedRevisionName = latestReady
	c.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: duck.True}, time.Time{})
	return c
}

func tRoute(name string, traffic ...servingv1.TrafficTarget) *servingv1.Route {
	return &servingv1.Route{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindRoute},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       servingv1.RouteSpec{Traffic: traffic},
	}
}

func tService(name string, traffic ...servingv1.TrafficTarget) *servingv1.Service {
	return &servingv1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.GroupVersion, Kind: servingv1.KindService},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: servingv1.ServiceSpec{
			ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "ko://example.com/app"}}}}}},
			RouteSpec:         servingv1.RouteSpec{Traffic: traffic},
		},
	}
}

func routeKey(name string) store.Key {
	return store.Key{Kind: servingv1.KindRoute, Namespace: "default", Name: name}
}

// wantCondition checks one condition of a stored object's status.
func wantCondition(t *testing.T, st *duck.Status, typ duck.ConditionType, status duck.ConditionStatus, reason, message string) {
	t.Helper()
	c := st.GetCondition(typ)
	if c == nil || c.Status != status || c.Reason != reason || (message != "" && c.Message != message) {
		t.Errorf("condition %s = %+v, want %s %s %q", typ, c, status, reason, message)
	}
}

func getRoute(t *testing.T, s *store.Store, name string) *servingv1.Route {
	t.Helper()
	var r servingv1.Route
	if err := s.Get(context.Background(), routeKey(name), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestRouteReconcileTable(t *testing.T) {
	split := []store.Object{
		tConfiguration("cfg", "cfg-00002"),
		tRevision("cfg-00001", "cfg", "", duck.True, servingv1.ModeServe),
		tRevision("cfg-00002", "cfg", "", duck.True, servingv1.ModeProxy),
	}
	runTable(t, []tableCase{{
		// route/table_test.go "configuration ready": traffic assigned, proxy programmed.
		name: "a split with a tag: weights, tags and URLs",
		objects: append(split, tRoute("r",
			servingv1.TrafficTarget{RevisionName: "cfg-00001", Percent: ptr[int64](40)},
			servingv1.TrafficTarget{Tag: "candidate", ConfigurationName: "cfg", LatestRevision: ptr(true), Percent: ptr[int64](60)})),
		key: routeKey("r"),
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			r := getRoute(t, s, "r")
			wantCondition(t, &r.Status.Status, servingv1.RouteConditionAllTrafficAssigned, duck.True, "", "")
			want := []servingv1.TrafficTarget{
				{RevisionName: "cfg-00001", LatestRevision: ptr(false), Percent: ptr[int64](40)},
				{Tag: "candidate", RevisionName: "cfg-00002", LatestRevision: ptr(true), Percent: ptr[int64](60), URL: "http://candidate-r.default.localhost"},
			}
			if !reflect.DeepEqual(r.Status.Traffic, want) {
				t.Errorf("status.traffic %+v, want %+v", r.Status.Traffic, want)
			}
			pr, ok := p.route("default/r")
			if !ok {
				t.Fatal("no route programmed")
			}
			clusters := map[string][]xds.WeightedCluster{}
			for _, vh := range pr.VirtualHosts {
				clusters[vh.Name] = vh.Clusters
			}
			if got, want := clusters["default/r"], []xds.WeightedCluster{
				{Name: xds.ClusterName("default", "cfg-00001"), Weight: 40},
				{Name: xds.ClusterName("default", "cfg-00002"), Weight: 60, Activate: true},
			}; !reflect.DeepEqual(got, want) {
				t.Errorf("default clusters %+v, want %+v", got, want)
			}
			if got, want := clusters["default/r/candidate"], []xds.WeightedCluster{
				{Name: xds.ClusterName("default", "cfg-00002"), Weight: 100, Activate: true},
			}; !reflect.DeepEqual(got, want) {
				t.Errorf("tag clusters %+v, want %+v", got, want)
			}
		},
	}, {
		// Issue 21: traffic that got in without the webhook, summing to 90.
		name: "traffic summing to 90: AllTrafficAssigned=False naming spec.traffic, nothing programmed",
		objects: append(split, tRoute("r",
			servingv1.TrafficTarget{RevisionName: "cfg-00001", Percent: ptr[int64](50)},
			servingv1.TrafficTarget{ConfigurationName: "cfg", LatestRevision: ptr(true), Percent: ptr[int64](40)})),
		key: routeKey("r"),
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			r := getRoute(t, s, "r")
			wantCondition(t, &r.Status.Status, servingv1.RouteConditionAllTrafficAssigned, duck.False, traffic.ReasonInvalidSpec, "Traffic targets sum to 90, want 100: spec.traffic")
			wantCondition(t, &r.Status.Status, duck.ConditionReady, duck.False, traffic.ReasonInvalidSpec, "Traffic targets sum to 90, want 100: spec.traffic")
			if len(r.Status.Traffic) != 0 {
				t.Errorf("status.traffic %+v for traffic that cannot be assigned", r.Status.Traffic)
			}
			if _, ok := p.route("default/r"); ok {
				t.Error("an invalid route was programmed")
			}
		},
	}, {
		name: "a tag used twice",
		objects: append(split, tRoute("r",
			servingv1.TrafficTarget{Tag: "a", RevisionName: "cfg-00001", Percent: ptr[int64](50)},
			servingv1.TrafficTarget{Tag: "a", RevisionName: "cfg-00002", Percent: ptr[int64](50)})),
		key: routeKey("r"),
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			r := getRoute(t, s, "r")
			wantCondition(t, &r.Status.Status, servingv1.RouteConditionAllTrafficAssigned, duck.False, traffic.ReasonInvalidSpec, `Multiple definitions for "a": spec.traffic[0].tag, spec.traffic[1].tag`)
		},
	}, {
		// route/table_test.go "missing configuration".
		name:    "a missing configuration",
		objects: []store.Object{tRoute("r", servingv1.TrafficTarget{ConfigurationName: "gone", LatestRevision: ptr(true), Percent: ptr[int64](100)})},
		key:     routeKey("r"),
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			r := getRoute(t, s, "r")
			wantCondition(t, &r.Status.Status, servingv1.RouteConditionAllTrafficAssigned, duck.False, "ConfigurationMissing", `Configuration "gone" referenced in traffic not found.`)
			wantCondition(t, &r.Status.Status, duck.ConditionReady, duck.False, "ConfigurationMissing", "")
		},
	}})
}

func TestServiceReconcileTable(t *testing.T) {
	runTable(t, []tableCase{{
		// service_test.go "create route and service": the children are made from the spec.
		name:    "a new Service creates its Configuration and Route",
		objects: []store.Object{tService("s", servingv1.TrafficTarget{LatestRevision: ptr(true), Percent: ptr[int64](100)})},
		key:     store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"},
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			r := getRoute(t, s, "s")
			want := []servingv1.TrafficTarget{{ConfigurationName: "s", LatestRevision: ptr(true), Percent: ptr[int64](100)}}
			if !reflect.DeepEqual(r.Spec.Traffic, want) {
				t.Errorf("route traffic %+v, want %+v", r.Spec.Traffic, want)
			}
			var cfg servingv1.Configuration
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "s"}, &cfg); err != nil {
				t.Errorf("configuration: %v", err)
			}
		},
	}, {
		// Issue 21: a Service whose traffic sums to 90 (no webhook): its Route is not written
		// and RoutesReady says why, with the field path; its Configuration still is.
		name: "traffic summing to 90: RoutesReady=False naming spec.traffic",
		objects: []store.Object{tService("s",
			servingv1.TrafficTarget{LatestRevision: ptr(true), Percent: ptr[int64](50)},
			servingv1.TrafficTarget{RevisionName: "s-00001", LatestRevision: ptr(false), Percent: ptr[int64](40)})},
		key: store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"},
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			var svc servingv1.Service
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"}, &svc); err != nil {
				t.Fatal(err)
			}
			wantCondition(t, &svc.Status.Status, servingv1.ServiceConditionRoutesReady, duck.False, traffic.ReasonInvalidSpec, "Traffic targets sum to 90, want 100: spec.traffic")
			wantCondition(t, &svc.Status.Status, duck.ConditionReady, duck.False, traffic.ReasonInvalidSpec, "Traffic targets sum to 90, want 100: spec.traffic")
			var r servingv1.Route
			if err := s.Get(context.Background(), routeKey("s"), &r); err == nil {
				t.Errorf("route created with invalid traffic %+v", r.Spec.Traffic)
			}
			var cfg servingv1.Configuration
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: "s"}, &cfg); err != nil {
				t.Errorf("configuration not created: %v", err)
			}
		},
	}, {
		// service_test.go "route ready, config not": RoutesReady mirrors the Route's Ready
		// (Knative's PropagateRouteStatus), reason and message included.
		name:    "the Route's failure propagates to RoutesReady",
		objects: []store.Object{tService("s", servingv1.TrafficTarget{LatestRevision: ptr(true), Percent: ptr[int64](100)})},
		before: func(t *testing.T, s *store.Store) {
			ctx := context.Background()
			var svc servingv1.Service
			if err := s.Get(ctx, store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"}, &svc); err != nil {
				t.Fatal(err)
			}
			r := tRoute("s", servingv1.TrafficTarget{ConfigurationName: "s", LatestRevision: ptr(true), Percent: ptr[int64](100)})
			r.Labels = map[string]string{servingv1.ServiceLabel: "s"}
			r.OwnerReferences = []metav1.OwnerReference{ownerRef(&svc.ObjectMeta, servingv1.KindService)}
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			r.Status.ObservedGeneration = r.Generation
			r.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: duck.False, Reason: "RevisionMissing", Message: `Configuration "s" does not have any ready Revision.`}, time.Time{})
			if err := s.UpdateStatus(ctx, r); err != nil {
				t.Fatal(err)
			}
		},
		key: store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"},
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			var svc servingv1.Service
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"}, &svc); err != nil {
				t.Fatal(err)
			}
			wantCondition(t, &svc.Status.Status, servingv1.ServiceConditionRoutesReady, duck.False, "RevisionMissing", `Configuration "s" does not have any ready Revision.`)
		},
	}, {
		// service_test.go "route ready previous version and config ready, service not ready"
		// (checkRoutesNotReady): the Route
		// is Ready but still sends the latest-revision traffic to the previous revision.
		name:    "a Ready Route that has not moved to the latest ready revision: TrafficNotMigrated",
		objects: []store.Object{tService("s", servingv1.TrafficTarget{LatestRevision: ptr(true), Percent: ptr[int64](100)})},
		before: func(t *testing.T, s *store.Store) {
			ctx := context.Background()
			var svc servingv1.Service
			if err := s.Get(ctx, store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"}, &svc); err != nil {
				t.Fatal(err)
			}
			owner := ownerRef(&svc.ObjectMeta, servingv1.KindService)
			cfg := tConfiguration("s", "s-00002")
			cfg.Labels = map[string]string{servingv1.ServiceLabel: "s"}
			cfg.OwnerReferences = []metav1.OwnerReference{owner}
			status := statusOf(cfg)
			if err := s.Create(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			status(cfg)
			cfg.Status.ObservedGeneration = cfg.Generation
			if err := s.UpdateStatus(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			r := tRoute("s", servingv1.TrafficTarget{ConfigurationName: "s", LatestRevision: ptr(true), Percent: ptr[int64](100)})
			r.Labels = map[string]string{servingv1.ServiceLabel: "s"}
			r.OwnerReferences = []metav1.OwnerReference{owner}
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			r.Status.ObservedGeneration = r.Generation
			r.Status.Traffic = []servingv1.TrafficTarget{{RevisionName: "s-00001", LatestRevision: ptr(true), Percent: ptr[int64](100)}}
			r.Status.SetCondition(duck.Condition{Type: duck.ConditionReady, Status: duck.True}, time.Time{})
			if err := s.UpdateStatus(ctx, r); err != nil {
				t.Fatal(err)
			}
		},
		key: store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"},
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			var svc servingv1.Service
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"}, &svc); err != nil {
				t.Fatal(err)
			}
			wantCondition(t, &svc.Status.Status, servingv1.ServiceConditionRoutesReady, duck.Unknown, "TrafficNotMigrated", "Traffic is not yet migrated to the latest revision.")
			wantCondition(t, &svc.Status.Status, duck.ConditionReady, duck.Unknown, "TrafficNotMigrated", "Traffic is not yet migrated to the latest revision.")
		},
	}, {
		// service_test.go "inline - byo rev name - existing older revision with different spec"
		// (CheckNameAvailability): the template's name is a
		// Revision of another Configuration; RoutesReady says so and no Route is made.
		name: "a bring-your-own revision name taken by another Configuration's revision: RevisionNameTaken",
		objects: []store.Object{func() store.Object {
			svc := tService("s", servingv1.TrafficTarget{LatestRevision: ptr(true), Percent: ptr[int64](100)})
			svc.Spec.Template.Name = "s-taken"
			return svc
		}()},
		before: func(t *testing.T, s *store.Store) {
			ctx := context.Background()
			var svc servingv1.Service
			if err := s.Get(ctx, store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"}, &svc); err != nil {
				t.Fatal(err)
			}
			cfg := tConfiguration("s", "")
			cfg.Spec = svc.Spec.ConfigurationSpec
			cfg.Labels = map[string]string{servingv1.ServiceLabel: "s"}
			cfg.OwnerReferences = []metav1.OwnerReference{ownerRef(&svc.ObjectMeta, servingv1.KindService)}
			if err := s.Create(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			cfg.Status.ObservedGeneration = cfg.Generation
			if err := s.UpdateStatus(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			if err := s.Create(ctx, tRevision("s-taken", "other", "", duck.True, "")); err != nil {
				t.Fatal(err)
			}
		},
		key: store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"},
		check: func(t *testing.T, s *store.Store, p *recordingProxy) {
			var svc servingv1.Service
			if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindService, Namespace: "default", Name: "s"}, &svc); err != nil {
				t.Fatal(err)
			}
			wantCondition(t, &svc.Status.Status, servingv1.ServiceConditionRoutesReady, duck.False, "RevisionNameTaken",
				`The revision name "s-taken" is taken by a conflicting Revision, so traffic will not be migrated`)
			var r servingv1.Route
			if err := s.Get(context.Background(), routeKey("s"), &r); err == nil {
				t.Errorf("route created while the revision name is taken: %+v", r.Spec)
			}
		},
	}})
}

// seedConfiguration stores configuration name at generation gen with a bring-your-own
// template name (so the revision it wants is named as the case says), its status's latest
// created and ready, and its revisions: each is {name, generation, ready}, owned by the
// configuration and with its spec.
func seedConfiguration(t *testing.T, s *store.Store, name, byo, latestCreated, latestReady string, gen int, revs ...struct {
	name  string
	gen   int
	ready duck.ConditionStatus
}) {
	t.Helper()
	ctx := context.Background()
	cfg := tConfiguration(name, "")
	cfg.Spec.Template.Name = byo
	if err := s.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for g := 2; g <= gen; g++ { // each spec change is a generation
		cfg.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "GEN", Value: strconv.Itoa(g)}}
		if err := s.Update(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Generation != int64(gen) {
		t.Fatalf("configuration at generation %d, want %d", cfg.Generation, gen)
	}
	cfg.Status.ObservedGeneration = cfg.Generation
	cfg.Status.LatestCreatedRevisionName, cfg.Status.LatestReadyRevisionName = latestCreated, latestReady
	if err := s.UpdateStatus(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, r := range revs {
		rev := tRevision(r.name, name, "", r.ready, "")
		rev.Labels[servingv1.ConfigurationGenerationLabel] = strconv.Itoa(r.gen)
		rev.OwnerReferences = []metav1.OwnerReference{ownerRef(&cfg.ObjectMeta, servingv1.KindConfiguration)}
		rev.Spec = cfg.Spec.Template.Spec
		status := statusOf(rev)
		if err := s.Create(ctx, rev); err != nil {
			t.Fatal(err)
		}
		status(rev)
		if err := s.UpdateStatus(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
}

func getConfiguration(t *testing.T, s *store.Store, name string) *servingv1.Configuration {
	t.Helper()
	var c servingv1.Configuration
	if err := s.Get(context.Background(), store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: name}, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestConfigurationReconcileTable ports cases of Knative's
// pkg/reconciler/configuration/configuration_test.go TestReconcile: the latest ready revision
// is the newest ready one since the previous (not only the latest created), and a
// bring-your-own name held by another object fails with Knative's message.
func TestConfigurationReconcileTable(t *testing.T) {
	type rev = struct {
		name  string
		gen   int
		ready duck.ConditionStatus
	}
	key := func(name string) store.Key {
		return store.Key{Kind: servingv1.KindConfiguration, Namespace: "default", Name: name}
	}
	runTable(t, []tableCase{{
		name: "three revisions with the latest revision failed, the latest ready should be updated to the last ready revision",
		key:  key("threerevs"),
		before: func(t *testing.T, s *store.Store) {
			seedConfiguration(t, s, "threerevs", "threerevs-00003", "threerevs-00002", "threerevs-00001", 3,
				rev{"threerevs-00001", 1, duck.True}, rev{"threerevs-00002", 2, duck.True}, rev{"threerevs-00003", 3, duck.Unknown})
		},
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			c := getConfiguration(t, s, "threerevs")
			if c.Status.LatestCreatedRevisionName != "threerevs-00003" || c.Status.LatestReadyRevisionName != "threerevs-00002" {
				t.Errorf("latest created %q, ready %q; want threerevs-00003, threerevs-00002", c.Status.LatestCreatedRevisionName, c.Status.LatestReadyRevisionName)
			}
			wantCondition(t, &c.Status.Status, duck.ConditionReady, duck.Unknown, "", "")
		},
	}, {
		name: "latest ready fails - latest ready doesn't change",
		key:  key("failed-lrr"),
		before: func(t *testing.T, s *store.Store) {
			seedConfiguration(t, s, "failed-lrr", "", "failed-lrr-00002", "failed-lrr-00002", 2,
				rev{"failed-lrr-00001", 1, duck.True}, rev{"failed-lrr-00002", 2, duck.False})
		},
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			c := getConfiguration(t, s, "failed-lrr")
			if c.Status.LatestReadyRevisionName != "failed-lrr-00002" {
				t.Errorf("latest ready %q, want failed-lrr-00002 (unchanged)", c.Status.LatestReadyRevisionName)
			}
			wantCondition(t, &c.Status.Status, duck.ConditionReady, duck.False, "RevisionFailed", `Revision "failed-lrr-00002" failed with message: .`)
		},
	}, {
		name: "a revision that became ready after a newer one was created is the latest ready",
		key:  key("racing"),
		before: func(t *testing.T, s *store.Store) {
			seedConfiguration(t, s, "racing", "", "racing-00003", "", 3,
				rev{"racing-00001", 1, duck.True}, rev{"racing-00002", 2, duck.True}, rev{"racing-00003", 3, duck.Unknown})
		},
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			c := getConfiguration(t, s, "racing")
			if c.Status.LatestReadyRevisionName != "racing-00002" {
				t.Errorf("latest ready %q, want racing-00002", c.Status.LatestReadyRevisionName)
			}
			wantCondition(t, &c.Status.Status, duck.ConditionReady, duck.Unknown, "", "")
		},
	}, {
		name: "create revision byo name (exists not owned)",
		key:  key("byo-rev-not-owned"),
		before: func(t *testing.T, s *store.Store) {
			seedConfiguration(t, s, "byo-rev-not-owned", "byo-rev-not-owned-foo", "", "", 1)
			other := tRevision("byo-rev-not-owned-foo", "someone-else", "", duck.True, "")
			if err := s.Create(context.Background(), other); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, s *store.Store, _ *recordingProxy) {
			c := getConfiguration(t, s, "byo-rev-not-owned")
			wantCondition(t, &c.Status.Status, duck.ConditionReady, duck.False, "RevisionFailed",
				`Revision creation failed with message: revisions.serving.knative.dev "byo-rev-not-owned-foo" already exists.`)
		},
	}})
}
