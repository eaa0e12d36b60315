// Package traffic decides where a Route's requests go, with no I/O of its own: it checks a
// traffic spec as Knative's webhook does, resolves its targets to ready revisions as
// Knative's route reconciler does (pkg/reconciler/route/traffic), reports why it cannot with
// the reason and message Knative's Route conditions carry, and turns resolved traffic into
// the weighted revision clusters every proxy configuration is made of (a Route's virtual
// hosts, a DomainMapping's, a Gateway API backendRef's). It also holds the one rule for
// whether a revision's requests go through the activator (proxy mode).
package traffic

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/duck"
	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
	"github.com/skiff-dev/skiff/controlplane/xds"
)

// ReasonInvalidSpec is the reason of AllTrafficAssigned=False (a Route) and RoutesReady=False
// (a Service) when spec.traffic breaks a rule Knative's webhook enforces (percents that do not
// sum to 100, a tag used twice, ...). Knative never reports it because its webhook refuses such
// an object; Skiff reports it for one that got in anyway (a cluster without the webhook, an
// object stored before it), with the webhook's message and field path.
const ReasonInvalidSpec = "InvalidSpec"

// Lister reads the Configurations and Revisions of the route's namespace that its traffic
// names. A missing object is (nil, nil); an error is a failure to read.
type Lister interface {
	Configuration(name string) (*servingv1.Configuration, error)
	Revision(name string) (*servingv1.Revision, error)
}

// TargetError is why a Route's traffic cannot be assigned: its AllTrafficAssigned condition.
type TargetError struct {
	// Status is False for a failure (a missing target, a failed revision, an invalid spec)
	// and Unknown while a target may still become ready.
	Status  duck.ConditionStatus
	Reason  string
	Message string
}

func (e *TargetError) Error() string { return e.Message }

// IsFailure reports whether the error is a failure rather than a wait.
func (e *TargetError) IsFailure() bool { return e.Status == duck.False }

// Config is a Route's traffic resolved to revisions.
type Config struct {
	// Targets are status.traffic without URLs: spec.traffic flattened to revisions, targets
	// with the same tag, revision and latestRevision merged (percents added), in spec order.
	// Nil when the traffic cannot be assigned.
	Targets []servingv1.TrafficTarget
	// Configurations and Revisions are every object the traffic names that exists, by name,
	// also when the traffic cannot be assigned (a reconciler watches them).
	Configurations map[string]*servingv1.Configuration
	Revisions      map[string]*servingv1.Revision
	// Missing names the targets that do not exist ("Configuration/name", "Revision/name").
	Missing []string
}

// Validate checks spec.traffic by the rules of Knative's webhook (defaulted first, as the
// webhook would have), returning a TargetError naming the field, or nil. service says the
// traffic is a Service's (configurationName implied and not allowed).
func Validate(ctx context.Context, traffic []servingv1.TrafficTarget, service bool) *TargetError {
	spec := servingv1.RouteSpec{Traffic: slices.Clone(traffic)}
	ctx = admission.WithinSpec(admission.WithinCreate(ctx))
	if service {
		ctx = servingv1.WithDefaultConfigurationName(ctx)
	}
	spec.SetDefaults(ctx)
	errs := api.Errors(spec.Validate(ctx).ViaField("spec"))
	if errs == nil {
		return nil
	}
	return &TargetError{Status: duck.False, Reason: ReasonInvalidSpec, Message: errs.Error()}
}

// defaulted is spec.traffic with the webhook's defaults: latestRevision true unless a
// revision is named, percent 0 when unset.
func defaulted(traffic []servingv1.TrafficTarget) []servingv1.TrafficTarget {
	spec := servingv1.RouteSpec{Traffic: slices.Clone(traffic)}
	spec.SetDefaults(admission.WithinSpec(context.Background()))
	return spec.Traffic
}

