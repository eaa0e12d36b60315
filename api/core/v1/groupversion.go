// +kubebuilder:skip
// +kubebuilder:object:generate=false

package v1
