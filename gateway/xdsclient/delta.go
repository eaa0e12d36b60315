package xdsclient

import (
	"context"
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// deltaStream is the incremental protocol's state on one stream.
type deltaStream struct {
	c       *Client
	started map[string]bool // types subscribed on this stream
}

func newDeltaStream(c *Client) *deltaStream {
	return &deltaStream{c: c, started: map[string]bool{}}
}

func (s *deltaStream) kind() string { return "delta " }

func (s *deltaStream) setNode(req *discoveryv3.DeltaDiscoveryRequest) { req.Node = s.c.cfg.Node }

func (s *deltaStream) typeURL(req *discoveryv3.DeltaDiscoveryRequest) string {
	return req.GetTypeUrl()
}

func (s *deltaStream) subscribe(send func(*discoveryv3.DeltaDiscoveryRequest) error) error {
	c := s.c
	for _, t := range subscriptionOrder {
		if !s.started[t] {
			var names []string
			if isWildcard(t) && !c.wanted(t) {
				continue
			}
			if !isWildcard(t) {
				names, _ = c.subscription(t)
				if len(names) == 0 {
					continue
				}
			}
			c.takeDelta(t) // the initial request carries the whole subscription
			initial := map[string]string{}
			for name, r := range c.state[t] {
				if isWildcard(t) || c.subscribed(t, name) {
					initial[name] = r.Version
				}
			}
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: names, InitialResourceVersions: initial}
			if err := send(req); err != nil {
				return err
			}
			s.started[t] = true
			continue
		}
		if isWildcard(t) {
			continue
		}
		add, remove := c.takeDelta(t)
		if len(add) == 0 && len(remove) == 0 {
			continue
		}
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: remove}); err != nil {
			return err
		}
	}
	return nil
}

func (s *deltaStream) respond(ctx context.Context, resp *discoveryv3.DeltaDiscoveryResponse) (string, *discoveryv3.DeltaDiscoveryRequest, error) {
	t := resp.GetTypeUrl()
	err := s.c.applyDelta(ctx, resp)
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	if err != nil {
		req.ErrorDetail = nackDetail(err)
	}
	return t, req, err
}

// applyDelta hands the Handler the resources a delta response changes and removes.
func (c *Client) applyDelta(ctx context.Context, resp *discoveryv3.DeltaDiscoveryResponse) error {
	t := resp.GetTypeUrl()
	c.updateStat(t, "update_attempt")
	state := c.state[t]
	u := Update{Changed: make(map[string]Resource, len(resp.GetResources())), accepted: state}
	for _, r := range resp.GetResources() {
		msg, err := decode(t, r.GetResource())
		if err != nil {
			return c.reject(t, resp.GetSystemVersionInfo(), fmt.Errorf("resource %q: %w", r.GetName(), err))
		}
		name := r.GetName()
		if name == "" {
			name = resourceName(msg)
		}
		if _, dup := u.Changed[name]; dup {
			return c.reject(t, resp.GetSystemVersionInfo(), fmt.Errorf("duplicate %s resource %q in response", shortType(t), name))
		}
		if !isWildcard(t) && !c.subscribed(t, name) {
			continue
		}
		u.Changed[name] = Resource{Name: name, Version: r.GetVersion(), Message: msg}
	}
	removed := map[string]bool{}
	for _, name := range resp.GetRemovedResources() {
		if _, ok := state[name]; ok {
			removed[name] = true
		}
	}
	if !isWildcard(t) {
		for _, name := range c.dropped(t) {
			removed[name] = true
		}
	}
	for name := range removed {
		if _, ok := u.Changed[name]; !ok {
			u.Removed = append(u.Removed, name)
		}
	}
	if err := c.cfg.Handler.Apply(ctx, t, u); err != nil {
		return c.reject(t, resp.GetSystemVersionInfo(), err)
	}
	c.accept(t, u)
	c.updateStat(t, "update_success")
	c.log.Debug("accepted delta xDS update", "type", shortType(t), "nonce", resp.GetNonce(), "changed", len(u.Changed), "removed", len(u.Removed))
	return nil
}
