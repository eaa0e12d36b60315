// +kubebuilder:object:generate=false
// +groupName=sources.knative.dev

package v1
