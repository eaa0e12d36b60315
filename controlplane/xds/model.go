package xds

import "time"

// Names and defaults shared by the control plane and every proxy it drives.
const (
	// ListenerName is the name of the single HTTP listener.
	ListenerName = "skiff-http"
	// RouteConfigName is the name of the single RouteConfiguration referenced
	// by the listener through RDS.
	RouteConfigName = "skiff-http"
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
	// NumRetries is the retry count set on every route.
	NumRetries uint32 = 3
)

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
	// Metadata is exposed to filters as route metadata filter_metadata["skiff"]
	// (namespace and route are filled in from the Route when absent).
	Metadata map[string]string
}

// WeightedCluster is one revision cluster of a VirtualHost with its traffic weight.
type WeightedCluster struct {
	// Name is the cluster name, "{namespace}/{revision}" (see ClusterName).
	Name string
	// Weight is the relative traffic weight (Knative percent).
	Weight uint32
}

// Cluster is one Revision's upstream.
type Cluster struct {
	// Name is the cluster name; when empty it is ClusterName(Namespace, Revision).
	Name string
	// Namespace and Revision identify the Knative Revision; they go into the
	// cluster metadata filter_metadata["skiff"].
	Namespace, Revision string
	// HTTP2 makes Envoy talk HTTP/2 (h2c) to the revision's pods.
	HTTP2 bool
	// LeastRequest selects LEAST_REQUEST load balancing instead of ROUND_ROBIN.
	LeastRequest bool
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
