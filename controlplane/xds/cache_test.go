package xds

import (
	"fmt"
	"slices"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// The changeCache tests drive the cache as go-control-plane's SotW and delta servers do
// (pkg/server/sotw/v3 ads.go, pkg/server/delta/v3 server.go): one subscription per stream
// and type, updated from each request, and given a response's returned versions when the
// response is sent.

func testCLA(name string, port uint32) *endpointv3.ClusterLoadAssignment {
	cla, err := TranslateEndpoints(name, []Endpoint{{Address: "127.0.0.1", Port: port}})
	if err != nil {
		panic(err)
	}
	return cla
}

// sotwStream is one SotW stream of a type, as the server keeps it.
type sotwStream struct {
	t       *testing.T
	c       *changeCache
	sub     stream.Subscription
	started bool
	ch      chan cache.Response
	cancel  func()
	version string // of the last response the client accepted
}

func newSotWStream(t *testing.T, c *changeCache) *sotwStream {
	return &sotwStream{t: t, c: c, ch: make(chan cache.Response, 8)}
}

// request sends a request naming names (nil: wildcard) at the accepted version.
func (s *sotwStream) request(names ...string) {
	s.t.Helper()
	if s.cancel != nil {
		s.cancel()
	}
	// A superseded response still queued is dropped, unsent (processAllExcept).
	select {
	case <-s.ch:
	default:
	}
	if !s.started {
		s.sub = stream.NewSotwSubscription(names, true)
		s.started = true
	} else {
		s.sub.SetResourceSubscription(names)
	}
	req := &discoveryv3.DiscoveryRequest{TypeUrl: s.c.typeURL, VersionInfo: s.version, ResourceNames: names}
	cancel, err := s.c.CreateWatch(req, s.sub, s.ch)
	if err != nil {
		s.t.Fatal(err)
	}
	s.cancel = cancel
}

// recv returns the names in the response now due (sent, and accepted by the client), or
// nil, false when none is.
func (s *sotwStream) recv() ([]string, bool) {
	s.t.Helper()
	select {
	case r := <-s.ch:
		s.sub.SetReturnedResources(r.GetReturnedResources())
		d, _ := r.GetDiscoveryResponse()
		s.version = d.GetVersionInfo()
		var names []string
		for _, a := range d.GetResources() {
			m, err := a.UnmarshalNew()
			if err != nil {
				s.t.Fatal(err)
			}
			names = append(names, cache.GetResourceName(m))
		}
		slices.Sort(names)
		return names, true
	default:
		return nil, false
	}
}

func (s *sotwStream) want(what string, names ...string) {
	s.t.Helper()
	got, ok := s.recv()
	if !ok {
		s.t.Fatalf("%s: no response, want %v", what, names)
	}
	if !slices.Equal(got, names) {
		s.t.Fatalf("%s: response carries %v, want %v", what, got, names)
	}
}

func (s *sotwStream) wantNone(what string) {
	s.t.Helper()
	if got, ok := s.recv(); ok {
		s.t.Fatalf("%s: unexpected response with %v", what, got)
	}
}

func set(t *testing.T, c *changeCache, ports map[string]uint32, del ...string) {
	t.Helper()
	res := map[string]types.Resource{}
	for name, p := range ports {
		res[name] = testCLA(name, p)
	}
	if err := c.UpdateResources(res, del); err != nil {
		t.Fatal(err)
	}
}

// A SotW stream naming resources (EDS) gets what it lacks and nothing else: only the changed
// resources it subscribes to, a newly named one at once, and again what a dropped (superseded,
// never sent) response carried; a long history (the log compacted) is compared in full.
func TestChangeCacheSotWNamed(t *testing.T) {
	c := newChangeCache(resourcev3.EndpointType, "p-", false)
	set(t, c, map[string]uint32{"a": 1, "b": 1, "c": 1})
	s := newSotWStream(t, c)
	s.request("a", "b")
	s.want("first request", "a", "b")
	s.request("a", "b") // the ACK
	s.wantNone("ACK")
	set(t, c, map[string]uint32{"c": 2})
	s.wantNone("a resource not subscribed to changed")
	set(t, c, map[string]uint32{"a": 2})
	s.want("a changed", "a")
	s.request("a", "b")
	s.wantNone("ACK")
	s.request("a", "b", "c")
	s.want("c subscribed", "c")
	s.request("a", "b", "c")
	s.wantNone("ACK")

	// A response superseded by a new request is dropped: its change is sent again.
	set(t, c, map[string]uint32{"b": 2})
	s.request("a", "b", "c") // arrives before the response is sent
	s.want("b, after the response carrying it was dropped", "b")
	s.request("a", "b", "c")

	// a changes while the stream has no watch (its next request in flight), then so many
	// other changes that the log is forgotten: the stream still gets exactly a.
	s.cancel()
	set(t, c, map[string]uint32{"a": 3})
	for i := range 3000 {
		set(t, c, map[string]uint32{"x": uint32(i + 1)})
	}
	s.request("a", "b", "c")
	s.want("a after many changes", "a")
	s.request("a", "b", "c")
	s.wantNone("ACK")

	// A new stream (a reconnecting client) gets everything it names.
	r := newSotWStream(t, c)
	r.version = s.version
	r.request("a", "b", "c")
	r.want("reconnect", "a", "b", "c")
}

// A SotW wildcard stream of a full-state type (CDS) gets every resource in every response,
// and a removal is a response without the resource.
func TestChangeCacheSotWFullState(t *testing.T) {
	c := newChangeCache(resourcev3.EndpointType, "p-", true)
	set(t, c, map[string]uint32{"a": 1, "b": 1})
	s := newSotWStream(t, c)
	s.request()
	s.want("first request", "a", "b")
	s.request()
	s.wantNone("ACK")
	set(t, c, map[string]uint32{"c": 1})
	s.want("c added", "a", "b", "c")
	s.request()
	set(t, c, nil, "a")
	s.want("a removed", "b", "c")
	s.request()
	s.wantNone("ACK")
	set(t, c, map[string]uint32{"b": 1}) // same content, new version: still a response
	s.want("b set again", "b", "c")
}

// deltaStream is one delta stream of a type, as the server keeps it.
type deltaStream struct {
	t      *testing.T
	c      *changeCache
	sub    stream.Subscription
	ch     chan cache.DeltaResponse
	cancel func()
	nonce  int
}

func newDeltaStream(t *testing.T, c *changeCache, subscribe []string, initial map[string]string) *deltaStream {
	s := &deltaStream{t: t, c: c, ch: make(chan cache.DeltaResponse, 8)}
	s.sub = stream.NewDeltaSubscription(subscribe, nil, initial, true)
	s.watch(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: c.typeURL, ResourceNamesSubscribe: subscribe, InitialResourceVersions: initial})
	return s
}

