package xds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// changeCache is the ADS server's cache of one resource type: go-control-plane's LinearCache
// semantics (a collection of named resources, SotW and delta watches, versions prefixed per
// server instance), but with the work per update and per request growing with what changed,
// not with how many resources exist or a stream subscribes to:
//
//   - every update appends the changed names to a change log (a sequence number per update);
//   - what a stream was sent is the subscription's returned-versions map, which the cache
//     keeps current in place instead of cloning it per response; a new watch only looks at
//     the log after the state the stream is known to have (see stamp);
//   - open watches are a short list (one per stream), checked against the changed names only;
//   - each resource is marshalled and hashed once, when set; every response, SotW full-state
//     ones included, shares those bytes.
//
// What stays O(subscribed names) is go-control-plane's SotW server handling a request that
// names resources (EDS, RDS): the request carries every name, and the server rebuilds the
// subscription from them. A SotW full-state response (CDS, LDS, scopes) lists every resource,
// by protocol, but as pointers to bytes marshalled once.
type changeCache struct {
	typeURL string
	prefix  string
	// sotwFull makes every state-of-the-world response carry every resource (of the
	// subscription): LDS and CDS by the protocol, and SRDS as Envoy reads it (scoped.go).
	sotwFull bool

	mu      sync.Mutex
	seq     uint64
	entries map[string]*cacheEntry
	// byAny finds an entry by the marshalled resource every response shares (see describe).
	byAny map[*anypb.Any]*cacheEntry
	// log lists, in order, the names changed by every update after floor.
	log     []changeRecord
	floor   uint64
	watches map[uint64]*cacheWatch
	nextID  uint64
}

// stampKey is the entry of a delta subscription's returned-versions map that holds the sequence
// number of the cache state it reflects. It cannot be a resource name (resource names have
// no NUL), and go-control-plane's delta server only adds and removes the names a request
// (un)subscribes.
const stampKey = "\x00seq"

// cacheEntry is one resource as it was set.
type cacheEntry struct {
	name string
	res  types.Resource
	any  *anypb.Any
	// version is the SotW version of the resource (prefix + the update's sequence number),
	// hash its content hash (the delta version, stable across control plane restarts).
	version, hash string
}

type changeRecord struct {
	seq  uint64
	name string
}

// cacheWatch is an open watch: exactly one of sotw and delta is set.
type cacheWatch struct {
	sotw     *cache.Request
	delta    *cache.DeltaRequest
	sub      cache.Subscription
	sotwOut  chan cache.Response
	deltaOut chan cache.DeltaResponse
}

var _ cache.Cache = (*changeCache)(nil)

func newChangeCache(typeURL, prefix string, sotwFull bool) *changeCache {
	return &changeCache{
		typeURL:  typeURL,
		prefix:   prefix,
		sotwFull: sotwFull || cache.ResourceRequiresFullStateInSotw(typeURL),
		entries:  make(map[string]*cacheEntry),
		byAny:    make(map[*anypb.Any]*cacheEntry),
		watches:  make(map[uint64]*cacheWatch),
	}
}

// UpdateResource adds or replaces one resource.
func (c *changeCache) UpdateResource(name string, res types.Resource) error {
	return c.UpdateResources(map[string]types.Resource{name: res}, nil)
}

// DeleteResource removes one resource; unknown names are ignored.
func (c *changeCache) DeleteResource(name string) error {
	return c.UpdateResources(nil, []string{name})
}

// UpdateResources adds or replaces set and deletes del, as one update: watches whose
// subscription has any of them are answered once.
func (c *changeCache) UpdateResources(set map[string]types.Resource, del []string) error {
	m := make(map[string]marshalled, len(set))
	for name, r := range set {
		if r == nil {
			return fmt.Errorf("update %s %s: nil resource", c.typeURL, name)
		}
		b, err := cache.MarshalResource(r)
		if err != nil {
			return fmt.Errorf("update %s %s: marshal: %w", c.typeURL, name, err)
		}
		m[name] = marshalled{r, b}
	}
	return c.updateMarshalled(m, del)
}

// marshalled is a resource with its deterministic encoding (cache.MarshalResource), for
// callers that have encoded it already (to hash it for ACK tracking).
type marshalled struct {
	res types.Resource
	b   []byte
}

