// +kubebuilder:object:generate=false
// +groupName=messaging.knative.dev

package v1
