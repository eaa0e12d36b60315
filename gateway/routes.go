package gateway

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/skiff-dev/skiff/gateway/route"
	"github.com/skiff-dev/skiff/gateway/xdsclient"
)

// RouteTable implements proxy.RouteSource.
func (g *Gateway) RouteTable(name string) *route.Table {
	if strings.HasPrefix(name, scopedPrefix) {
		g.mu.RLock()
		ok := g.haveScopes
		g.mu.RUnlock()
		if t, found := g.scoped.Load(name); ok && found {
			return t.(*route.Table)
		}
		return nil
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.routes[name]
}

// scopedPrefix starts the RouteConfigName the gateway gives a connection manager with
// scoped routes: scopedPrefix + scoped_routes.name + "/" + the number of key fragments.
const scopedPrefix = "srds:"

// scopedTable returns the scoped table of a connection manager whose scope key is the host
// repeated n times.
func (g *Gateway) scopedTable(name string, n int) *route.Table {
	t, _ := g.scoped.LoadOrStore(name, route.NewScoped(name, func(host string) *route.Table {
		key := host
		if n > 1 {
			key = strings.Repeat(host+"\x00", n-1) + host
		}
		g.mu.RLock()
		defer g.mu.RUnlock()
		rc, ok := g.scopeIndex[key]
		if !ok {
			return nil
		}
		return g.routes[rc]
	}))
	return t.(*route.Table)
}

// scopeKey is the key of a ScopedRouteConfiguration as scopedTable looks it up.
func scopeKey(sc *routev3.ScopedRouteConfiguration) string {
	parts := make([]string, 0, len(sc.GetKey().GetFragments()))
	for _, f := range sc.GetKey().GetFragments() {
		parts = append(parts, f.GetStringKey())
	}
	return strings.Join(parts, "\x00")
}

// applyScopes validates the scopes (SRDS) as Envoy does (a route configuration name each,
// no two with one key) and makes them the ones requests are routed by.
func (g *Gateway) applyScopes(res map[string]xdsclient.Resource) error {
	index := make(map[string]string, len(res))
	byKey := make(map[string]string, len(res))
	for _, name := range slices.Sorted(maps.Keys(res)) {
		sc := res[name].Message.(*routev3.ScopedRouteConfiguration)
		if err := sc.ValidateAll(); err != nil {
			return fmt.Errorf("scoped route %q: %w", name, err)
		}
		if sc.GetRouteConfigurationName() == "" {
			return fmt.Errorf("scoped route %q: route_configuration_name is empty", name)
		}
		if sc.GetOnDemand() {
			return fmt.Errorf("scoped route %q: on_demand scopes are not supported", name)
		}
		k := scopeKey(sc)
		if first, dup := byKey[k]; dup {
			return fmt.Errorf("scope key conflict found, first scope is '%s', second scope is '%s'", first, name)
		}
		byKey[k] = name
		index[k] = sc.GetRouteConfigurationName()
	}
	g.mu.Lock()
	g.scopeIndex = index
	g.haveScopes = true
	g.mu.Unlock()
	g.subscribeRoutes()
	return nil
}

// subscribeRoutes asks for the RouteConfigurations listeners name and scopes point to.
func (g *Gateway) subscribeRoutes() {
	g.mu.RLock()
	names := slices.Clone(g.listenerRDS)
	for _, rc := range g.scopeIndex {
		names = append(names, rc)
	}
	g.mu.RUnlock()
	g.xds.Subscribe(xdsclient.RouteType, names)
}

func (g *Gateway) applyRoutes(res map[string]xdsclient.Resource) error {
	g.mu.RLock()
	prev, prevMsgs := g.routes, g.routeMsgs
	g.mu.RUnlock()
	tables := make(map[string]*route.Table, len(res))
	msgs := make(map[string]proto.Message, len(res))
	var errs []error
	var changed []string
	for name, r := range res {
		msgs[name] = r.Message
		// Only what changed is compiled: a RouteConfiguration the client hands back as it was
		// keeps its table, so one changed bucket costs its own virtual hosts only.
		if t := prev[name]; t != nil && prevMsgs[name] == r.Message {
			tables[name] = t
			continue
		}
		changed = append(changed, name)
		rc := r.Message.(*routev3.RouteConfiguration)
		t, err := route.Compile(rc)
		if err == nil {
			err = g.validatePerFilterConfigs(rc)
		}
		if err != nil {
			g.rdsStat(name, "update_rejected")
			errs = append(errs, err)
			continue
		}
		tables[name] = t
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	g.mu.Lock()
	g.routes, g.routeMsgs = tables, msgs
	g.mu.Unlock()
	for _, name := range changed {
		g.rdsStat(name, "update_success")
	}
	return nil
}

// validatePerFilterConfigs checks every typed_per_filter_config of rc
// (virtual hosts, routes, weighted clusters) with the filter factory that
// owns its type, as Envoy validates per-route filter configuration when it
// receives the RouteConfiguration.
func (g *Gateway) validatePerFilterConfigs(rc *routev3.RouteConfiguration) error {
	check := func(where string, m map[string]*anypb.Any) error {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if err := g.filters.ValidatePerRoute(m[k]); err != nil {
				return fmt.Errorf("route configuration %q: %s.typed_per_filter_config[%q]: %w", rc.GetName(), where, k, err)
			}
		}
		return nil
	}
	for i, vh := range rc.GetVirtualHosts() {
		vw := fmt.Sprintf("virtual_hosts[%d]", i)
		if err := check(vw, vh.GetTypedPerFilterConfig()); err != nil {
			return err
		}
		for j, rt := range vh.GetRoutes() {
			rw := fmt.Sprintf("%s.routes[%d]", vw, j)
			if err := check(rw, rt.GetTypedPerFilterConfig()); err != nil {
				return err
			}
			for k, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
				if err := check(fmt.Sprintf("%s.route.weighted_clusters.clusters[%d]", rw, k), wc.GetTypedPerFilterConfig()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// rdsStat counts http.<stat_prefix>.rds.<route_config>.<name> for every
// listener using the route configuration.
func (g *Gateway) rdsStat(routeName, name string) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, l := range g.listeners {
		if cm := l.manager(); cm.RouteConfigName() == routeName {
			g.stats.Counter("http." + cm.StatPrefix() + ".rds." + routeName + "." + name).Inc()
		}
	}
}
