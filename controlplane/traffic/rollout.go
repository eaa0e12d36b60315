package traffic

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// RolloutAnnotation is where a Route keeps its rollout state, as JSON (Rollout). Knative
// keeps it under this key on the Route's Ingress; Skiff has no Ingress, so the Route carries
// it itself: an annotation is stored with the object (the local store or the Kubernetes
// API), so a control plane that restarts mid-rollout reads where the rollout stood and goes
// on from there instead of switching at once. The format is Knative's.
const RolloutAnnotation = "networking.internal.knative.dev/rollout"

// Rollout is the gradual rollout state of a Route (Knative's traffic.Rollout,
// pkg/reconciler/route/traffic/rollout.go): for each configuration a target follows (latest
// revision), per tag, the revisions its share of the traffic is split over, from the oldest
// to the newest, and how that split moves to the newest over time. A route with no rollout
// under way has one revision per configuration.
type Rollout struct {
	// Configurations are sorted by tag, then by configuration name.
	Configurations []*ConfigurationRollout `json:"configurations,omitempty"`
}

// ConfigurationRollout is the rollout of one configuration on one tag ("" for the route's
// default host).
type ConfigurationRollout struct {
	ConfigurationName string `json:"configurationName"`
	Tag               string `json:"tag,omitempty"`
	// Percent is the configuration's share of the tag's traffic; Revisions' percents add up
	// to it.
	Percent int `json:"percent"`
	// Revisions are oldest first; the last is the one being rolled out to.
	Revisions []RevisionRollout `json:"revisions,omitempty"`
	// StepParams say when and by how much the traffic moves next.
	StepParams RolloutParams `json:"stepParams"`
}

// RolloutParams time a ConfigurationRollout. Times are Unix nanoseconds, durations
// nanoseconds, as in Knative's annotation.
type RolloutParams struct {
	// StartTime is when the rollout began (the new revision got its first 1%).
	StartTime int64 `json:"starttime,omitempty"`
	// NextStepTime is when the next step is due.
	NextStepTime int64 `json:"nextStepTime,omitempty"`
	// StepDuration is the time between steps; zero until the proxies first serve the
	// rollout (ObserveReady).
	StepDuration int64 `json:"stepDuration,omitempty"`
	// StepSize is the percent one step moves.
	StepSize int `json:"stepSize,omitempty"`
}

// RevisionRollout is one revision's share of the route's traffic (not of the
// configuration's).
type RevisionRollout struct {
	RevisionName string `json:"revisionName"`
	Percent      int    `json:"percent"`
}

// ParseRollout reads a RolloutAnnotation value; "" is no state (nil). A value that does not
// parse or whose numbers do not add up is an error: the caller starts afresh, as Knative
// does with a corrupt annotation.
func ParseRollout(s string) (*Rollout, error) {
	if s == "" {
		return nil, nil
	}
	r := &Rollout{}
	if err := json.Unmarshal([]byte(s), r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", RolloutAnnotation, err)
	}
	if !r.Valid() {
		return nil, fmt.Errorf("parse %s: percents or step size out of range: %s", RolloutAnnotation, s)
	}
	return r, nil
}

// String is the RolloutAnnotation value of r.
func (r *Rollout) String() string {
	b, _ := json.Marshal(r) // plain structs: cannot fail
	return string(b)
}

// ByTag is the configuration rollouts of a tag ("" the default host), by configuration name.
func (r *Rollout) ByTag(tag string) []*ConfigurationRollout {
	var out []*ConfigurationRollout
	if r == nil {
		return out
	}
	for _, c := range r.Configurations {
		if c.Tag == tag {
			out = append(out, c)
		}
	}
	return out
}

// config is the rollout of configuration name on tag, nil when there is none.
func (r *Rollout) config(tag, name string) *ConfigurationRollout {
	for _, c := range r.ByTag(tag) {
		if c.ConfigurationName == name {
			return c
		}
	}
	return nil
}

// Done reports whether no configuration is being rolled out.
func (r *Rollout) Done() bool {
	if r == nil {
		return true
	}
	for _, c := range r.Configurations {
		if !c.done() {
			return false
		}
	}
	return true
}

// done: with fewer than two revisions there is nothing to move.
func (c *ConfigurationRollout) done() bool { return len(c.Revisions) < 2 }

// Valid checks a rollout read back: no percent above 100, a step size within the
// configuration's percent, revisions adding up to it (Knative's Rollout.Validate).
func (r *Rollout) Valid() bool {
	for _, c := range r.Configurations {
		if c.Percent > 100 || c.StepParams.StepSize < 0 || c.StepParams.StepSize > c.Percent {
			return false
		}
		sum := 0
		for _, rev := range c.Revisions {
			sum += rev.Percent
		}
		if sum != c.Percent {
			return false
		}
	}
	return true
}

