package gateway

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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

// applyScopes validates the changed scopes (SRDS) as Envoy does (a route configuration name
// each, no two with one key) and makes them, without the removed ones, the scopes requests are
// routed by. The work grows with the change, not with the number of scopes.
func (g *Gateway) applyScopes(u xdsclient.Update) error {
	g.mu.RLock()
	keyOf := func(name string) (string, bool) { k, ok := g.scopeKeys[name]; return k, ok }
	// The key each changed scope takes, and the scopes that leave a key (removed or re-keyed).
	next := make(map[string]string, len(u.Changed))
	leaving := make(map[string]bool, len(u.Removed)+len(u.Changed))
	for _, name := range u.Removed {
		leaving[name] = true
	}
	var err error
	for _, name := range slices.Sorted(maps.Keys(u.Changed)) {
		sc := u.Changed[name].Message.(*routev3.ScopedRouteConfiguration)
		switch {
		case sc.ValidateAll() != nil:
			err = fmt.Errorf("scoped route %q: %w", name, sc.ValidateAll())
		case sc.GetRouteConfigurationName() == "":
			err = fmt.Errorf("scoped route %q: route_configuration_name is empty", name)
		case sc.GetOnDemand():
			err = fmt.Errorf("scoped route %q: on_demand scopes are not supported", name)
		}
		if err != nil {
			break
		}
		next[name] = scopeKey(sc)
		if k, ok := keyOf(name); ok && k != next[name] {
			leaving[name] = true
		}
	}
	if err == nil {
		byKey := make(map[string]string, len(next))
		for _, name := range slices.Sorted(maps.Keys(next)) {
			k := next[name]
			first, dup := byKey[k]
			if owner, ok := g.scopeOwner[k]; !dup && ok && owner != name && !leaving[owner] {
				first, dup = owner, true
			}
			if dup {
				err = fmt.Errorf("scope key conflict found, first scope is '%s', second scope is '%s'", first, name)
				break
			}
			byKey[k] = name
		}
	}
	g.mu.RUnlock()
	if err != nil {
		return err
	}
	g.mu.Lock()
	refsChanged := false
	forget := func(name string) {
		k, ok := g.scopeKeys[name]
		if !ok {
			return
		}
		if g.scopeOwner[k] == name {
			rc := g.scopeIndex[k]
			delete(g.scopeOwner, k)
			delete(g.scopeIndex, k)
			if g.rcRefs[rc]--; g.rcRefs[rc] <= 0 {
				delete(g.rcRefs, rc)
				refsChanged = true
			}
		}
		delete(g.scopeKeys, name)
	}
	for _, name := range u.Removed {
		forget(name)
	}
	for name := range next {
		forget(name)
	}
	for name, k := range next {
		rc := u.Changed[name].Message.(*routev3.ScopedRouteConfiguration).GetRouteConfigurationName()
		g.scopeKeys[name], g.scopeOwner[k], g.scopeIndex[k] = k, name, rc
		if g.rcRefs[rc]++; g.rcRefs[rc] == 1 {
			refsChanged = true
		}
	}
	first := !g.haveScopes
	g.haveScopes = true
	g.mu.Unlock()
	if refsChanged || first {
		g.subscribeRoutes()
	}
	return nil
}

// subscribeRoutes asks for the RouteConfigurations listeners name and scopes point to.
func (g *Gateway) subscribeRoutes() {
	g.mu.RLock()
	names := slices.Clone(g.listenerRDS)
	for rc := range g.rcRefs {
		names = append(names, rc)
	}
	g.mu.RUnlock()
	g.xds.Subscribe(xdsclient.RouteType, names)
}

// applyRoutes compiles the changed RouteConfigurations (any error rejects the update) and
// drops the removed ones; the others keep their compiled tables.
func (g *Gateway) applyRoutes(u xdsclient.Update) error {
	tables := make(map[string]*route.Table, len(u.Changed))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(u.Changed)) {
		rc := u.Changed[name].Message.(*routev3.RouteConfiguration)
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
	for _, name := range u.Removed {
		delete(g.routes, name)
	}
	maps.Copy(g.routes, tables)
	g.mu.Unlock()
	for name := range tables {
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
