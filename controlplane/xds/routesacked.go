package xds

import (
	"maps"
	"slices"
	"strings"
)

// RoutesAcked reports whether every serving proxy (at least one) has ACKed the current
// virtual hosts of every Route, and the current endpoints of the clusters they send traffic
// to: the proxy serves everything the control plane has configured. Eventing waits for it
// before delivering through the proxy after a start, so an event is not sent to a host the
// proxy does not route yet (404).
func (s *Server) RoutesAcked() bool {
	s.mu.Lock()
	keys := slices.Collect(maps.Keys(s.vhosts))
	s.mu.Unlock()
	if len(keys) == 0 {
		return s.acks.routesAcked(nil, nil)
	}
	for _, k := range keys {
		ns, name, _ := strings.Cut(k, "/")
		if !s.RouteAcked(ns, name) {
			return false
		}
	}
	return true
}
