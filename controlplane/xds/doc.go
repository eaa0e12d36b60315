// Package xds turns Skiff's routing model (routes with weighted revision
// clusters, revision upstreams and their endpoints) into Envoy v3 resources
// and serves them to Envoy, or to Skiff's own gateway, over ADS.
//
// Naming conventions shared with the gateway (see DESIGN.md):
//
//   - the Listener "skiff-http" (external, plain), and optionally "skiff-https"
//     (external TLS: one filter chain per certificate, chosen by SNI, the
//     certificate an SDS secret over ADS; sent once a certificate exists) and
//     "skiff-local" (cluster-local names only), each with an HTTP connection
//     manager whose routes come from RDS over ADS (WebSocket upgrades allowed);
//   - one RouteConfiguration per listener (the single layout; Options.ScopedRoutes
//     instead splits them into hash buckets "{listener}/b{NNNN}" selected per host by
//     scoped routes, see README.md for the decision), named after it, holding its virtual
//     hosts sorted by name (VirtualHost.Visibility decides which); each virtual
//     host has one route (prefix "/") carrying the virtual host's metadata under
//     filter_metadata["skiff"], or, on "skiff-http" for RedirectHTTP hosts, a
//     301 to https, after any ACME challenge paths;
//   - one SDS Secret per TLSCertificate, named as the certificate; one that does
//     not load is refused before any proxy sees it (CheckCertificate);
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
// Server keeps one changeCache (cache.go) per resource type so that a change to
// one Service re-sends only that Service's resources, at a cost that grows with
// the change, not with the number of Services; see Server and README.md.
package xds
