package proxy

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/filter"
	"github.com/skiff-dev/skiff/gateway/route"
)

// resolveRoute matches the route (and picks the weighted cluster) and
// publishes it to the filters.
func (cm *ConnectionManager) resolveRoute(r *http.Request, ri *reqInfo, st *filter.State) {
	ri.vh, ri.route, ri.wc, ri.clusterName = nil, nil, nil, ""
	t := cm.RouteTable()
	if t == nil {
		st.SetRoute(nil)
		return
	}
	vh, rt := t.Match(r.Host, r)
	ri.vh, ri.route = vh, rt
	if rt == nil {
		st.SetRoute(nil)
		return
	}
	if rt.Kind == route.ActionForward && len(rt.Weighted) > 0 {
		ri.wc = rt.PickWeighted(rand.Uint64N(rt.TotalWeight))
	}
	if rt.Kind != route.ActionForward || rt.ClusterHeader == "" || len(rt.Weighted) > 0 {
		// The same for every request to this route (and weighted cluster): built once.
		info := cm.routeInfos(t).get(vh, rt, ri.wc)
		ri.clusterName = info.Cluster
		st.SetRoute(info)
		return
	}
	info := newRouteInfo(vh, rt, ri.wc)
	ri.clusterName = r.Header.Get(rt.ClusterHeader)
	info.Cluster = ri.clusterName
	st.SetRoute(info)
}

// newRouteInfo builds what filters see of a route (and weighted cluster wc, or nil).
func newRouteInfo(vh *route.VirtualHost, rt *route.Route, wc *route.WeightedCluster) *filter.RouteInfo {
	info := &filter.RouteInfo{VirtualHost: vh.Name, Route: rt.Name, Metadata: rt.Metadata, PerFilterConfig: map[string]*anypb.Any{}}
	for k, v := range vh.PerFilterConfig {
		info.PerFilterConfig[k] = v
	}
	for k, v := range rt.PerFilterConfig {
		info.PerFilterConfig[k] = v
	}
	if rt.Kind == route.ActionForward {
		switch {
		case wc != nil:
			info.Cluster = wc.Name
			for k, v := range wc.PerFilterConfig {
				info.PerFilterConfig[k] = v
			}
		case rt.ClusterHeader == "":
			info.Cluster = rt.Cluster
		}
	}
	return info
}

// maxCachedRouteInfos bounds a routeInfoCache (one entry per route and weighted cluster).
const maxCachedRouteInfos = 1 << 16

// routeInfoCache holds the RouteInfo of each route and weighted cluster of one route table,
// so that a request does not build one (and copy its per-filter configs) every time.
type routeInfoCache struct {
	table *route.Table
	infos sync.Map // routeInfoKey → *filter.RouteInfo
	n     atomic.Int64
}

type routeInfoKey struct {
	vh *route.VirtualHost
	rt *route.Route
	wc *route.WeightedCluster
}

// routeInfos returns the cache of table t, replacing the previous table's.
func (cm *ConnectionManager) routeInfos(t *route.Table) *routeInfoCache {
	if c := cm.infos.Load(); c != nil && c.table == t {
		return c
	}
	c := &routeInfoCache{table: t}
	cm.infos.Store(c)
	return c
}

func (c *routeInfoCache) get(vh *route.VirtualHost, rt *route.Route, wc *route.WeightedCluster) *filter.RouteInfo {
	k := routeInfoKey{vh, rt, wc}
	if v, ok := c.infos.Load(k); ok {
		return v.(*filter.RouteInfo)
	}
	info := newRouteInfo(vh, rt, wc)
	if c.n.Load() >= maxCachedRouteInfos {
		return info
	}
	if v, loaded := c.infos.LoadOrStore(k, info); loaded {
		return v.(*filter.RouteInfo)
	}
	c.n.Add(1)
	return info
}
