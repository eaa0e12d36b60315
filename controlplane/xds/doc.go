// Package xds turns Skiff's routing model (routes with weighted revision
// clusters, revision upstreams and their endpoints) into Envoy v3 resources
// and serves them to Envoy, or to Skiff's own gateway, over ADS.
//
// Naming conventions shared with the gateway (see DESIGN.md):
//
//   - one Listener, "skiff-http", with an HTTP connection manager whose routes
//     come from RDS over ADS;
//   - one RouteConfiguration, "skiff-http", holding every virtual host sorted
//     by name; each virtual host has one route (prefix "/") carrying the
//     virtual host's metadata under filter_metadata["skiff"];
//   - one EDS Cluster per Revision named "{namespace}/{revision}", and one
//     ClusterLoadAssignment with the same name;
//   - with an ext_proc service (Options.ExtProcAddress), the listener runs
//     envoy.filters.http.ext_proc (disabled by default) before the router, CDS
//     carries the "skiff-extproc" cluster, proxy-mode revisions enable the
//     filter with a FilterConfig on their weighted cluster (or route), and OverrideHost
//     clusters let the service pick the endpoint (dynamic metadata envoy.lb);
//   - Options.WasmFilters become envoy.filters.http.wasm filters placed first
//     in the chain (before ext_proc), e.g. "skiff.revision-metrics", whose
//     per-revision counters the autoscaler reads from the proxy's stats.
//
// The translator (TranslateListener, TranslateVirtualHosts,
// TranslateRouteConfiguration, TranslateCluster, TranslateEndpoints) is pure.
// Server keeps one go-control-plane LinearCache per resource type so that a
// change to one Service re-sends only that Service's resources; see Server.
package xds
