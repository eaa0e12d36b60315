package xds

import "time"

// Names and defaults shared by the control plane and every proxy it drives.
const (
	// ListenerName is the name of the external plain-HTTP listener.
	ListenerName = "skiff-http"
	// RouteConfigName is the name of the RouteConfiguration the external
	// plain-HTTP listener gets through RDS.
	RouteConfigName = "skiff-http"
	// HTTPSListenerName is the external TLS listener (Options.HTTPSListenerPort):
	// one filter chain per certificate, selected by SNI, certificates as SDS
	// secrets over ADS.
	HTTPSListenerName = "skiff-https"
	// HTTPSRouteConfigName is the RouteConfiguration of the TLS listener.
	HTTPSRouteConfigName = "skiff-https"
	// LocalListenerName is the cluster-local listener (Options.LocalListenerPort),
	// which alone serves cluster-local names.
	LocalListenerName = "skiff-local"
	// LocalRouteConfigName is the RouteConfiguration of the local listener.
	LocalRouteConfigName = "skiff-local"
	// TLSMinimumVersion is the oldest TLS version the TLS listener accepts.
	TLSMinimumVersion = "TLSv1_2"
	// MetadataNamespace is the filter_metadata key under which Skiff puts its
	// own metadata on routes and clusters.
	MetadataNamespace = "skiff"
	// DefaultListenerAddress is the listener address used when Options leave it empty.
	DefaultListenerAddress = "0.0.0.0"
	// DefaultListenerPort is the listener port used when Options leave it zero.
	DefaultListenerPort uint32 = 8080
	// DefaultConnectTimeout is the upstream connect timeout used when a Cluster leaves it zero.
	DefaultConnectTimeout = time.Second
	// DefaultRouteTimeout is the route timeout used when a VirtualHost leaves it
	// zero; it matches Knative's default revision timeout (300s).
	DefaultRouteTimeout = 300 * time.Second
	// RetryOn is the retry condition set on every route: only failures that
	// are safe to retry because the request never reached the application.
	RetryOn = "connect-failure,refused-stream"
	// ForwardedFormat is the Forwarded request header every route adds when the request has
	// none, in Envoy's substitution formatters: for= the client's address, proto= the scheme
	// (as queue-proxy's shim writes it for one hop).
	ForwardedFormat = "for=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%;proto=%REQ(X-Forwarded-Proto)%"
	// NumRetries is the retry count set on every route.
	NumRetries uint32 = 3

	// ExtProcFilterName is the HTTP filter name of the ext_proc filter, also
	// the typed_per_filter_config key that disables it per route and per
	// weighted cluster.
	ExtProcFilterName = "envoy.filters.http.ext_proc"
	// ExtProcClusterName is the cluster through which the proxy reaches the
	// ext_proc service (grpc_service.envoy_grpc.cluster_name).
	ExtProcClusterName = "skiff-extproc"
	// ExtProcMessageTimeout is the ext_proc message_timeout (and
	// max_message_timeout): how long the proxy waits for the processor's
	// answer to the request headers, i.e. how long a request can be held
	// through a cold start. It matches Knative's default revision timeout;
	// the field allows up to 1h.
	ExtProcMessageTimeout = 300 * time.Second
	// LBMetadataNamespace is the dynamic metadata namespace in which the
	// ext_proc service names the endpoint that must serve a request, under
	// the key DestinationEndpointKey ("ip:port"), for clusters with
	// OverrideHost (Envoy's override_host load balancing policy).
	LBMetadataNamespace = "envoy.lb"
	// DestinationEndpointKey is the key of the chosen endpoint in LBMetadataNamespace.
	DestinationEndpointKey = "x-gateway-destination-endpoint"
)

// ExtProcRequestAttributes are the attributes the ext_proc filter sends the
// processor (under ProcessingRequest.attributes["envoy.filters.http.ext_proc"]):
// the chosen upstream cluster and the route metadata.
var ExtProcRequestAttributes = []string{"xds.cluster_name", "xds.route_metadata"}