// ObserveReady is called when the proxies first serve a rollout (Knative: the Ingress turned
// ready): each configuration rollout that started but has no step timing yet gets it, the
// time its first 1% took (at least a second) being the shortest step, so that the rest of
// the traffic moves within duration.
func (r *Rollout) ObserveReady(now time.Time, duration time.Duration) {
	r.observeReady(now.UnixNano(), math.Floor(duration.Seconds()))
}

func (r *Rollout) observeReady(nowTS int64, durationSecs float64) {
	for _, c := range r.Configurations {
		if c.StepParams.StepDuration != 0 || c.StepParams.StartTime <= 0 {
			continue
		}
		// At least a second, whatever the clocks say.
		minStep := math.Max(1, math.Ceil(time.Duration(nowTS-c.StepParams.StartTime).Seconds()))
		c.computeProperties(float64(nowTS), minStep, durationSecs)
	}
}

// computeProperties sets the step size, the step duration and the next step time of a
// rollout whose first 1% took minStepSec: equal steps of at least 1% (rounded, so 100% in
// 4 steps is 1, 26, 51, 76, 100), no more often than minStepSec, within what remains of
// durationSecs (one step when nothing remains).
func (c *ConfigurationRollout) computeProperties(nowTS, minStepSec, durationSecs float64) {
	durationSecs = math.Max(1, durationSecs-minStepSec)
	steps := math.Max(1, durationSecs/minStepSec)
	remaining := float64(c.Percent - 1) // 1% already moved
	if remaining < steps {
		steps = remaining
	}
	size := math.Round(remaining / steps)
	stepDuration := durationSecs / steps * float64(time.Second)
	c.StepParams.StepDuration = int64(stepDuration)
	c.StepParams.StepSize = int(size)
	c.StepParams.NextStepTime = int64(nowTS + stepDuration)
}

// Step merges r, the rollout the route's traffic asks for now (BuildRollout: one revision
// per configuration), with prev, where the rollout stood, and returns where it stands now:
// a configuration whose latest revision changed starts moving to it (1% first), one under
// way moves a step when due. The time is when the next step is due, zero when none is. With
// no prev, r is the answer as it is.
func (r *Rollout) Step(prev *Rollout, now time.Time) (*Rollout, time.Time) {
	ro, next := r.step(prev, now.UnixNano())
	if next == 0 {
		return ro, time.Time{}
	}
	return ro, time.Unix(0, next)
}

func (r *Rollout) step(prev *Rollout, nowTS int64) (*Rollout, int64) {
	if prev == nil || len(prev.Configurations) == 0 {
		return r, 0
	}
	prevByTag := map[string][]*ConfigurationRollout{}
	for _, c := range prev.Configurations {
		prevByTag[c.Tag] = append(prevByTag[c.Tag], c)
	}
	var out []*ConfigurationRollout
	next := int64(math.MaxInt64)
	for _, cur := range r.Configurations {
		var old *ConfigurationRollout
		for _, p := range prevByTag[cur.Tag] {
			if p.ConfigurationName == cur.ConfigurationName {
				old = p
			}
		}
		switch {
		case old == nil:
			// A new tag or configuration: nothing to roll from, it starts at its share
			// (a configuration at 0% has no rollout).
			if cur.Percent != 0 {
				out = append(out, cur)
			}
		case cur.Percent > 1:
			s := stepConfig(cur, old, nowTS)
			out = append(out, s)
			if t := s.StepParams.NextStepTime; t > 0 && t < next {
				next = t
			}
		case cur.Percent == 1:
			// An A/B test's 1%: nothing to split.
			out = append(out, cur)
		}
		// 0%: no rollout; a configuration only in prev is gone from the traffic.
	}
	ro := &Rollout{Configurations: out}
	sortRollout(ro)
	if next == math.MaxInt64 {
		next = 0
	}
	return ro, next
}

// adjustPercentage resizes a rollout to a new share of the traffic: a larger share goes to
// the newest revision, a smaller one is taken from the oldest ones first.
func adjustPercentage(goal int, c *ConfigurationRollout) {
	switch diff := goal - c.Percent; {
	case goal == 0:
		c.Revisions = nil
	case diff > 0:
		c.Revisions[len(c.Revisions)-1].Percent += diff
	case diff < 0:
		cut := -diff
		i := 0
		for ; cut > 0 && i < len(c.Revisions); i++ {
			if c.Revisions[i].Percent > cut {
				c.Revisions[i].Percent -= cut
				break
			}
			cut -= c.Revisions[i].Percent
		}
		c.Revisions = c.Revisions[i:]
	}
}

