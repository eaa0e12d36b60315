package xds

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Envoy's "Configuring Envoy as an edge proxy" best practices
// (envoyproxy.io/docs/envoy/latest/configuration/best_practices/edge), applied to every
// listener and cluster the control plane sends; deploy/envoy/bootstrap.yaml adds the
// overload manager (heap and global downstream connection limits) and the same buffer
// limits on its static listener and clusters.
const (
	// EdgeBufferLimitBytes is the per-connection read/write buffer limit of listeners and
	// clusters (32 KiB): a slow or hostile peer cannot make Envoy buffer more per connection.
	EdgeBufferLimitBytes = 32 << 10
	// EdgeMaxConcurrentStreams, EdgeInitialStreamWindow and EdgeInitialConnectionWindow are
	// the HTTP/2 limits for downstream clients (100 streams, 64 KiB, 1 MiB).
	EdgeMaxConcurrentStreams    = 100
	EdgeInitialStreamWindow     = 64 << 10
	EdgeInitialConnectionWindow = 1 << 20
	// EdgeRequestHeadersTimeout bounds how long a client may take to send its headers.
	EdgeRequestHeadersTimeout = 10 * time.Second
)

// edgeListener sets the edge limits on a listener.
func edgeListener(l *listenerv3.Listener) {
	l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(EdgeBufferLimitBytes)
}

// edgeCluster sets the edge limits on a cluster.
func edgeCluster(c *clusterv3.Cluster) {
	c.PerConnectionBufferLimitBytes = wrapperspb.UInt32(EdgeBufferLimitBytes)
}

// edgeHCM sets the edge options of an HTTP connection manager facing clients: HTTP/2 limits,
// a headers timeout and use_remote_address. Request and stream timeouts stay per route
// (Knative's timeoutSeconds), so none is set here. use_remote_address, as Knative's
// net-kourier sets it, appends the client's address to X-Forwarded-For and sets
// X-Forwarded-Proto: Knative's runtime contract has apps see both.
func edgeHCM(h *hcmv3.HttpConnectionManager) {
	h.UseRemoteAddress = wrapperspb.Bool(true)
	h.RequestHeadersTimeout = durationpb.New(EdgeRequestHeadersTimeout)
	h.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{
		MaxConcurrentStreams:        wrapperspb.UInt32(EdgeMaxConcurrentStreams),
		InitialStreamWindowSize:     wrapperspb.UInt32(EdgeInitialStreamWindow),
		InitialConnectionWindowSize: wrapperspb.UInt32(EdgeInitialConnectionWindow),
	}
}
