package upstream

import (
	"errors"
	"math/rand/v2"
	"slices"
)

// LBPolicy is a cluster's load balancing policy (the fallback policy when
// the cluster uses override_host).
type LBPolicy int

const (
	// RoundRobin cycles through healthy hosts.
	RoundRobin LBPolicy = iota
	// LeastRequest picks the less loaded of two random hosts.
	LeastRequest
	// Random picks a random healthy host.
	Random
)

type hostSet struct {
	all     []*Host
	healthy []*Host // hosts of the best priority with healthy hosts
}

// ErrNoHealthyUpstream is returned by Pick when the cluster has no healthy host.
var ErrNoHealthyUpstream = errors.New("no healthy upstream")

// Pick chooses a healthy host by the cluster's load balancing policy,
// avoiding hosts in exclude when any other healthy host exists.
func (c *Cluster) Pick(exclude []*Host) (*Host, error) {
	return c.PickFor(LBContext{}, exclude)
}

// PickFor is Pick for a request described by lbc. With an override_host
// load balancing policy, the first healthy cluster host named by the
// request's override sources (dynamic metadata or headers) and not in
// exclude is chosen; otherwise the fallback policy picks.
func (c *Cluster) PickFor(lbc LBContext, exclude []*Host) (*Host, error) {
	hs := c.hosts.Load()
	if hs != nil && c.lb.override != nil {
		if h, err := c.lb.override.pick(hs, lbc, exclude); err == nil {
			return h, nil
		}
	}
	if hs == nil || len(hs.healthy) == 0 {
		c.st.noneHealthy.Inc()
		return nil, ErrNoHealthyUpstream
	}
	cands := hs.healthy
	if len(exclude) > 0 {
		filtered := make([]*Host, 0, len(cands))
		for _, h := range cands {
			if !slices.Contains(exclude, h) {
				filtered = append(filtered, h)
			}
		}
		if len(filtered) > 0 {
			cands = filtered
		}
	}
	if len(cands) == 1 {
		return cands[0], nil
	}
	switch c.lb.policy {
	case LeastRequest:
		if c.lb.choiceCount != defaultChoiceCount {
			return pickLeastRequest(cands, c.lb.choiceCount), nil
		}
		a, b := rand.N(len(cands)), rand.N(len(cands)-1)
		if b >= a {
			b++
		}
		ha, hb := cands[a], cands[b]
		if hb.Active() < ha.Active() {
			return hb, nil
		}
		return ha, nil
	case Random:
		return cands[rand.N(len(cands))], nil
	default:
		return cands[c.rr.Add(1)%uint64(len(cands))], nil
	}
}
