package xds

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// DefaultRouteBuckets is Options.RouteBuckets' default with the scoped layout: enough
// buckets that one at 50,000 Services holds ~50 virtual hosts.
const DefaultRouteBuckets = 1024

// AuthorityHeader is the header the scope key is built from: the request's host, after the
// connection manager has stripped its port (strip_any_host_port).
const AuthorityHeader = ":authority"

// scopeArity is how many times a listener's scope key repeats the host. Envoy delivers every
// ScopedRouteConfiguration over ADS to every connection manager with scoped_rds (the
// subscription is a wildcard), and rejects two scopes with the same key; a key of a different
// length per listener keeps the listeners' scopes apart, so that a host of the cluster-local
// listener is never found by the external one.
func scopeArity(listener string) int {
	switch listener {
	case ListenerName:
		return 1
	case LocalListenerName:
		return 2
	case HTTPSListenerName:
		return 3
	}
	return 0
}

// bucketRouteConfigName is the RouteConfiguration of bucket b of a listener's routes.
func bucketRouteConfigName(listener string, b int) string {
	return fmt.Sprintf("%s/b%04d", listener, b)
}

// listenerOfRouteConfig is the listener a RouteConfiguration belongs to: its name up to "/"
// (the whole name in the single layout).
func listenerOfRouteConfig(name string) string {
	l, _, _ := strings.Cut(name, "/")
	return l
}

// scopeName is the ScopedRouteConfiguration of one host on one listener.
func scopeName(listener, host string) string { return listener + "/" + host }

// routeBucket is the bucket of a Route's virtual hosts: a hash of its key, so it never moves.
func routeBucket(key string, buckets int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(buckets))
}

// scopedRoutes is the route specifier of a listener in the scoped layout: scopes from SRDS
// over ADS keyed by the host (repeated arity times), their RouteConfigurations from RDS.
func scopedRoutes(listener string) *hcmv3.HttpConnectionManager_ScopedRoutes {
	var fragments []*hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder
	for range scopeArity(listener) {
		fragments = append(fragments, &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder{
			Type: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_{
				HeaderValueExtractor: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor{
					// No separator: the whole value is the fragment.
					Name: AuthorityHeader,
				},
			},
		})
	}
	return &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name:            listener,
		ScopeKeyBuilder: &hcmv3.ScopedRoutes_ScopeKeyBuilder{Fragments: fragments},
		RdsConfigSource: adsConfigSource(),
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRds{ScopedRds: &hcmv3.ScopedRds{
			ScopedRdsConfigSource: adsConfigSource(),
		}},
	}}
}

// TranslateScope returns the ScopedRouteConfiguration sending host, on listener, to the
// RouteConfiguration routeConfig.
func TranslateScope(listener, host, routeConfig string) (*routev3.ScopedRouteConfiguration, error) {
	n := scopeArity(listener)
	if n == 0 {
		return nil, fmt.Errorf("translate scope: unknown listener %q", listener)
	}
	if host == "" || strings.ContainsAny(host, "*") {
		return nil, fmt.Errorf("translate scope: domain %q: scoped routes need an exact host (wildcards need the single route configuration layout)", host)
	}
	key := &routev3.ScopedRouteConfiguration_Key{}
	for range n {
		key.Fragments = append(key.Fragments, &routev3.ScopedRouteConfiguration_Key_Fragment{
			Type: &routev3.ScopedRouteConfiguration_Key_Fragment_StringKey{StringKey: host},
		})
	}
	sc := &routev3.ScopedRouteConfiguration{Name: scopeName(listener, host), RouteConfigurationName: routeConfig, Key: key}
	if err := sc.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate scope %s: %w", sc.GetName(), err)
	}
	return sc, nil
}

