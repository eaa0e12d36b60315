// +kubebuilder:object:generate=false
// +groupName=serving.knative.dev

package v1beta1
