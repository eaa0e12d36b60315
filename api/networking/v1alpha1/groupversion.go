// +kubebuilder:object:generate=false
// +groupName=networking.internal.knative.dev

package v1alpha1
