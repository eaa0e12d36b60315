package upstream

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/skiff-dev/skiff/telemetry"
)

// RevisionMetadataNamespace is the filter_metadata key of a cluster whose fields
// namespace, revision, service and configuration name the Knative Revision it serves (the
// control plane's revision clusters).
const RevisionMetadataNamespace = "skiff"

// revisionOf reads the Revision a cluster's metadata names; nil when it names none. A
// Revision always has a Configuration; clusters without one (Skiff's own, such as the
// broker ingress's) serve no Revision.
func revisionOf(raw *clusterv3.Cluster) *telemetry.Revision {
	f := raw.GetMetadata().GetFilterMetadata()[RevisionMetadataNamespace].GetFields()
	ns, rev := f["namespace"].GetStringValue(), f["revision"].GetStringValue()
	if ns == "" || rev == "" || f["configuration"].GetStringValue() == "" {
		return nil
	}
	return &telemetry.Revision{
		Namespace: ns, Name: rev,
		Service: f["service"].GetStringValue(), Configuration: f["configuration"].GetStringValue(),
	}
}

// Revision returns the Knative Revision the cluster serves, from its metadata
// (filter_metadata["skiff"]): the labels of its request metrics and logs.
func (c *Cluster) Revision() (telemetry.Revision, bool) {
	if c == nil || c.revision == nil {
		return telemetry.Revision{}, false
	}
	return *c.revision, true
}
