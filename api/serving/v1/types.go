// Package v1 holds Knative's serving.knative.dev/v1 resources as Skiff accepts them:
// Service, Configuration, Revision and Route, with Knative's field names, defaults,
// validation and status.
package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api/duck"
)

// GroupVersion is the apiVersion of every resource in this package.
const GroupVersion = "serving.knative.dev/v1"

// Kinds of this API group.
const (
	KindService       = "Service"
	KindConfiguration = "Configuration"
	KindRevision      = "Revision"
	KindRoute         = "Route"
)

// Labels Knative puts on the resources it derives, which Skiff sets the same way.
const (
	ServiceLabel                 = "serving.knative.dev/service"
	ConfigurationLabel           = "serving.knative.dev/configuration"
	ConfigurationGenerationLabel = "serving.knative.dev/configurationGeneration"
	RouteLabel                   = "serving.knative.dev/route"
	RevisionLabel                = "serving.knative.dev/revision"
	// RevisionUIDLabel carries the Revision's UID on its Deployment and pods.
	RevisionUIDLabel = "serving.knative.dev/revisionUID"
	// ConfigurationUIDLabel and ServiceUIDLabel carry the owners' UIDs on derived objects.
	ConfigurationUIDLabel = "serving.knative.dev/configurationUID"
	ServiceUIDLabel       = "serving.knative.dev/serviceUID"
	// RoutingStateLabel says whether a Revision is referenced by a Route ("active"), not
	// ("reserve"), or not yet looked at by one ("pending", from its creation).
	RoutingStateLabel = "serving.knative.dev/routingState"
)

// Annotations Knative's labeler keeps on the Configurations and Revisions a Route sends
// traffic to (pkg/reconciler/labeler).
const (
	// RoutesAnnotation lists, comma-separated and sorted, the Routes that reference the object.
	RoutesAnnotation = "serving.knative.dev/routes"
	// RoutingStateModifiedAnnotation is when a Revision's routing state last changed (RFC 3339, UTC).
	RoutingStateModifiedAnnotation = "serving.knative.dev/routingStateModified"
	// RevisionPreservedAnnotation set to "true" keeps a Revision from the garbage collector;
	// RevisionLastPinnedAnnotation is the older collector's. Neither reaches the pods.
	RevisionPreservedAnnotation  = "serving.knative.dev/no-gc"
	RevisionLastPinnedAnnotation = "serving.knative.dev/lastPinned"
)

// Routing states of a Revision (RoutingStateLabel).
const (
	RoutingStatePending = "pending"
	RoutingStateActive  = "active"
	RoutingStateReserve = "reserve"
)

// Condition types of Knative serving resources.
const (
	ServiceConditionConfigurationsReady duck.ConditionType = "ConfigurationsReady"
	ServiceConditionRoutesReady         duck.ConditionType = "RoutesReady"
	RouteConditionAllTrafficAssigned    duck.ConditionType = "AllTrafficAssigned"
	RouteConditionIngressReady          duck.ConditionType = "IngressReady"
	RevisionConditionResourcesAvailable duck.ConditionType = "ResourcesAvailable"
	RevisionConditionContainerHealthy   duck.ConditionType = "ContainerHealthy"
	RevisionConditionActive             duck.ConditionType = "Active"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kservice;ksvc,categories=all;knative;serving
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.url"
// +kubebuilder:printcolumn:name="LatestCreated",type=string,JSONPath=".status.latestCreatedRevisionName"
// +kubebuilder:printcolumn:name="LatestReady",type=string,JSONPath=".status.latestReadyRevisionName"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// Service is a Knative Service: a Configuration and a Route managed together.
type Service struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServiceSpec   `json:"spec,omitempty"`
	Status            ServiceStatus `json:"status,omitempty"`
}

// ServiceSpec is the union of a Configuration's and a Route's spec, as in Knative.
type ServiceSpec struct {
	ConfigurationSpec `json:",inline"`
	RouteSpec         `json:",inline"`
}

// ServiceStatus is what Knative reports for a Service.
type ServiceStatus struct {
	duck.Status               `json:",inline"`
	ConfigurationStatusFields `json:",inline"`
	RouteStatusFields         `json:",inline"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=config;cfg,categories=all;knative;serving
// +kubebuilder:printcolumn:name="LatestCreated",type=string,JSONPath=".status.latestCreatedRevisionName"
// +kubebuilder:printcolumn:name="LatestReady",type=string,JSONPath=".status.latestReadyRevisionName"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// Configuration stamps out a new Revision every time its template changes.
type Configuration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ConfigurationSpec   `json:"spec,omitempty"`
	Status            ConfigurationStatus `json:"status,omitempty"`
}

// ConfigurationSpec holds the template of the Revisions a Configuration creates.
type ConfigurationSpec struct {
	// The template is schemaless in the CRD, as in Knative's: its pod spec is defaulted and
	// validated by Skiff (container names, for one, are optional here and required by Kubernetes).
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Template RevisionTemplateSpec `json:"template"`
}

// ConfigurationStatus is what Knative reports for a Configuration.
type ConfigurationStatus struct {
	duck.Status               `json:",inline"`
	ConfigurationStatusFields `json:",inline"`
}

// ConfigurationStatusFields names the newest created and newest ready Revisions.
type ConfigurationStatusFields struct {
	LatestReadyRevisionName   string `json:"latestReadyRevisionName,omitempty"`
	LatestCreatedRevisionName string `json:"latestCreatedRevisionName,omitempty"`
}

// RevisionTemplateSpec is the metadata and spec each new Revision is made from.
type RevisionTemplateSpec struct {
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RevisionSpec `json:"spec,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rev,categories=all;knative;serving
// +kubebuilder:printcolumn:name="Config Name",type=string,JSONPath=".metadata.labels['serving\\.knative\\.dev/configuration']"
// +kubebuilder:printcolumn:name="Generation",type=string,JSONPath=".metadata.labels['serving\\.knative\\.dev/configurationGeneration']"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// +kubebuilder:printcolumn:name="Actual Replicas",type=integer,JSONPath=".status.actualReplicas"
// +kubebuilder:printcolumn:name="Desired Replicas",type=integer,JSONPath=".status.desiredReplicas"
// Revision is an immutable snapshot of code and configuration.
type Revision struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Spec   RevisionSpec   `json:"spec,omitempty"`
	Status RevisionStatus `json:"status,omitempty"`
}

