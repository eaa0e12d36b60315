// +kubebuilder:object:generate=false
// +groupName=flows.knative.dev

package v1