// stepRevisions moves one step (StepSize) of traffic to the newest revision once the step
// is due, taking it from the next-newest revisions first; a revision left with nothing drops
// out, and a rollout left with one revision is done (its params cleared).
func stepRevisions(goal *ConfigurationRollout, nowTS int64) {
	if nowTS < goal.StepParams.NextStepTime || len(goal.Revisions) < 2 {
		return
	}
	n := len(goal.Revisions)
	take := goal.StepParams.StepSize
	last := n - 1 // where the newest revision ends up
	from := n - 2
	for take > 0 && from >= 0 {
		if goal.Revisions[from].Percent > take {
			goal.Revisions[from].Percent -= take
			break
		}
		// This revision is emptied: it drops out.
		take -= goal.Revisions[from].Percent
		last--
		from--
	}
	goal.Revisions[last] = goal.Revisions[n-1]
	// A step larger than what the configuration has left (its share was cut below the
	// step size) cannot give the newest more than the share.
	goal.Revisions[last].Percent = min(goal.Revisions[last].Percent+goal.StepParams.StepSize, goal.Percent)
	goal.Revisions = goal.Revisions[:last+1]
	if len(goal.Revisions) > 1 {
		goal.StepParams.NextStepTime = nowTS + goal.StepParams.StepDuration
	} else {
		goal.StepParams = RolloutParams{}
	}
}

// stepConfig is a configuration's rollout now, from the goal (one revision, its share) and
// where it stood (prev, modified).
func stepConfig(goal, prev *ConfigurationRollout, nowTS int64) *ConfigurationRollout {
	out := &ConfigurationRollout{
		ConfigurationName: goal.ConfigurationName,
		Tag:               goal.Tag,
		Percent:           goal.Percent,
		Revisions:         goal.Revisions,
	}
	if len(prev.Revisions) > 0 {
		adjustPercentage(goal.Percent, prev)
	}
	if len(prev.Revisions) == 0 || goal.Revisions[0].RevisionName == prev.Revisions[len(prev.Revisions)-1].RevisionName {
		// No new revision: carry on with prev's rollout, if one is under way.
		if len(prev.Revisions) > 1 {
			out.Revisions = prev.Revisions
			out.StepParams = prev.StepParams
			// Before ObserveReady there is no step size yet: wait.
			if out.StepParams.StepSize > 0 {
				stepRevisions(out, nowTS)
			}
		}
		return out
	}
	// A new revision: it starts with 1%, taken from the newest revision that has any; its
	// timing is computed once the proxies serve this (ObserveReady).
	out.StepParams.StartTime = nowTS
	for i := len(prev.Revisions) - 1; i >= 0; i-- {
		if prev.Revisions[i].Percent > 0 {
			prev.Revisions[i].Percent--
			break
		}
	}
	revs := make([]RevisionRollout, 0, len(prev.Revisions)+1)
	for _, rev := range prev.Revisions {
		if rev.Percent > 0 {
			revs = append(revs, rev)
		}
	}
	newest := goal.Revisions[0]
	newest.Percent = 1
	out.Revisions = append(revs, newest)
	return out
}

// sortRollout orders the configurations by tag, then name, so the annotation is stable.
func sortRollout(r *Rollout) {
	slices.SortFunc(r.Configurations, func(a, b *ConfigurationRollout) int {
		return cmp.Or(cmp.Compare(a.Tag, b.Tag), cmp.Compare(a.ConfigurationName, b.ConfigurationName))
	})
}

// hostTarget is one revision a host's traffic goes to, as Knative's Config.Targets groups
// resolved traffic per host: the default host gets every target with a percent (merged by
// revision), a tag's host its own target with all of its traffic.
type hostTarget struct {
	revision, configuration string
	latest                  bool
	percent                 int
}

func isLatest(t servingv1.TrafficTarget) bool { return t.LatestRevision != nil && *t.LatestRevision }

// hostTargets are the targets of the host of tag ("" the default host) in resolved traffic.
func hostTargets(traffic []servingv1.TrafficTarget, tag string) []hostTarget {
	var out []hostTarget
	for _, t := range traffic {
		if t.RevisionName == "" {
			continue
		}
		p := 0
		if t.Percent != nil {
			p = int(*t.Percent)
		}
		if tag == "" && p <= 0 || tag != "" && t.Tag != tag {
			continue
		}
		if i := slices.IndexFunc(out, func(h hostTarget) bool { return h.revision == t.RevisionName }); i >= 0 {
			out[i].percent += p
			continue
		}
		out = append(out, hostTarget{revision: t.RevisionName, configuration: t.ConfigurationName, latest: isLatest(t), percent: p})
	}
	if len(out) == 1 {
		out[0].percent = 100 // a host with one target sends it everything
	}
	return out
}