// WasmRuntime is the vm_config.runtime of Skiff's Wasm filters: V8, the
// runtime every Envoy release build has (Skiff's gateway runs any runtime
// with wazero).
const WasmRuntime = "envoy.wasm.runtime.v8"

// WasmCodeClusterName is the cluster through which proxies fetch remote Wasm
// modules (WasmFilter.RemoteURL), sent over CDS when Options.WasmCodeServer is set.
const WasmCodeClusterName = "skiff-wasm"

// WasmFetchTimeout bounds one fetch of a remote Wasm module; WasmFetchRetries
// is how many times the proxy retries a failed fetch.
const (
	WasmFetchTimeout        = 30 * time.Second
	WasmFetchRetries uint32 = 5
)

// WasmCodePath is the URL path under which WasmCodeHandler serves a module by
// its sha256: WasmCodePath + "<sha256>.wasm".
const WasmCodePath = "/wasm/"

// RevisionMetricsFilterName is the conventional name of the revision-metrics
// Wasm filter (wasm-filters/revision-metrics), which must run before ext_proc.
const RevisionMetricsFilterName = "skiff.revision-metrics"

// WasmFilter is a proxy-wasm HTTP filter (envoy.filters.http.wasm) the
// listener runs before every other filter, in the order given.
type WasmFilter struct {
	// Name is the HttpFilter name, also the plugin's name and root_id, e.g.
	// RevisionMetricsFilterName. Names must be unique.
	Name string
	// Path is the .wasm module's file name as the proxy sees it
	// (vm_config.code.local.filename), or, with RemoteURL, as the control
	// plane serving it sees it (WasmCodeHandler).
	Path string
	// RemoteURL, when set, makes the proxy fetch the module over HTTP
	// instead of reading Path (vm_config.code.remote: http_uri through the
	// WasmCodeClusterName cluster, verified against SHA256, which is then
	// required). Options.WasmCodeServer fills it in for every filter.
	RemoteURL string
	// SHA256 is the module's sha256 (hex), optional. When set it becomes
	// part of the vm_id, so a new build of the module changes the listener
	// and the proxy loads it (Envoy reuses a VM whose configuration did not
	// change, even when the file did).
	SHA256 string
	// Configuration is the plugin configuration, passed as a
	// google.protobuf.StringValue (read by proxy_on_configure).
	Configuration string
	// FailOpen lets requests through without the filter when its VM fails
	// (failure_policy FAIL_OPEN). Otherwise the failure_policy is
	// FAIL_RELOAD: the request that hit the failure gets a 503 and later
	// requests a new VM.
	FailOpen bool
	// Disabled makes the listener skip the filter (HttpFilter.disabled)
	// except on the virtual hosts that name it in EnableFilters, which turn
	// it on with a route.v3.FilterConfig in typed_per_filter_config, as for
	// ext_proc. The cloudevents filter runs this way, on the broker ingress
	// virtual host only.
	Disabled bool
	// RunWhen, when set, runs the filter only on requests meeting at least one of
	// these conditions, through Envoy's composite filter (an ExtensionWithMatcher
	// whose xds_matcher selects an ExecuteFilterAction carrying the Wasm filter):
	// the other requests never reach the Wasm VM. The forwarded filter runs this
	// way (ForwardedConditions).
	RunWhen []HeaderCondition
}

// Route is one Knative Route's traffic: the virtual hosts it owns.
type Route struct {
	// Namespace and Name identify the Knative Route; SetRoute keys on them.
	Namespace, Name string
	// VirtualHosts are the hosts this Route answers (the main host and one per tag).
	VirtualHosts []VirtualHost
}