// Build validates the route's traffic and resolves every target to a ready revision, as
// Knative's BuildTrafficConfiguration does: a target naming a revision uses it (a
// Service's Route only a revision of that Service), one naming a configuration uses its
// latest ready revision. Every target is looked at before an error is returned, so that
// Configurations, Revisions and Missing are complete; the error returned is the last
// failure, else the first wait; a spec that breaks the webhook's rules comes before both. A *TargetError is the route's to report; any other error is
// the Lister's.
func Build(ctx context.Context, route *servingv1.Route, l Lister) (*Config, error) {
	cfg := &Config{Configurations: map[string]*servingv1.Configuration{}, Revisions: map[string]*servingv1.Revision{}}
	b := builder{l: l, cfg: cfg, service: route.Labels[servingv1.ServiceLabel]}
	for _, t := range defaulted(route.Spec.Traffic) {
		if err := b.add(t); err != nil {
			return cfg, err
		}
	}
	// The lookups come first so the reconciler watches every object the traffic names; a
	// spec error wins over the targets' own, since only fixing the spec can clear it.
	if err := Validate(ctx, route.Spec.Traffic, false); err != nil {
		cfg.Targets = nil
		return cfg, err
	}
	if b.deferred != nil {
		cfg.Targets = nil
		return cfg, b.deferred
	}
	return cfg, nil
}

type builder struct {
	l        Lister
	cfg      *Config
	service  string
	deferred *TargetError
}

// add resolves one defaulted target, deferring a TargetError (a failure replaces an earlier
// one, as Knative's deferTargetError).
func (b *builder) add(t servingv1.TrafficTarget) error {
	var err error
	switch {
	case t.RevisionName != "":
		err = b.addRevision(t)
	case t.ConfigurationName != "":
		err = b.addConfiguration(t)
	}
	if te, ok := err.(*TargetError); ok {
		if b.deferred == nil || te.IsFailure() {
			b.deferred = te
		}
		return nil
	}
	return err
}

func (b *builder) configuration(name string) (*servingv1.Configuration, error) {
	if c, ok := b.cfg.Configurations[name]; ok {
		return c, nil
	}
	c, err := b.l.Configuration(name)
	if err != nil {
		return nil, fmt.Errorf("get configuration %s: %w", name, err)
	}
	if c == nil {
		b.cfg.Missing = append(b.cfg.Missing, "Configuration/"+name)
		return nil, missing("Configuration", name)
	}
	b.cfg.Configurations[name] = c
	return c, nil
}

func (b *builder) revision(name string) (*servingv1.Revision, error) {
	if r, ok := b.cfg.Revisions[name]; ok {
		return r, nil
	}
	r, err := b.l.Revision(name)
	if err != nil {
		return nil, fmt.Errorf("get revision %s: %w", name, err)
	}
	if r == nil {
		b.cfg.Missing = append(b.cfg.Missing, "Revision/"+name)
		return nil, missing("Revision", name)
	}
	b.cfg.Revisions[name] = r
	return r, nil
}

func (b *builder) addConfiguration(t servingv1.TrafficTarget) error {
	c, err := b.configuration(t.ConfigurationName)
	if err != nil {
		return err
	}
	name := c.Status.LatestReadyRevisionName
	if name == "" {
		if r := c.Status.GetCondition(duck.ConditionReady); r != nil && r.Status == duck.False {
			return &TargetError{duck.False, "RevisionMissing", fmt.Sprintf("Configuration %q does not have any ready Revision.", c.Name)}
		}
		return &TargetError{duck.Unknown, "RevisionMissing", fmt.Sprintf("Configuration %q is waiting for a Revision to become ready.", c.Name)}
	}
	rev, err := b.revision(name)
	if err != nil {
		return err
	}
	if err := unready(rev); err != nil {
		return err
	}
	t.RevisionName = rev.Name
	b.addFlattened(t)
	return nil
}

func (b *builder) addRevision(t servingv1.TrafficTarget) error {
	rev, err := b.revision(t.RevisionName)
	if err != nil {
		return err
	}
	// A Service's Route reaches only that Service's revisions; a Route of its own any.
	if b.service != "" {
		if owner := rev.Labels[servingv1.ServiceLabel]; owner != b.service {
			msg := fmt.Sprintf("Revision %q belongs to Service %q, not Service %q.", rev.Name, owner, b.service)
			if owner == "" {
				msg = fmt.Sprintf("Revision %q does not belong to Service %q.", rev.Name, b.service)
			}
			return &TargetError{duck.False, "RevisionNotOwned", msg}
		}
	}
	if err := unready(rev); err != nil {
		return err
	}
	if c := rev.Labels[servingv1.ConfigurationLabel]; c != "" {
		t.ConfigurationName = c
		if _, err := b.configuration(c); err != nil {
			return err
		}
	}
	b.addFlattened(t)
	return nil
}