// BuildRollout is the rollout resolved traffic asks for, with nothing under way: per host,
// each configuration a target follows (latestRevision) with a share of the host's traffic,
// on its latest ready revision (Knative's Config.BuildRollout). traffic is Config.Targets.
func BuildRollout(traffic []servingv1.TrafficTarget) *Rollout {
	r := &Rollout{}
	tags := []string{""}
	for _, t := range Tags(traffic) {
		tags = append(tags, t.Tag)
	}
	for _, tag := range tags {
		for _, h := range hostTargets(traffic, tag) {
			if !h.latest || h.percent == 0 || h.configuration == "" {
				continue
			}
			r.Configurations = append(r.Configurations, &ConfigurationRollout{
				ConfigurationName: h.configuration, Tag: tag, Percent: h.percent,
				Revisions: []RevisionRollout{{RevisionName: h.revision, Percent: h.percent}},
			})
		}
	}
	sortRollout(r)
	return r
}

// Weights are the revisions the host of tag ("" the default host) sends its requests to:
// the resolved traffic's, but a configuration being rolled out on that host split over its
// rollout's revisions (Knative's makeBaseIngressPath). With a nil rollout the default host's
// are Split's and a tag's all to its revision.
func (r *Rollout) Weights(traffic []servingv1.TrafficTarget, tag string) []Weight {
	var out []Weight
	add := func(rev string, p int) {
		if p <= 0 {
			return
		}
		if i := slices.IndexFunc(out, func(w Weight) bool { return w.Revision == rev }); i >= 0 {
			out[i].Percent += int64(p)
			return
		}
		out = append(out, Weight{Revision: rev, Percent: int64(p)})
	}
	for _, h := range hostTargets(traffic, tag) {
		var c *ConfigurationRollout
		if h.latest {
			c = r.config(tag, h.configuration)
		}
		if c == nil || c.done() {
			add(h.revision, h.percent)
			continue
		}
		for _, rev := range c.Revisions {
			add(rev.RevisionName, rev.Percent)
		}
	}
	return out
}

// StatusTargets is resolved traffic as status.traffic reports it while r is under way
// (Knative's GetRevisionTrafficTargets with the rollout): a target following a configuration
// being rolled out on the default host is one entry per revision of the rollout, with its
// share of the traffic. Unlike Knative, a target's entries add up to its own percent (its
// part of the rollout, the newest revision taking the rounding) and a tag's own host's
// rollout is not shown: status.traffic stays the default host's split, which DomainMappings
// and Gateway API backendRefs route by. Without a rollout under way traffic is returned as
// it is.
func (r *Rollout) StatusTargets(traffic []servingv1.TrafficTarget) []servingv1.TrafficTarget {
	if r.Done() {
		return traffic
	}
	var out []servingv1.TrafficTarget
	for _, t := range traffic {
		var c *ConfigurationRollout
		if isLatest(t) && t.Percent != nil && *t.Percent > 0 {
			c = r.config("", t.ConfigurationName)
		}
		if c == nil || c.done() || c.Percent <= 0 {
			out = append(out, t)
			continue
		}
		total, left := *t.Percent, *t.Percent
		for i, rev := range c.Revisions {
			share := total * int64(rev.Percent) / int64(c.Percent)
			if i == len(c.Revisions)-1 {
				share = left
			}
			left -= share
			if share <= 0 {
				continue
			}
			e := t
			e.RevisionName = rev.RevisionName
			e.Percent = &share
			out = append(out, e)
		}
	}
	return out
}

// Drop takes the revisions gone (deleted while being rolled away from) out of the rollout,
// their share going to the configuration's newest revision, so no host splits to a revision
// that no longer exists. Knative has no such step: its Ingress would route the share to a
// Service with no endpoints.
func (r *Rollout) Drop(gone func(revision string) bool) {
	for _, c := range r.Configurations {
		if c.done() {
			continue
		}
		kept := c.Revisions[:0]
		moved := 0
		for i, rev := range c.Revisions {
			if i < len(c.Revisions)-1 && gone(rev.RevisionName) {
				moved += rev.Percent
				continue
			}
			kept = append(kept, rev)
		}
		kept[len(kept)-1].Percent += moved
		c.Revisions = kept
		if c.done() {
			c.StepParams = RolloutParams{}
		}
	}
}