// RevisionSpec is a pod spec plus Knative's per-revision knobs.
type RevisionSpec struct {
	corev1.PodSpec `json:",inline"`
	// ContainerConcurrency is the most requests one pod may serve at once; 0 means no limit.
	ContainerConcurrency *int64 `json:"containerConcurrency,omitempty"`
	// TimeoutSeconds is the most time a request may take.
	TimeoutSeconds *int64 `json:"timeoutSeconds,omitempty"`
	// ResponseStartTimeoutSeconds is the most time until the first response byte.
	ResponseStartTimeoutSeconds *int64 `json:"responseStartTimeoutSeconds,omitempty"`
	// IdleTimeoutSeconds is the most time a request may go without bytes flowing.
	IdleTimeoutSeconds *int64 `json:"idleTimeoutSeconds,omitempty"`
}

// RevisionStatus is what Knative reports for a Revision, plus the PodAutoscaler's scale.
type RevisionStatus struct {
	duck.Status       `json:",inline"`
	LogURL            string            `json:"logUrl,omitempty"`
	ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
	// ActualReplicas is how many pods are running and ready.
	ActualReplicas *int32 `json:"actualReplicas,omitempty"`
	// DesiredReplicas is how many pods the autoscaler wants.
	DesiredReplicas *int32 `json:"desiredReplicas,omitempty"`
	// Autoscaling is the autoscaler's last decision, as Knative's PodAutoscaler would show it.
	Autoscaling *AutoscalingStatus `json:"autoscaling,omitempty"`
}

// Modes a revision's traffic can be in, as Knative's ServerlessService names them.
const (
	// ModeServe sends requests straight to the revision's pods.
	ModeServe = "Serve"
	// ModeProxy sends requests through the proxy's ext_proc activator, which buffers them
	// while there is no capacity and keeps pods within containerConcurrency.
	ModeProxy = "Proxy"
)

// AutoscalingStatus is the autoscaler's last decision for a revision. The observed values are
// those of the decision that last changed the scale, panic state or mode.
type AutoscalingStatus struct {
	// Mode is ModeServe or ModeProxy.
	Mode string `json:"mode,omitempty"`
	// Panic is true while the panic window's demand exceeds the panic threshold.
	Panic bool `json:"panic,omitempty"`
	// StableConcurrency and PanicConcurrency are the averaged in-flight requests per window.
	StableConcurrency float64 `json:"stableConcurrency,omitempty"`
	PanicConcurrency  float64 `json:"panicConcurrency,omitempty"`
	// StableRPS is the averaged request rate over the stable window.
	StableRPS float64 `json:"stableRps,omitempty"`
	// ExcessBurstCapacity is capacity minus target burst capacity minus panic demand;
	// negative puts the proxy's activator in the path.
	ExcessBurstCapacity float64 `json:"excessBurstCapacity,omitempty"`
}

// ContainerStatus names a container and the image it resolved to.
type ContainerStatus struct {
	Name        string `json:"name,omitempty"`
	ImageDigest string `json:"imageDigest,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rt,categories=all;knative;serving
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.url"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// Route sends traffic to Revisions by percent and by tag.
type Route struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RouteSpec   `json:"spec,omitempty"`
	Status            RouteStatus `json:"status,omitempty"`
}

// RouteSpec lists where traffic goes.
type RouteSpec struct {
	Traffic []TrafficTarget `json:"traffic,omitempty"`
}

// TrafficTarget is one destination of a Route: a named Revision, or the latest ready
// Revision of a Configuration, with a share of traffic and an optional tag.
type TrafficTarget struct {
	Tag               string `json:"tag,omitempty"`
	RevisionName      string `json:"revisionName,omitempty"`
	ConfigurationName string `json:"configurationName,omitempty"`
	LatestRevision    *bool  `json:"latestRevision,omitempty"`
	// Percent is the share of the route's requests, 0 to 100 (the schema refuses others at
	// once; the webhook, or the Route's status, says when the targets do not sum to 100).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent *int64 `json:"percent,omitempty"`
	// URL is set in status for tagged targets.
	URL string `json:"url,omitempty"`
}

// RouteStatus is what Knative reports for a Route.
type RouteStatus struct {
	duck.Status       `json:",inline"`
	RouteStatusFields `json:",inline"`
}

// RouteStatusFields is the Route's URL, address and resolved traffic.
type RouteStatusFields struct {
	URL     string            `json:"url,omitempty"`
	Address *duck.Addressable `json:"address,omitempty"`
	Traffic []TrafficTarget   `json:"traffic,omitempty"`
}