// VirtualHost is one host name set (e.g. the Route's URL, or a tag's URL)
// and the weighted revisions it sends traffic to.
type VirtualHost struct {
	// Name must be unique across all Routes (e.g. "default/hello" or "default/hello/tag-prev").
	Name string
	// Domains are matched against the Host header (port stripped); they must be
	// unique across all Routes.
	Domains []string
	// Clusters are the revision clusters and their traffic weights; clusters with
	// weight 0 are left out, at least one must have a positive weight.
	Clusters []WeightedCluster
	// Timeout is the request timeout; zero means DefaultRouteTimeout.
	Timeout time.Duration
	// SetRequestHeaders are set on every request of the virtual host, replacing what the
	// client sent, before the rules' own.
	SetRequestHeaders []Header
	// ResponseStartTimeout bounds the wait for the response to start (Knative's
	// responseStartTimeoutSeconds), as the retry policy's per_try_timeout, which Envoy
	// ignores once the response has started; zero means none.
	ResponseStartTimeout time.Duration
	// IdleTimeout bounds the time the upstream may send nothing, before the response and
	// during it (Knative's idleTimeoutSeconds), as the retry policy's
	// per_try_idle_timeout; zero means none.
	IdleTimeout time.Duration
	// Metadata is exposed to filters as route metadata filter_metadata["skiff"]
	// (namespace and route are filled in from the Route when absent).
	Metadata map[string]string
	// Rules, when set, replace the single prefix "/" route with one route per
	// rule, tried in order (a Gateway API HTTPRoute's rules, sorted by its
	// precedence); Clusters is then unused.
	Rules []Rule
	// Visibility selects the listeners that serve the virtual host (see
	// Visibility); the zero value serves it on every listener.
	Visibility Visibility
	// RedirectHTTP makes the external plain-HTTP listener answer the host's
	// requests with a 301 to https (Knative's http-protocol Redirected); the
	// TLS listener serves them. Challenges are still served over plain HTTP.
	RedirectHTTP bool
	// HostRewrite, when set, replaces the Host of requests sent upstream (a
	// DomainMapping's requests reach the app with its target's host, as in Knative).
	HostRewrite string
	// Challenges are ACME HTTP01 challenge paths served over plain HTTP on the
	// external listener before anything else (also while redirected), as
	// Knative routes them while a certificate is pending.
	Challenges []Challenge
	// EnableFilters names listener HTTP filters that are disabled by default
	// (WasmFilter.Disabled) and run on this virtual host: each gets an
	// empty route.v3.FilterConfig (disabled: false) in the virtual host's
	// typed_per_filter_config.
	EnableFilters []string
}

// Visibility says which listeners serve a virtual host.
type Visibility string

const (
	// VisibilityAll serves the virtual host on every listener (e.g. the
	// broker ingress, whose names are both external and cluster-local).
	VisibilityAll Visibility = ""
	// VisibilityExternal serves it on the external listeners (plain HTTP
	// and TLS) only.
	VisibilityExternal Visibility = "External"
	// VisibilityClusterLocal serves it on the local listener only; without
	// a local listener (Options.LocalListenerPort 0) on the plain-HTTP one.
	VisibilityClusterLocal Visibility = "ClusterLocal"
)

// Challenge is an exact path answered by a cluster (an ACME HTTP01 solver).
type Challenge struct {
	// Path is the request path, e.g. /.well-known/acme-challenge/{token}.
	Path string
	// Cluster answers it (see ServiceCluster).
	Cluster string
}

// TLSCertificate is a certificate the TLS listener serves for its hosts.
// It reaches proxies as an SDS Secret named Name; the listener selects it by
// SNI (a filter chain whose server_names are Hosts).
type TLSCertificate struct {
	// Name is the SDS secret name, unique among certificates (e.g.
	// "{namespace}/{secret}").
	Name string
	// Hosts are the server names that select it: exact, or "*.domain".
	Hosts []string
	// CertPEM is the PEM certificate chain, leaf first; KeyPEM its private key.
	CertPEM, KeyPEM []byte
}

