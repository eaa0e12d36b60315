package xdsclient

import (
	"context"
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// sotwStream is the state-of-the-world protocol's state on one stream.
type sotwStream struct {
	c       *Client
	nonces  map[string]string // last response nonce per type
	sent    map[string]uint64 // version of the subscription last requested per type
	started map[string]bool   // types requested on this stream
}

func newSotWStream(c *Client) *sotwStream {
	return &sotwStream{c: c, nonces: map[string]string{}, sent: map[string]uint64{}, started: map[string]bool{}}
}

func (s *sotwStream) kind() string { return "" }

func (s *sotwStream) setNode(req *discoveryv3.DiscoveryRequest) { req.Node = s.c.cfg.Node }

func (s *sotwStream) typeURL(req *discoveryv3.DiscoveryRequest) string { return req.GetTypeUrl() }

func (s *sotwStream) subscribe(send func(*discoveryv3.DiscoveryRequest) error) error {
	c := s.c
	for _, t := range subscriptionOrder {
		names, version := c.subscription(t)
		if isWildcard(t) {
			if s.started[t] || !c.wanted(t) {
				continue
			}
			names = nil
		} else if (!s.started[t] && len(names) == 0) || (s.started[t] && version == s.sent[t]) {
			continue
		}
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: c.versions[t], ResourceNames: names, ResponseNonce: s.nonces[t]}
		if err := send(req); err != nil {
			return err
		}
		s.started[t], s.sent[t] = true, version
	}
	return nil
}

func (s *sotwStream) respond(ctx context.Context, resp *discoveryv3.DiscoveryResponse) (string, *discoveryv3.DiscoveryRequest, error) {
	c := s.c
	t := resp.GetTypeUrl()
	s.nonces[t] = resp.GetNonce()
	err := c.applySotW(ctx, resp)
	names, version := c.subscription(t)
	if isWildcard(t) {
		names = nil
	}
	req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResourceNames: names, ResponseNonce: resp.GetNonce()}
	s.started[t], s.sent[t] = true, version
	if err != nil {
		req.VersionInfo = c.versions[t]
		req.ErrorDetail = nackDetail(err)
		return t, req, err
	}
	c.versions[t] = resp.GetVersionInfo()
	req.VersionInfo = resp.GetVersionInfo()
	return t, req, nil
}

// applySotW compares a state-of-the-world response with the accepted resources of its
// type and hands the Handler what changed. Resources with the bytes of an accepted one are
// not decoded again, and are not changes.
func (c *Client) applySotW(ctx context.Context, resp *discoveryv3.DiscoveryResponse) error {
	t := resp.GetTypeUrl()
	c.updateStat(t, "update_attempt")
	state := c.state[t]
	u := Update{Changed: map[string]Resource{}, accepted: state}
	seen := make(map[string]bool, len(resp.GetResources()))
	for _, a := range resp.GetResources() {
		r, err := c.decodeResource(t, a, resp.GetVersionInfo())
		if err != nil {
			return c.reject(t, resp.GetVersionInfo(), err)
		}
		if seen[r.Name] {
			return c.reject(t, resp.GetVersionInfo(), fmt.Errorf("duplicate %s resource %q in response", shortType(t), r.Name))
		}
		seen[r.Name] = true
		if !isWildcard(t) && !c.subscribed(t, r.Name) {
			continue
		}
		if old, ok := state[r.Name]; ok && old.raw == r.raw {
			continue
		}
		u.Changed[r.Name] = r
	}
	if isWildcard(t) {
		// The response is the whole set: what it lacks is gone.
		for name := range state {
			if !seen[name] {
				u.Removed = append(u.Removed, name)
			}
		}
	} else {
		// RDS and EDS responses only carry the resources they name; resources not mentioned
		// stay as they were, unless no longer subscribed to.
		for _, name := range c.dropped(t) {
			if _, ok := u.Changed[name]; !ok {
				u.Removed = append(u.Removed, name)
			}
		}
	}
	if err := c.cfg.Handler.Apply(ctx, t, u); err != nil {
		return c.reject(t, resp.GetVersionInfo(), err)
	}
	c.accept(t, u)
	c.updateStat(t, "update_success")
	c.log.Debug("accepted xDS update", "type", shortType(t), "version", resp.GetVersionInfo(), "changed", len(u.Changed), "removed", len(u.Removed))
	return nil
}
