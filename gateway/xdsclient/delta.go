package xdsclient

import (
	"context"
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// deltaStream is the incremental protocol's state on one stream.
type deltaStream struct {
	c       *Client
	sent    map[string][]string // subscribed names per type
	started map[string]bool     // types subscribed on this stream
}

func newDeltaStream(c *Client) *deltaStream {
	return &deltaStream{c: c, sent: map[string][]string{}, started: map[string]bool{}}
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
				names = c.subscription(t)
				if len(names) == 0 {
					continue
				}
			}
			initial := map[string]string{}
			wanted := set(names)
			for name, r := range c.state[t] {
				if isWildcard(t) || wanted[name] {
					initial[name] = r.Version
				}
			}
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: names, InitialResourceVersions: initial}
			if err := send(req); err != nil {
				return err
			}
			s.started[t], s.sent[t] = true, names
			continue
		}
		if isWildcard(t) {
			continue
		}
		names := c.subscription(t)
		add, remove := diff(s.sent[t], names)
		if len(add) == 0 && len(remove) == 0 {
			continue
		}
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: remove}); err != nil {
			return err
		}
		s.sent[t] = names
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

// applyDelta merges a delta response into the accepted resources of its type
// and hands the result to the Handler.
func (c *Client) applyDelta(ctx context.Context, resp *discoveryv3.DeltaDiscoveryResponse) error {
	t := resp.GetTypeUrl()
	c.updateStat(t, "update_attempt")
	next := make(map[string]Resource, len(c.state[t]))
	for name, r := range c.state[t] {
		next[name] = r
	}
	seen := map[string]bool{}
	for _, r := range resp.GetResources() {
		msg, err := decode(t, r.GetResource())
		if err != nil {
			return c.reject(t, resp.GetSystemVersionInfo(), fmt.Errorf("resource %q: %w", r.GetName(), err))
		}
		name := r.GetName()
		if name == "" {
			name = resourceName(msg)
		}
		if seen[name] {
			return c.reject(t, resp.GetSystemVersionInfo(), fmt.Errorf("duplicate %s resource %q in response", shortType(t), name))
		}
		seen[name] = true
		next[name] = Resource{Name: name, Version: r.GetVersion(), Message: msg}
	}
	for _, name := range resp.GetRemovedResources() {
		delete(next, name)
	}
	if !isWildcard(t) {
		subs := set(c.subscription(t))
		for name := range next {
			if !subs[name] {
				delete(next, name)
			}
		}
	}
	if err := c.cfg.Handler.Apply(ctx, t, next); err != nil {
		return c.reject(t, resp.GetSystemVersionInfo(), err)
	}
	c.state[t] = next
	c.updateStat(t, "update_success")
	c.log.Debug("accepted delta xDS update", "type", shortType(t), "nonce", resp.GetNonce(), "resources", len(next))
	return nil
}

// diff returns the names in next but not in prev, and those in prev but not in next.
func diff(prev, next []string) (added, removed []string) {
	p, n := set(prev), set(next)
	for _, name := range next {
		if !p[name] {
			added = append(added, name)
		}
	}
	for _, name := range prev {
		if !n[name] {
			removed = append(removed, name)
		}
	}
	return added, removed
}