// Rule is one route of a VirtualHost with Rules: what it matches and the
// weighted revisions it sends those requests to.
type Rule struct {
	// PathPrefix matches paths at a "/" boundary, as Gateway API's PathPrefix:
	// "/a" (or "/a/") matches "/a" and "/a/b", not "/ab". "" and "/" match
	// every path. Exclusive with PathExact.
	PathPrefix string
	// PathExact matches this one path.
	PathExact string
	// Headers must all be present with these exact values.
	Headers []HeaderMatch
	// SetRequestHeaders are set on the matching requests, replacing what the client sent
	// (Knative's AppendHeaders, which net-kourier sets with OVERWRITE_IF_EXISTS_OR_ADD).
	SetRequestHeaders []Header
	// Clusters are the revision clusters and their weights, as in
	// VirtualHost.Clusters. None with a positive weight answers every
	// matching request 500 (Gateway API: a rule whose backends are all invalid).
	Clusters []WeightedCluster
	// Timeouts, when set, replace the virtual host's Timeout, ResponseStartTimeout and
	// IdleTimeout for this rule (a tag's rule on a Route's default host serves that
	// tag's revisions, with their timeouts).
	Timeouts *RouteTimeouts
}

// RouteTimeouts are one route's request timeouts, as VirtualHost's fields of the same names.
type RouteTimeouts struct {
	Timeout, ResponseStartTimeout, IdleTimeout time.Duration
}

// HeaderMatch is a request header that must have exactly Value.
type HeaderMatch struct {
	Name, Value string
}

// Header is a request header the proxy sets.
type Header struct {
	Name, Value string
}

// WeightedCluster is one revision cluster of a VirtualHost with its traffic weight.
type WeightedCluster struct {
	// Name is the cluster name, "{namespace}/{revision}" (see ClusterName).
	Name string
	// Weight is the relative traffic weight (Knative percent).
	Weight uint32
	// Activate puts the revision in proxy mode: its requests go through the
	// ext_proc filter (held while the revision scales from zero, and
	// assigned an endpoint by the ext_proc service): the filter, disabled
	// by default on the listener, is enabled for this cluster with a
	// route.v3.FilterConfig. When false (serve mode) requests go straight
	// to endpoints. Without an ext_proc service (Options.ExtProcAddress
	// empty) it has no effect.
	Activate bool
}

// Cluster is one Revision's upstream.
type Cluster struct {
	// Name is the cluster name; when empty it is ClusterName(Namespace, Revision).
	Name string
	// Namespace and Revision identify the Knative Revision; they go into the
	// cluster metadata filter_metadata["skiff"].
	Namespace, Revision string
	// Service and Configuration are the Knative Service and Configuration the Revision
	// belongs to, when known; they go into the cluster metadata too (keys "service" and
	// "configuration"), so proxies label the revision's request metrics as Knative does.
	Service, Configuration string
	// HTTP2 makes Envoy talk HTTP/2 (h2c) to the revision's pods.
	HTTP2 bool
	// LeastRequest selects LEAST_REQUEST load balancing instead of ROUND_ROBIN.
	LeastRequest bool
	// OverrideHost makes the cluster honour the endpoint chosen by the
	// ext_proc service: load_balancing_policy override_host reading dynamic
	// metadata envoy.lb/x-gateway-destination-endpoint, falling back to
	// least_request when it names no healthy endpoint of the cluster. It
	// replaces lb_policy (LeastRequest is then irrelevant).
	OverrideHost bool
	// ConnectTimeout is the upstream connect timeout; zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxRequestsPerEndpoint becomes circuit_breakers.thresholds[DEFAULT].max_requests;
	// 0 means unlimited. Note that Envoy applies max_requests to the whole
	// cluster, not to each endpoint.
	MaxRequestsPerEndpoint uint32
}

// Endpoint is one ready pod (or local process) of a Revision.
type Endpoint struct {
	// Address is an IP address (EDS endpoints must be IPs, not host names).
	Address string
	// Port is the TCP port, 1-65535.
	Port uint32
}

// ClusterName returns the cluster name of a Revision: "{namespace}/{revision}".
func ClusterName(namespace, revision string) string {
	return namespace + "/" + revision
}