// updateMarshalled is UpdateResources with the resources encoded.
func (c *changeCache) updateMarshalled(set map[string]marshalled, del []string) error {
	built := make(map[string]*cacheEntry, len(set))
	for name, r := range set {
		built[name] = &cacheEntry{name: name, res: r.res, any: &anypb.Any{TypeUrl: c.typeURL, Value: r.b}, hash: cache.HashResource(r.b)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	version := c.version()
	names := make([]string, 0, len(built)+len(del))
	for name, e := range built {
		if old := c.entries[name]; old != nil {
			delete(c.byAny, old.any)
		}
		e.version = version
		c.entries[name] = e
		c.byAny[e.any] = e
		names = append(names, name)
	}
	for _, name := range del {
		if _, ok := built[name]; ok {
			continue
		}
		if old := c.entries[name]; old != nil {
			delete(c.byAny, old.any)
		}
		delete(c.entries, name)
		names = append(names, name)
	}
	for _, name := range names {
		c.log = append(c.log, changeRecord{seq: c.seq, name: name})
	}
	// The log is compacted by forgetting it: a stream stamped before floor compares its
	// whole subscription once. That costs O(resources) per stream every O(resources) changes.
	if len(c.log) > 2*len(c.entries)+1024 {
		c.log, c.floor = nil, c.seq
	}
	c.notifyLocked(names)
	return nil
}

// version is the SotW version of the current state; c.mu must be held.
func (c *changeCache) version() string { return c.prefix + strconv.FormatUint(c.seq, 10) }

// describe returns the name and content hash of a resource of a response of this cache (by
// its marshalled form, which responses share), so that what a response carried is known
// without decoding it; ok is false for a resource no longer in the cache.
func (c *changeCache) describe(a *anypb.Any) (name, hash string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byAny[a]
	if e == nil {
		return "", "", false
	}
	return e.name, e.hash, true
}

// NumResources returns the number of resources in the cache.
func (c *changeCache) NumResources() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// CreateWatch implements cache.ConfigWatcher for state-of-the-world streams.
func (c *changeCache) CreateWatch(req *cache.Request, sub cache.Subscription, out chan cache.Response) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("request type %s does not match cache type %s", req.GetTypeUrl(), c.typeURL)
	}
	// A request without a version of this server instance has no state: it is always answered.
	force := req.GetVersionInfo() == "" || !strings.HasPrefix(req.GetVersionInfo(), c.prefix)
	return c.watch(&cacheWatch{sotw: req, sub: sub, sotwOut: out}, force, nil)
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta streams.
func (c *changeCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("request type %s does not match cache type %s", req.GetTypeUrl(), c.typeURL)
	}
	// Envoy waits for a first response to a wildcard subscription to finish initialising.
	force := sub.IsWildcard() && req.GetResponseNonce() == ""
	// The names this request (un)subscribed are the only change to the subscription since
	// the stream's last watch: they are compared besides the logged changes.
	extra := append(append([]string(nil), req.GetResourceNamesSubscribe()...), req.GetResourceNamesUnsubscribe()...)
	return c.watch(&cacheWatch{delta: req, sub: sub, deltaOut: out}, force, extra)
}

// watch answers w at once if the stream lacks something (or force), else keeps it open.
func (c *changeCache) watch(w *cacheWatch, force bool, extra []string) (func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d diff
	if stamp, ok := c.stamp(w); ok {
		i := sort.Search(len(c.log), func(i int) bool { return c.log[i].seq > stamp })
		seen := make(map[string]bool, len(c.log)-i+len(extra))
		for _, r := range c.log[i:] {
			if !seen[r.name] {
				seen[r.name] = true
				c.compare(w, r.name, &d)
			}
		}
		for _, name := range extra {
			if !seen[name] {
				seen[name] = true
				c.compare(w, name, &d)
			}
		}
	} else {
		c.compareAllLocked(w, &d)
	}
	if c.respondLocked(w, &d, force) {
		return func() {}, nil
	}
	c.nextID++
	id := c.nextID
	c.watches[id] = w
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.watches, id)
	}, nil
}

// notifyLocked answers the open watches whose streams lack any of names (one update's).
func (c *changeCache) notifyLocked(names []string) {
	for id, w := range c.watches {
		var d diff
		for _, name := range names {
			c.compare(w, name, &d)
		}
		if c.respondLocked(w, &d, false) {
			delete(c.watches, id)
		}
	}
}