// flushScopedLocked is flushRoutes in the scoped layout: it reassembles only the buckets of
// the Routes changed since the last push, and updates only their scopes; s.mu must be held.
func (s *Server) flushScopedLocked() error {
	// The Routes of each changed bucket, and the scopes the changed Routes' hosts need.
	for key := range s.dirty {
		b := routeBucket(key, s.buckets)
		keys := s.bucketKeys[b]
		if _, ok := s.vhosts[key]; ok {
			if keys == nil {
				keys = make(map[string]bool)
				s.bucketKeys[b] = keys
			}
			keys[key] = true
		} else if keys != nil {
			delete(keys, key)
			if len(keys) == 0 {
				delete(s.bucketKeys, b)
			}
		}
	}
	updated := map[string]*routev3.RouteConfiguration{}
	var deleted []string
	for b := range s.dirtyBuckets {
		for _, listener := range s.ls.RouteConfigNames() {
			name := bucketRouteConfigName(listener, b)
			var all []*routev3.VirtualHost
			for key := range s.bucketKeys[b] {
				all = append(all, s.vhosts[key][listener]...)
			}
			if len(all) == 0 {
				if s.routeConfigs[name] != nil {
					deleted = append(deleted, name)
				}
				continue
			}
			rc, err := TranslateRouteConfiguration(all)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rc.Name = name
			if proto.Equal(rc, s.routeConfigs[name]) {
				continue
			}
			updated[name] = rc
		}
	}
	// The scopes of the changed Routes' hosts.
	setScopes := map[string]types.Resource{}
	var delScopes []string
	for key := range s.dirty {
		want := map[string]*routev3.ScopedRouteConfiguration{}
		b := routeBucket(key, s.buckets)
		for listener, vhs := range s.vhosts[key] {
			for _, vh := range vhs {
				for _, d := range vh.GetDomains() {
					sc, err := TranslateScope(listener, strings.ToLower(d), bucketRouteConfigName(listener, b))
					if err != nil {
						return fmt.Errorf("route %s: %w", key, err)
					}
					want[sc.GetName()] = sc
				}
			}
		}
		old := s.routeScopes[key]
		for name, sc := range want {
			if o, ok := old[name]; !ok || !proto.Equal(o, sc) {
				setScopes[name] = sc
			}
		}
		for name := range old {
			if _, ok := want[name]; !ok {
				// Another Route may have taken the host over in this same flush.
				if _, taken := setScopes[name]; !taken {
					delScopes = append(delScopes, name)
				}
			}
		}
	}
	delScopes = slices.DeleteFunc(delScopes, func(n string) bool { _, set := setScopes[n]; return set })
	// The RouteConfigurations first, so a proxy given a new scope finds its routes; then the
	// scopes; the emptied RouteConfigurations last, once no scope points at them.
	// Each is encoded once: for its hash (what ACKs are matched against) and for the cache.
	setRoutes := make(map[string]marshalled, len(updated))
	for name, rc := range updated {
		b, err := cache.MarshalResource(rc)
		if err != nil {
			return fmt.Errorf("marshal route configuration %s: %w", name, err)
		}
		s.routesVersions[name] = s.acks.recordRoutes(name, cache.HashResource(b))
		setRoutes[name] = marshalled{rc, b}
	}
	if len(updated) > 0 {
		for name, rc := range updated {
			s.routeConfigs[name] = rc
		}
		if err := s.routes.updateMarshalled(setRoutes, nil); err != nil {
			return fmt.Errorf("update route configurations: %w", err)
		}
	}
	scopes := make(map[string]marshalled, len(setScopes))
	for name, r := range setScopes {
		b, err := cache.MarshalResource(r)
		if err != nil {
			return fmt.Errorf("marshal scope %s: %w", name, err)
		}
		s.scopeHash[name] = cache.HashResource(b)
		scopes[name] = marshalled{r, b}
	}
	for _, name := range delScopes {
		delete(s.scopeHash, name)
	}
	if len(setScopes) > 0 || len(delScopes) > 0 {
		if err := s.scopes.updateMarshalled(scopes, delScopes); err != nil {
			return fmt.Errorf("update scopes: %w", err)
		}
	}
	if len(deleted) > 0 {
		for _, name := range deleted {
			delete(s.routeConfigs, name)
			delete(s.routesVersions, name)
		}
		if err := s.routes.UpdateResources(nil, deleted); err != nil {
			return fmt.Errorf("delete route configurations: %w", err)
		}
	}
	for key := range s.dirty {
		v, ok := s.vhosts[key]
		if !ok {
			delete(s.routeScopes, key)
			continue
		}
		want := map[string]*routev3.ScopedRouteConfiguration{}
		b := routeBucket(key, s.buckets)
		versions := make(map[string]uint64, len(v))
		for listener, vhs := range v {
			name := bucketRouteConfigName(listener, b)
			versions[name] = s.routesVersions[name]
			for _, vh := range vhs {
				for _, d := range vh.GetDomains() {
					n := scopeName(listener, strings.ToLower(d))
					if sc, ok := setScopes[n]; ok {
						want[n] = sc.(*routev3.ScopedRouteConfiguration)
					} else {
						want[n] = s.routeScopes[key][n]
					}
				}
			}
		}
		s.routeScopes[key] = want
		s.routeVersions[key] = versions
	}
	clear(s.dirty)
	clear(s.dirtyBuckets)
	return nil
}