// addFlattened adds a resolved target, merging it into an earlier one with the same tag,
// revision and latestRevision (Knative's mergeIfNecessary).
func (b *builder) addFlattened(t servingv1.TrafficTarget) {
	latest := func(x servingv1.TrafficTarget) bool { return x.LatestRevision != nil && *x.LatestRevision }
	for i, o := range b.cfg.Targets {
		if o.Tag == t.Tag && o.RevisionName == t.RevisionName && latest(o) == latest(t) {
			sum := *o.Percent + *t.Percent
			b.cfg.Targets[i].Percent = &sum
			return
		}
	}
	t.URL = ""
	b.cfg.Targets = append(b.cfg.Targets, t)
}

func missing(kind, name string) *TargetError {
	return &TargetError{duck.False, kind + "Missing", fmt.Sprintf("%s %q referenced in traffic not found.", kind, name)}
}

// unready is the TargetError of a revision that is not Ready, nil for a ready one, with
// Knative's messages (MarkRevisionFailed, MarkRevisionNotReady); why the revision failed is on
// the Revision.
func unready(rev *servingv1.Revision) *TargetError {
	r := rev.Status.GetCondition(duck.ConditionReady)
	switch {
	case r != nil && r.Status == duck.True:
		return nil
	case r != nil && r.Status == duck.False:
		return &TargetError{duck.False, "RevisionMissing", fmt.Sprintf("Revision %q failed to become ready.", rev.Name)}
	}
	return &TargetError{duck.Unknown, "RevisionMissing", fmt.Sprintf("Revision %q is not yet ready.", rev.Name)}
}

// Weight is one revision's share of a target's requests.
type Weight struct {
	Revision string
	Percent  int64
}

// Split is the default target's weights from resolved traffic (status.traffic): every
// target with a percent, one entry per revision (percents added) in the order first named.
// Tagged targets count too: a tag only adds a host of its own.
func Split(traffic []servingv1.TrafficTarget) []Weight {
	var out []Weight
	for _, t := range traffic {
		if t.Percent == nil || *t.Percent <= 0 || t.RevisionName == "" {
			continue
		}
		if i := slices.IndexFunc(out, func(w Weight) bool { return w.Revision == t.RevisionName }); i >= 0 {
			out[i].Percent += *t.Percent
			continue
		}
		out = append(out, Weight{Revision: t.RevisionName, Percent: *t.Percent})
	}
	return out
}

// Tag is a tagged target: its own host sends every request to one revision.
type Tag struct {
	Tag      string
	Revision string
}

// Tags are the resolved traffic's tags, each once, in order.
func Tags(traffic []servingv1.TrafficTarget) []Tag {
	var out []Tag
	for _, t := range traffic {
		if t.Tag == "" || slices.ContainsFunc(out, func(o Tag) bool { return o.Tag == t.Tag }) {
			continue
		}
		out = append(out, Tag{Tag: t.Tag, Revision: t.RevisionName})
	}
	return out
}

// Timeouts are a route's request timeouts. Knative's queue-proxy enforces each revision's
// own; the proxy enforces them per route, so a route split over revisions takes the most
// lenient of each: the longest, and none when any of the revisions has none.
type Timeouts struct {
	// Request is spec.timeoutSeconds (Knative's default when unset).
	Request time.Duration
	// ResponseStart is spec.responseStartTimeoutSeconds; zero is none.
	ResponseStart time.Duration
	// Idle is spec.idleTimeoutSeconds; zero is none.
	Idle time.Duration
}

// Lenient is the most lenient of t and u, as a route serving both must be.
func (t Timeouts) Lenient(u Timeouts) Timeouts {
	return Timeouts{Request: max(t.Request, u.Request), ResponseStart: lenient(t.ResponseStart, u.ResponseStart), Idle: lenient(t.Idle, u.Idle)}
}