// stamp returns the sequence number of the cache state w's stream is known to have (its
// returned versions reflect every change up to it, for every name it subscribes to), when
// the log still covers every change since; c.mu must be held.
//
// A delta stream's stamp is kept in its returned-versions map (stampKey). A SotW request
// carries the version of the last response the stream accepted, which is that number; its
// subscription is the request's names, and go-control-plane's server has dropped the names it
// no longer lists from the returned versions, so the subscription gained a name exactly when
// it has more names than the stream was sent (every subscribed resource exists, the usual
// case); otherwise the whole subscription is compared.
func (c *changeCache) stamp(w *cacheWatch) (uint64, bool) {
	var s string
	if w.sotw != nil {
		v, ok := strings.CutPrefix(w.sotw.GetVersionInfo(), c.prefix)
		if !ok || (!w.sub.IsWildcard() && len(w.sub.SubscribedResources()) != len(w.sub.ReturnedResources())) {
			return 0, false
		}
		s = v
	} else {
		v, ok := w.sub.ReturnedResources()[stampKey]
		// A stream switching to or from the wildcard is compared in full.
		if !ok || slices.Contains(w.delta.GetResourceNamesSubscribe(), "*") || slices.Contains(w.delta.GetResourceNamesUnsubscribe(), "*") {
			return 0, false
		}
		s = v
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < c.floor || v > c.seq {
		return 0, false
	}
	return v, true
}

// diff is what a stream lacks: resources it has at another version or not at all (changed),
// resources it has that are gone from the cache (gone) or from its subscription (dropped).
type diff struct {
	changed, gone, dropped []string
}

// compare adds name to d if w's stream holds it at another version than the cache, or
// holds it in vain; c.mu must be held.
func (c *changeCache) compare(w *cacheWatch, name string, d *diff) {
	known := w.sub.ReturnedResources()
	had, knows := known[name]
	e := c.entries[name]
	_, sub := w.sub.SubscribedResources()[name]
	switch {
	case e != nil && (sub || w.sub.IsWildcard()):
		want := e.version
		if w.delta != nil {
			want = e.hash
		}
		if !knows || had != want {
			d.changed = append(d.changed, name)
		}
	case knows && e == nil:
		d.gone = append(d.gone, name)
	case knows:
		d.dropped = append(d.dropped, name)
	}
}

// compareAllLocked compares every name w's stream could lack or hold in vain: its
// subscription (every resource for a wildcard one) and what it was sent; c.mu must be held.
func (c *changeCache) compareAllLocked(w *cacheWatch, d *diff) {
	if w.sub.IsWildcard() {
		for name := range c.entries {
			c.compare(w, name, d)
		}
	} else {
		for name := range w.sub.SubscribedResources() {
			c.compare(w, name, d)
		}
	}
	for name := range w.sub.ReturnedResources() {
		if name == stampKey {
			continue
		}
		if _, sub := w.sub.SubscribedResources()[name]; sub && !w.sub.IsWildcard() {
			continue // compared above
		}
		if _, ok := c.entries[name]; ok && w.sub.IsWildcard() {
			continue // compared above
		}
		c.compare(w, name, d)
	}
}

// respondLocked sends w a response if its stream lacks anything in d, or if force, and
// reports whether it did; c.mu must be held. The response's changes to the stream's
// returned versions apply when the server sends it (see returned).
func (c *changeCache) respondLocked(w *cacheWatch, d *diff, force bool) bool {
	known := w.sub.ReturnedResources()
	forget := append(slices.Clip(d.gone), d.dropped...)
	if w.delta != nil {
		// Unsubscribed names are forgotten with the next response, not reported removed.
		if len(d.changed) == 0 && len(d.gone) == 0 && !force {
			return false
		}
		r := &deltaResponse{req: w.delta, returned: returned{c: c, known: known, seq: c.seq, removed: forget, stamp: true}}
		r.resp = &discoveryv3.DeltaDiscoveryResponse{TypeUrl: c.typeURL, SystemVersionInfo: c.version(), RemovedResources: d.gone}
		for _, name := range d.changed {
			e := c.entries[name]
			r.resp.Resources = append(r.resp.Resources, &discoveryv3.Resource{Name: name, Version: e.hash, Resource: e.any})
			r.set = append(r.set, nameVersion{name, e.hash})
		}
		w.deltaOut <- r
		return true
	}
	if c.sotwFull {
		if len(d.changed) == 0 && len(d.gone) == 0 && !force {
			return false
		}
	} else if len(d.changed) == 0 && !force {
		// A SotW response of this type cannot say what was removed: only changes need one.
		return false
	}
	r := &sotwResponse{req: w.sotw, returned: returned{c: c, known: known, seq: c.seq, removed: forget}}
	r.resp = &discoveryv3.DiscoveryResponse{TypeUrl: c.typeURL, VersionInfo: c.version()}
	for _, name := range d.changed {
		r.set = append(r.set, nameVersion{name, c.entries[name].version})
	}
	switch {
	case !c.sotwFull:
		for _, name := range d.changed {
			r.resp.Resources = append(r.resp.Resources, c.entries[name].any)
		}
	case w.sub.IsWildcard():
		// Full state: every resource, all marshalled already.
		r.resp.Resources = make([]*anypb.Any, 0, len(c.entries))
		for _, e := range c.entries {
			r.resp.Resources = append(r.resp.Resources, e.any)
		}
	default:
		for name := range w.sub.SubscribedResources() {
			if e := c.entries[name]; e != nil {
				r.resp.Resources = append(r.resp.Resources, e.any)
			}
		}
	}
	w.sotwOut <- r
	return true
}

type nameVersion struct{ name, version string }

// returned applies a response's changes to the stream's returned-versions map, once, when the
// server sends the response (a SotW server drops a response superseded by a new request, so
// a dropped one must leave the map as it was). The map is the subscription's own: it is
// updated in place under c.mu (the cache reads it for open watches) instead of cloned. The
// cache sends responses with c.mu held, which the server's stream goroutine takes here; that
// never waits on a full channel: go-control-plane's servers buffer a response per type (SotW)
// or two (delta), and a stream has at most one open watch per type, answered once (a delta
// response may still be queued when the next watch of its type answers: two).
type returned struct {
	c     *changeCache
	known map[string]string
	seq   uint64
	set   []nameVersion
	// removed are names the stream held that are gone from the cache or its subscription.
	removed []string
	// stamp records seq in the map (delta streams; see changeCache.stamp).
	stamp bool
	once  sync.Once
}

func (r *returned) apply() map[string]string {
	r.once.Do(func() {
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		for _, nv := range r.set {
			r.known[nv.name] = nv.version
		}
		for _, name := range r.removed {
			delete(r.known, name)
		}
		if !r.stamp {
			return
		}
		if s, ok := r.known[stampKey]; !ok || parseSeq(s) < r.seq {
			r.known[stampKey] = strconv.FormatUint(r.seq, 10)
		}
	})
	return r.known
}

func parseSeq(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// sotwResponse is a state-of-the-world response of a changeCache.
type sotwResponse struct {
	returned
	req  *cache.Request
	resp *discoveryv3.DiscoveryResponse
}

var _ cache.Response = (*sotwResponse)(nil)

func (r *sotwResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	return r.resp, nil
}
func (r *sotwResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)               { return r.resp.GetVersionInfo(), nil }
func (r *sotwResponse) GetResponseVersion() string                { return r.resp.GetVersionInfo() }
func (r *sotwResponse) GetContext() context.Context               { return context.Background() }
func (r *sotwResponse) GetReturnedResources() map[string]string   { return r.apply() }

// deltaResponse is a delta response of a changeCache.
type deltaResponse struct {
	returned
	req  *cache.DeltaRequest
	resp *discoveryv3.DeltaDiscoveryResponse
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	return r.resp, nil
}
func (r *deltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error) {
	return r.resp.GetSystemVersionInfo(), nil
}
func (r *deltaResponse) GetResponseVersion() string              { return r.resp.GetSystemVersionInfo() }
func (r *deltaResponse) GetContext() context.Context             { return context.Background() }
func (r *deltaResponse) GetNextVersionMap() map[string]string    { return r.apply() }
func (r *deltaResponse) GetReturnedResources() map[string]string { return r.apply() }

// Fetch is the REST variant of xDS, which Skiff does not serve.
func (c *changeCache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("fetch is not served")
}
