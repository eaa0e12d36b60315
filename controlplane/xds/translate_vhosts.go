package xds

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// Listeners says which of the optional listeners exist, which decides the RouteConfigurations
// a Route's virtual hosts go into.
type Listeners struct {
	// HTTPS is the TLS listener's presence; HTTPSRedirectPort is the port plain-HTTP requests
	// are redirected to (443, the default, is left out of the Location).
	HTTPS             bool
	HTTPSRedirectPort uint32
	// Local is the local listener's presence.
	Local bool
}

// RouteConfigNames are the RouteConfigurations that exist with these listeners.
func (l Listeners) RouteConfigNames() []string {
	names := []string{RouteConfigName}
	if l.HTTPS {
		names = append(names, HTTPSRouteConfigName)
	}
	if l.Local {
		names = append(names, LocalRouteConfigName)
	}
	return names
}

// TranslateRouteVirtualHosts returns the Envoy virtual hosts of one Route for each
// RouteConfiguration (by name), in the Route's order:
//   - "skiff-http" (external plain HTTP) has the VisibilityAll and VisibilityExternal hosts,
//     and the VisibilityClusterLocal ones when there is no local listener; a RedirectHTTP host
//     there answers 301 to https; Challenges come first in every host there;
//   - "skiff-https" (the TLS listener) has the VisibilityAll and VisibilityExternal hosts;
//   - "skiff-local" has the VisibilityAll and VisibilityClusterLocal hosts.
func TranslateRouteVirtualHosts(r Route, extProc bool, ls Listeners) (map[string][]*routev3.VirtualHost, error) {
	if r.Namespace == "" || r.Name == "" {
		return nil, fmt.Errorf("translate route %s/%s: namespace and name are required", r.Namespace, r.Name)
	}
	out := map[string][]*routev3.VirtualHost{}
	for i, vh := range r.VirtualHosts {
		v, err := translateVirtualHost(r, vh, extProc)
		if err != nil {
			return nil, fmt.Errorf("translate route %s/%s: virtualHosts[%d] %q: %w", r.Namespace, r.Name, i, vh.Name, err)
		}
		external := vh.Visibility == VisibilityAll || vh.Visibility == VisibilityExternal
		local := vh.Visibility == VisibilityAll || vh.Visibility == VisibilityClusterLocal
		switch vh.Visibility {
		case VisibilityAll, VisibilityExternal, VisibilityClusterLocal:
		default:
			return nil, fmt.Errorf("translate route %s/%s: virtualHosts[%d] %q: unknown visibility %q", r.Namespace, r.Name, i, vh.Name, vh.Visibility)
		}
		if external || (local && !ls.Local) {
			plain, err := plainHTTPVirtualHost(v, vh, ls)
			if err != nil {
				return nil, fmt.Errorf("translate route %s/%s: virtualHosts[%d] %q: %w", r.Namespace, r.Name, i, vh.Name, err)
			}
			out[RouteConfigName] = append(out[RouteConfigName], plain)
		}
		if external && ls.HTTPS {
			out[HTTPSRouteConfigName] = append(out[HTTPSRouteConfigName], v)
		}
		if local && ls.Local {
			out[LocalRouteConfigName] = append(out[LocalRouteConfigName], v)
		}
	}
	return out, nil
}

// plainHTTPVirtualHost is v as the plain-HTTP listener serves it: the challenge paths first,
// then v's routes, or a redirect to https for a RedirectHTTP host.
func plainHTTPVirtualHost(v *routev3.VirtualHost, vh VirtualHost, ls Listeners) (*routev3.VirtualHost, error) {
	if len(vh.Challenges) == 0 && !vh.RedirectHTTP {
		return v, nil
	}
	out := proto.Clone(v).(*routev3.VirtualHost)
	var md *corev3.Metadata
	if len(v.GetRoutes()) > 0 {
		md = v.GetRoutes()[0].GetMetadata()
	}
	var routes []*routev3.Route
	for i, c := range vh.Challenges {
		if !strings.HasPrefix(c.Path, "/") || c.Cluster == "" {
			return nil, fmt.Errorf("challenges[%d]: a path starting with / and a cluster are required", i)
		}
		routes = append(routes, &routev3.Route{
			Match:    &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: c.Path}},
			Action:   &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c.Cluster}}},
			Metadata: md,
		})
	}
	if vh.RedirectHTTP {
		rd := &routev3.RedirectAction{
			SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
			ResponseCode:           routev3.RedirectAction_MOVED_PERMANENTLY,
		}
		if p := ls.HTTPSRedirectPort; p != 0 && p != 443 {
			rd.PortRedirect = p
		}
		routes = append(routes, &routev3.Route{
			Match:    &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action:   &routev3.Route_Redirect{Redirect: rd},
			Metadata: md,
		})
	} else {
		routes = append(routes, out.GetRoutes()...)
	}
	out.Routes = routes
	if err := out.ValidateAll(); err != nil {
		return nil, err
	}
	return out, nil
}