// Apply sets vh's timeouts.
func (t Timeouts) Apply(vh *xds.VirtualHost) {
	vh.Timeout, vh.ResponseStartTimeout, vh.IdleTimeout = t.Request, t.ResponseStart, t.Idle
}

// Route is t as one rule's own timeouts (xds.Rule.Timeouts).
func (t Timeouts) Route() *xds.RouteTimeouts {
	return &xds.RouteTimeouts{Timeout: t.Request, ResponseStartTimeout: t.ResponseStart, IdleTimeout: t.Idle}
}

// Clusters turns weights into the proxy's weighted clusters, one per revision of the
// namespace; rev looks a revision up (nil when unknown: served directly, default timeout).
// The timeouts are the revisions' combined (Timeouts).
func Clusters(namespace string, weights []Weight, rev func(name string) *servingv1.Revision) ([]xds.WeightedCluster, Timeouts) {
	var out []xds.WeightedCluster
	var t Timeouts
	for i, w := range weights {
		r := rev(w.Revision)
		out = append(out, xds.WeightedCluster{Name: xds.ClusterName(namespace, w.Revision), Weight: uint32(w.Percent), Activate: ProxyMode(r)})
		if i == 0 {
			t = revisionTimeouts(r)
		} else {
			t = t.Lenient(revisionTimeouts(r))
		}
	}
	return out, t
}

// revisionTimeouts are a revision's timeouts: spec.timeoutSeconds (Knative's default when
// unset or unknown), and the response-start and idle timeouts, zero when unset.
func revisionTimeouts(rev *servingv1.Revision) Timeouts {
	t := Timeouts{Request: Timeout(rev)}
	if rev == nil {
		return t
	}
	if s := rev.Spec.ResponseStartTimeoutSeconds; s != nil {
		t.ResponseStart = time.Duration(*s) * time.Second
	}
	if s := rev.Spec.IdleTimeoutSeconds; s != nil {
		t.Idle = time.Duration(*s) * time.Second
	}
	return t
}

// lenient is the more lenient of two optional timeouts, where zero is none.
func lenient(a, b time.Duration) time.Duration {
	if a == 0 || b == 0 {
		return 0
	}
	return max(a, b)
}

// ProxyMode reports whether a revision's requests go through the activator (ext_proc), as
// its status last said (Mode decides it).
func ProxyMode(rev *servingv1.Revision) bool {
	return rev != nil && rev.Status.Autoscaling != nil && rev.Status.Autoscaling.Mode == servingv1.ModeProxy
}

// Mode decides a revision's mode: with an activator, proxy while the revision limits
// concurrency per pod (the activator keeps each pod within it), while the autoscaler wants
// the activator in the path (too little burst capacity: Knative's target-burst-capacity
// rule) or while no pod is ready (requests are held until one is); serve otherwise.
func Mode(activator bool, containerConcurrency int64, autoscalerProxy bool, readyPods int) string {
	if activator && (containerConcurrency > 0 || autoscalerProxy || readyPods == 0) {
		return servingv1.ModeProxy
	}
	return servingv1.ModeServe
}

// Timeout is a revision's request timeout (spec.timeoutSeconds, Knative's default when unset
// or unknown).
func Timeout(rev *servingv1.Revision) time.Duration {
	if rev == nil || rev.Spec.TimeoutSeconds == nil {
		return time.Duration(servingv1.DefaultTimeoutSeconds) * time.Second
	}
	return time.Duration(*rev.Spec.TimeoutSeconds) * time.Second
}

// WithURLs is resolved traffic as status.traffic reports it (Knative's
// GetRevisionTrafficTargets): no configurationName, each tagged target with the URL url gives
// its tag.
func WithURLs(traffic []servingv1.TrafficTarget, url func(tag string) string) []servingv1.TrafficTarget {
	out := slices.Clone(traffic)
	for i := range out {
		out[i].ConfigurationName = ""
		if out[i].Tag != "" {
			out[i].URL = url(out[i].Tag)
		}
	}
	return out
}