func (s *deltaStream) watch(req *discoveryv3.DeltaDiscoveryRequest) {
	s.t.Helper()
	cancel, err := s.c.CreateDeltaWatch(req, s.sub, s.ch)
	if err != nil {
		s.t.Fatal(err)
	}
	s.cancel = cancel
}

// request sends an ACK, or a change of subscription.
func (s *deltaStream) request(subscribe, unsubscribe []string) {
	s.t.Helper()
	if s.cancel != nil {
		s.cancel()
	}
	s.sub.UpdateResourceSubscriptions(subscribe, unsubscribe)
	s.watch(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: s.c.typeURL, ResponseNonce: fmt.Sprint(s.nonce),
		ResourceNamesSubscribe: subscribe, ResourceNamesUnsubscribe: unsubscribe})
}

func (s *deltaStream) want(what string, changed []string, removed ...string) {
	s.t.Helper()
	select {
	case r := <-s.ch:
		s.nonce++
		s.sub.SetReturnedResources(r.GetNextVersionMap())
		d, _ := r.GetDeltaDiscoveryResponse()
		var names []string
		for _, res := range d.GetResources() {
			names = append(names, res.GetName())
		}
		slices.Sort(names)
		gone := slices.Sorted(slices.Values(d.GetRemovedResources()))
		if !slices.Equal(names, changed) || !slices.Equal(gone, removed) {
			s.t.Fatalf("%s: response carries %v and removes %v, want %v and %v", what, names, gone, changed, removed)
		}
	default:
		s.t.Fatalf("%s: no response, want %v and removed %v", what, changed, removed)
	}
}

func (s *deltaStream) wantNone(what string) {
	s.t.Helper()
	select {
	case r := <-s.ch:
		d, _ := r.GetDeltaDiscoveryResponse()
		s.t.Fatalf("%s: unexpected response with %d resources, removing %v", what, len(d.GetResources()), d.GetRemovedResources())
	default:
	}
}

// A delta stream gets only changes and removals, by name subscribed to or by wildcard; a
// reconnecting stream stating the versions it has gets only what differs.
func TestChangeCacheDelta(t *testing.T) {
	c := newChangeCache(resourcev3.EndpointType, "p-", false)
	set(t, c, map[string]uint32{"a": 1, "b": 1, "c": 1})

	named := newDeltaStream(t, c, []string{"a", "b"}, nil)
	named.want("named: first", []string{"a", "b"})
	named.request(nil, nil)
	wild := newDeltaStream(t, c, nil, nil)
	wild.want("wildcard: first", []string{"a", "b", "c"})
	wild.request(nil, nil)

	set(t, c, map[string]uint32{"c": 2})
	named.wantNone("named: c changed")
	wild.want("wildcard: c changed", []string{"c"})
	wild.request(nil, nil)

	set(t, c, map[string]uint32{"b": 1}, "a")
	named.want("named: a removed, b set to the same content", nil, "a")
	named.request(nil, nil)
	wild.want("wildcard: a removed", nil, "a")
	wild.request(nil, nil)

	named.request([]string{"c"}, []string{"b"})
	named.want("named: c subscribed", []string{"c"})
	named.request(nil, nil)
	set(t, c, map[string]uint32{"b": 3})
	named.wantNone("named: b unsubscribed changed")

	// Reconnect: the client states what it has; only b (changed since) is sent.
	versions := map[string]string{}
	for name, e := range c.entries {
		versions[name] = e.hash
	}
	versions["b"] = "old"
	again := newDeltaStream(t, c, nil, versions)
	again.want("reconnect", []string{"b"})
}
