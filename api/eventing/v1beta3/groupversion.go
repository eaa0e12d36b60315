// +kubebuilder:object:generate=false
// +groupName=eventing.knative.dev

package v1beta3
